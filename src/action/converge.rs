//! The steps `deploy`, `config` and `upgrade` share, in the order they run: resolve the bundle
//! with the model's stored inputs and this command's changes (no cluster write), render what each
//! application should be, prepare the changes and pass the gates (reads only), print the plan,
//! then — under the model lock — keep the inputs and perform. A command refused anywhere before
//! the lock has written nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use serde::Serialize;

use super::{OutputFormat, Session};
use crate::bundle::{Bundle, Texts};
use crate::charm::Source;
use crate::engine::gates::{self, Facts, Refusal};
use crate::engine::{Desired, Performed, Prepared, Prune, RunOptions, perform, prepare};
use crate::kube::apply::{Applier, Change};
use crate::kube::progress::Progress;
use crate::kube::{Cluster, autoscaled};
use crate::render::{Resolved, Target};
use crate::store::generated::{self, Generated, Slot};
use crate::store::inputs::{Changes, Inputs};
use crate::store::lock::{Guard, Lock};
use crate::store::platform;

/// The model's bundle resolved with its stored inputs and this command's changes.
pub struct Resolution {
    pub resolved: Resolved,
    /// The inputs as they will be kept if the command goes ahead.
    pub inputs: Inputs,
    /// The inputs as they were.
    pub stored: Inputs,
    /// The platform settings this command renders with (public URL, image registry).
    pub settings: platform::Settings,
    stored_settings: platform::Settings,
    /// Lines for the user: resets of nothing, options dropped because a charm lost them.
    pub notes: Vec<String>,
}

/// Step 1: bundle texts + stored inputs + changes → a resolved bundle whose option layers are
/// charm default < bundle < stored user options < this command's `--set`. Type errors surface here.
pub async fn resolve(
    session: &Session,
    spec: &str,
    texts: Texts,
    charms_dir: Option<&std::path::Path>,
    changes: &Changes,
) -> anyhow::Result<Resolution> {
    let stored = Inputs::load(session.client(), &session.model, session.server()).await?;
    let stored_settings =
        platform::load(session.client(), &session.model, session.server()).await?;
    let bundle = Bundle::parse(&texts)?;
    let mut inputs = stored.clone();
    let mut notes = inputs.apply_changes(&bundle, changes)?;
    inputs.remember_bundle(spec, &texts);
    let mut resolved = Resolved::new(bundle, &Source::new(charms_dir))?;
    notes.extend(inputs.drop_unknown(&resolved.bundle, &resolved.charms));
    // Stored options, without the ones this command sets (their layer comes last and names
    // `--set` in errors).
    let sets = crate::bundle::set::parse(&resolved.bundle, &changes.set)?;
    let mut older = inputs.clone();
    for (app, keys) in &sets {
        if let Some(stored) = older.config.get_mut(app) {
            stored.retain(|k, _| !keys.contains_key(k));
        }
    }
    older.layer_onto(&mut resolved.bundle);
    for (app, values) in sets {
        resolved
            .bundle
            .add_layer(&app, format!("--set {app}"), values);
    }
    resolved.generated_slots()?; // every layer type-checked, before anything is written
    let settings = platform::Settings {
        public_url: changes
            .public_url
            .clone()
            .unwrap_or_else(|| stored_settings.public_url.clone()),
        image_registry: changes
            .image_registry
            .clone()
            .unwrap_or_else(|| stored_settings.image_registry.clone()),
    };
    Ok(Resolution {
        resolved,
        inputs,
        stored,
        settings,
        stored_settings,
        notes,
    })
}

/// The render target: the model, the cluster's Kubernetes version, this machine's arch.
pub fn target(model: &str, cluster: &Cluster, settings: &platform::Settings) -> Target {
    let mut t = Target {
        namespace: model.to_owned(),
        public_url: settings.public_url.clone(),
        image_registry: settings.image_registry.clone(),
        ..Target::default()
    };
    if let Some(version) = kube_version(cluster) {
        t.kube_version = version;
    }
    t.arch = match std::env::consts::ARCH {
        "aarch64" => "arm64".into(),
        _ => "amd64".into(),
    };
    t
}

/// The cluster's Kubernetes version as semver (`v1.33.1+k3s` → 1.33.1).
pub fn kube_version(cluster: &Cluster) -> Option<semver::Version> {
    let v = cluster.kube_version.trim_start_matches('v');
    let core = v.split(['-', '+']).next().unwrap_or(v);
    semver::Version::parse(core).ok()
}

/// Step 2: what each application should be. Generated secrets that do not exist yet are made
/// now, in memory (`Rendered::generated` says whether to keep them).
pub struct Rendered {
    pub desired: Vec<Desired>,
    pub generated: Generated,
    pub new_generated: bool,
}

