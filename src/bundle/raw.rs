//! The bundle file as written: YAML documents checked key by key against Juju's bundle schema.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow};
use serde::Deserialize;
use serde_json::Value;

/// One YAML document of a bundle or overlay.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawDocument {
    #[serde(default)]
    pub bundle: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// `null` for an application removes it (overlays).
    #[serde(default)]
    pub applications: BTreeMap<String, Option<RawApplication>>,
    #[serde(default)]
    pub relations: Vec<Vec<String>>,
    /// wharf's addition: what the host needs (`wharf check`).
    #[serde(default)]
    pub requirements: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApplication {
    #[serde(default)]
    pub charm: Option<String>,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub scale: Option<u32>,
    #[serde(default)]
    pub trust: Option<bool>,
    #[serde(default)]
    pub options: BTreeMap<String, Value>,
    #[serde(default)]
    pub constraints: Option<String>,
}

/// Juju keys that mean nothing on Kubernetes (machines, series, charm store revisions) or that
/// wharf does not use: accepted so that Juju's own bundles parse, and named in a warning when they
/// would have changed something, because silently dropping a setting is a config change that did
/// not happen.
const JUJU_TOP_KEYS: &[&str] = &["series", "base", "default-base", "machines", "saas", "type"];
const JUJU_APP_KEYS: &[&str] = &[
    "series",
    "base",
    "revision",
    "resources",
    "to",
    "expose",
    "annotations",
    "storage",
    "devices",
    "bindings",
    "placement",
];
/// Documentation only: never worth a warning.
const QUIET_KEYS: &[&str] = &["description", "docs"];

/// Parses every document of a file; keys starting with `_` and Juju-only keys are dropped before
/// the schema check (the latter with a warning).
pub fn parse_documents(file: &str, text: &str) -> Result<Vec<RawDocument>> {
    let values: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| anyhow!("{file}: {e}"))?;
    values
        .into_iter()
        .filter(|value| !value.is_null())
        .enumerate()
        .map(|(index, mut value)| {
            let file = document_label(file, index);
            for ignored in drop_ignored_keys(&mut value) {
                tracing::warn!(
                    "{file}: {ignored}: a Juju setting wharf does not use on Kubernetes; ignored"
                );
            }
            serde_path_to_error::deserialize(value).map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                anyhow!("{file}: {path}: {}", explain(&inner.to_string()))
            })
        })
        .collect()
}

/// How messages name a document of a multi-document file: the file for the first, then
/// `file (document 2)` and so on, so that an error in an inline overlay says which one.
pub fn document_label(file: &str, index: usize) -> String {
    match index {
        0 => file.to_string(),
        _ => format!("{file} (document {})", index + 1),
    }
}

/// Drops `_`-prefixed keys (Charmed Kubeflow keeps its metadata there) and Juju-only keys, at the
/// top and in each application; `num_units` becomes `scale`, its Kubernetes name. Returns the
/// paths of the Juju-only keys that were dropped.
fn drop_ignored_keys(document: &mut Value) -> Vec<String> {
    let mut ignored = Vec::new();
    let Some(top) = document.as_object_mut() else {
        return ignored;
    };
    top.retain(|key, _| !key.starts_with('_') && !QUIET_KEYS.contains(&key.as_str()));
    for key in JUJU_TOP_KEYS {
        if top.remove(*key).is_some() {
            ignored.push(key.to_string());
        }
    }
    if let Some(Value::Object(apps)) = top.get_mut("applications") {
        for (app, fields) in apps.iter_mut() {
            let Some(fields) = fields.as_object_mut() else {
                continue;
            };
            fields.retain(|key, _| !key.starts_with('_'));
            for key in JUJU_APP_KEYS {
                if fields.remove(*key).is_some() {
                    ignored.push(format!("applications.{app}.{key}"));
                }
            }
            if let Some(units) = fields.remove("num_units") {
                fields.entry("scale").or_insert(units);
            }
        }
    }
    ignored
}

/// serde's wording, made to say what to do.
fn explain(message: &str) -> String {
    if message.starts_with("unknown field") {
        format!("{message}; remove it, or prefix it with `_` to keep it as a comment")
    } else {
        message.to_string()
    }
}
