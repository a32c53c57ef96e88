//! The half of a run that writes: record each changing application as pending, apply stage by
//! stage, prune, wait — then record each as deployed or failed, move the older records on and trim
//! the history. A run that times out, fails or is interrupted (SIGINT, SIGTERM) still finishes its
//! records: none stays pending.

use std::collections::{BTreeMap, BTreeSet};

use tokio::time::Instant;

use super::prepare::{self, Prepared};
use super::{Desired, RunOptions};
use crate::action::Session;
use crate::kube::apply::Applier;
use crate::kube::images::{self, RunningImage};
use crate::kube::progress::Progress;
use crate::kube::{autoscaled, errors, execute};
use crate::store::lock::Guard;
use crate::store::record::{InventoryEntry, Release, ReleaseStatus, SecretValues, now};

/// How a run ended.
#[derive(Debug, Clone, Default)]
pub struct Performed {
    /// Each application of the run: Ok, or why it failed.
    pub outcomes: BTreeMap<String, Result<(), String>>,
    /// The revision each application got in this run (those that got one).
    pub revisions: BTreeMap<String, u32>,
    /// The signal that interrupted the run.
    pub interrupted: Option<&'static str>,
}

impl Performed {
    /// "app: why" for each application that failed.
    pub fn failures(&self) -> Vec<String> {
        self.outcomes
            .iter()
            .filter_map(|(app, r)| r.as_ref().err().map(|why| format!("{app}: {why}")))
            .collect()
    }

    pub fn succeeded(&self) -> bool {
        self.interrupted.is_none() && self.outcomes.values().all(Result::is_ok)
    }
}

/// Wait for SIGINT or SIGTERM; the name of the one that came.
pub async fn interruption() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => "SIGTERM",
    }
}

pub async fn perform(
    session: &Session,
    prepared: &Prepared,
    run: &RunOptions,
    guard: &Guard,
    progress: &Progress,
) -> anyhow::Result<Performed> {
    let releases = session.releases.clone().guarded(guard.clone());
    let deadline = Instant::now() + run.timeout;
    let started = now();

    // 1. Pending records: a run killed from here on leaves records the next run finishes.
    let mut pending: BTreeMap<String, (Release, SecretValues)> = BTreeMap::new();
    for app in &prepared.revisions {
        let desired = &prepared.desired[app];
        let (mut record, values) = record_for(desired, prepared, &started);
        // While pending, the record also lists what is about to be pruned: a run killed now
        // leaves a record from which the next run still knows to prune them.
        let applied = record.inventory.clone();
        record
            .inventory
            .extend(prepared.prunes[app].iter().map(|r| InventoryEntry {
                id: r.clone(),
                digest: String::new(),
            }));
        releases.save(&record, &values).await?;
        record.inventory = applied;
        pending.insert(app.clone(), (record, values));
    }

    // 2. Apply, prune, wait — until done, or a signal.
    let applier = Applier {
        client: session.client().clone(),
        server: session.server().to_owned(),
        force_conflicts: run.force_conflicts,
        guard: guard.clone(),
    };
    // Before an apply drops spec.replicas wharf still owns, keep the count set for the HPA.
    autoscaled::hand_over(
        &applier,
        &session.catalog,
        prepared.plan.items(),
        &prepared.released,
        &prepared.live,
    )
    .await?;
    let opts = execute::Options {
        wait: run.wait,
        deadline,
    };
    let mut performed = Performed::default();
    let result = tokio::select! {
        r = execute::run(&applier, session.catalog.clone(), &prepared.plan, &prepared.changes, &prepared.prunes, opts, progress) => Some(r),
        signal = interruption() => {
            performed.interrupted = Some(signal);
            None
        }
    };
    for app in prepared.desired.keys() {
        let outcome = match &result {
            Some(Ok(outcomes)) => outcomes
                .get(app)
                .map(|o| o.result.clone())
                .unwrap_or(Ok(())),
            Some(Err(e)) => Err(format!("{e:#}")),
            None => Err(format!(
                "interrupted by {} before it finished",
                performed.interrupted.unwrap_or("a signal")
            )),
        };
        performed.outcomes.insert(app.clone(), outcome);
    }

    // 3. Records: finish this run's, and a new revision where only the state changed.
    for (app, outcome) in &performed.outcomes {
        let older = prepared.history.of(app);
        let (mut record, values) = match pending.remove(app) {
            Some(p) => p,
            None => {
                let Some(last) = older.last() else { continue };
                let was_failed = last.status == ReleaseStatus::Failed;
                if outcome.is_err() == was_failed || performed.interrupted.is_some() {
                    continue; // nothing changed, not even the state: write nothing
                }
                let values = if last.replayable() {
                    session.releases.values(app, last.revision).await?
                } else {
                    SecretValues::default()
                };
                let record = Release {
                    revision: prepared.history.next_revision(app),
                    started: started.clone(),
                    description: if outcome.is_ok() {
                        "became ready".into()
                    } else {
                        "stopped being ready".into()
                    },
                    ..last.clone()
                };
                (record, values)
            }
        };
        record.finished = Some(now());
        // What runs, by digest: only after a wait (without one the old pods may still be all
        // there is) and not after a signal (the user wants out, not more API calls).
        if run.wait && performed.interrupted.is_none() {
            record.images = running_images(session, &record).await;
        }
        match outcome {
            Ok(()) => {
                record.status = ReleaseStatus::Deployed;
                record.reason = None;
            }
            Err(why) => {
                record.status = ReleaseStatus::Failed;
                record.reason = Some(why.clone());
            }
        }
        releases.save(&record, &values).await?;
        releases.settle(older, &record, run.history).await?;
        performed.revisions.insert(app.clone(), record.revision);
    }
    Ok(performed)
}

