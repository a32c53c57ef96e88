//! `wharf upgrade [BUNDLE]`: the normal path is a newer wharf with newer charms inside. First the
//! plan (per application: charm version from → to, image changes, options added and removed,
//! objects to create, change or delete), then the gates, all before anything is written (each
//! charm's kube-version, major versions without `--allow-major`, CRD versions still stored,
//! immutable fields, APIs not served, a previous revision that could not be rolled back to). Then
//! it applies and waits; on failure, timeout, SIGINT or SIGTERM every application it changed goes
//! back to its previous revision through the same engine, and the stored inputs with it.
//!
//! `wharf upgrade --kubernetes 1.34` upgrades the cluster instead (see `action::kubernetes`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use serde::Serialize;
use serde_json::Value;

use super::converge::{self, PlanReport};
use super::{Global, Outcome, OutputFormat, Session};
use crate::bundle::Texts;
use crate::engine::gates::Refusal;
use crate::engine::{Desired, Performed, Prune, RunOptions, perform};
use crate::kube::progress::Progress;
use crate::store::inputs::{Changes, Inputs};
use crate::store::lock::Guard;
use crate::store::releases::History;

#[derive(Debug, Clone)]
pub struct Options {
    pub bundle: Option<String>,
    pub overlays: Vec<PathBuf>,
    pub charms_dir: Option<PathBuf>,
    pub set: Vec<String>,
    pub dry_run: bool,
    pub rollback_on_failure: bool,
    pub allow_major: bool,
    /// Refuse an upgrade whose pods need wharf's own images that no node has (see deploy).
    pub image_check: bool,
    /// The backup made first (None: `--no-backup`).
    pub backup: Option<super::backup::CreateOptions>,
    pub run: RunOptions,
}

/// One application in the upgrade plan.
#[derive(Debug, Serialize)]
pub struct AppUpgrade {
    pub app: String,
    /// The charm version deployed now (none: the upgrade installs it).
    pub from: Option<String>,
    pub to: String,
    /// (old, new) container images that change.
    pub images: Vec<(String, String)>,
    pub options_added: Vec<String>,
    pub options_removed: Vec<String>,
}

#[derive(Debug, Serialize)]
struct UpgradePlan {
    applications: Vec<AppUpgrade>,
    objects: PlanReport,
    notes: Vec<String>,
}

pub fn run(global: &Global, options: &Options) -> Outcome {
    super::runtime()?.block_on(upgrade(global, options))
}

