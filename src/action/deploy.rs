//! `wharf deploy BUNDLE`: render the bundle, compare it with the cluster, and converge — in the
//! steps a user would list: connect, lock the model, render with the kept generated secrets,
//! plan, (print the plan or diff), record the run as pending, apply stage by stage, wait, and
//! record each application as deployed or failed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use serde_json::Value;
use tokio::time::Instant;

use super::Outcome;
use crate::cli::{DeployArgs, GlobalArgs};
use crate::kube::apply::{Applier, Change};
use crate::kube::plan::{AppSpec, Plan};
use crate::kube::progress::Progress;
use crate::kube::{Catalog, Cluster, ObjectRef, compare, connect, diff, errors, execute, prune};
use crate::render::{Resolved, Target};
use crate::store::generated::{self, Slot};
use crate::store::platform;
use crate::store::record::{InventoryEntry, Release, ReleaseStatus, config_changes, now};
use crate::store::{Lock, Releases};

pub fn run(global: &GlobalArgs, args: &DeployArgs) -> Outcome {
    runtime()?.block_on(deploy(global, args))
}

/// The async runtime the cluster verbs run on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

async fn deploy(global: &GlobalArgs, args: &DeployArgs) -> Outcome {
    // Bundle and charm errors come first: they need no cluster.
    let resolved = super::render::resolve(&args.bundle)?;
    let cluster = connect(global.kubeconfig.as_deref(), global.context.as_deref()).await?;
    let catalog = Catalog::load(&cluster.client, &cluster.server).await?;
    let model = global.model.as_str();
    let look_only = args.dry_run;

    let lock = if look_only {
        None
    } else {
        ensure_namespace(&cluster, model, Instant::now() + args.timeout).await?;
        Some(Lock::acquire(&cluster.client, model, &cluster.server, args.force_unlock).await?)
    };
    // Ctrl-C releases the lock at once instead of leaving it to expire; the records of the
    // interrupted run stay `pending`, and the next deploy converges from them.
    let result = tokio::select! {
        r = converge(global, args, &cluster, catalog, &resolved) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted; run `wharf deploy` again to converge")),
    };
    if let Some(lock) = lock {
        lock.release().await;
    }
    result
}

