//! One release record: what one revision of one application deployed, complete enough to be
//! re-applied (`rollback`, the automatic rollback of a failed `upgrade`). Kept as a Secret named
//! `wharf.release.<app>.v<N>` of type `wharf.dev/release.v2`, labelled owner/app/revision/status,
//! with two gzip'd JSON documents:
//!
//! - `release`: the record — charm and version, effective config (secret options masked), the
//!   user's options, relation data, public URL, the rendered manifests with every Secret's data
//!   taken out, the inventory, status, description and times, and the images the workloads ran
//!   when the run ended, by digest (absent from older records). Safe to print: `history` does.
//! - `values`: the revision's secret values — its secret options (set or generated) and the data
//!   of its Secret objects — referenced by the record and read only to re-apply it.
//!
//! Records of type `wharf.dev/release.v1` (wharf 0.1: no manifests, no values) are still read.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use anyhow::{Context, anyhow};
use base64::Engine;
use flate2::{Compression, read::GzDecoder, write::GzEncoder};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::kube::ObjectRef;
pub use crate::kube::images::RunningImage;

pub const SECRET_TYPE: &str = "wharf.dev/release.v2";
pub const SECRET_TYPE_V1: &str = "wharf.dev/release.v1";
const DATA_KEY: &str = "release";
const VALUES_KEY: &str = "values";

/// Where a revision is in its life. `pending-*` only while a run is applying it: a run that ends
/// (succeeds, fails, times out, is interrupted) always leaves `deployed` or `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseStatus {
    PendingInstall,
    /// Read from v1 records as `pending` too.
    #[serde(alias = "pending")]
    PendingUpgrade,
    PendingRollback,
    Deployed,
    Superseded,
    Failed,
}

impl ReleaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseStatus::PendingInstall => "pending-install",
            ReleaseStatus::PendingUpgrade => "pending-upgrade",
            ReleaseStatus::PendingRollback => "pending-rollback",
            ReleaseStatus::Deployed => "deployed",
            ReleaseStatus::Superseded => "superseded",
            ReleaseStatus::Failed => "failed",
        }
    }

    pub fn is_pending(self) -> bool {
        matches!(
            self,
            ReleaseStatus::PendingInstall
                | ReleaseStatus::PendingUpgrade
                | ReleaseStatus::PendingRollback
        )
    }
}

/// One applied object and the digest of what was applied (see `kube::compare::digest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryEntry {
    #[serde(flatten)]
    pub id: ObjectRef,
    pub digest: String,
}

/// Which Secret type a record was stored as: a Secret's type cannot change, so a v1 record is
/// rewritten as v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    V1,
    #[default]
    V2,
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
    /// What made this revision: "install", "config: public-url", "upgrade 2.41.1 → 2.43.0",
    /// "rollback to 3".
    #[serde(default)]
    pub description: String,
    pub charm: String,
    pub charm_version: String,
    /// Effective config; set secret options hold `<secret>` (see `charm::Config::masked`).
    pub config: BTreeMap<String, Value>,
    /// The options the user set for this application (secret ones as `<secret>`; their values
    /// are in the record's `values`).
    #[serde(default)]
    pub user_config: BTreeMap<String, Value>,
    /// What the application received on each required endpoint.
    #[serde(default)]
    pub relations: BTreeMap<String, Value>,
    #[serde(default)]
    pub public_url: String,
    /// Applications it needed (deployed first).
    #[serde(default)]
    pub needs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_status: Option<(String, String)>,
    pub inventory: Vec<InventoryEntry>,
    /// The objects as applied, in apply order, each Secret's `data`/`stringData` moved to the
    /// record's values. Empty in v1 records (they cannot be re-applied).
    #[serde(default)]
    pub manifests: Vec<Value>,
    /// RFC 3339 times.
    pub started: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    pub wharf_version: String,
    /// The backup `wharf upgrade` made before this revision (absent in older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// What the workloads ran when the run ended, by digest, as the kubelet reported it (empty in
    /// older records, and when the run did not wait).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<RunningImage>,
    #[serde(skip)]
    pub format: Format,
}

/// A revision's secret values: never inside the record's JSON, never printed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretValues {
    /// Secret options (set by the user or generated): key → value.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// The secret options the user set (a subset of `config`'s keys).
    #[serde(default)]
    pub user_keys: Vec<String>,
    /// Each Secret object's `data` and `stringData`, by object name.
    #[serde(default)]
    pub objects: BTreeMap<String, Value>,
}

