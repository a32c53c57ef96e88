//! The model repository: `<root>/<model>/<version>/` directories turned into served versions.
//!
//! A scan reads the tree, applies the version policy, reuses versions that are already loaded,
//! loads new ones and publishes a new immutable [`Snapshot`] with one atomic pointer swap
//! (`arc-swap`). Requests hold an `Arc` to the version they resolved, so a version that is
//! replaced or removed keeps answering its in-flight requests and is dropped when the last of
//! them finishes.
//!
//! Versions are immutable once served, as in TF Serving: publish a new version by writing it
//! under a hidden name (`.tmp-3`) and renaming it to `3`. A version that fails to load (e.g. still
//! being copied) is retried on every scan; under `latest` the previous version keeps serving.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use prometheus::{Histogram, IntCounter};

use crate::batcher::{BatchConfig, Batcher};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::predictor::{Loader, ModelInfo};

/// Which versions of each model are served (`--version-policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionPolicy {
    /// Only the highest version that loads.
    Latest,
    /// Every version that loads.
    All,
    /// Only this version.
    Specific(u64),
}

impl FromStr for VersionPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "latest" => Ok(VersionPolicy::Latest),
            "all" => Ok(VersionPolicy::All),
            _ => match s.strip_prefix("specific:").map(parse_version) {
                Some(Some(v)) => Ok(VersionPolicy::Specific(v)),
                _ => Err(format!(
                    "unknown version policy '{s}': use latest, all or specific:N with N a positive integer"
                )),
            },
        }
    }
}

impl fmt::Display for VersionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionPolicy::Latest => f.write_str("latest"),
            VersionPolicy::All => f.write_str("all"),
            VersionPolicy::Specific(v) => write!(f, "specific:{v}"),
        }
    }
}

/// A version directory name: a positive integer written canonically ("7", not "007" or "+7").
pub fn parse_version(name: &str) -> Option<u64> {
    let v: u64 = name.parse().ok()?;
    (v > 0 && v.to_string() == name).then_some(v)
}

/// One loaded model version with its batcher and cached metric handles.
pub struct ServedVersion {
    pub model: String,
    pub version: u64,
    pub info: ModelInfo,
    pub input_len: usize,
    pub num_classes: usize,
    pub batcher: Batcher,
    pub latency: Histogram,
    pub ok: IntCounter,
}

/// One model's state after a scan.
#[derive(Default)]
pub struct ModelEntry {
    pub versions: BTreeMap<u64, Arc<ServedVersion>>,
    /// Versions the policy wanted that failed to load, with the loader's message.
    pub errors: BTreeMap<u64, String>,
}

impl ModelEntry {
    pub fn latest(&self) -> Option<&Arc<ServedVersion>> {
        self.versions.values().next_back()
    }
}

/// What the server serves at one moment; replaced whole, never mutated.
#[derive(Default)]
pub struct Snapshot {
    pub models: BTreeMap<String, ModelEntry>,
    /// False until the first scan finished: the server is not ready before that.
    pub scanned: bool,
}

impl Snapshot {
    /// Ready when scanned and every model in the repository has a version to serve.
    pub fn ready(&self) -> bool {
        self.scanned && self.models.values().all(|m| !m.versions.is_empty())
    }
}

pub struct Repository {
    root: PathBuf,
    loader: Arc<dyn Loader>,
    policy: VersionPolicy,
    batch: BatchConfig,
    metrics: Metrics,
    state: ArcSwap<Snapshot>,
    /// Scans are serialised; requests never take this lock.
    scan_lock: Mutex<()>,
}

/// What one scan changed, for logs and tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScanReport {
    pub loaded: Vec<(String, u64)>,
    pub unloaded: Vec<(String, u64)>,
    pub failed: Vec<(String, u64)>,
}