async fn converge(
    global: &GlobalArgs,
    args: &DeployArgs,
    cluster: &Cluster,
    catalog: Catalog,
    resolved: &Resolved,
) -> Outcome {
    let model = global.model.as_str();
    let deadline = Instant::now() + args.timeout;

    // Generated secrets: made once, kept in `wharf-generated`, reused by every revision.
    let mut values = generated::load(&cluster.client, model, &cluster.server).await?;
    let slots: Vec<Slot> = resolved
        .generated_slots()?
        .into_iter()
        .map(|s| Slot {
            app: s.app,
            key: s.key,
            bytes: s.bytes,
        })
        .collect();
    if generated::fill(&mut values, &slots) && !args.dry_run {
        generated::save(&cluster.client, model, &cluster.server, &values).await?;
    }

    // The platform's public URL: given now (and kept), or kept from an earlier deploy.
    let kept_url = platform::load_public_url(&cluster.client, model, &cluster.server).await?;
    let public_url = args.bundle.public_url.clone().unwrap_or(kept_url.clone());
    if public_url != kept_url && !args.dry_run {
        platform::save_public_url(&cluster.client, model, &cluster.server, &public_url).await?;
    }
    let mut target = target(model, cluster);
    target.public_url = public_url;
    let rendered = resolved.render(&target, &values)?;
    let apps: Vec<AppSpec> = rendered
        .apps
        .into_iter()
        .map(|a| AppSpec {
            name: a.name,
            charm: a.charm,
            charm_version: a.charm_version.to_string(),
            needs: a.needs,
            config: a.config,
            declared_status: a.declared_status.map(|(s, m)| (s.to_string(), m)),
            objects: a.objects.into_iter().map(compare::normalise).collect(),
        })
        .collect();
    let plan = Plan::build(&apps)?;

    // What each object needs: read the live objects and the last release of each application.
    let releases = Releases::new(&cluster.client, model, &cluster.server);
    let history = releases.list().await?;
    // An application the model has but the bundle no longer names is left alone: removing a
    // running service because it vanished from a file is too easy to do by accident. Say so.
    for app in history
        .keys()
        .filter(|app| !apps.iter().any(|a| &a.name == *app))
    {
        eprintln!(
            "note: application `{app}` is deployed in model `{model}` but not in bundle `{}`; it is left as it is \
             (`wharf remove {app}` removes it)",
            resolved.bundle.name
        );
    }
    report_config_changes(&apps, &history);
    let applier = Applier {
        client: cluster.client.clone(),
        server: cluster.server.clone(),
        force_conflicts: args.force_conflicts,
    };
    let mut changes: BTreeMap<ObjectRef, Change> = BTreeMap::new();
    let lives: BTreeMap<ObjectRef, Value> = applier.live_all(&catalog, plan.items()).await?;
    for item in plan.items() {
        let recorded = history
            .get(&item.app)
            .and_then(|h| h.last())
            .and_then(|r| r.digests().get(&item.id).cloned());
        changes.insert(
            item.id.clone(),
            Applier::decide(lives.get(&item.id), &item.object, recorded.as_deref()),
        );
    }
    let allow = prune::Allow {
        crds: args.prune_crds,
        data: args.prune_data,
    };
    let mut prunes: BTreeMap<String, Vec<ObjectRef>> = BTreeMap::new();
    let mut kept: BTreeMap<String, Vec<ObjectRef>> = BTreeMap::new();
    for app in &apps {
        let current: BTreeSet<ObjectRef> = plan
            .items()
            .filter(|i| i.app == app.name)
            .map(|i| i.id.clone())
            .collect();
        let previous = previous_inventory(
            history
                .get(&app.name)
                .map(Vec::as_slice)
                .unwrap_or_default(),
        );
        let pruned = prune::dropped(&previous, &current, allow);
        // Dropped but kept (CRDs, PVCs): stay in the inventory, so a later `--prune-data` or
        // `remove` still finds them.
        let everything = prune::Allow {
            crds: true,
            data: true,
        };
        let held: Vec<ObjectRef> = prune::dropped(&previous, &current, everything)
            .into_iter()
            .filter(|r| !pruned.contains(r))
            .collect();
        kept.insert(app.name.clone(), held);
        prunes.insert(app.name.clone(), pruned);
    }

    if args.dry_run || args.diff {
        let mut out = std::io::stdout().lock();
        if args.diff {
            for item in plan.items() {
                if let Some(d) =
                    diff::object_diff(&item.id.to_string(), lives.get(&item.id), &item.object)
                {
                    writeln!(out, "{d}")?;
                }
            }
        } else {
            write!(
                out,
                "{}",
                describe_plan(model, &plan, &changes, &prunes, &kept)
            )?;
        }
        if args.dry_run {
            return Ok(ExitCode::SUCCESS);
        }
    }

    // Which applications change: any object to apply or prune, or a record that differs.
    let started = now();
    let mut pending: BTreeMap<String, Release> = BTreeMap::new();
    for app in &apps {
        let mut inventory = inventory_of(&plan, &app.name);
        inventory.extend(kept[&app.name].iter().map(|r| InventoryEntry {
            id: r.clone(),
            digest: String::new(),
        }));
        let last = history.get(&app.name).and_then(|h| h.last());
        let touches = plan
            .items()
            .any(|i| i.app == app.name && changes[&i.id] != Change::Unchanged)
            || !prunes[&app.name].is_empty();
        // A `pending` last record is a run that was killed: always finish it with a new one.
        let same_record = last.is_some_and(|l| {
            l.status != ReleaseStatus::Pending
                && l.charm_version == app.charm_version
                && l.config == app.config
                && l.declared_status == app.declared_status
                && l.inventory == inventory
        });
        if !touches && same_record {
            continue;
        }
        let mut record = Release {
            app: app.name.clone(),
            revision: last.map_or(1, |l| l.revision + 1),
            status: ReleaseStatus::Pending,
            reason: None,
            charm: app.charm.clone(),
            charm_version: app.charm_version.clone(),
            config: app.config.clone(),
            declared_status: app.declared_status.clone(),
            inventory: inventory.clone(),
            started: started.clone(),
            finished: None,
            wharf_version: env!("CARGO_PKG_VERSION").into(),
        };
        // While pending, the record also lists what is about to be pruned: a run killed now
        // leaves a record from which the next run still knows to prune them.
        for r in &prunes[&app.name] {
            record.inventory.push(InventoryEntry {
                id: r.clone(),
                digest: String::new(),
            });
        }
        releases.save(&record).await?;
        record.inventory = inventory;
        pending.insert(app.name.clone(), record);
    }

    let progress = if global.output == crate::cli::OutputFormat::Text {
        Progress::new()
    } else {
        Progress::plain()
    };
    let opts = execute::Options {
        wait: !args.no_wait,
        deadline,
    };
    let outcomes =
        match execute::run(&applier, catalog, &plan, &changes, &prunes, opts, &progress).await {
            Ok(o) => o,
            Err(e) => {
                let reason = e.to_string();
                for mut record in pending.into_values() {
                    finish(&mut record, Err(reason.clone()));
                    releases.save(&record).await?;
                }
                return Err(e);
            }
        };

    // Records: a new revision for each application that changed, or whose state did.
    let mut failed = Vec::new();
    for app in &apps {
        let outcome = outcomes
            .get(&app.name)
            .map(|o| o.result.clone())
            .unwrap_or(Ok(()));
        if let Err(why) = &outcome {
            failed.push(format!("{}: {why}", app.name));
        }
        let records = history.get(&app.name).cloned().unwrap_or_default();
        let mut record = match pending.remove(&app.name) {
            Some(r) => r,
            None => {
                let Some(last) = records.last() else { continue };
                let now_failed = outcome.is_err();
                let was_failed = last.status == ReleaseStatus::Failed;
                if now_failed == was_failed {
                    continue; // nothing changed, not even the state: write nothing
                }
                Release {
                    revision: last.revision + 1,
                    started: started.clone(),
                    ..last.clone()
                }
            }
        };
        finish(&mut record, outcome.clone());
        releases.save(&record).await?;
        for old in &records {
            let mut old = old.clone();
            match old.status {
                ReleaseStatus::Deployed if outcome.is_ok() => {
                    old.status = ReleaseStatus::Superseded
                }
                // A run killed before it recorded its result.
                ReleaseStatus::Pending => {
                    old.status = ReleaseStatus::Failed;
                    old.reason = Some("interrupted before it recorded a result".into());
                }
                _ => continue,
            }
            releases.save(&old).await?;
        }
        let mut kept = records;
        kept.push(record);
        releases.trim(&kept, args.history).await?;
    }

    if failed.is_empty() {
        progress.line(&format!(
            "model `{model}`: {} application(s) ready",
            apps.len()
        ));
        Ok(ExitCode::SUCCESS)
    } else {
        Err(anyhow!(
            "{} of {} application(s) failed — {}; see `wharf status -m {model}`",
            failed.len(),
            apps.len(),
            failed.join(" | ")
        ))
    }
}

