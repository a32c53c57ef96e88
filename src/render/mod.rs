//! (bundle, charms, config, relation data) → Kubernetes objects. No cluster needed: `wharf render`
//! stops here, and `deploy` feeds the same output to the cluster, so there is one path from a
//! bundle to manifests.
//!
//! Rendering is deterministic: applications in name order, templates in file order, keys sorted;
//! the same input gives byte-identical output, so that an unchanged deploy writes nothing.

pub mod names;
mod objects;
pub mod output;
mod relations;

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, anyhow, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::bundle::Bundle;
use crate::charm::metadata::DeclaredStatus;
use crate::charm::{Charm, Config, Source};

/// Values of secret options that nobody set, generated once by `deploy`: app → key → value.
pub type Generated = BTreeMap<String, BTreeMap<String, String>>;

/// Everything a render needs besides the bundle.
#[derive(Debug, Clone)]
pub struct Target {
    /// The model: the namespace everything namespaced goes into.
    pub namespace: String,
    pub arch: String,
    pub kube_version: semver::Version,
    pub public_url: String,
    /// The registry the nodes pull wharf's own images from: `wharf.local/` in the charms'
    /// images becomes `<image_registry>/`. Empty: `wharf.local`, imported into each node.
    pub image_registry: String,
}

impl Default for Target {
    fn default() -> Self {
        Target {
            namespace: "wharf".into(),
            arch: "amd64".into(),
            kube_version: semver::Version::new(1, 33, 0),
            public_url: String::new(),
            image_registry: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Rendered {
    pub bundle_name: String,
    pub namespace: String,
    pub apps: Vec<RenderedApp>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RenderedApp {
    pub name: String,
    pub charm: String,
    pub charm_version: semver::Version,
    pub scale: u32,
    /// Applications this one requires through relations: they deploy first.
    pub needs: Vec<String>,
    /// The effective config, with secret values masked: safe to show and store.
    pub config: BTreeMap<String, Value>,
    /// The charm's own verdict from its status rules, e.g. (blocked, "set static-password or connectors").
    pub declared_status: Option<(DeclaredStatus, String)>,
    /// The objects, with standard labels and the namespace set, secrets in the clear.
    pub objects: Vec<Value>,
    /// Template each object came from, parallel to `objects`.
    #[serde(skip)]
    pub sources: Vec<String>,
    /// What the application received on each required endpoint.
    pub relations: BTreeMap<String, Value>,
    /// Secret options that are set (by the user or generated): key → value. Never serialised.
    #[serde(skip)]
    pub secret_values: BTreeMap<String, String>,
}

/// A secret option that `deploy` must generate because nobody set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedSlot {
    pub app: String,
    pub key: String,
    pub bytes: usize,
}

/// The marker offline render puts where a generated secret will go.
pub fn placeholder(app: &str, key: &str) -> String {
    format!("<generated at deploy: {app}.{key}>")
}

/// A bundle with its charms loaded and its relations resolved: what both `generated_slots` and
/// `render` start from.
pub struct Resolved {
    pub bundle: Bundle,
    pub charms: BTreeMap<String, Charm>,
    wiring: relations::Wiring,
}

impl Resolved {
    pub fn new(bundle: Bundle, source: &Source) -> Result<Resolved> {
        let charms = load_charms(&bundle, source)?;
        for (app, application) in &bundle.applications {
            let meta = &charms[&application.charm].meta;
            if meta.trust && !application.trust {
                bail!(
                    "{}: applications.{app}.trust: charm {} creates cluster-scoped RBAC and needs trust; add `trust: true` \
                     to the application if you accept that",
                    bundle.file,
                    meta.name
                );
            }
        }
        let wiring = relations::resolve(&bundle, &charms)?;
        Ok(Resolved {
            bundle,
            charms,
            wiring,
        })
    }

    /// Each charm whose `kube-version` does not accept `version`, as a line naming the file.
    pub fn kube_version_mismatches(&self, version: &semver::Version) -> Vec<String> {
        let mut charms: Vec<&Charm> = self.charms.values().collect();
        charms.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
        charms
            .into_iter()
            .filter(|charm| !charm.meta.kube_version.matches(version))
            .map(|charm| {
                format!(
                    "charms/{}/metadata.yaml: kube-version: the charm needs Kubernetes {} but the target is {}",
                    charm.meta.name, charm.meta.kube_version, version
                )
            })
            .collect()
    }

    /// Secret options with `generate` that no layer set: deploy generates and keeps them.
    pub fn generated_slots(&self) -> Result<Vec<GeneratedSlot>> {
        let mut slots = Vec::new();
        for (app, application) in &self.bundle.applications {
            let charm = &self.charms[&application.charm];
            let config = effective_config(app, application, charm)?;
            for (key, bytes) in generated_unset(charm, &config) {
                slots.push(GeneratedSlot {
                    app: app.clone(),
                    key: key.clone(),
                    bytes,
                });
            }
        }
        Ok(slots)
    }

    /// Renders every application. Generated secrets missing from `generated` become placeholders.
    pub fn render(&self, target: &Target, generated: &Generated) -> Result<Rendered> {
        names::check_dns_label(&target.namespace).map_err(|why| anyhow!("--model: {why}"))?;
        if let Some(mismatch) = self.kube_version_mismatches(&target.kube_version).first() {
            bail!("{mismatch}");
        }
        let mut contexts = BTreeMap::new();
        let mut configs = BTreeMap::new();
        for (app, application) in &self.bundle.applications {
            let charm = &self.charms[&application.charm];
            let mut config = effective_config(app, application, charm)?;
            let unset: Vec<String> = generated_unset(charm, &config)
                .map(|(key, _)| key.clone())
                .collect();
            for key in unset {
                let value = generated.get(app).and_then(|keys| keys.get(&key)).cloned();
                let value = value.unwrap_or_else(|| placeholder(app, &key));
                config.values.insert(key, Value::String(value));
            }
            contexts.insert(
                app.clone(),
                base_context(app, application.scale, charm, &config, target),
            );
            configs.insert(app.clone(), config);
        }
        let published = self.publish(&contexts)?;

        let mut apps = Vec::new();
        for (app, application) in &self.bundle.applications {
            let charm = &self.charms[&application.charm];
            let mut context = contexts.remove(app).expect("built above");
            let related: BTreeMap<&String, &Value> = self
                .wiring
                .providers
                .iter()
                .filter(|((requirer, _), _)| requirer == app)
                .map(|((_, endpoint), provider)| (endpoint, &published[provider]))
                .collect();
            context.insert("relations", &related);
            let config = &configs[app];
            let (objects, sources) = objects::render_templates(
                app, charm, &context, target, config,
            )
            .with_context(|| format!("rendering application {app} (charm {})", charm.meta.name))?;
            let relations = related
                .iter()
                .map(|(endpoint, data)| ((*endpoint).clone(), (*data).clone()))
                .collect();
            apps.push(RenderedApp {
                relations,
                secret_values: config
                    .secret_values()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                name: app.clone(),
                charm: charm.meta.name.clone(),
                charm_version: charm.meta.version.clone(),
                scale: application.scale,
                needs: self.wiring.needs(app),
                config: config.masked(),
                declared_status: declared_status(charm, &context)?,
                objects,
                sources,
            });
        }
        objects::check_unique(&apps)?;
        Ok(Rendered {
            bundle_name: self.bundle.name.clone(),
            namespace: target.namespace.clone(),
            apps,
        })
    }

    /// What each provider publishes on each of its related endpoints, rendered from its own context.
    fn publish(
        &self,
        contexts: &BTreeMap<String, tera::Context>,
    ) -> Result<BTreeMap<(String, String), Value>> {
        let mut published = BTreeMap::new();
        for provider in self.wiring.providers.values() {
            let (app, endpoint) = provider;
            let charm = &self.charms[&self.bundle.applications[app].charm];
            let mut data = serde_json::Map::new();
            for key in charm.meta.provides[endpoint].data.keys() {
                let name = format!(
                    "charms/{}/metadata.yaml: provides.{endpoint}.data.{key}",
                    charm.meta.name
                );
                let value = charm
                    .engine
                    .render(&name, &contexts[app])
                    .map_err(|e| anyhow!("{name}: {}", crate::charm::tera_error(&e)))?;
                data.insert(key.clone(), Value::String(value));
            }
            published.insert(provider.clone(), Value::Object(data));
        }
        Ok(published)
    }
}

/// Loads every charm the bundle names; all missing charms are reported at once.
fn load_charms(bundle: &Bundle, source: &Source) -> Result<BTreeMap<String, Charm>> {
    let available = source.charm_names()?;
    let mut wanted: Vec<&String> = bundle.applications.values().map(|a| &a.charm).collect();
    wanted.sort();
    wanted.dedup();
    // charm → the applications that use it under another name, so each charm is listed once.
    let mut missing: BTreeMap<&String, Vec<&String>> = BTreeMap::new();
    for (app, application) in bundle
        .applications
        .iter()
        .filter(|(_, a)| !available.contains(&a.charm))
    {
        let renamed = missing.entry(&application.charm).or_default();
        if *app != application.charm {
            renamed.push(app);
        }
    }
    if !missing.is_empty() {
        let listed: Vec<String> = missing
            .iter()
            .map(|(charm, apps)| {
                let used_as = match apps.as_slice() {
                    [] => String::new(),
                    [app] => format!(" (application {app})"),
                    apps => format!(
                        " (applications {})",
                        apps.iter()
                            .map(|a| a.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                // A typo of a charm wharf has gets the suggestion right next to it.
                format!(
                    "{charm}{used_as}{}",
                    crate::bundle::did_you_mean(charm, available.iter())
                )
            })
            .collect();
        bail!(
            "{}: the bundle names {} charm(s) that wharf does not have: {}\nwharf has: {}",
            bundle.file,
            listed.len(),
            listed.join(", "),
            available.join(", ")
        );
    }
    wanted
        .into_iter()
        .map(|name| Ok((name.clone(), Charm::load(source, name)?)))
        .collect()
}

/// Secret options with `generate` (only secrets may have it) that no layer set: (key, bytes).
fn generated_unset<'a>(
    charm: &'a Charm,
    config: &'a Config,
) -> impl Iterator<Item = (&'a String, usize)> + 'a {
    charm.config.options.iter().filter_map(|(key, spec)| {
        let unset = config
            .values
            .get(key)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        spec.generate.filter(|_| unset).map(|bytes| (key, bytes))
    })
}

fn effective_config(
    app: &str,
    application: &crate::bundle::Application,
    charm: &Charm,
) -> Result<Config> {
    let layers: Vec<(String, &BTreeMap<String, Value>)> = application
        .options
        .iter()
        .map(|(origin, values)| (origin.clone(), values))
        .collect();
    charm
        .config
        .effective(&charm.meta.name, &layers)
        .with_context(|| format!("configuring application {app}"))
}

/// The standard labels every object gets.
pub fn standard_labels(app: &str, charm: &Charm) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), charm.meta.name.clone()),
        ("app.kubernetes.io/instance".into(), app.to_string()),
        (
            "app.kubernetes.io/version".into(),
            charm.meta.version.to_string().replace('+', "_"),
        ),
        (
            "app.kubernetes.io/component".into(),
            charm.meta.component().to_string(),
        ),
        ("app.kubernetes.io/part-of".into(), "wharf".into()),
        ("app.kubernetes.io/managed-by".into(), "wharf".into()),
    ])
}

/// `image` as the nodes pull it: wharf's own images (`wharf.local/…`) from `registry` when one
/// is given; every other image as the charm names it.
pub fn from_registry(image: &str, registry: &str) -> String {
    let local = format!("{}/", crate::images::REGISTRY);
    match image.strip_prefix(&local) {
        Some(rest) if !registry.is_empty() => format!("{registry}/{rest}"),
        _ => image.to_owned(),
    }
}

/// The context every template of an application sees, before relations are added.
fn base_context(
    app: &str,
    scale: u32,
    charm: &Charm,
    config: &Config,
    target: &Target,
) -> tera::Context {
    let mut context = tera::Context::new();
    context.insert(
        "app",
        &json!({
            "name": app,
            "namespace": target.namespace,
            "scale": scale,
            "version": charm.meta.version.to_string(),
            "charm": charm.meta.name,
        }),
    );
    context.insert("config", &config.values);
    let images: BTreeMap<&String, String> = charm
        .meta
        .images
        .iter()
        .map(|(name, image)| {
            (
                name,
                from_registry(&image.upstream_source, &target.image_registry),
            )
        })
        .collect();
    context.insert("images", &images);
    context.insert(
        "platform",
        &json!({
            "arch": target.arch,
            "kube_version": target.kube_version.to_string(),
            "public_url": target.public_url,
        }),
    );
    context.insert("labels", &standard_labels(app, charm));
    context.insert(
        "selector",
        &json!({"app.kubernetes.io/name": charm.meta.name, "app.kubernetes.io/instance": app}),
    );
    context
}

fn declared_status(
    charm: &Charm,
    context: &tera::Context,
) -> Result<Option<(DeclaredStatus, String)>> {
    for (index, rule) in charm.meta.status.iter().enumerate() {
        let name = format!(
            "charms/{}/metadata.yaml: status[{index}].when",
            charm.meta.name
        );
        let verdict = charm
            .engine
            .render(&name, context)
            .map_err(|e| anyhow!("{name}: {}", crate::charm::tera_error(&e)))?;
        if verdict.trim() == "true" {
            return Ok(Some((rule.status, rule.message.clone())));
        }
    }
    Ok(None)
}
