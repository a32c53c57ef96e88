//! The release records of a model: listing them (one LIST), saving one (one server-side apply),
//! and trimming the history to its cap.

use std::collections::BTreeMap;

use anyhow::anyhow;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::Value;

use super::record::{Release, SECRET_TYPE, secret_name};
use crate::kube::{FIELD_MANAGER, errors};

/// How many revisions of an application are kept unless told otherwise.
pub const DEFAULT_HISTORY: usize = 10;

#[derive(Clone)]
pub struct Releases {
    api: Api<DynamicObject>,
    server: String,
}

impl Releases {
    pub fn new(client: &Client, namespace: &str, server: &str) -> Self {
        let ar = ApiResource::erase::<Secret>(&());
        Self {
            api: Api::namespaced_with(client.clone(), namespace, &ar),
            server: server.to_owned(),
        }
    }

    /// Every application's records, oldest revision first. A missing namespace means none.
    pub async fn list(&self) -> anyhow::Result<BTreeMap<String, Vec<Release>>> {
        let lp = ListParams::default().labels(&format!("{}={}", super::OWNER_LABEL, super::OWNER));
        let list = match self.api.list(&lp).await {
            Ok(l) => l,
            Err(e) if errors::is_not_found(&e) => return Ok(BTreeMap::new()),
            Err(e) => {
                return Err(anyhow!(errors::describe(
                    &e,
                    "list release records",
                    &self.server
                )));
            }
        };
        let mut out: BTreeMap<String, Vec<Release>> = BTreeMap::new();
        for obj in list.items {
            let v = serde_json::to_value(&obj)?;
            if v.get("type").and_then(Value::as_str) != Some(SECRET_TYPE) {
                continue; // wharf-generated and other owner=wharf Secrets
            }
            let r = Release::from_secret(&v)?;
            out.entry(r.app.clone()).or_default().push(r);
        }
        for records in out.values_mut() {
            records.sort_by_key(|r| r.revision);
        }
        Ok(out)
    }

    /// Create or update a record (server-side apply, one write).
    pub async fn save(&self, release: &Release) -> anyhow::Result<()> {
        let ns = self.api.namespace().unwrap_or("default").to_owned();
        let secret: DynamicObject = serde_json::from_value(release.to_secret(&ns)?)?;
        let name = secret_name(&release.app, release.revision);
        self.api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&secret),
            )
            .await
            .map_err(|e| {
                anyhow!(errors::describe(
                    &e,
                    &format!("save release record {name}"),
                    &self.server
                ))
            })?;
        Ok(())
    }

    pub async fn delete(&self, app: &str, revision: u32) -> anyhow::Result<()> {
        let name = secret_name(app, revision);
        match self.api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) if errors::is_not_found(&e) => Ok(()),
            Err(e) => Err(anyhow!(errors::describe(
                &e,
                &format!("delete release record {name}"),
                &self.server
            ))),
        }
    }

    /// Delete the oldest records of an application beyond `keep` (records sorted oldest first).
    pub async fn trim(&self, records: &[Release], keep: usize) -> anyhow::Result<()> {
        let excess = records.len().saturating_sub(keep.max(1));
        for r in &records[..excess] {
            self.delete(&r.app, r.revision).await?;
        }
        Ok(())
    }
}
