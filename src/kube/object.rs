//! The identity of an object (apiVersion, kind, namespace, name), as the plan, the prune step and
//! the release inventory name it.

use std::fmt;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// Read the identity of a manifest; a rendered object without one is a charm bug, so the
    /// error says which field is missing.
    pub fn of(obj: &Value) -> anyhow::Result<Self> {
        let field = |path: &[&str]| -> Option<String> {
            let mut v = obj;
            for p in path {
                v = v.get(p)?;
            }
            v.as_str().map(str::to_owned)
        };
        let kind = field(&["kind"]).context("a rendered object has no `kind`")?;
        let api_version = field(&["apiVersion"])
            .with_context(|| format!("a rendered {kind} has no `apiVersion`"))?;
        let name = field(&["metadata", "name"])
            .with_context(|| format!("a rendered {kind} has no `metadata.name`"))?;
        if name.is_empty() {
            bail!("a rendered {kind} has an empty `metadata.name`");
        }
        Ok(Self {
            api_version,
            kind,
            namespace: field(&["metadata", "namespace"]),
            name,
        })
    }

    /// The API group: "" for the core group (`v1`), `apps` for `apps/v1`.
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
    }

    /// The version part of apiVersion.
    pub fn version(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map(|(_, v)| v)
            .unwrap_or(&self.api_version)
    }

    pub fn is_crd(&self) -> bool {
        self.kind == "CustomResourceDefinition"
    }

    pub fn is_pvc(&self) -> bool {
        self.kind == "PersistentVolumeClaim" && self.group().is_empty()
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_identity_and_splits_group() {
        let r = ObjectRef::of(&json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "dex", "namespace": "wharf"}}))
        .unwrap();
        assert_eq!(r.group(), "apps");
        assert_eq!(r.version(), "v1");
        assert_eq!(r.to_string(), "Deployment wharf/dex");
        let core = ObjectRef::of(&json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"}}))
        .unwrap();
        assert_eq!(core.group(), "");
        assert!(core.is_pvc());
    }

    #[test]
    fn missing_fields_are_named() {
        let err = ObjectRef::of(&json!({"apiVersion": "v1", "kind": "Service", "metadata": {}}))
            .unwrap_err();
        assert!(err.to_string().contains("metadata.name"), "{err}");
        let err = ObjectRef::of(&json!({"kind": "Service"})).unwrap_err();
        assert!(err.to_string().contains("apiVersion"), "{err}");
    }
}
