//! `wharf remove APP|--all`: delete what the release records say an application applied, in
//! reverse order (custom resources before their CRDs, workloads before what they use). The
//! records go last but for the model's state, so a removal that fails half-way can simply be run
//! again.
//!
//! What is kept unless asked, so that deploying the application again finds its data and its
//! login intact: PersistentVolumeClaims and the secrets their data was written with (its entries
//! in `wharf-generated`, its stored options in `wharf-inputs`) unless `--destroy-data`, CRDs unless
//! `--destroy-crds`. `--all` also keeps the platform settings and the namespace, which holds the
//! volumes. Kept volumes stay findable without records, by the labels every rendered object
//! carries, so a later `--destroy-data` deletes them.
//!
//! Nothing outside the model is touched: an object a record places in another namespace, a
//! Namespace, or a cluster-scoped object wharf did not label as its own is skipped with a warning.
//!
//! The verb is prepare, then perform: [`gather`] reads, [`plan`] decides (pure), [`confirm`] asks
//! before a destructive removal (`--yes` without a terminal), [`perform`] writes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Secret};
use kube::api::{Api, DeleteParams, ListParams};
use serde::Serialize;

use super::{Global, Outcome, OutputFormat, Session};
use crate::kube::progress::Progress;
use crate::kube::{INSTANCE_LABEL, MANAGED_BY_SELECTOR, ObjectRef, errors, prune, wait};
use crate::store::generated::{self, Generated};
use crate::store::inputs::{self, Inputs};
use crate::store::lock::Guard;
use crate::store::releases::History;
use crate::store::{Lock, OWNER, OWNER_LABEL, platform};

/// How long `remove --all --destroy-data` waits for the model namespace to finish terminating.
const NAMESPACE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// What to remove, and what destruction the user asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub app: Option<String>,
    pub all: bool,
    pub destroy_data: bool,
    pub destroy_crds: bool,
    pub yes: bool,
    pub force_unlock: bool,
}

impl Options {
    /// The command that removes what this run keeps for `why`.
    fn command_for(&self, why: Why) -> String {
        let target = match &self.app {
            Some(app) if !self.all => app.as_str(),
            _ => "--all",
        };
        let flag = match why {
            Why::Crd => "--destroy-crds",
            _ => "--destroy-data",
        };
        format!("wharf remove {target} {flag}")
    }

    fn destructive_flags(&self) -> String {
        let mut flags = Vec::new();
        if self.destroy_data {
            flags.push("--destroy-data");
        }
        if self.destroy_crds {
            flags.push("--destroy-crds");
        }
        flags.join(" ")
    }
}

/// Why an object is kept. A closed set: each has its own flag to delete it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Why {
    /// A volume: the application's data.
    Data,
    /// Generated secrets the data was written with (MinIO's keys, a database password).
    Credentials,
    /// The options the user set, among them secret ones.
    Options,
    /// The model's bundle, options and public URL (`--all`).
    Settings,
    /// A CRD: deleting it deletes every custom resource of its kind, in every namespace.
    Crd,
    /// The model namespace: it holds the volumes.
    Namespace,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Why::Data => "the data",
            Why::Credentials => "the credentials the data was written with",
            Why::Options => "the options you set",
            Why::Settings => "the model's settings",
            Why::Crd => "deleting it deletes every resource of its kind",
            Why::Namespace => "it holds the volumes",
        })
    }
}

/// An object left in place, and the command that deletes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Kept {
    #[serde(flatten)]
    pub object: ObjectRef,
    /// For the model's shared Secrets: the entries kept in them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    pub why: Why,
    pub delete_with: String,
}

/// An object a record lists that wharf will not delete, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    #[serde(flatten)]
    pub object: ObjectRef,
    pub why: String,
}

