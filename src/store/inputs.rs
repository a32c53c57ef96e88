//! What the user asked for, kept in the model so that no later command forgets it: the bundle (its
//! name, or for a file its text and digest), the overlays' texts, and every option the user set per
//! application (with `--set` or `wharf config`). Kept in the Secret `wharf-inputs`, because options
//! of type secret (the login's password, connectors) are among them. The public URL stays in the
//! `wharf-platform` ConfigMap (see `platform`).
//!
//! Precedence when rendering: charm default < bundle option < stored user option < this
//! command's `--set`. `--reset APP.KEY` and `--reset-config APP` forget stored options.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{anyhow, bail};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::bundle::{Bundle, Texts, set};
use crate::charm::Charm;
use crate::kube::{FIELD_MANAGER, errors};

pub const SECRET_NAME: &str = "wharf-inputs";
const DATA_KEY: &str = "inputs";

/// Where a bundle comes from on the command line.
#[derive(Debug, Clone)]
pub struct BundleSource {
    /// `lite`, `full` or a path.
    pub spec: String,
    pub overlays: Vec<PathBuf>,
    /// Charms from a directory instead of those shipped inside wharf.
    pub charms_dir: Option<PathBuf>,
}

/// What a command changes in the stored inputs.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// `APP.KEY=VALUE`: kept for later commands.
    pub set: Vec<String>,
    /// `APP.KEY`: forgotten.
    pub reset: Vec<String>,
    /// `APP`: every option of it forgotten.
    pub reset_apps: Vec<String>,
    /// The platform's public URL ("" clears it).
    pub public_url: Option<String>,
    /// The registry serving wharf's own images ("" goes back to `wharf.local`).
    pub image_registry: Option<String>,
}

/// Options set by the user: app → key → value (secret values in the clear: this lives in a Secret).
pub type UserConfig = BTreeMap<String, BTreeMap<String, Value>>;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inputs {
    /// The bundle as given: `lite`, `full` or a path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    /// A bundle file's label and text (none for a bundle shipped with wharf: an upgrade reads the
    /// newer wharf's copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_file: Option<(String, String)>,
    /// sha256 of the bundle text and its overlays, as deployed.
    #[serde(default)]
    pub bundle_digest: String,
    /// (path as given, text), in order.
    #[serde(default)]
    pub overlays: Vec<(String, String)>,
    #[serde(default)]
    pub config: UserConfig,
}

impl Inputs {
    /// Read the stored inputs (empty when nothing was deployed yet).
    pub async fn load(client: &Client, model: &str, server: &str) -> anyhow::Result<Inputs> {
        let api: Api<Secret> = Api::namespaced(client.clone(), model);
        let secret = match api.get_opt(SECRET_NAME).await {
            Ok(s) => s,
            Err(e) if errors::is_not_found(&e) => None,
            Err(e) => bail!(errors::describe(
                &e,
                "read the model's stored inputs",
                server
            )),
        };
        let Some(bytes) = secret
            .and_then(|s| s.data)
            .and_then(|mut d| d.remove(DATA_KEY))
        else {
            return Ok(Inputs::default());
        };
        serde_json::from_slice(&bytes.0).map_err(|e| {
            anyhow!(
                "Secret {model}/{SECRET_NAME}: data.{DATA_KEY} is not wharf's stored inputs ({e}); \
                 it was edited by hand: restore it, or delete it and deploy again with every option"
            )
        })
    }

