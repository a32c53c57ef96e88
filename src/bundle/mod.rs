//! Bundles in Juju's format: applications (charm, channel, scale, trust, options, constraints) and
//! relations, with overlays merged the way Juju merges them and `--set app.key=value` on top.
//!
//! Keys starting with `_` are ignored (Charmed Kubeflow keeps its metadata there); any other key
//! wharf does not know is an error naming the file and the field, because a misspelt key that is
//! silently dropped is a config change that silently did not happen.

mod overlay;
mod raw;
pub mod set;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use crate::charm::source;

/// A bundle with every overlay and `--set` applied.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Where it came from, as shown in messages (`bundles/lite.yaml` or the path given).
    pub file: String,
    pub name: String,
    pub applications: BTreeMap<String, Application>,
    pub relations: Vec<[Endpoint; 2]>,
    /// What the host needs for this bundle (`wharf check`), as written in the file.
    pub requirements: Option<Value>,
    /// Where each relation was written (`overlay.yaml: relations[2]`), so that an error about a
    /// relation points at the file that added it, not at the base bundle.
    relation_origins: BTreeMap<[Endpoint; 2], String>,
}

#[derive(Debug, Clone)]
pub struct Application {
    pub charm: String,
    pub channel: Option<String>,
    pub scale: u32,
    pub trust: bool,
    pub constraints: Option<String>,
    /// Option values by layer, lowest precedence first: (where they were set, values).
    pub options: Vec<(String, BTreeMap<String, Value>)>,
}

/// One side of a relation: `app:endpoint`, or a bare `app` whose endpoint is inferred.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub app: String,
    pub endpoint: Option<String>,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.endpoint {
            Some(endpoint) => write!(f, "{}:{endpoint}", self.app),
            None => f.write_str(&self.app),
        }
    }
}

impl Bundle {
    /// Loads `lite`, `full` or a path, then applies overlay files and `--set` expressions in order.
    pub fn load(spec: &str, overlays: &[PathBuf], sets: &[String]) -> Result<Bundle> {
        let texts = Texts::read(spec, overlays)?;
        let mut bundle = Bundle::parse(&texts)?;
        set::apply(&mut bundle, sets)?;
        Ok(bundle)
    }

    /// A bundle from its text and its overlays' texts (read now, or kept in the model).
    pub fn parse(texts: &Texts) -> Result<Bundle> {
        let file = &texts.file;
        let mut documents = raw::parse_documents(file, &texts.text)?.into_iter();
        let base = documents
            .next()
            .ok_or_else(|| anyhow!("{file}: the file is empty; a bundle needs `applications`"))?;
        let mut bundle = overlay::from_base(file, base)?;
        for (index, document) in documents.enumerate() {
            overlay::apply(&mut bundle, &raw::document_label(file, index + 1), document)?;
        }
        for (shown, text) in &texts.overlays {
            for (index, document) in raw::parse_documents(shown, text)?.into_iter().enumerate() {
                overlay::apply(&mut bundle, &raw::document_label(shown, index), document)?;
            }
        }
        bundle.check_relation_apps()?;
        Ok(bundle)
    }

    /// Adds a layer of option values on top of the others (it wins over them); `origin` is what
    /// an error about one of its values names.
    pub fn add_layer(&mut self, app: &str, origin: String, values: BTreeMap<String, Value>) {
        if let Some(application) = self.applications.get_mut(app)
            && !values.is_empty()
        {
            application.options.push((origin, values));
        }
    }

    /// Every relation names applications the bundle has.
    fn check_relation_apps(&self) -> Result<()> {
        for pair in &self.relations {
            for side in pair {
                if !self.applications.contains_key(&side.app) {
                    bail!(
                        "{}: [{}, {}] names application `{}`, which the bundle does not have{}",
                        self.relation_field(pair),
                        pair[0],
                        pair[1],
                        side.app,
                        did_you_mean(&side.app, self.applications.keys())
                    );
                }
            }
        }
        Ok(())
    }

    /// The file and field a relation was written in, for messages: `overlay.yaml: relations[2]`.
    pub fn relation_field(&self, pair: &[Endpoint; 2]) -> String {
        self.relation_origins
            .get(pair)
            .cloned()
            .unwrap_or_else(|| format!("{}: relations", self.file))
    }
}

/// The text of a bundle and of its overlays, before parsing: what the model keeps so that a later
/// `config` or `upgrade` re-reads exactly what the user deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Texts {
    /// As shown in messages: `bundles/lite.yaml` or the path given.
    pub file: String,
    pub text: String,
    /// (path as given, text), in order.
    pub overlays: Vec<(String, String)>,
    /// A bundle shipped with wharf (`lite`, `full`): an upgrade takes the newer wharf's copy.
    pub shipped: bool,
}

impl Texts {
    pub fn read(spec: &str, overlays: &[PathBuf]) -> Result<Texts> {
        let shipped = source::shipped_bundle(spec).is_some();
        let (file, text) = read_bundle(spec)?;
        let overlays = overlays
            .iter()
            .map(|path| read_overlay(path))
            .collect::<Result<_>>()?;
        Ok(Texts {
            file,
            text,
            overlays,
            shipped,
        })
    }
}

/// An overlay file, or one shipped with wharf by its bare name (`ha` is `bundles/ha.yaml`) when
/// no such file exists here.
fn read_overlay(path: &Path) -> Result<(String, String)> {
    let shown = path.display().to_string();
    if !path.exists()
        && let Some(shipped) = source::shipped_overlay(&shown)
    {
        return Ok(shipped);
    }
    if !path.exists() && path.components().count() == 1 && path.extension().is_none() {
        bail!(
            "no overlay `{shown}`: give one of the shipped overlays ({}) or the path to an \
             overlay file",
            source::SHIPPED_OVERLAYS.join(", ")
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{shown}: cannot read the overlay"))?;
    Ok((shown, text))
}

/// `lite`/`full` from the bundles shipped with wharf, or a file.
fn read_bundle(spec: &str) -> Result<(String, String)> {
    if let Some(shipped) = source::shipped_bundle(spec) {
        return Ok(shipped);
    }
    let path = Path::new(spec);
    if path.is_file() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{spec}: cannot read the bundle"))?;
        return Ok((spec.to_string(), text));
    }
    bail!(
        "no bundle `{spec}`: give one of the shipped bundles ({}) or the path to a bundle file",
        source::shipped_bundle_names().join(", ")
    )
}

/// " (did you mean `x`?)" when a known name is close to the given one.
pub fn did_you_mean<'a>(given: &str, known: impl Iterator<Item = &'a String>) -> String {
    known
        .map(|name| (strsim::jaro_winkler(given, name), name))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, name)| format!(" (did you mean `{name}`?)"))
        .unwrap_or_default()
}