/// What was read before deciding: the records, what is left of earlier removals, the model's
/// state, and what the cluster says about the recorded objects.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub model: String,
    pub history: History,
    /// PersistentVolumeClaims in the model namespace labelled managed-by=wharf: (instance, PVC).
    pub volumes: Vec<(String, ObjectRef)>,
    pub generated: Generated,
    /// `None` when `wharf-inputs` exists but cannot be read.
    pub inputs: Option<Inputs>,
    pub platform: bool,
    /// The namespace carries owner=wharf: wharf created it.
    pub namespace_owned: bool,
    /// Recorded objects whose kind the cluster serves: whether it is cluster-scoped.
    pub cluster_scoped: BTreeMap<ObjectRef, bool>,
    /// Cluster-scoped recorded objects that exist without the label managed-by=wharf.
    pub not_made_by_wharf: BTreeSet<ObjectRef>,
}

/// What a removal will do, decided before any write.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub apps: Vec<String>,
    /// In removal order.
    pub delete: Vec<ObjectRef>,
    pub keep: Vec<Kept>,
    pub skip: Vec<Skipped>,
    /// Release records to delete: (app, revision).
    pub records: Vec<(String, u32)>,
    /// `wharf-generated` keys to forget, by application (`--destroy-data`).
    pub forget_generated: BTreeMap<String, Vec<String>>,
    /// Applications whose stored options are forgotten (`--destroy-data`).
    pub forget_options: Vec<String>,
    /// `--all --destroy-data`: `wharf-generated`, `wharf-inputs` and `wharf-platform` go.
    pub delete_state: bool,
    /// `--all --destroy-data` in a namespace wharf created.
    pub delete_namespace: bool,
}

/// The one document of `--output json|yaml`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub model: String,
    pub apps: Vec<String>,
    pub removed: Vec<ObjectRef>,
    /// Entries deleted from the model's shared Secrets (`wharf-generated`, `wharf-inputs`).
    pub forgotten: Vec<String>,
    pub kept: Vec<Kept>,
    pub skipped: Vec<Skipped>,
}

pub fn run(global: &Global, options: &Options) -> Outcome {
    super::runtime()?.block_on(remove(global, options))
}

