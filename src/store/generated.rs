//! Generated secrets (`generate: N` in a charm's config.yaml, when the user set no value): made
//! once, stored in the Secret `wharf-generated` (key `<app>.<key>`) and reused by every later
//! revision, so an OIDC client secret or MinIO key does not change on each deploy.

use std::collections::BTreeMap;

use anyhow::anyhow;
use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use rand::Rng;

use crate::kube::{FIELD_MANAGER, errors};

pub const SECRET_NAME: &str = "wharf-generated";

/// A value wanted for (app, key), of `bytes` random bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub app: String,
    pub key: String,
    pub bytes: usize,
}

/// `bytes` random bytes as URL-safe base64 without padding: printable, safe in URLs, YAML and
/// env vars, which is where these values end up.
pub fn random_value(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(&mut buf[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// The stored values, by app then key.
pub type Generated = BTreeMap<String, BTreeMap<String, String>>;

/// Read the stored values (none when the Secret or namespace does not exist).
pub async fn load(client: &Client, model: &str, server: &str) -> anyhow::Result<Generated> {
    let api: Api<Secret> = Api::namespaced(client.clone(), model);
    let secret = match api.get_opt(SECRET_NAME).await {
        Ok(s) => s,
        Err(e) if errors::is_not_found(&e) => None,
        Err(e) => {
            return Err(anyhow!(errors::describe(
                &e,
                "read generated secrets",
                server
            )));
        }
    };
    let mut out = Generated::new();
    for (k, v) in secret.and_then(|s| s.data).unwrap_or_default() {
        if let Some((app, key)) = k.split_once('.') {
            let value = String::from_utf8(v.0)
                .map_err(|_| anyhow!("{SECRET_NAME}: key {k} is not UTF-8"))?;
            out.entry(app.to_owned())
                .or_default()
                .insert(key.to_owned(), value);
        }
    }
    Ok(out)
}

/// Fill the slots that have no stored value; returns whether any was new (then `save`).
pub fn fill(stored: &mut Generated, slots: &[Slot]) -> bool {
    let mut added = false;
    for slot in slots {
        let app = stored.entry(slot.app.clone()).or_default();
        if !app.contains_key(&slot.key) {
            app.insert(slot.key.clone(), random_value(slot.bytes));
            added = true;
        }
    }
    added
}

/// Write all values (one server-side apply of the Secret).
pub async fn save(
    client: &Client,
    model: &str,
    server: &str,
    values: &Generated,
) -> anyhow::Result<()> {
    let api: Api<Secret> = Api::namespaced(client.clone(), model);
    let data = values
        .iter()
        .flat_map(|(app, keys)| {
            keys.iter()
                .map(move |(k, v)| (format!("{app}.{k}"), ByteString(v.as_bytes().to_vec())))
        })
        .collect();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(SECRET_NAME.into()),
            labels: Some([(super::OWNER_LABEL.to_string(), super::OWNER.to_string())].into()),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..Secret::default()
    };
    api.patch(
        SECRET_NAME,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&secret),
    )
    .await
    .map_err(|e| anyhow!(errors::describe(&e, "save generated secrets", server)))?;
    Ok(())
}

/// Delete exactly these keys (`<app>.<key>`) from the stored values, leaving the others: a merge
/// patch with null values. A missing Secret is not an error.
pub async fn forget(
    client: &Client,
    model: &str,
    server: &str,
    keys: &[String],
) -> anyhow::Result<()> {
    let api: Api<Secret> = Api::namespaced(client.clone(), model);
    let data: serde_json::Map<String, serde_json::Value> = keys
        .iter()
        .map(|k| (k.clone(), serde_json::Value::Null))
        .collect();
    match api
        .patch(
            SECRET_NAME,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "data": data })),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if errors::is_not_found(&e) => Ok(()),
        Err(e) => Err(anyhow!(errors::describe(
            &e,
            "delete generated secrets",
            server
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_only_missing_slots_and_keeps_old_values() {
        let mut stored = Generated::new();
        stored
            .entry("dex".into())
            .or_default()
            .insert("client-secret".into(), "kept".into());
        let slots = [
            Slot {
                app: "dex".into(),
                key: "client-secret".into(),
                bytes: 32,
            },
            Slot {
                app: "minio".into(),
                key: "secret-key".into(),
                bytes: 24,
            },
        ];
        assert!(fill(&mut stored, &slots));
        assert_eq!(stored["dex"]["client-secret"], "kept");
        let new = &stored["minio"]["secret-key"];
        assert_eq!(new.len(), 32, "24 bytes are 32 base64 characters");
        assert!(!fill(&mut stored, &slots), "a second fill adds nothing");
        assert_ne!(random_value(16), random_value(16));
    }
}