pub async fn render(session: &Session, resolution: &Resolution) -> anyhow::Result<Rendered> {
    let target = target(&session.model, &session.cluster, &resolution.settings);
    let mismatches = resolution
        .resolved
        .kube_version_mismatches(&target.kube_version);
    if !mismatches.is_empty() {
        bail!(
            "refused before any change: {}\nthe cluster runs Kubernetes {}: upgrade it first \
             (`wharf upgrade --kubernetes MAJOR.MINOR`), or keep the wharf release whose charms \
             support it",
            mismatches.join("\n"),
            target.kube_version
        );
    }
    let mut generated = generated::load(session.client(), &session.model, session.server()).await?;
    let slots: Vec<Slot> = resolution
        .resolved
        .generated_slots()?
        .into_iter()
        .map(|s| Slot {
            app: s.app,
            key: s.key,
            bytes: s.bytes,
        })
        .collect();
    let new_generated = generated::fill(&mut generated, &slots);
    let rendered = resolution.resolved.render(&target, &generated)?;
    let desired = rendered
        .apps
        .into_iter()
        .map(|app| {
            let user = resolution.inputs.config.get(&app.name);
            Desired::from_rendered(app, user, &resolution.settings.public_url)
        })
        .collect();
    Ok(Rendered {
        desired,
        generated,
        new_generated,
    })
}

/// Step 3: read the live objects and the history, prepare the changes, and pass the gates.
pub async fn prepare_and_gate(
    session: &Session,
    desired: Vec<Desired>,
    allow: Prune,
) -> anyhow::Result<Prepared> {
    let mut plan = prepare::plan(&desired)?;
    let applier = Applier {
        client: session.client().clone(),
        server: session.server().to_owned(),
        force_conflicts: false,
        guard: Guard::unlocked(),
    };
    // What an HPA scales is applied without spec.replicas: a deploy must not reset its count.
    let namespaces: BTreeSet<String> = plan
        .items()
        .filter_map(|i| i.id.namespace.clone())
        .collect();
    let mut targets =
        autoscaled::live_targets(session.client(), session.server(), &namespaces).await?;
    targets.extend(autoscaled::rendered_targets(&plan));
    let released = autoscaled::release_replicas(&mut plan, &targets);
    for (id, hpa) in &released {
        eprintln!("note: {}", autoscaled::note(id, hpa));
    }
    let live = applier.live_all(&session.catalog, plan.items()).await?;
    let history = session.releases.list().await?;
    let mut prepared = prepare::prepare(desired, plan, live, history, allow);
    prepared.released = released;
    let facts = Facts::read(
        session.client(),
        session.server(),
        &session.catalog,
        &prepared,
    )
    .await?;
    refuse(&gates::check(&prepared, &facts))?;
    Ok(prepared)
}

/// Refusals as one error (nothing was written).
pub fn refuse(refusals: &[Refusal]) -> anyhow::Result<()> {
    if refusals.is_empty() {
        return Ok(());
    }
    Err(anyhow!(
        "refused before any change ({} problem(s)):\n{}",
        refusals.len(),
        refusals
            .iter()
            .map(|r| format!("  - {r}"))
            .collect::<Vec<_>>()
            .join("\n")
    ))
}

/// Step 4: under the lock, keep what the user asked for (only what changed is written).
pub async fn keep_inputs(
    session: &Session,
    guard: &Guard,
    resolution: &Resolution,
    rendered: &Rendered,
) -> anyhow::Result<()> {
    let (client, model, server) = (session.client(), session.model.as_str(), session.server());
    if rendered.new_generated {
        guard.check()?;
        generated::save(client, model, server, &rendered.generated).await?;
    }
    if resolution.inputs != resolution.stored {
        guard.check()?;
        resolution.inputs.save(client, model, server).await?;
    }
    if resolution.settings != resolution.stored_settings {
        guard.check()?;
        platform::save(client, model, server, &resolution.settings).await?;
    }
    Ok(())
}

/// Take the model lock, and check that no other run recorded anything since `prepared` was made.
pub async fn lock(session: &Session, prepared: &Prepared, force: bool) -> anyhow::Result<Lock> {
    let lock = Lock::acquire(session.client(), &session.model, session.server(), force).await?;
    let now = match session.releases.list().await {
        Ok(h) => h,
        Err(e) => {
            lock.release().await;
            return Err(e);
        }
    };
    let revisions = |h: &crate::store::releases::History| -> BTreeMap<String, Vec<(u32, String)>> {
        h.apps
            .iter()
            .map(|(a, rs)| {
                (
                    a.clone(),
                    rs.iter()
                        .map(|r| (r.revision, r.status.as_str().to_owned()))
                        .collect(),
                )
            })
            .collect()
    };
    if revisions(&now) != revisions(&prepared.history) {
        lock.release().await;
        bail!(
            "another run changed model `{}` while this one was planning; run the command again",
            session.model
        );
    }
    Ok(lock)
}