async fn remove(global: &Global, options: &Options) -> Outcome {
    let session = Session::open(global).await?;
    let model = session.model.clone();
    let namespaces: Api<Namespace> = Api::all(session.client().clone());
    let Some(namespace) = namespaces
        .get_opt(&model)
        .await
        .map_err(session.describe("read the model namespace"))?
    else {
        eprintln!("model `{model}` does not exist (no namespace {model}): nothing to remove");
        return Ok(ExitCode::SUCCESS);
    };
    let namespace_owned = namespace
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(OWNER_LABEL))
        .is_some_and(|o| o == OWNER);

    let lock = Lock::acquire(
        session.client(),
        &model,
        session.server(),
        options.force_unlock,
    )
    .await?;
    let result = remove_locked(&session, options, namespace_owned, lock.guard()).await;
    lock.release().await;
    let (plan, mut report) = result?;

    // A deleted CRD stays Terminating until its custom resources (and their finalizers) are
    // gone: wait, so that what follows (and the next deploy) does not meet it half-deleted.
    for crd in report.removed.iter().filter(|r| r.is_crd()) {
        wait::until_crd_gone(
            session.client(),
            session.server(),
            &crd.name,
            NAMESPACE_TIMEOUT,
            |line| eprintln!("{line}"),
        )
        .await?;
    }

    if plan.delete_namespace {
        // wharf made the namespace (owner=wharf) and it now holds nothing of ours.
        match namespaces.delete(&model, &DeleteParams::background()).await {
            Ok(_) => report.removed.push(namespace_ref(&model)),
            Err(e) if errors::is_not_found(&e) => {}
            Err(e) => return Err(session.describe("delete the model namespace")(e)),
        }
        // The namespace controller deletes what is left in it, then the namespace: wait, so
        // that a deploy right after does not meet a namespace that is going.
        wait::until_namespace_gone(
            session.client(),
            session.server(),
            &model,
            NAMESPACE_TIMEOUT,
            |line| eprintln!("{line}"),
        )
        .await?;
    }
    match session.output {
        OutputFormat::Text => super::print_stdout(&text_report(&report, &plan))?,
        format => format.document(&report)?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn remove_locked(
    session: &Session,
    options: &Options,
    namespace_owned: bool,
    guard: Guard,
) -> anyhow::Result<(Plan, Report)> {
    let facts = gather(session, options, namespace_owned).await?;
    let plan = plan(options, &facts)?;
    for skipped in &plan.skip {
        tracing::warn!("not deleting {}: {}", skipped.object, skipped.why);
    }
    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    confirm(options, &facts.model, &plan, terminal)?;
    let progress = if session.output.is_text() {
        Progress::new()
    } else {
        Progress::plain()
    };
    let report = perform(session, &plan, &guard, &progress).await?;
    Ok((plan, report))
}

/// Every read the plan needs: records, labelled volumes, the model's state, and for the
/// selected applications' recorded objects, their scope and (cluster-scoped ones) their label.
async fn gather(
    session: &Session,
    options: &Options,
    namespace_owned: bool,
) -> anyhow::Result<Facts> {
    let (client, server, model) = (session.client(), session.server(), &session.model);
    let history = session.releases.list().await?;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), model);
    let volumes = pvcs
        .list(&ListParams::default().labels(MANAGED_BY_SELECTOR))
        .await
        .map_err(session.describe("list the model's volumes"))?
        .items
        .into_iter()
        .map(|pvc| {
            let instance = pvc
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(INSTANCE_LABEL))
                .cloned()
                .unwrap_or_default();
            let name = pvc.metadata.name.unwrap_or_default();
            (instance, pvc_ref(model, &name))
        })
        .collect();
    let generated = generated::load(client, model, server).await?;
    let inputs = match Inputs::load(client, model, server).await {
        Ok(inputs) => Some(inputs),
        Err(e) => {
            tracing::warn!("{e:#}");
            None
        }
    };
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), model);
    let platform = configmaps
        .get_opt(platform::CONFIG_MAP)
        .await
        .map_err(session.describe("read the model's platform settings"))?
        .is_some();
    let mut facts = Facts {
        model: model.clone(),
        history,
        volumes,
        generated,
        inputs,
        platform,
        namespace_owned,
        ..Facts::default()
    };

    let apps = select_apps(options, &facts)?;
    for app in &apps {
        for record in facts.history.of(app) {
            for entry in &record.inventory {
                let r = &entry.id;
                let Some(cluster_scoped) = session.catalog.is_cluster_scoped(r) else {
                    continue; // a kind no longer served: nothing of it to delete
                };
                facts.cluster_scoped.insert(r.clone(), cluster_scoped);
                if cluster_scoped && r.namespace.is_none() {
                    let api = session.catalog.api_for(client, r)?;
                    let live = api
                        .get_opt(&r.name)
                        .await
                        .map_err(session.describe(&format!("read {r}")))?;
                    let ours = live.as_ref().is_none_or(|o| {
                        o.metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get("app.kubernetes.io/managed-by"))
                            .is_some_and(|v| v == "wharf")
                    });
                    if !ours {
                        facts.not_made_by_wharf.insert(r.clone());
                    }
                }
            }
        }
    }
    Ok(facts)
}

/// The applications to remove: every recorded one with `--all`; otherwise the one named, which
/// must have records or something kept by an earlier removal.
pub fn select_apps(options: &Options, facts: &Facts) -> anyhow::Result<Vec<String>> {
    if options.all {
        return Ok(facts.history.apps.keys().cloned().collect());
    }
    let Some(app) = &options.app else {
        bail!("name an application to remove, or pass --all");
    };
    if facts.history.apps.contains_key(app) || !leftovers_of(facts, app).is_empty() {
        return Ok(vec![app.clone()]);
    }
    let mut known: Vec<String> = facts.history.apps.keys().cloned().collect();
    let mut removed: BTreeSet<&str> = facts.volumes.iter().map(|(a, _)| a.as_str()).collect();
    removed.extend(facts.generated.keys().map(String::as_str));
    if let Some(inputs) = &facts.inputs {
        removed.extend(inputs.config.keys().map(String::as_str));
    }
    known.extend(
        removed
            .into_iter()
            .filter(|a| !a.is_empty() && !facts.history.apps.contains_key(*a))
            .map(|a| format!("{a} (removed; its data is kept)")),
    );
    bail!(
        "model `{}` has no application `{app}`; it has: {}",
        facts.model,
        if known.is_empty() {
            "none".into()
        } else {
            known.join(", ")
        }
    )
}