impl SecretValues {
    /// Take the data out of every Secret in `manifests` (into `self.objects`).
    pub fn take_from(&mut self, manifests: &mut [Value]) {
        for obj in manifests.iter_mut().filter(|o| is_secret(o)) {
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let mut held = serde_json::Map::new();
            for field in ["data", "stringData"] {
                if let Some(v) = obj.as_object_mut().and_then(|o| o.remove(field)) {
                    held.insert(field.into(), v);
                }
            }
            self.objects.insert(name, Value::Object(held));
        }
    }

    /// Put the data back into the Secrets of `manifests`; an error names a Secret whose data is
    /// missing (the record was edited or truncated).
    pub fn put_into(&self, manifests: &mut [Value]) -> anyhow::Result<()> {
        for obj in manifests.iter_mut().filter(|o| is_secret(o)) {
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let held = self
                .objects
                .get(&name)
                .and_then(Value::as_object)
                .ok_or_else(|| anyhow!("the record holds no data for Secret {name}"))?;
            for (field, v) in held {
                obj[field.as_str()] = v.clone();
            }
        }
        Ok(())
    }
}

fn is_secret(obj: &Value) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some("Secret")
        && obj.get("apiVersion").and_then(Value::as_str) == Some("v1")
}

pub fn secret_name(app: &str, revision: u32) -> String {
    format!("wharf.release.{app}.v{revision}")
}

pub fn now() -> String {
    jiff::Timestamp::now().to_string()
}

fn pack(value: &impl Serialize) -> anyhow::Result<String> {
    let json = serde_json::to_vec(value)?;
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&json)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(gz.finish()?))
}

fn unpack<T: serde::de::DeserializeOwned>(secret: &Value, key: &str) -> anyhow::Result<T> {
    let name = secret
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let packed = secret
        .pointer(&format!("/data/{key}"))
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("release record {name} has no data.{key}"))?;
    let gz = base64::engine::general_purpose::STANDARD
        .decode(packed)
        .with_context(|| format!("release record {name}: data.{key} is not base64"))?;
    let mut json = Vec::new();
    GzDecoder::new(&gz[..])
        .read_to_end(&mut json)
        .with_context(|| format!("release record {name}: data.{key} is not gzip"))?;
    serde_json::from_slice(&json)
        .with_context(|| format!("release record {name}: data.{key} is not a wharf release record"))
}

