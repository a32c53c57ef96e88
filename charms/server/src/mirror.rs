//! A model repository in S3 (`--model-repository s3://bucket/prefix`), mirrored into a local
//! cache directory that the ordinary [`Repository`](crate::repository::Repository) scans. So S3
//! adds one step before each scan and nothing else: loading, version policies and the atomic
//! swap are the directory code, already tested under load.
//!
//! A version `<prefix>/<model>/<N>/` is complete once its `model.json` exists (the trainer
//! writes the weights first). It is downloaded to `<cache>/<model>/.tmp-N` and renamed to `N`,
//! the publication protocol the scanner already honours. Versions are immutable, as in the
//! directory layout: a version is downloaded once; one deleted from the bucket is removed from
//! the cache, so the next scan unloads it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use wharf_model::location::Location;
use wharf_model::{META_FILE, WEIGHTS_FILE};

use crate::repository::parse_version;

/// What one sync changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub downloaded: Vec<(String, u64)>,
    pub removed: Vec<(String, u64)>,
}

/// Brings `cache` in line with the complete versions under `remote` (of model `only`, when
/// given: an InferenceService's pod needs one model, not the whole repository).
pub async fn sync(
    remote: &Location,
    only: Option<&str>,
    cache: &Path,
) -> Result<SyncReport, String> {
    let entries = match only {
        Some(model) => {
            let mut entries = remote.join(model).list_s3().await;
            if let Ok(entries) = &mut entries {
                for e in entries.iter_mut() {
                    e.path = format!("{model}/{}", e.path);
                }
            }
            entries
        }
        None => remote.list_s3().await,
    }
    .map_err(|e| e.to_string())?;
    // model -> versions whose model.json and model.safetensors both exist.
    let mut files: BTreeMap<(String, u64), BTreeSet<String>> = BTreeMap::new();
    let mut models = BTreeSet::new();
    for entry in entries {
        let parts: Vec<&str> = entry.path.split('/').collect();
        let [model, version, file] = parts[..] else {
            continue;
        };
        if model.starts_with('.') {
            continue;
        }
        models.insert(model.to_string());
        if let Some(v) = parse_version(version) {
            files
                .entry((model.to_string(), v))
                .or_default()
                .insert(file.to_string());
        }
    }
    let complete: BTreeSet<(String, u64)> = files
        .into_iter()
        .filter(|(_, f)| f.contains(META_FILE) && f.contains(WEIGHTS_FILE))
        .map(|(key, _)| key)
        .collect();

    let io = |what: &str, path: &Path, e: std::io::Error| {
        format!("{what} {} (the --cache-dir): {e}", path.display())
    };
    let mut report = SyncReport::default();
    for model in &models {
        let dir = cache.join(model);
        std::fs::create_dir_all(&dir).map_err(|e| io("cannot create", &dir, e))?;
    }
    for (model, version) in &complete {
        let target = cache.join(model).join(version.to_string());
        if target.is_dir() {
            continue;
        }
        let source = remote.join(&format!("{model}/{version}"));
        let tmp = cache.join(model).join(format!(".tmp-{version}"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| io("cannot create", &tmp, e))?;
        for file in [WEIGHTS_FILE, META_FILE] {
            let bytes = source
                .get(file)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("{source}/{file} disappeared while downloading"))?;
            let path = tmp.join(file);
            std::fs::write(&path, bytes).map_err(|e| io("cannot write", &path, e))?;
        }
        std::fs::rename(&tmp, &target).map_err(|e| io("cannot rename into", &target, e))?;
        report.downloaded.push((model.clone(), *version));
    }
    // Versions (and models) that left the bucket leave the cache.
    for model in std::fs::read_dir(cache).map_err(|e| io("cannot read", cache, e))? {
        let Ok(model) = model else { continue };
        let name = model.file_name().to_string_lossy().into_owned();
        if !models.contains(&name) {
            let _ = std::fs::remove_dir_all(model.path());
            continue;
        }
        let Ok(versions) = std::fs::read_dir(model.path()) else {
            continue;
        };
        for version in versions.filter_map(Result::ok) {
            let v = version.file_name().to_string_lossy().into_owned();
            if let Some(n) = parse_version(&v)
                && !complete.contains(&(name.clone(), n))
            {
                let _ = std::fs::remove_dir_all(version.path());
                report.removed.push((name.clone(), n));
            }
        }
    }
    for (model, version) in &report.downloaded {
        tracing::info!(model, version, source = %remote, "model version downloaded");
    }
    Ok(report)
}