/// What an earlier `remove APP` kept of `app`, as short descriptions.
fn leftovers_of(facts: &Facts, app: &str) -> Vec<String> {
    let mut out: Vec<String> = facts
        .volumes
        .iter()
        .filter(|(a, _)| a == app)
        .map(|(_, r)| r.to_string())
        .collect();
    if facts.generated.get(app).is_some_and(|k| !k.is_empty()) {
        out.push(format!("generated secrets of {app}"));
    }
    if facts
        .inputs
        .as_ref()
        .is_some_and(|i| i.config.contains_key(app))
    {
        out.push(format!("stored options of {app}"));
    }
    out
}

/// Decide what to delete, keep and skip. Pure: every read is in `facts`.
pub fn plan(options: &Options, facts: &Facts) -> anyhow::Result<Plan> {
    let model = facts.model.as_str();
    let mut plan = Plan {
        apps: select_apps(options, facts)?,
        ..Plan::default()
    };
    let mut candidates: BTreeSet<ObjectRef> = BTreeSet::new();
    for app in &plan.apps {
        for record in facts.history.of(app) {
            candidates.extend(record.inventory.iter().map(|e| e.id.clone()));
            plan.records.push((app.clone(), record.revision));
        }
    }
    candidates.extend(
        facts
            .volumes
            .iter()
            .filter(|(app, _)| options.all || plan.apps.contains(app))
            .map(|(_, r)| r.clone()),
    );
    for r in candidates {
        if let Some(why) = out_of_bounds(&r, facts) {
            plan.skip.push(Skipped { object: r, why });
        } else if r.is_pvc() && !options.destroy_data {
            plan.keep.push(kept(options, r, Vec::new(), Why::Data));
        } else if r.is_crd() && !options.destroy_crds {
            plan.keep.push(kept(options, r, Vec::new(), Why::Crd));
        } else {
            plan.delete.push(r);
        }
    }
    prune::removal_order(&mut plan.delete);

    let stored = |name: &str| secret_ref(model, name);
    if options.all {
        if options.destroy_data {
            plan.delete_state = true;
            plan.delete_namespace = facts.namespace_owned;
        } else {
            let keys: Vec<String> = generated_keys(&facts.generated, None);
            if !keys.is_empty() {
                let r = stored(generated::SECRET_NAME);
                plan.keep.push(kept(options, r, keys, Why::Credentials));
            }
            if facts.inputs.as_ref() != Some(&Inputs::default()) {
                let r = stored(inputs::SECRET_NAME);
                plan.keep.push(kept(options, r, Vec::new(), Why::Settings));
            }
            if facts.platform {
                let r = ObjectRef {
                    api_version: "v1".into(),
                    kind: "ConfigMap".into(),
                    namespace: Some(model.into()),
                    name: platform::CONFIG_MAP.into(),
                };
                plan.keep.push(kept(options, r, Vec::new(), Why::Settings));
            }
            let r = namespace_ref(model);
            plan.keep.push(kept(options, r, Vec::new(), Why::Namespace));
        }
        return Ok(plan);
    }
    for app in &plan.apps {
        let keys = generated_keys(&facts.generated, Some(app));
        if !keys.is_empty() {
            if options.destroy_data {
                plan.forget_generated.insert(app.clone(), keys);
            } else {
                let r = stored(generated::SECRET_NAME);
                plan.keep.push(kept(options, r, keys, Why::Credentials));
            }
        }
        let set = facts.inputs.as_ref().and_then(|i| i.config.get(app));
        if let Some(set) = set.filter(|s| !s.is_empty()) {
            if options.destroy_data {
                plan.forget_options.push(app.clone());
            } else {
                let keys = set.keys().map(|k| format!("{app}.{k}")).collect();
                let r = stored(inputs::SECRET_NAME);
                plan.keep.push(kept(options, r, keys, Why::Options));
            }
        }
    }
    Ok(plan)
}