/// The images `record`'s workloads run. A failed LIST only costs the record its images: the
/// deploy itself is done, and this says so on stderr.
async fn running_images(session: &Session, record: &Release) -> Vec<RunningImage> {
    let namespaces: BTreeSet<String> = record
        .inventory
        .iter()
        .filter(|e| WORKLOADS.contains(&e.id.kind.as_str()))
        .filter_map(|e| e.id.namespace.clone())
        .collect();
    match images::running(session.client(), &namespaces, &record.app).await {
        Ok(found) => found,
        Err(e) => {
            let why = errors::describe(&e, "list pods", session.server());
            eprintln!(
                "warning: {}: the record of revision {} keeps no image digests: {why}",
                record.app, record.revision
            );
            Vec::new()
        }
    }
}

/// The kinds whose pods run the application's images.
const WORKLOADS: [&str; 5] = ["Deployment", "StatefulSet", "DaemonSet", "Job", "Pod"];

/// The pending record of `desired` and its secret values.
fn record_for(desired: &Desired, prepared: &Prepared, started: &str) -> (Release, SecretValues) {
    let app = desired.name();
    let history = &prepared.history;
    let mut manifests: Vec<serde_json::Value> = prepared
        .plan
        .items()
        .filter(|i| i.app == app)
        .map(|i| i.object.clone())
        .collect();
    let mut values = desired.values.clone();
    values.take_from(&mut manifests);
    let status = if desired.rollback_of.is_some() {
        ReleaseStatus::PendingRollback
    } else if history.last(app).is_none() {
        ReleaseStatus::PendingInstall
    } else {
        ReleaseStatus::PendingUpgrade
    };
    let description = if !desired.description.is_empty() {
        desired.description.clone()
    } else if status == ReleaseStatus::PendingInstall {
        "install".into()
    } else {
        "deploy".into()
    };
    let record = Release {
        app: app.to_owned(),
        revision: history.next_revision(app),
        status,
        reason: None,
        description,
        charm: desired.spec.charm.clone(),
        charm_version: desired.spec.charm_version.clone(),
        config: desired.spec.config.clone(),
        user_config: desired.user_config.clone(),
        relations: desired.relations.clone(),
        public_url: desired.public_url.clone(),
        needs: desired.spec.needs.clone(),
        declared_status: desired.spec.declared_status.clone(),
        inventory: prepare::inventory(&prepared.plan, app, &prepared.kept[app]),
        manifests,
        started: started.to_owned(),
        finished: None,
        wharf_version: env!("CARGO_PKG_VERSION").into(),
        backup: desired.backup.clone(),
        images: Vec::new(),
        format: Default::default(),
    };
    (record, values)
}