/// Steps 4 and 5 of deploy and config: under the model lock, keep the inputs and perform; the lock
/// is released however it ends.
pub async fn commit(
    session: &Session,
    prepared: &Prepared,
    resolution: &Resolution,
    rendered: &Rendered,
    run: &RunOptions,
    progress: &Progress,
) -> anyhow::Result<Performed> {
    let lock = lock(session, prepared, run.force_unlock).await?;
    if let Err(e) = keep_inputs(session, &lock.guard(), resolution, rendered).await {
        lock.release().await;
        return Err(e);
    }
    perform_locked(session, prepared, run, lock, progress).await
}

/// Perform under the lock, always releasing it.
pub async fn perform_locked(
    session: &Session,
    prepared: &Prepared,
    run: &RunOptions,
    lock: Lock,
    progress: &Progress,
) -> anyhow::Result<Performed> {
    let guard = lock.guard();
    let result = perform(session, prepared, run, &guard, progress).await;
    lock.release().await;
    result
}

pub fn progress(output: OutputFormat) -> Progress {
    if output.is_text() {
        Progress::new()
    } else {
        Progress::plain()
    }
}

/// The plan as data: what `--dry-run --output json` prints and the text plan is made from.
#[derive(Debug, Serialize)]
pub struct PlanReport {
    pub model: String,
    /// Stage 1 (CRDs) and stage 2 (cluster-wide objects), before any application.
    pub stages: Vec<StageReport>,
    /// Stage 3: each application's own objects, in the order they run.
    pub applications: Vec<AppPlanReport>,
    pub summary: BTreeMap<&'static str, usize>,
}

#[derive(Debug, Serialize)]
pub struct StageReport {
    pub stage: u8,
    pub title: &'static str,
    pub objects: Vec<ObjectChange>,
}

#[derive(Debug, Serialize)]
pub struct AppPlanReport {
    pub app: String,
    pub needs: Vec<String>,
    /// Whether it gets a new revision.
    pub revision: bool,
    pub objects: Vec<ObjectChange>,
}

#[derive(Debug, Serialize)]
pub struct ObjectChange {
    pub change: &'static str,
    pub object: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

pub fn plan_report(model: &str, prepared: &Prepared) -> PlanReport {
    let change = |id: &crate::kube::ObjectRef| ObjectChange {
        change: prepared
            .changes
            .get(id)
            .copied()
            .unwrap_or(Change::Create)
            .verb(),
        object: id.to_string(),
        note: None,
    };
    let mut stages = Vec::new();
    for (stage, items) in [(1, &prepared.plan.crds), (2, &prepared.plan.cluster)] {
        if !items.is_empty() {
            stages.push(StageReport {
                stage,
                title: if stage == 1 {
                    "custom resource definitions"
                } else {
                    "cluster-wide objects"
                },
                objects: items.iter().map(|i| change(&i.id)).collect(),
            });
        }
    }
    let mut apps: BTreeMap<&str, AppPlanReport> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for app in &prepared.plan.apps {
        order.push(app.name.as_str());
        apps.insert(
            app.name.as_str(),
            AppPlanReport {
                app: app.name.clone(),
                needs: app.needs.clone(),
                revision: prepared.revisions.contains(&app.name),
                objects: app.items.iter().map(|i| change(&i.id)).collect(),
            },
        );
    }
    for (app, refs) in &prepared.prunes {
        if let Some(entry) = apps.get_mut(app.as_str()) {
            entry.objects.extend(refs.iter().map(|r| ObjectChange {
                change: "prune",
                object: r.to_string(),
                note: None,
            }));
        }
    }
    for (app, refs) in &prepared.kept {
        if let Some(entry) = apps.get_mut(app.as_str()) {
            entry.objects.extend(refs.iter().map(|r| ObjectChange {
                change: "keep",
                object: r.to_string(),
                note: Some(format!(
                    "dropped by the render; {} deletes it",
                    if r.is_crd() {
                        "--prune-crds"
                    } else {
                        "--prune-data"
                    }
                )),
            }));
        }
    }
    let mut applications: Vec<AppPlanReport> = Vec::new();
    for app in order {
        applications.push(apps.remove(app).expect("listed"));
    }
    PlanReport {
        model: model.to_owned(),
        stages,
        applications,
        summary: prepared.counts(),
    }
}

/// The text form of the plan.
pub fn plan_text(report: &PlanReport) -> String {
    let mut out = format!("plan for model `{}`\n", report.model);
    for stage in &report.stages {
        out.push_str(&format!("stage {}: {}\n", stage.stage, stage.title));
        for o in &stage.objects {
            out.push_str(&format!("    {:<9} {}\n", o.change, o.object));
        }
    }
    out.push_str("stage 3: applications\n");
    for app in &report.applications {
        let needs = if app.needs.is_empty() {
            String::new()
        } else {
            format!(" (after {})", app.needs.join(", "))
        };
        out.push_str(&format!("  {}{needs}\n", app.app));
        for o in &app.objects {
            let note = o
                .note
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            out.push_str(&format!("    {:<9} {}{note}\n", o.change, o.object));
        }
    }
    let summary: Vec<String> = report
        .summary
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    out.push_str(&format!(
        "summary: {}\n",
        if summary.is_empty() {
            "nothing".into()
        } else {
            summary.join(", ")
        }
    ));
    out
}

/// Print the unified diff of every object against the live one (Secret data redacted).
pub fn print_diff(prepared: &Prepared) -> anyhow::Result<()> {
    let mut text = String::new();
    for item in prepared.plan.items() {
        if let Some(d) = crate::kube::diff::object_diff(
            &item.id.to_string(),
            prepared.live.get(&item.id),
            &item.object,
        ) {
            text.push_str(&d);
            text.push('\n');
        }
    }
    super::print_stdout(&text)
}

/// The end of a run: success, or an error naming each failed application.
pub fn conclude(
    model: &str,
    performed: &Performed,
    progress: &Progress,
) -> anyhow::Result<ExitCode> {
    if let Some(signal) = performed.interrupted {
        bail!(
            "interrupted by {signal}; every revision this run started is recorded as failed. Run \
             the command again to converge (`wharf history` shows where each application is)"
        );
    }
    let failed = performed.failures();
    if failed.is_empty() {
        progress.line(&format!(
            "model `{model}`: {} application(s) ready",
            performed.outcomes.len()
        ));
        return Ok(ExitCode::SUCCESS);
    }
    Err(anyhow!(
        "{} of {} application(s) failed — {}; see `wharf status -m {model}`",
        failed.len(),
        performed.outcomes.len(),
        failed.join(" | ")
    ))
}

/// A `key: old → new` line per option that differs between a record's config and the desired
/// one (secrets only as set/unset).
pub fn option_changes(prepared: &Prepared) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for (app, d) in &prepared.desired {
        let Some(last) = prepared.history.last(app) else {
            continue;
        };
        let changes = crate::store::record::config_changes(&last.config, &d.spec.config);
        if !changes.is_empty() {
            out.insert(app.clone(), changes);
        }
    }
    out
}