async fn upgrade(global: &Global, options: &Options) -> Outcome {
    let session = Session::open(global).await?;
    let stored = Inputs::load(session.client(), &session.model, session.server()).await?;
    let (spec, texts) = match &options.bundle {
        Some(bundle) => (bundle.clone(), Texts::read(bundle, &options.overlays)?),
        None => {
            let mut texts = stored.texts(&session.model)?;
            if !options.overlays.is_empty() {
                texts.overlays = Texts::read(&texts.file, &options.overlays)
                    .map(|t| t.overlays)
                    .unwrap_or_default();
            }
            (stored.bundle.clone().unwrap_or_default(), texts)
        }
    };
    let changes = Changes {
        set: options.set.clone(),
        ..Changes::default()
    };
    let resolution = converge::resolve(
        &session,
        &spec,
        texts,
        options.charms_dir.as_deref(),
        &changes,
    )
    .await?;
    let rendered = converge::render(&session, &resolution).await?;
    let mut prepared =
        converge::prepare_and_gate(&session, rendered.desired.clone(), Prune::default()).await?;

    // The plan, and the gates only an upgrade has.
    let plan = plan(&prepared.history, &prepared.desired, &prepared.revisions);
    let mut refusals = Vec::new();
    for a in &plan {
        if let Some(from) = &a.from
            && let (Ok(old), Ok(new)) =
                (semver::Version::parse(from), semver::Version::parse(&a.to))
        {
            if new.major != old.major && !options.allow_major {
                refusals.push(Refusal {
                    object: format!("application {}", a.app),
                    why: format!("charm {} → {} is a major version change", from, a.to),
                    fix: "read the charm's release notes, then pass --allow-major".into(),
                });
            }
            if new < old {
                refusals.push(Refusal {
                    object: format!("application {}", a.app),
                    why: format!("charm {} → {} is a downgrade", from, a.to),
                    fix: "use `wharf rollback` to go back to an earlier revision".into(),
                });
            }
        }
        if options.rollback_on_failure
            && let Some(deployed) = prepared.history.deployed(&a.app)
            && !deployed.replayable()
        {
            refusals.push(Refusal {
                object: format!("application {}", a.app),
                why: format!(
                    "its deployed revision {} was recorded by wharf {} without manifests, so a \
                     failed upgrade could not be rolled back",
                    deployed.revision, deployed.wharf_version
                ),
                fix: "pass --no-rollback-on-failure, or take a backup first".into(),
            });
        }
    }
    converge::refuse(&refusals)?;
    // A new wharf brings new versions of its own images: without them on the nodes, the upgrade
    // would wait out its timeout in ImagePullBackOff and then roll back.
    let noop = prepared.is_noop() && resolution.inputs == resolution.stored;
    if !noop {
        converge::check_images_on_nodes(&session, &prepared, options.image_check, options.dry_run)
            .await?;
    }
    for a in &plan {
        if let Some(d) = prepared.desired.get_mut(&a.app) {
            d.description = match &a.from {
                Some(from) if *from != a.to => format!("upgrade {from} → {}", a.to),
                Some(_) => format!("upgrade (wharf {})", env!("CARGO_PKG_VERSION")),
                None => format!("install {} (upgrade)", a.to),
            };
        }
    }
    let report = UpgradePlan {
        applications: plan,
        objects: converge::plan_report(&session.model, &prepared),
        notes: resolution.notes.clone(),
    };
    match global.output {
        OutputFormat::Text => super::print_stdout(&plan_text(&report))?,
        format if options.dry_run => format.document(&report)?,
        _ => {}
    }
    if options.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    if noop {
        eprintln!("nothing to upgrade: every application is at this wharf's charms");
        return Ok(ExitCode::SUCCESS);
    }

    if let Some(backup) = &options.backup {
        let name = backup_first(&session, backup).await?;
        for d in prepared.desired.values_mut() {
            d.backup = Some(name.clone());
        }
    }

    let lock = converge::lock(&session, &prepared, options.run.force_unlock).await?;
    let guard = lock.guard();
    let progress = converge::progress(global.output);
    let result = async {
        converge::keep_inputs(&session, &guard, &resolution, &rendered).await?;
        let performed = perform(&session, &prepared, &options.run, &guard, &progress).await?;
        if performed.succeeded() || !options.rollback_on_failure {
            return anyhow::Ok((performed, None));
        }
        let why = failure(&performed);
        progress.line(&format!("upgrade failed ({why}); rolling back"));
        let back = roll_back(
            &session,
            &prepared.history,
            &performed,
            &resolution.stored,
            options,
            &guard,
            &progress,
        )
        .await;
        Ok((performed, Some((why, back))))
    }
    .await;
    lock.release().await;
    let (performed, rolled_back) = result?;
    match rolled_back {
        None => {
            global.output.document(&converge::run_report(
                &session.model,
                &performed,
                &Default::default(),
            ))?;
            converge::conclude(&session.model, &performed, &progress)
        }
        Some((why, Ok(done))) => Err(anyhow!(
            "the upgrade failed ({why}); rolled back automatically: {}. The platform runs as \
             before the upgrade; `wharf history` shows the failed revisions",
            done.join(", ")
        )),
        Some((why, Err(e))) => Err(anyhow!(
            "the upgrade failed ({why}), and the automatic rollback failed too: {e:#}. Check \
             `wharf status` and `wharf history`, then `wharf rollback APP REVISION` for each \
             application"
        )),
    }
}

/// The backup every upgrade makes first (wharf's state; MinIO's data too with --backup-data); its
/// name goes into the upgrade's records. Without a key and without a terminal, the upgrade stops
/// here, before any write.
async fn backup_first(
    session: &Session,
    backup: &super::backup::CreateOptions,
) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    let key = match backup.key.given()? {
        Some(k) => k,
        None if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() => {
            backup.key.resolve(crate::backup::key::Purpose::Create)?
        }
        None => bail!(
            "an upgrade makes a backup first, and {}; or pass --no-backup to upgrade without one",
            crate::backup::key::missing()
        ),
    };
    let mut options = backup.clone();
    options.reason = "before upgrade".into();
    options.name = Some(format!(
        "{}-pre-upgrade",
        crate::backup::format::default_name(&session.model)
    ));
    let info = super::backup::make(session, &options, &key)
        .await
        .map_err(|e| e.context("the backup before the upgrade failed; nothing was upgraded"))?;
    let at = super::backup::location(options.to.as_deref(), &session.model);
    eprintln!("{}", super::backup::summary(&info, &at));
    Ok(info.name)
}

fn failure(performed: &Performed) -> String {
    match performed.interrupted {
        Some(signal) => format!("interrupted by {signal}"),
        None => performed.failures().join(" | "),
    }
}

