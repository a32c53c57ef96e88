//! One release record: what one revision of one application deployed. Kept as a Secret named
//! `wharf.release.<app>.v<N>` of type `wharf.dev/release.v1`, labelled owner/app/revision/status,
//! holding gzip'd JSON. Secret config values are never stored: only whether they are set.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use anyhow::{Context, anyhow};
use base64::Engine;
use flate2::{Compression, read::GzDecoder, write::GzEncoder};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::kube::ObjectRef;

pub const SECRET_TYPE: &str = "wharf.dev/release.v1";
const DATA_KEY: &str = "release";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseStatus {
    Pending,
    Deployed,
    Superseded,
    Failed,
}

impl ReleaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseStatus::Pending => "pending",
            ReleaseStatus::Deployed => "deployed",
            ReleaseStatus::Superseded => "superseded",
            ReleaseStatus::Failed => "failed",
        }
    }
}

/// One applied object and the digest of what was applied (see `kube::compare::digest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryEntry {
    #[serde(flatten)]
    pub id: ObjectRef,
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Release {
    pub app: String,
    pub revision: u32,
    pub status: ReleaseStatus,
    /// Why the release failed, or what it is waiting for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub charm: String,
    pub charm_version: String,
    /// Effective config; set secret options hold `<secret>` (see `charm::Config::masked`).
    pub config: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_status: Option<(String, String)>,
    pub inventory: Vec<InventoryEntry>,
    /// RFC 3339 times.
    pub started: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    pub wharf_version: String,
}

pub fn secret_name(app: &str, revision: u32) -> String {
    format!("wharf.release.{app}.v{revision}")
}

pub fn now() -> String {
    jiff::Timestamp::now().to_string()
}

impl Release {
    /// The Secret holding this record, ready to create or apply in `namespace`.
    pub fn to_secret(&self, namespace: &str) -> anyhow::Result<Value> {
        let json = serde_json::to_vec(self)?;
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&json)?;
        let packed = base64::engine::general_purpose::STANDARD.encode(gz.finish()?);
        Ok(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "type": SECRET_TYPE,
            "metadata": {
                "name": secret_name(&self.app, self.revision),
                "namespace": namespace,
                "labels": {
                    super::OWNER_LABEL: super::OWNER,
                    "app": self.app,
                    "revision": self.revision.to_string(),
                    "status": self.status.as_str(),
                },
            },
            "data": {DATA_KEY: packed},
        }))
    }

    /// Read a record back from its Secret (as returned by the API: base64 data).
    pub fn from_secret(secret: &Value) -> anyhow::Result<Self> {
        let name = secret
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let packed = secret
            .pointer(&format!("/data/{DATA_KEY}"))
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("release record {name} has no data.{DATA_KEY}"))?;
        let gz = base64::engine::general_purpose::STANDARD
            .decode(packed)
            .with_context(|| format!("release record {name}: data.{DATA_KEY} is not base64"))?;
        let mut json = Vec::new();
        GzDecoder::new(&gz[..])
            .read_to_end(&mut json)
            .with_context(|| format!("release record {name}: data.{DATA_KEY} is not gzip"))?;
        serde_json::from_slice(&json)
            .with_context(|| format!("release record {name}: not a wharf release record"))
    }

    /// The inventory's digests by object, to skip applies of unchanged objects.
    pub fn digests(&self) -> BTreeMap<ObjectRef, String> {
        self.inventory
            .iter()
            .map(|e| (e.id.clone(), e.digest.clone()))
            .collect()
    }
}

/// The value recorded for a secret option: a digest, so a change is visible and the value is not.
pub fn secret_digest(value: &str) -> Value {
    use sha2::{Digest, Sha256};
    Value::String(format!(
        "sha256:{}",
        hex::encode(Sha256::digest(value.as_bytes()))
    ))
}