/// Values for JSON output: the run's result per application.
#[derive(Debug, Serialize)]
pub struct RunReport {
    pub model: String,
    pub applications: Vec<AppRunReport>,
}

#[derive(Debug, Serialize)]
pub struct AppRunReport {
    pub app: String,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
}

pub fn run_report(
    model: &str,
    performed: &Performed,
    changes: &BTreeMap<String, Vec<String>>,
) -> RunReport {
    RunReport {
        model: model.to_owned(),
        applications: performed
            .outcomes
            .iter()
            .map(|(app, r)| AppRunReport {
                app: app.clone(),
                status: if r.is_ok() { "deployed" } else { "failed" },
                revision: performed.revisions.get(app).copied(),
                reason: r.as_ref().err().cloned(),
                changes: changes.get(app).cloned().unwrap_or_default(),
            })
            .collect(),
    }
}

/// Refuse, before any change, a deploy or upgrade whose pods run wharf's own images when no node has them:
/// they would wait in ImagePullBackOff until the timeout. A dry run, `--skip-image-check` and a
/// cluster that cannot tell get a warning instead.
pub async fn check_images_on_nodes(
    session: &Session,
    prepared: &crate::engine::Prepared,
    image_check: bool,
    dry_run: bool,
) -> anyhow::Result<()> {
    use crate::kube::node_images::{self, Verdict};
    let wanted = node_images::local_images(prepared.plan.items().map(|i| &i.object));
    match node_images::check(session.client(), session.server(), &wanted).await {
        Verdict::Present => Ok(()),
        Verdict::Missing(missing) => {
            let what = format!(
                "no node of the cluster has wharf's own image(s) {}, and no registry serves \
                 wharf.local: their pods would wait in ImagePullBackOff until the timeout",
                missing.join(", ")
            );
            if image_check && !dry_run {
                anyhow::bail!(
                    "refused before any change: {what}.\n{}; or, if the images reach the \
                     nodes another way, pass --skip-image-check",
                    node_images::remedy()
                );
            }
            eprintln!("warning: {what}; {}", node_images::remedy());
            Ok(())
        }
        Verdict::Unknown(why) => {
            eprintln!(
                "warning: could not check that the nodes have wharf's own images ({}): {why}; \
                 if they do not, {}",
                wanted.into_iter().collect::<Vec<_>>().join(", "),
                node_images::remedy()
            );
            Ok(())
        }
    }
}