/// Every application the upgrade changed goes back to its deployed revision from before, and the
/// stored inputs to what they were. Ok: "app to revision N" for each.
async fn roll_back(
    session: &Session,
    before: &History,
    performed: &Performed,
    stored: &Inputs,
    options: &Options,
    guard: &Guard,
    progress: &Progress,
) -> anyhow::Result<Vec<String>> {
    guard.check()?;
    stored
        .save(session.client(), &session.model, session.server())
        .await?;
    let mut desired = Vec::new();
    let mut done = Vec::new();
    for app in performed.revisions.keys() {
        let Some(previous) = before.deployed(app) else {
            done.push(format!(
                "{app} (new in this upgrade) left installed: `wharf remove {app}`"
            ));
            continue;
        };
        let values = session.releases.values(app, previous.revision).await?;
        let mut d = Desired::from_record(previous, &values)?;
        d.description = format!("rollback to {} (upgrade failed)", previous.revision);
        done.push(format!("{app} to revision {}", previous.revision));
        desired.push(d);
    }
    if desired.is_empty() {
        return Ok(done);
    }
    let prepared = converge::prepare_and_gate(session, desired, Prune::default()).await?;
    let back = perform(session, &prepared, &options.run, guard, progress).await?;
    if !back.succeeded() {
        bail!("{}", failure(&back));
    }
    Ok(done)
}

/// Per application that gets a revision: versions, images and options, against what is deployed.
fn plan(
    history: &History,
    desired: &BTreeMap<String, Desired>,
    revisions: &BTreeSet<String>,
) -> Vec<AppUpgrade> {
    desired
        .values()
        .filter(|d| revisions.contains(d.name()))
        .map(|d| {
            let current = history.deployed(d.name()).or(history.last(d.name()));
            let old_images = current.map(|r| images(&r.manifests)).unwrap_or_default();
            let new_images = images(&d.spec.objects);
            let changed_images = old_images
                .iter()
                .filter_map(|(name, old)| {
                    new_images
                        .get(name)
                        .filter(|new| *new != old)
                        .map(|new| (old.clone(), new.clone()))
                })
                .collect();
            let old_keys: BTreeSet<&String> = current
                .map(|r| r.config.keys().collect())
                .unwrap_or_default();
            let new_keys: BTreeSet<&String> = d.spec.config.keys().collect();
            AppUpgrade {
                app: d.name().to_owned(),
                from: current.map(|r| r.charm_version.clone()),
                to: d.spec.charm_version.clone(),
                images: changed_images,
                options_added: if current.is_some() {
                    new_keys
                        .difference(&old_keys)
                        .map(|k| k.to_string())
                        .collect()
                } else {
                    Vec::new()
                },
                options_removed: old_keys
                    .difference(&new_keys)
                    .map(|k| k.to_string())
                    .collect(),
            }
        })
        .collect()
}

/// Container images by "object/container".
fn images(objects: &[Value]) -> BTreeMap<String, String> {
    fn walk(v: &Value, object: &str, out: &mut BTreeMap<String, String>) {
        match v {
            Value::Object(map) => {
                for (key, child) in map {
                    if matches!(key.as_str(), "containers" | "initContainers")
                        && let Value::Array(list) = child
                    {
                        for c in list {
                            if let (Some(name), Some(image)) = (
                                c.get("name").and_then(Value::as_str),
                                c.get("image").and_then(Value::as_str),
                            ) {
                                out.insert(format!("{object}/{name}"), image.to_owned());
                            }
                        }
                    } else {
                        walk(child, object, out);
                    }
                }
            }
            Value::Array(list) => list.iter().for_each(|c| walk(c, object, out)),
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    for obj in objects {
        let name = format!(
            "{}/{}",
            obj.get("kind").and_then(Value::as_str).unwrap_or("?"),
            obj.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("?")
        );
        walk(obj, &name, &mut out);
    }
    out
}

fn plan_text(report: &UpgradePlan) -> String {
    let mut out = String::from("upgrade plan\n");
    if report.applications.is_empty() {
        out.push_str("  every application is up to date\n");
    }
    for a in &report.applications {
        let from = a.from.as_deref().unwrap_or("(not installed)");
        out.push_str(&format!("  {}: {from} → {}\n", a.app, a.to));
        for (old, new) in &a.images {
            out.push_str(&format!("    image   {old} → {new}\n"));
        }
        for k in &a.options_added {
            out.push_str(&format!("    option  + {k}\n"));
        }
        for k in &a.options_removed {
            out.push_str(&format!("    option  - {k}\n"));
        }
    }
    for note in &report.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out.push_str("gates: passed\n");
    out.push_str(&converge::plan_text(&report.objects));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn images_are_found_in_pod_templates() {
        let objs = [json!({"kind": "Deployment", "metadata": {"name": "dex"},
            "spec": {"template": {"spec": {"containers": [{"name": "dex", "image": "dex:2.41"}],
            "initContainers": [{"name": "init", "image": "busybox"}]}}}})];
        let found = images(&objs);
        assert_eq!(found["Deployment/dex/dex"], "dex:2.41");
        assert_eq!(found["Deployment/dex/init"], "busybox");
    }
}