/// What changed between two recorded configs, one `key: old → new` line per changed option, in
/// key order. Secret options are recorded masked (`<secret>`, see `charm::Config::masked`), so a
/// secret shows only as set or unset.
pub fn config_changes(old: &BTreeMap<String, Value>, new: &BTreeMap<String, Value>) -> Vec<String> {
    fn is_set_secret(v: Option<&Value>) -> bool {
        v.and_then(Value::as_str)
            .is_some_and(|s| s == "<secret>" || s.starts_with("sha256:"))
    }
    fn shown(v: Option<&Value>) -> String {
        match v {
            None | Some(Value::Null) => "<unset>".into(),
            v if is_set_secret(v) => "<set>".into(),
            Some(v) => v.to_string(),
        }
    }
    old.keys()
        .chain(new.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| {
            let (mut before, mut after) = (shown(old.get(k)), shown(new.get(k)));
            // An unset secret is recorded as "": next to a set one, call it what it is.
            for side in [&mut before, &mut after] {
                if side == "\"\"" && (is_set_secret(old.get(k)) || is_set_secret(new.get(k))) {
                    *side = "<unset>".into();
                }
            }
            format!("{k}: {before} → {after}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_changes_list_changed_keys_and_hide_secret_digests() {
        let old: BTreeMap<String, Value> = [
            ("public-url", json!("http://10.0.0.1.nip.io")),
            ("static-password", json!("<secret>")),
            ("port", json!(5556)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut new = old.clone();
        assert!(config_changes(&old, &new).is_empty());
        new.insert("public-url".into(), json!(""));
        new.insert("static-password".into(), json!(""));
        new.insert("connectors".into(), json!("[]"));
        let changes = config_changes(&old, &new);
        assert_eq!(
            changes,
            [
                "connectors: <unset> → \"[]\"",
                "public-url: \"http://10.0.0.1.nip.io\" → \"\"",
                "static-password: <set> → <unset>",
            ]
        );
    }

    fn sample() -> Release {
        Release {
            app: "dex-auth".into(),
            revision: 3,
            status: ReleaseStatus::Deployed,
            reason: None,
            charm: "dex-auth".into(),
            charm_version: "2.41.1".into(),
            config: [
                ("port".to_string(), json!(5556)),
                ("static-password".to_string(), secret_digest("hunter2")),
            ]
            .into(),
            declared_status: Some(("blocked".into(), "set static-password".into())),
            inventory: vec![InventoryEntry {
                id: ObjectRef {
                    api_version: "apps/v1".into(),
                    kind: "Deployment".into(),
                    namespace: Some("wharf".into()),
                    name: "dex".into(),
                },
                digest: "abc".into(),
            }],
            started: now(),
            finished: None,
            wharf_version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    #[test]
    fn round_trips_through_a_secret_with_labels() {
        let r = sample();
        let s = r.to_secret("wharf").unwrap();
        assert_eq!(s["metadata"]["name"], "wharf.release.dex-auth.v3");
        assert_eq!(s["type"], SECRET_TYPE);
        assert_eq!(s["metadata"]["labels"]["status"], "deployed");
        assert_eq!(s["metadata"]["labels"]["revision"], "3");
        assert_eq!(Release::from_secret(&s).unwrap(), r);
    }

    #[test]
    fn secret_values_are_not_in_the_record() {
        let s = sample().to_secret("wharf").unwrap();
        let packed = s["data"]["release"].as_str().unwrap();
        let gz = base64::engine::general_purpose::STANDARD
            .decode(packed)
            .unwrap();
        let mut text = String::new();
        GzDecoder::new(&gz[..]).read_to_string(&mut text).unwrap();
        assert!(!text.contains("hunter2"));
        assert!(text.contains("sha256:"));
    }

    #[test]
    fn garbage_is_an_error_naming_the_record() {
        let s = json!({"metadata": {"name": "wharf.release.x.v1"}, "data": {"release": "!!"}});
        let e = Release::from_secret(&s).unwrap_err();
        assert!(e.to_string().contains("wharf.release.x.v1"), "{e}");
    }
}