impl Release {
    fn secret_type(&self) -> &'static str {
        match self.format {
            Format::V1 => SECRET_TYPE_V1,
            Format::V2 => SECRET_TYPE,
        }
    }

    fn labels(&self) -> Value {
        json!({
            super::OWNER_LABEL: super::OWNER,
            "app": self.app,
            "revision": self.revision.to_string(),
            "status": self.status.as_str(),
        })
    }

    /// The Secret holding this record and its secret values, ready to apply in `namespace`.
    pub fn to_secret(&self, namespace: &str, values: &SecretValues) -> anyhow::Result<Value> {
        let mut data = json!({DATA_KEY: pack(self)?});
        if self.format == Format::V2 {
            data[VALUES_KEY] = Value::String(pack(values)?);
        }
        Ok(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "type": self.secret_type(),
            "metadata": {
                "name": secret_name(&self.app, self.revision),
                "namespace": namespace,
                "labels": self.labels(),
            },
            "data": data,
        }))
    }

    /// A merge patch that changes the record (its status, say) and leaves its values alone.
    pub fn to_status_patch(&self) -> anyhow::Result<Value> {
        Ok(json!({
            "metadata": {"labels": self.labels()},
            "data": {DATA_KEY: pack(self)?},
        }))
    }

    /// Read a record back from its Secret (as returned by the API: base64 data).
    pub fn from_secret(secret: &Value) -> anyhow::Result<Self> {
        let mut release: Release = unpack(secret, DATA_KEY)?;
        if secret.get("type").and_then(Value::as_str) == Some(SECRET_TYPE_V1) {
            release.format = Format::V1;
        }
        Ok(release)
    }

    /// The record's secret values (empty for a v1 record, which kept none).
    pub fn values_from_secret(secret: &Value) -> anyhow::Result<SecretValues> {
        if secret.pointer(&format!("/data/{VALUES_KEY}")).is_none() {
            return Ok(SecretValues::default());
        }
        unpack(secret, VALUES_KEY)
    }

    /// The inventory's digests by object, to skip applies of unchanged objects.
    pub fn digests(&self) -> BTreeMap<ObjectRef, String> {
        self.inventory
            .iter()
            .map(|e| (e.id.clone(), e.digest.clone()))
            .collect()
    }

    /// Whether the record holds what it takes to re-apply it.
    pub fn replayable(&self) -> bool {
        self.format == Format::V2 && !self.manifests.is_empty()
    }

    /// A record for tests: `app` at `revision`, deployed, with no objects.
    #[cfg(test)]
    pub fn fixture(app: &str, revision: u32) -> Release {
        Release {
            app: app.into(),
            revision,
            status: ReleaseStatus::Deployed,
            reason: None,
            description: "install".into(),
            charm: app.into(),
            charm_version: "1.0.0".into(),
            config: BTreeMap::new(),
            user_config: BTreeMap::new(),
            relations: BTreeMap::new(),
            public_url: String::new(),
            needs: Vec::new(),
            declared_status: None,
            inventory: Vec::new(),
            manifests: Vec::new(),
            started: "2026-12-01T00:00:00Z".into(),
            finished: None,
            wharf_version: env!("CARGO_PKG_VERSION").into(),
            backup: None,
            images: Vec::new(),
            format: Format::V2,
        }
    }

    #[cfg(test)]
    pub fn with_status(mut self, status: ReleaseStatus) -> Release {
        self.status = status;
        self
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
        let mut r = Release::fixture("dex-auth", 3);
        r.charm_version = "2.41.1".into();
        r.config = [
            ("port".to_string(), json!(5556)),
            ("static-password".to_string(), json!("<secret>")),
        ]
        .into();
        r.declared_status = Some(("blocked".into(), "set static-password".into()));
        r.inventory = vec![InventoryEntry {
            id: ObjectRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: Some("wharf".into()),
                name: "dex".into(),
            },
            digest: "abc".into(),
        }];
        r.manifests = vec![
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "dex"}, "stringData": {"config.yaml": "hunter2"}}),
        ];
        r
    }

    fn values(manifests: &mut [Value]) -> SecretValues {
        let mut v = SecretValues {
            config: [("static-password".to_string(), "hunter2".to_string())].into(),
            user_keys: vec!["static-password".into()],
            objects: BTreeMap::new(),
        };
        v.take_from(manifests);
        v
    }

    #[test]
    fn round_trips_through_a_secret_with_labels() {
        let mut r = sample();
        let v = values(&mut r.manifests);
        let s = r.to_secret("wharf", &v).unwrap();
        assert_eq!(s["metadata"]["name"], "wharf.release.dex-auth.v3");
        assert_eq!(s["type"], SECRET_TYPE);
        assert_eq!(s["metadata"]["labels"]["status"], "deployed");
        assert_eq!(s["metadata"]["labels"]["revision"], "3");
        assert_eq!(Release::from_secret(&s).unwrap(), r);
        let back = Release::values_from_secret(&s).unwrap();
        assert_eq!(back, v);
        let mut manifests = r.manifests.clone();
        back.put_into(&mut manifests).unwrap();
        assert_eq!(
            manifests,
            sample().manifests,
            "the Secret's data comes back"
        );
    }

    #[test]
    fn v1_records_still_read_and_stay_v1() {
        let v1 = json!({"app": "a", "revision": 2, "status": "pending", "charm": "a",
            "charmVersion": "1.0.0", "config": {}, "inventory": [], "started": "x",
            "wharfVersion": "0.1.0"});
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(v1.to_string().as_bytes()).unwrap();
        let packed = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
        let s = json!({"type": SECRET_TYPE_V1, "metadata": {"name": "wharf.release.a.v2"},
            "data": {"release": packed}});
        let r = Release::from_secret(&s).unwrap();
        assert_eq!(r.status, ReleaseStatus::PendingUpgrade);
        assert_eq!(r.format, Format::V1);
        assert!(!r.replayable());
        let again = r.to_secret("m", &SecretValues::default()).unwrap();
        assert_eq!(
            again["type"], SECRET_TYPE_V1,
            "a Secret's type cannot change"
        );
        assert!(again["data"].get("values").is_none());
    }

    #[test]
    fn secret_values_are_not_in_the_record() {
        let mut r = sample();
        let v = values(&mut r.manifests);
        let s = r.to_secret("wharf", &v).unwrap();
        let packed = s["data"]["release"].as_str().unwrap();
        let gz = base64::engine::general_purpose::STANDARD
            .decode(packed)
            .unwrap();
        let mut text = String::new();
        GzDecoder::new(&gz[..]).read_to_string(&mut text).unwrap();
        assert!(!text.contains("hunter2"));
        assert!(text.contains("<secret>"));
    }

    #[test]
    fn garbage_is_an_error_naming_the_record() {
        let s = json!({"metadata": {"name": "wharf.release.x.v1"}, "data": {"release": "!!"}});
        let e = Release::from_secret(&s).unwrap_err();
        assert!(e.to_string().contains("wharf.release.x.v1"), "{e}");
    }
}