fn finish(record: &mut Release, outcome: Result<(), String>) {
    record.finished = Some(now());
    match outcome {
        Ok(()) => {
            record.status = ReleaseStatus::Deployed;
            record.reason = None;
        }
        Err(why) => {
            record.status = ReleaseStatus::Failed;
            record.reason = Some(why);
        }
    }
}

/// Options that differ from each application's last record, on stderr before anything is applied:
/// a deploy applies exactly this bundle and these `--set` values, so an option an earlier deploy
/// set and this one does not goes back to its default — say so, rather than let a login vanish.
fn report_config_changes(apps: &[AppSpec], history: &BTreeMap<String, Vec<Release>>) {
    let mut any = false;
    for app in apps {
        let Some(last) = history.get(&app.name).and_then(|h| h.last()) else {
            continue;
        };
        let changes = config_changes(&last.config, &app.config);
        if changes.is_empty() {
            continue;
        }
        any = true;
        eprintln!(
            "config of `{}` differs from revision {}:",
            app.name, last.revision
        );
        for change in changes {
            eprintln!("  {change}");
        }
    }
    if any {
        eprintln!(
            "  (options set by an earlier deploy and not given now go back to their defaults: \
             give them again with --set or keep them in an --overlay file)"
        );
    }
}

/// The render target: the model and the cluster's Kubernetes version and this machine's arch.
fn target(model: &str, cluster: &Cluster) -> Target {
    let mut t = Target {
        namespace: model.to_owned(),
        ..Target::default()
    };
    let v = cluster.kube_version.trim_start_matches('v');
    let core = v.split(['-', '+']).next().unwrap_or(v);
    if let Ok(version) = semver::Version::parse(core) {
        t.kube_version = version;
    }
    t.arch = match std::env::consts::ARCH {
        "aarch64" => "arm64".into(),
        _ => "amd64".into(),
    };
    t
}

/// What the application's recent runs may have applied: the inventories of its last deployed
/// record and of every later record (failed or pending runs applied some of theirs).
fn previous_inventory(records: &[Release]) -> BTreeSet<ObjectRef> {
    let start = records
        .iter()
        .rposition(|r| r.status == ReleaseStatus::Deployed)
        .unwrap_or(0);
    records[start..]
        .iter()
        .flat_map(|r| r.inventory.iter().map(|e| e.id.clone()))
        .collect()
}

fn inventory_of(plan: &Plan, app: &str) -> Vec<InventoryEntry> {
    plan.items()
        .filter(|i| i.app == app)
        .map(|i| InventoryEntry {
            id: i.id.clone(),
            digest: compare::digest(&i.object),
        })
        .collect()
}