    /// Write them back (one server-side apply).
    pub async fn save(&self, client: &Client, model: &str, server: &str) -> anyhow::Result<()> {
        let api: Api<Secret> = Api::namespaced(client.clone(), model);
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(SECRET_NAME.into()),
                labels: Some([(super::OWNER_LABEL.to_string(), super::OWNER.to_string())].into()),
                ..ObjectMeta::default()
            },
            data: Some([(DATA_KEY.to_string(), ByteString(serde_json::to_vec(self)?))].into()),
            ..Secret::default()
        };
        api.patch(
            SECRET_NAME,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await
        .map_err(|e| anyhow!(errors::describe(&e, "save the model's inputs", server)))?;
        Ok(())
    }

    /// Forget them (`remove --all`); a missing Secret is not an error.
    pub async fn delete(client: &Client, model: &str, server: &str) -> anyhow::Result<()> {
        let api: Api<Secret> = Api::namespaced(client.clone(), model);
        match api.delete(SECRET_NAME, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) if errors::is_not_found(&e) => Ok(()),
            Err(e) => bail!(errors::describe(&e, "delete the model's inputs", server)),
        }
    }

    /// The bundle and overlay texts as deployed, for a command that names no bundle.
    pub fn texts(&self, model: &str) -> anyhow::Result<Texts> {
        let Some(spec) = &self.bundle else {
            bail!("model `{model}` has no deployed bundle yet: run `wharf deploy BUNDLE` first");
        };
        let mut texts = match &self.bundle_file {
            Some((file, text)) => Texts {
                file: file.clone(),
                text: text.clone(),
                overlays: Vec::new(),
                shipped: false,
            },
            None => Texts::read(spec, &[])?,
        };
        texts.overlays = self.overlays.clone();
        Ok(texts)
    }

    /// Remember the bundle this command deploys.
    pub fn remember_bundle(&mut self, spec: &str, texts: &Texts) {
        self.bundle = Some(spec.to_owned());
        self.bundle_file = (!texts.shipped).then(|| (texts.file.clone(), texts.text.clone()));
        self.overlays = texts.overlays.clone();
        self.bundle_digest = digest(texts);
    }

    /// Apply `--set`, `--reset` and `--reset-config` to the stored options. Errors (an unknown
    /// application, a malformed expression) change nothing. Returns notes for the user.
    pub fn apply_changes(
        &mut self,
        bundle: &Bundle,
        changes: &Changes,
    ) -> anyhow::Result<Vec<String>> {
        let sets = set::parse(bundle, &changes.set)?;
        let mut notes = Vec::new();
        let mut config = self.config.clone();
        for app in &changes.reset_apps {
            set::check_app(bundle, app).map_err(|why| anyhow!("--reset-config {app}: {why}"))?;
            if config.remove(app).is_none() {
                notes.push(format!(
                    "--reset-config {app}: no option of {app} was set; nothing to forget"
                ));
            }
        }
        for target in &changes.reset {
            let (app, key) =
                set::split_app_key(target).map_err(|why| anyhow!("--reset {target}: {why}"))?;
            set::check_app(bundle, app).map_err(|why| anyhow!("--reset {target}: {why}"))?;
            let removed = config.get_mut(app).and_then(|keys| keys.remove(key));
            if removed.is_none() {
                notes.push(format!(
                    "--reset {target}: it was not set; nothing to forget"
                ));
            }
        }
        for (app, values) in sets {
            config.entry(app).or_default().extend(values);
        }
        config.retain(|_, keys| !keys.is_empty());
        self.config = config;
        Ok(notes)
    }

    /// Stored options whose charm no longer has them (a newer charm dropped or renamed them): they
    /// are forgotten, and each gets a line saying so and why.
    pub fn drop_unknown(
        &mut self,
        bundle: &Bundle,
        charms: &BTreeMap<String, Charm>,
    ) -> Vec<String> {
        let mut dropped = Vec::new();
        for (app, keys) in &mut self.config {
            let Some(charm) = bundle
                .applications
                .get(app)
                .and_then(|a| charms.get(&a.charm))
            else {
                continue; // not in this bundle: kept for when it is again
            };
            keys.retain(|key, _| {
                let known = charm.config.options.contains_key(key);
                if !known {
                    dropped.push(format!(
                        "{app}.{key}: dropped: charm {} {} has no option `{key}`",
                        charm.meta.name, charm.meta.version
                    ));
                }
                known
            });
        }
        self.config.retain(|_, keys| !keys.is_empty());
        dropped
    }

    /// Put the stored options into `bundle` as a layer above the bundle's own options.
    pub fn layer_onto(&self, bundle: &mut Bundle) {
        for (app, values) in &self.config {
            bundle.add_layer(
                app,
                format!("stored options of {app} (`wharf config {app}` shows them)"),
                values.clone(),
            );
        }
    }
}

/// sha256 of a bundle's text and its overlays' texts.
pub fn digest(texts: &Texts) -> String {
    let mut hash = Sha256::new();
    hash.update(texts.text.as_bytes());
    for (path, text) in &texts.overlays {
        hash.update([0]);
        hash.update(path.as_bytes());
        hash.update([0]);
        hash.update(text.as_bytes());
    }
    format!("sha256:{}", hex::encode(hash.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lite() -> Bundle {
        Bundle::load("lite", &[], &[]).unwrap()
    }

    #[test]
    fn set_keeps_reset_forgets_and_errors_change_nothing() {
        let bundle = lite();
        let mut inputs = Inputs::default();
        let changes = Changes {
            set: vec![
                "dex-auth.static-password=s3cret".into(),
                "dex-auth.port=5557".into(),
            ],
            ..Changes::default()
        };
        assert!(inputs.apply_changes(&bundle, &changes).unwrap().is_empty());
        assert_eq!(inputs.config["dex-auth"]["static-password"], "s3cret");
        // A later command without --set keeps them.
        inputs.apply_changes(&bundle, &Changes::default()).unwrap();
        assert_eq!(inputs.config["dex-auth"].len(), 2);
        let before = inputs.clone();
        let bad = Changes {
            set: vec!["dex-auth.port=1".into()],
            reset: vec!["nosuch.port".into()],
            ..Changes::default()
        };
        let err = inputs.apply_changes(&bundle, &bad).unwrap_err().to_string();
        assert!(
            err.contains("--reset nosuch.port") && err.contains("no application"),
            "{err}"
        );
        assert_eq!(inputs, before, "a refused change changes nothing");
        let reset = Changes {
            reset: vec!["dex-auth.port".into(), "dex-auth.log-level".into()],
            ..Changes::default()
        };
        let notes = inputs.apply_changes(&bundle, &reset).unwrap();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(!inputs.config["dex-auth"].contains_key("port"));
        let all = Changes {
            reset_apps: vec!["dex-auth".into()],
            ..Changes::default()
        };
        inputs.apply_changes(&bundle, &all).unwrap();
        assert!(inputs.config.is_empty());
    }

    #[test]
    fn options_a_charm_no_longer_has_are_dropped_with_a_reason() {
        let bundle = lite();
        let resolved =
            crate::render::Resolved::new(bundle.clone(), &crate::charm::Source::new(None)).unwrap();
        let mut inputs = Inputs::default();
        inputs.config.entry("dex-auth".into()).or_default().extend([
            ("port".to_string(), Value::from(5557)),
            ("theme".to_string(), Value::from("dark")),
        ]);
        let dropped = inputs.drop_unknown(&bundle, &resolved.charms);
        assert_eq!(dropped.len(), 1);
        assert!(
            dropped[0].starts_with("dex-auth.theme: dropped: charm dex-auth"),
            "{dropped:?}"
        );
        assert!(inputs.config["dex-auth"].contains_key("port"));
    }

    #[test]
    fn digest_covers_overlays() {
        let t = Texts {
            file: "b.yaml".into(),
            text: "x".into(),
            overlays: vec![],
            shipped: false,
        };
        let mut u = t.clone();
        u.overlays.push(("o.yaml".into(), "y".into()));
        assert_ne!(digest(&t), digest(&u));
    }
}