/// Why a recorded object is outside what a removal of this model may delete, if it is.
fn out_of_bounds(r: &ObjectRef, facts: &Facts) -> Option<String> {
    let model = facts.model.as_str();
    if r.kind == "Namespace" && r.group().is_empty() {
        return Some(
            "a Namespace: wharf deletes only the model's own, with --all --destroy-data".into(),
        );
    }
    let scope = facts.cluster_scoped.get(r).copied();
    match (&r.namespace, scope) {
        (Some(ns), _) if ns != model => Some(format!(
            "it is in namespace `{ns}`, outside model `{model}`; wharf never deletes outside its \
             model. The release record lists it, so the record was edited: check it with `wharf \
             history`"
        )),
        (Some(_), Some(true)) => Some(
            "the record gives a cluster-scoped object a namespace; it was edited, so wharf \
             leaves the object alone"
                .into(),
        ),
        (None, Some(false)) => Some(
            "the record gives a namespaced object no namespace (it would be looked up in \
             `default`); it was edited, so wharf leaves the object alone"
                .into(),
        ),
        (None, _) if facts.not_made_by_wharf.contains(r) => Some(
            "it is cluster-scoped and has no label app.kubernetes.io/managed-by=wharf: wharf did \
             not make it"
                .into(),
        ),
        _ => None,
    }
}

fn kept(options: &Options, object: ObjectRef, keys: Vec<String>, why: Why) -> Kept {
    Kept {
        object,
        keys,
        why,
        delete_with: options.command_for(why),
    }
}

/// `wharf-generated` keys (`<app>.<key>`) of one application, or of all.
fn generated_keys(generated: &Generated, app: Option<&str>) -> Vec<String> {
    generated
        .iter()
        .filter(|(a, _)| app.is_none_or(|app| app == a.as_str()))
        .flat_map(|(a, keys)| keys.keys().map(move |k| format!("{a}.{k}")))
        .collect()
}

fn pvc_ref(model: &str, name: &str) -> ObjectRef {
    ObjectRef {
        api_version: "v1".into(),
        kind: "PersistentVolumeClaim".into(),
        namespace: Some(model.into()),
        name: name.into(),
    }
}

fn secret_ref(model: &str, name: &str) -> ObjectRef {
    ObjectRef {
        api_version: "v1".into(),
        kind: "Secret".into(),
        namespace: Some(model.into()),
        name: name.into(),
    }
}

fn namespace_ref(model: &str) -> ObjectRef {
    ObjectRef {
        api_version: "v1".into(),
        kind: "Namespace".into(),
        namespace: None,
        name: model.into(),
    }
}

/// What the plan destroys for good (data, credentials, CRDs, the namespace), one line each.
pub fn destroys(model: &str, plan: &Plan) -> Vec<String> {
    let mut out: Vec<String> = plan
        .delete
        .iter()
        .filter(|r| r.is_pvc() || r.is_crd())
        .map(|r| {
            let what = if r.is_pvc() {
                "its data"
            } else {
                "with every resource of its kind"
            };
            format!("{r} ({what})")
        })
        .collect();
    for (app, keys) in &plan.forget_generated {
        out.push(format!(
            "the generated secrets of {app} ({}) in Secret {model}/{}",
            keys.join(", "),
            generated::SECRET_NAME
        ));
    }
    for app in &plan.forget_options {
        out.push(format!(
            "the stored options of {app} in Secret {model}/{}",
            inputs::SECRET_NAME
        ));
    }
    if plan.delete_state {
        out.push(format!(
            "Secret {model}/{} (every generated secret), Secret {model}/{} (the bundle and your \
             options), ConfigMap {model}/{} (the public URL)",
            generated::SECRET_NAME,
            inputs::SECRET_NAME,
            platform::CONFIG_MAP
        ));
    }
    if plan.delete_namespace {
        out.push(format!("Namespace {model} and everything left in it"));
    }
    out
}

