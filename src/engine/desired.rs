//! What one application should look like after a run: from a render (deploy, config, upgrade) or
//! from a release record (rollback). Secret values travel separately from everything printable.

use std::collections::BTreeMap;

use anyhow::bail;
use serde_json::Value;

use crate::kube::compare;
use crate::kube::plan::AppSpec;
use crate::render::RenderedApp;
use crate::store::record::{Release, SecretValues};

#[derive(Debug, Clone)]
pub struct Desired {
    /// Name, charm, version, needs, masked config, declared status and the objects (Secrets in
    /// the clear: they are applied).
    pub spec: AppSpec,
    /// The options the user set, secret ones masked.
    pub user_config: BTreeMap<String, Value>,
    pub relations: BTreeMap<String, Value>,
    pub public_url: String,
    /// Secret option values (the objects' Secret data is taken when the record is written).
    pub values: SecretValues,
    /// What makes this revision ("install", "config: public-url", "rollback to 3").
    pub description: String,
    /// Record a new revision even when nothing changed (a rollback always does).
    pub force_revision: bool,
    /// The revision this one re-applies (rollback).
    pub rollback_of: Option<u32>,
    /// The backup made before this run (upgrade), kept in the record.
    pub backup: Option<String>,
}

impl Desired {
    /// From a render, with the user's options for this application (secret values in the clear,
    /// as stored in the model's inputs).
    pub fn from_rendered(
        app: RenderedApp,
        user: Option<&BTreeMap<String, Value>>,
        public_url: &str,
    ) -> Desired {
        let user = user.cloned().unwrap_or_default();
        let mut user_config = BTreeMap::new();
        let mut user_keys = Vec::new();
        for (key, value) in user {
            if app.secret_values.contains_key(&key) {
                user_keys.push(key.clone());
                user_config.insert(key, Value::String("<secret>".into()));
            } else {
                user_config.insert(key, value);
            }
        }
        Desired {
            spec: AppSpec {
                name: app.name,
                charm: app.charm,
                charm_version: app.charm_version.to_string(),
                needs: app.needs,
                config: app.config,
                declared_status: app.declared_status.map(|(s, m)| (s.to_string(), m)),
                objects: app.objects.into_iter().map(compare::normalise).collect(),
            },
            user_config,
            relations: app.relations,
            public_url: public_url.to_owned(),
            values: SecretValues {
                config: app.secret_values,
                user_keys,
                objects: BTreeMap::new(),
            },
            description: String::new(),
            force_revision: false,
            rollback_of: None,
            backup: None,
        }
    }

    /// From a release record and its secret values: exactly what that revision applied.
    pub fn from_record(record: &Release, values: &SecretValues) -> anyhow::Result<Desired> {
        if !record.replayable() {
            bail!(
                "revision {} of `{}` was recorded by wharf {} without its manifests, so it cannot \
                 be re-applied; pick a later revision (`wharf history {}`)",
                record.revision,
                record.app,
                record.wharf_version,
                record.app
            );
        }
        let mut objects = record.manifests.clone();
        values.put_into(&mut objects).map_err(|e| {
            anyhow::anyhow!(
                "revision {} of `{}`: {e}; it cannot be re-applied",
                record.revision,
                record.app
            )
        })?;
        Ok(Desired {
            spec: AppSpec {
                name: record.app.clone(),
                charm: record.charm.clone(),
                charm_version: record.charm_version.clone(),
                needs: record.needs.clone(),
                config: record.config.clone(),
                declared_status: record.declared_status.clone(),
                objects,
            },
            user_config: record.user_config.clone(),
            relations: record.relations.clone(),
            public_url: record.public_url.clone(),
            values: SecretValues {
                objects: BTreeMap::new(),
                ..values.clone()
            },
            description: format!("rollback to {}", record.revision),
            force_revision: true,
            rollback_of: Some(record.revision),
            backup: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The user's options with the secret ones in the clear, as the model's inputs keep them.
    pub fn user_options(&self) -> BTreeMap<String, Value> {
        self.user_config
            .iter()
            .map(|(k, v)| match self.values.config.get(k) {
                Some(secret) if self.values.user_keys.contains(k) => {
                    (k.clone(), Value::String(secret.clone()))
                }
                _ => (k.clone(), v.clone()),
            })
            .collect()
    }
}