impl Repository {
    pub fn new(
        root: PathBuf,
        loader: Arc<dyn Loader>,
        policy: VersionPolicy,
        batch: BatchConfig,
        metrics: Metrics,
    ) -> Repository {
        Repository {
            root,
            loader,
            policy,
            batch,
            metrics,
            state: ArcSwap::from_pointee(Snapshot::default()),
            scan_lock: Mutex::new(()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.state.load_full()
    }

    /// Finds the version a request names, or the latest served one when it names none.
    pub fn resolve(
        &self,
        model: &str,
        version: Option<u64>,
    ) -> Result<Arc<ServedVersion>, ApiError> {
        let snapshot = self.state.load();
        if !snapshot.scanned {
            return Err(ApiError::Unavailable(
                "the server is still loading its model repository; retry shortly".into(),
            ));
        }
        let Some(entry) = snapshot.models.get(model) else {
            return Err(unknown_model(&snapshot, model));
        };
        match version {
            None => entry
                .latest()
                .cloned()
                .ok_or_else(|| not_loaded(model, entry)),
            Some(v) => entry.versions.get(&v).cloned().ok_or_else(|| {
                if entry.versions.is_empty() {
                    not_loaded(model, entry)
                } else {
                    ApiError::NotFound(format!(
                        "model '{model}' has no served version {v}; served versions: {}",
                        join(entry.versions.keys())
                    ))
                }
            }),
        }
    }

    /// Reads the repository and swaps in the result. Blocking (file I/O, model loading): call it
    /// from `spawn_blocking` or a plain thread.
    pub fn scan(&self) -> Result<ScanReport, String> {
        let _one_at_a_time = self.scan_lock.lock().unwrap_or_else(|e| e.into_inner());
        let on_disk = read_tree(&self.root)?;
        let previous = self.state.load_full();
        let mut report = ScanReport::default();
        let mut models = BTreeMap::new();
        for (name, versions) in on_disk {
            let old = previous.models.get(&name);
            let entry = self.scan_model(&name, &versions, old, &mut report);
            models.insert(name, entry);
        }
        for (name, old) in &previous.models {
            let kept = models.get(name);
            for v in old.versions.keys() {
                if kept.is_none_or(|m| !m.versions.contains_key(v)) {
                    report.unloaded.push((name.clone(), *v));
                }
            }
            if kept.is_none() {
                let _ = self.metrics.versions_loaded.remove_label_values(&[name]);
            }
        }
        for (name, entry) in &models {
            self.metrics
                .versions_loaded
                .with_label_values(&[name])
                .set(entry.versions.len() as i64);
        }
        self.state.store(Arc::new(Snapshot {
            models,
            scanned: true,
        }));
        for (model, version) in &report.loaded {
            tracing::info!(model, version, "model version loaded");
        }
        for (model, version) in &report.unloaded {
            tracing::info!(model, version, "model version unloaded");
        }
        Ok(report)
    }

    fn scan_model(
        &self,
        name: &str,
        on_disk: &[u64],
        old: Option<&ModelEntry>,
        report: &mut ScanReport,
    ) -> ModelEntry {
        let mut entry = ModelEntry::default();
        let wanted: Vec<u64> = match self.policy {
            VersionPolicy::Latest | VersionPolicy::All => on_disk.iter().rev().copied().collect(),
            VersionPolicy::Specific(v) => on_disk.iter().copied().filter(|&d| d == v).collect(),
        };
        for version in wanted {
            if let Some(served) = old.and_then(|o| o.versions.get(&version)) {
                entry.versions.insert(version, served.clone());
            } else {
                let dir = self.root.join(name).join(version.to_string());
                match self.load(name, version, &dir) {
                    Ok(served) => {
                        report.loaded.push((name.to_string(), version));
                        entry.versions.insert(version, Arc::new(served));
                    }
                    Err(message) => {
                        let repeated = old.and_then(|o| o.errors.get(&version)) == Some(&message);
                        if !repeated {
                            tracing::warn!(model = name, version, dir = %dir.display(), error = %message,
                                "model version failed to load; retrying on the next scan");
                        }
                        report.failed.push((name.to_string(), version));
                        entry.errors.insert(version, message);
                        continue;
                    }
                }
            }
            if self.policy == VersionPolicy::Latest {
                break; // the highest version that loads is the only one served
            }
        }
        entry
    }

    fn load(&self, model: &str, version: u64, dir: &Path) -> Result<ServedVersion, String> {
        let loaded = self.loader.load(dir)?;
        let input_len = loaded.predictor.input_len();
        let expected: usize = loaded.info.input_shape.iter().product();
        if input_len != expected {
            return Err(format!(
                "model.json says the input shape is {:?} ({expected} values) but the model takes {input_len}",
                loaded.info.input_shape
            ));
        }
        let num_classes = loaded.predictor.num_classes();
        let batcher = Batcher::new(
            loaded.predictor,
            self.batch,
            self.metrics.batch_size.with_label_values(&[model]),
        );
        Ok(ServedVersion {
            model: model.to_string(),
            version,
            info: loaded.info,
            input_len,
            num_classes,
            batcher,
            latency: self.metrics.latency.with_label_values(&[model]),
            ok: self.metrics.requests.with_label_values(&[model, "200"]),
        })
    }
}

/// `model name -> version numbers (ascending)` for every visible model directory under `root`.
fn read_tree(root: &Path) -> Result<BTreeMap<String, Vec<u64>>, String> {
    let read = |dir: &Path| {
        std::fs::read_dir(dir).map_err(|e| {
            format!(
                "cannot read the model repository directory {}: {e}",
                dir.display()
            )
        })
    };
    let mut tree = BTreeMap::new();
    for model in read(root)? {
        let Ok(model) = model else { continue };
        let Some(name) = visible_dir_name(&model) else {
            continue;
        };
        let mut versions: Vec<u64> = match read(&model.path()) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .filter_map(|v| visible_dir_name(&v).and_then(|n| parse_version(&n)))
                .collect(),
            Err(_) => continue, // removed while we were reading
        };
        versions.sort_unstable();
        tree.insert(name, versions);
    }
    Ok(tree)
}

/// The name of a directory entry that is a directory (following symlinks) and not hidden.
fn visible_dir_name(entry: &std::fs::DirEntry) -> Option<String> {
    let name = entry.file_name().into_string().ok()?;
    if name.starts_with('.') || !entry.path().is_dir() {
        return None;
    }
    Some(name)
}

fn unknown_model(snapshot: &Snapshot, model: &str) -> ApiError {
    if snapshot.models.is_empty() {
        ApiError::NotFound(format!(
            "unknown model '{model}': the repository holds no models"
        ))
    } else {
        ApiError::NotFound(format!(
            "unknown model '{model}'; models: {}",
            join(snapshot.models.keys())
        ))
    }
}

fn not_loaded(model: &str, entry: &ModelEntry) -> ApiError {
    let why = match entry.errors.iter().next_back() {
        Some((v, e)) => format!(": version {v} failed to load: {e}"),
        None => " (no version directory matches the version policy)".to_string(),
    };
    ApiError::Unavailable(format!("model '{model}' has no loaded version{why}"))
}

fn join<T: fmt::Display>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_policies_parse_and_print_back() {
        for text in ["latest", "all", "specific:3"] {
            assert_eq!(text.parse::<VersionPolicy>().unwrap().to_string(), text);
        }
        for bad in [
            "",
            "newest",
            "specific:",
            "specific:0",
            "specific:-1",
            "specific:x",
        ] {
            let err = bad.parse::<VersionPolicy>().unwrap_err();
            assert!(err.contains("latest, all or specific:N"), "{err}");
        }
    }

    #[test]
    fn only_canonical_positive_integers_are_versions() {
        assert_eq!(parse_version("1"), Some(1));
        assert_eq!(parse_version("42"), Some(42));
        for bad in ["0", "007", "+7", "-1", "1.0", "v1", "", " 1"] {
            assert_eq!(parse_version(bad), None, "{bad}");
        }
    }
}