/// A destructive plan goes ahead with `--yes` or a yes on a terminal (default no); without a
/// terminal and without `--yes` it is refused before anything is deleted.
pub fn confirm(options: &Options, model: &str, plan: &Plan, terminal: bool) -> anyhow::Result<()> {
    let destroyed = destroys(model, plan);
    if destroyed.is_empty() || options.yes {
        return Ok(());
    }
    let flags = options.destructive_flags();
    let list = destroyed
        .iter()
        .map(|l| format!("  - {l}"))
        .collect::<Vec<_>>()
        .join("\n");
    if !terminal {
        bail!(
            "{flags} would delete, for good:\n{list}\nwithout a terminal wharf cannot ask: pass \
             --yes to confirm. Nothing was removed"
        );
    }
    let yes = dialoguer::Confirm::new()
        .with_prompt(format!("{flags} deletes, for good:\n{list}\nDelete them?"))
        .default(false)
        .interact()
        .context("could not ask for confirmation; pass --yes instead")?;
    if !yes {
        bail!("not confirmed: nothing was removed");
    }
    Ok(())
}

/// Every write, each after checking that the run still holds the model lock.
async fn perform(
    session: &Session,
    plan: &Plan,
    guard: &Guard,
    progress: &Progress,
) -> anyhow::Result<Report> {
    let (client, server, model) = (session.client(), session.server(), &session.model);
    let mut report = Report {
        model: model.clone(),
        apps: plan.apps.clone(),
        removed: Vec::new(),
        forgotten: Vec::new(),
        kept: plan.keep.clone(),
        skipped: plan.skip.clone(),
    };
    for r in &plan.delete {
        guard.check()?;
        if prune::delete(client, server, &session.catalog, r).await? {
            progress.line(&format!("deleted {r}"));
            report.removed.push(r.clone());
        }
    }
    let releases = session.releases.clone().guarded(guard.clone());
    for (app, revision) in &plan.records {
        releases.delete(app, *revision).await?;
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), model);
    for keys in plan.forget_generated.values() {
        guard.check()?;
        generated::forget(client, model, server, keys).await?;
        progress.line(&format!(
            "deleted {} from Secret {model}/{}",
            keys.join(", "),
            generated::SECRET_NAME
        ));
        report.forgotten.extend(
            keys.iter()
                .map(|k| format!("{}/{k}", generated::SECRET_NAME)),
        );
    }
    if !plan.forget_options.is_empty() {
        guard.check()?;
        let mut stored = Inputs::load(client, model, server).await?;
        for app in &plan.forget_options {
            stored.config.remove(app);
            report
                .forgotten
                .push(format!("{}/{app} (stored options)", inputs::SECRET_NAME));
        }
        stored.save(client, model, server).await?;
    }
    if plan.delete_state {
        let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), model);
        for name in [generated::SECRET_NAME, inputs::SECRET_NAME] {
            guard.check()?;
            if delete_named(&secrets, name, session).await? {
                report.removed.push(secret_ref(model, name));
            }
        }
        guard.check()?;
        if delete_named(&configmaps, platform::CONFIG_MAP, session).await? {
            report.removed.push(ObjectRef {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                namespace: Some(model.clone()),
                name: platform::CONFIG_MAP.into(),
            });
        }
    }
    Ok(report)
}

/// Delete one of the model's own objects; whether it was there.
async fn delete_named<K>(api: &Api<K>, name: &str, session: &Session) -> anyhow::Result<bool>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(e) if errors::is_not_found(&e) => Ok(false),
        Err(e) => Err(session.describe(&format!("delete {name}"))(e)),
    }
}