/// Create the model namespace if it does not exist (labelled, so `remove --all` knows wharf
/// made it).
async fn ensure_namespace(cluster: &Cluster, model: &str, deadline: Instant) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(cluster.client.clone());
    let describe = |e: kube::Error| {
        anyhow!(errors::describe(
            &e,
            &format!("create namespace {model}"),
            &cluster.server
        ))
    };
    // A namespace being deleted (a `remove --all` just before) refuses new objects: wait it out.
    loop {
        match api.get_opt(model).await.map_err(describe)? {
            None => break,
            Some(ns) if ns.metadata.deletion_timestamp.is_none() => return Ok(()),
            Some(_) if Instant::now() >= deadline => {
                return Err(anyhow!(
                    "namespace {model} is still being deleted; wait for it to go \
                     (`kubectl get namespace {model}`) and deploy again"
                ));
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(model.to_owned()),
            labels: Some(
                [(
                    crate::store::OWNER_LABEL.to_string(),
                    crate::store::OWNER.to_string(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(e) if errors::is_conflict(&e) => Ok(()),
        Err(e) => Err(describe(e)),
    }
}

/// The `--dry-run` text: stages, applications and each object's change.
pub fn describe_plan(
    model: &str,
    plan: &Plan,
    changes: &BTreeMap<ObjectRef, Change>,
    prunes: &BTreeMap<String, Vec<ObjectRef>>,
    kept: &BTreeMap<String, Vec<ObjectRef>>,
) -> String {
    let mut out = format!("plan for model `{model}`\n");
    let line = |out: &mut String, change: Change, id: &ObjectRef| {
        out.push_str(&format!("    {:<9} {id}\n", change.verb()));
    };
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (title, items) in [
        ("stage 1: custom resource definitions", &plan.crds),
        ("stage 2: cluster-wide objects", &plan.cluster),
    ] {
        if items.is_empty() {
            continue;
        }
        out.push_str(&format!("{title}\n"));
        for i in items {
            let c = changes.get(&i.id).copied().unwrap_or(Change::Create);
            *counts.entry(c.verb()).or_default() += 1;
            line(&mut out, c, &i.id);
        }
    }
    out.push_str("stage 3: applications\n");
    for app in &plan.apps {
        let needs = if app.needs.is_empty() {
            String::new()
        } else {
            format!(" (after {})", app.needs.join(", "))
        };
        out.push_str(&format!("  {}{needs}\n", app.name));
        for i in &app.items {
            let c = changes.get(&i.id).copied().unwrap_or(Change::Create);
            *counts.entry(c.verb()).or_default() += 1;
            line(&mut out, c, &i.id);
        }
        for r in prunes.get(&app.name).into_iter().flatten() {
            *counts.entry("prune").or_default() += 1;
            line(&mut out, Change::Prune, r);
        }
        for r in kept.get(&app.name).into_iter().flatten() {
            *counts.entry("keep").or_default() += 1;
            let flag = if r.is_crd() {
                "--prune-crds"
            } else {
                "--prune-data"
            };
            out.push_str(&format!(
                "    keep      {r} (dropped by the render; {flag} deletes it)\n"
            ));
        }
    }
    let summary: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
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

/// Parse `--timeout` values like `20m`, `90s`, `1h30m`.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 20m or 90s: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record::InventoryEntry;

    fn record(revision: u32, status: ReleaseStatus, names: &[&str]) -> Release {
        Release {
            app: "a".into(),
            revision,
            status,
            reason: None,
            charm: "c".into(),
            charm_version: "1.0.0".into(),
            config: BTreeMap::new(),
            declared_status: None,
            inventory: names
                .iter()
                .map(|n| InventoryEntry {
                    id: ObjectRef {
                        api_version: "v1".into(),
                        kind: "ConfigMap".into(),
                        namespace: Some("m".into()),
                        name: n.to_string(),
                    },
                    digest: String::new(),
                })
                .collect(),
            started: String::new(),
            finished: None,
            wharf_version: String::new(),
        }
    }

    #[test]
    fn previous_inventory_covers_the_last_deployed_and_later_runs() {
        let records = [
            record(1, ReleaseStatus::Superseded, &["old"]),
            record(2, ReleaseStatus::Deployed, &["a"]),
            record(3, ReleaseStatus::Failed, &["b"]),
            record(4, ReleaseStatus::Pending, &["c"]),
        ];
        let names: Vec<String> = previous_inventory(&records)
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        // Never deployed: everything any run may have applied.
        let names: Vec<String> = previous_inventory(&records[2..])
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["b", "c"]);
    }

    #[test]
    fn timeouts_parse_like_20m() {
        assert_eq!(parse_timeout("20m").unwrap(), Duration::from_secs(1200));
        assert_eq!(parse_timeout("1h30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_timeout("soon").unwrap_err().contains("like 20m"));
    }
}