/// The text result: what went, what stayed and the command that deletes it, what was skipped.
pub fn text_report(report: &Report, plan: &Plan) -> String {
    let what = if report.apps.is_empty() {
        format!("what was left of model `{}`", report.model)
    } else {
        report.apps.join(", ")
    };
    let mut out = format!(
        "removed {what}: {} object(s) deleted, {} release record(s)\n",
        report.removed.len(),
        plan.records.len(),
    );
    if !report.forgotten.is_empty() {
        out.push_str(&format!("forgot {}\n", report.forgotten.join(", ")));
    }
    let mut by_command: BTreeMap<&str, Vec<&Kept>> = BTreeMap::new();
    for k in &report.kept {
        by_command.entry(&k.delete_with).or_default().push(k);
    }
    for (command, kept) in by_command {
        out.push_str("kept:\n");
        for k in kept {
            let keys = if k.keys.is_empty() {
                String::new()
            } else {
                format!(" [{}]", k.keys.join(", "))
            };
            out.push_str(&format!("  {}{keys}: {}\n", k.object, k.why));
        }
        out.push_str(&format!("  delete them with `{command}`\n"));
    }
    if !report.skipped.is_empty() {
        out.push_str("not touched:\n");
        for s in &report.skipped {
            out.push_str(&format!("  {}: {}\n", s.object, s.why));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Release;
    use crate::store::record::InventoryEntry;

    const MODEL: &str = "m";

    fn obj(api: &str, kind: &str, ns: Option<&str>, name: &str) -> ObjectRef {
        ObjectRef {
            api_version: api.into(),
            kind: kind.into(),
            namespace: ns.map(Into::into),
            name: name.into(),
        }
    }

    /// `minio` deployed once: a Deployment, its PVC, a ClusterRole and a CRD; its secret key
    /// generated, one option set by the user.
    fn facts() -> Facts {
        let inventory = [
            obj("apps/v1", "Deployment", Some(MODEL), "minio"),
            pvc_ref(MODEL, "minio-data"),
            obj("rbac.authorization.k8s.io/v1", "ClusterRole", None, "minio"),
            obj(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                None,
                "buckets.wharf.dev",
            ),
        ];
        let mut release = Release::fixture("minio", 1);
        release.inventory = inventory
            .iter()
            .map(|id| InventoryEntry {
                id: id.clone(),
                digest: String::new(),
            })
            .collect();
        let mut facts = Facts {
            model: MODEL.into(),
            inputs: Some(Inputs::default()),
            namespace_owned: true,
            ..Facts::default()
        };
        for r in &inventory {
            facts
                .cluster_scoped
                .insert(r.clone(), r.namespace.is_none());
        }
        facts.history.apps.insert("minio".into(), vec![release]);
        facts
            .volumes
            .push(("minio".into(), pvc_ref(MODEL, "minio-data")));
        facts
            .generated
            .entry("minio".into())
            .or_default()
            .insert("secret-key".into(), "s".into());
        if let Some(inputs) = facts.inputs.as_mut() {
            inputs
                .config
                .entry("minio".into())
                .or_default()
                .insert("bucket".into(), serde_json::json!("b"));
        }
        facts
    }

    fn app(name: &str) -> Options {
        Options {
            app: Some(name.into()),
            ..Options::default()
        }
    }

    fn kinds(refs: &[ObjectRef]) -> Vec<&str> {
        refs.iter().map(|r| r.kind.as_str()).collect()
    }

    #[test]
    fn remove_app_keeps_volume_credentials_options_and_crds() {
        let plan = plan(&app("minio"), &facts()).unwrap();
        assert_eq!(kinds(&plan.delete), ["Deployment", "ClusterRole"]);
        let kept: Vec<_> = plan
            .keep
            .iter()
            .map(|k| (k.object.name.as_str(), k.why))
            .collect();
        assert_eq!(
            kept,
            [
                ("buckets.wharf.dev", Why::Crd),
                ("minio-data", Why::Data),
                ("wharf-generated", Why::Credentials),
                ("wharf-inputs", Why::Options),
            ]
        );
        assert_eq!(
            plan.keep[0].delete_with,
            "wharf remove minio --destroy-crds"
        );
        assert_eq!(
            plan.keep[1].delete_with,
            "wharf remove minio --destroy-data"
        );
        assert_eq!(plan.keep[2].keys, ["minio.secret-key"]);
        assert!(destroys(MODEL, &plan).is_empty(), "nothing to confirm");
        assert_eq!(plan.records, [("minio".to_string(), 1)]);
    }

    #[test]
    fn destroy_data_needs_yes_without_a_terminal() {
        let options = Options {
            destroy_data: true,
            ..app("minio")
        };
        let plan = plan(&options, &facts()).unwrap();
        assert_eq!(
            kinds(&plan.delete),
            ["Deployment", "PersistentVolumeClaim", "ClusterRole"]
        );
        assert_eq!(plan.forget_generated["minio"], ["minio.secret-key"]);
        assert_eq!(plan.forget_options, ["minio"]);
        let err = confirm(&options, MODEL, &plan, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--destroy-data") && err.contains("--yes") && err.contains("minio-data"),
            "{err}"
        );
        let yes = Options {
            yes: true,
            ..options
        };
        assert!(confirm(&yes, MODEL, &plan, false).is_ok());
    }

    #[test]
    fn kept_volumes_are_found_without_records() {
        let mut facts = facts();
        facts.history.apps.clear();
        let keep = plan(&app("minio"), &facts).unwrap();
        assert!(keep.delete.is_empty());
        assert_eq!(keep.keep[0].object.name, "minio-data");
        let options = Options {
            destroy_data: true,
            ..app("minio")
        };
        assert_eq!(
            kinds(&plan(&options, &facts).unwrap().delete),
            ["PersistentVolumeClaim"]
        );
        let err = plan(&app("nope"), &facts).unwrap_err().to_string();
        assert!(
            err.contains("it has: minio (removed; its data is kept)"),
            "{err}"
        );
    }

    #[test]
    fn nothing_outside_the_model_is_touched() {
        let mut facts = facts();
        let foreign = obj("v1", "ConfigMap", Some("kube-system"), "coredns");
        let namespace = namespace_ref("kube-system");
        let admin = obj(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            None,
            "cluster-admin",
        );
        let release = &mut facts.history.apps.get_mut("minio").unwrap()[0];
        for id in [&foreign, &namespace, &admin] {
            release.inventory.push(InventoryEntry {
                id: id.clone(),
                digest: String::new(),
            });
        }
        facts.cluster_scoped.insert(admin.clone(), true);
        facts.not_made_by_wharf.insert(admin.clone());
        for options in [
            app("minio"),
            Options {
                all: true,
                destroy_data: true,
                destroy_crds: true,
                ..Options::default()
            },
        ] {
            let plan = plan(&options, &facts).unwrap();
            let skipped: BTreeSet<_> = plan.skip.iter().map(|s| s.object.clone()).collect();
            assert_eq!(
                skipped,
                [foreign.clone(), namespace.clone(), admin.clone()].into()
            );
            assert!(plan.delete.iter().all(|r| !skipped.contains(r)));
        }
    }

    #[test]
    fn remove_all_keeps_the_model_state_unless_destroy_data() {
        let all = Options {
            all: true,
            ..Options::default()
        };
        let plan = plan(&all, &facts()).unwrap();
        let kept: Vec<_> = plan.keep.iter().map(|k| k.object.to_string()).collect();
        assert_eq!(
            kept,
            [
                "CustomResourceDefinition buckets.wharf.dev",
                "PersistentVolumeClaim m/minio-data",
                "Secret m/wharf-generated",
                "Secret m/wharf-inputs",
                "Namespace m",
            ]
        );
        assert!(!plan.delete_state && !plan.delete_namespace);
        let destroy = Options {
            destroy_data: true,
            ..all
        };
        let plan = super::plan(&destroy, &facts()).unwrap();
        assert!(plan.delete_state && plan.delete_namespace);
        assert!(
            destroys(MODEL, &plan)
                .iter()
                .any(|l| l.starts_with("Namespace m"))
        );
    }
}
