//! Carrying out a plan: CRDs (then waiting for Established and discovering again), cluster-wide
//! objects, then the applications — each started as soon as the applications it needs are ready,
//! independent ones in parallel on a JoinSet — applying only what changed, pruning what the
//! render dropped, and waiting for readiness.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::anyhow;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::apply::{Applier, Change};
use super::plan::{AppPlan, Item, Plan};
use super::progress::Progress;
use super::{Catalog, ObjectRef, prune, wait};

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Wait for readiness (the default); `--no-wait` applies and returns.
    pub wait: bool,
    pub deadline: Instant,
}

/// How one application ended.
#[derive(Debug, Clone)]
pub struct AppOutcome {
    pub result: Result<(), String>,
    pub applied: usize,
    pub pruned: usize,
}

/// Apply the global stages, then every application. Err only when a global stage fails (every
/// application then counts as failed with that reason); per-application failures are outcomes.
pub async fn run(
    applier: &Applier,
    mut catalog: Catalog,
    plan: &Plan,
    changes: &BTreeMap<ObjectRef, Change>,
    prunes: &BTreeMap<String, Vec<ObjectRef>>,
    opts: Options,
    progress: &Progress,
) -> anyhow::Result<BTreeMap<String, AppOutcome>> {
    let changed =
        |i: &&Item| changes.get(&i.id).copied().unwrap_or(Change::Create) != Change::Unchanged;

    if !plan.crds.is_empty() {
        let todo: Vec<&Item> = plan.crds.iter().filter(changed).collect();
        progress.line(&format!(
            "stage 1: {} CRD(s), {} to apply",
            plan.crds.len(),
            todo.len()
        ));
        for item in &todo {
            applier.apply(&catalog, item).await?;
        }
        let ids: Vec<ObjectRef> = plan.crds.iter().map(|i| i.id.clone()).collect();
        wait::until_ready(
            &applier.client,
            &applier.server,
            &catalog,
            &ids,
            None,
            opts.deadline,
            None,
        )
        .await
        .map_err(|e| anyhow!("CRDs did not become established: {e}"))?;
        if !todo.is_empty() {
            // The new kinds are served now: learn their resources before applying instances.
            catalog = Catalog::load(&applier.client, &applier.server).await?;
        }
    }
    if !plan.cluster.is_empty() {
        let todo: Vec<&Item> = plan.cluster.iter().filter(changed).collect();
        progress.line(&format!(
            "stage 2: {} cluster-wide object(s), {} to apply",
            plan.cluster.len(),
            todo.len()
        ));
        for item in &todo {
            applier.apply(&catalog, item).await?;
        }
    }
    progress.line(&format!("stage 3: {} application(s)", plan.apps.len()));

    let catalog = Arc::new(catalog);
    let changes = Arc::new(changes.clone());
    let mut outcomes: BTreeMap<String, AppOutcome> = BTreeMap::new();
    let mut started: BTreeSet<String> = BTreeSet::new();
    let mut running = JoinSet::new();
    loop {
        // Start every application whose needs have all finished; fail those whose needs failed.
        let mut progressed = true;
        while progressed {
            progressed = false;
            for app in &plan.apps {
                if started.contains(&app.name)
                    || !app.needs.iter().all(|n| outcomes.contains_key(n))
                {
                    continue;
                }
                started.insert(app.name.clone());
                progressed = true;
                if let Some(failed) = app.needs.iter().find(|n| outcomes[*n].result.is_err()) {
                    let why = format!("not deployed: it needs `{failed}`, which failed");
                    progress.app(&app.name).finish(false, &why);
                    outcomes.insert(
                        app.name.clone(),
                        AppOutcome {
                            result: Err(why),
                            applied: 0,
                            pruned: 0,
                        },
                    );
                    continue;
                }
                let task = deploy_app(
                    applier.clone(),
                    catalog.clone(),
                    app.clone(),
                    changes.clone(),
                    prunes.get(&app.name).cloned().unwrap_or_default(),
                    opts,
                    progress.clone(),
                );
                let name = app.name.clone();
                running.spawn(async move { (name, task.await) });
            }
        }
        match running.join_next().await {
            Some(Ok((name, outcome))) => {
                outcomes.insert(name, outcome);
            }
            Some(Err(e)) => return Err(anyhow!("an application task failed: {e}")),
            None => break,
        }
    }
    Ok(outcomes)
}

async fn deploy_app(
    applier: Applier,
    catalog: Arc<Catalog>,
    app: AppPlan,
    changes: Arc<BTreeMap<ObjectRef, Change>>,
    prune_list: Vec<ObjectRef>,
    opts: Options,
    progress: Progress,
) -> AppOutcome {
    let bar = progress.app(&app.name);
    let mut outcome = AppOutcome {
        result: Ok(()),
        applied: 0,
        pruned: 0,
    };
    let result: anyhow::Result<()> = async {
        for item in &app.items {
            if changes.get(&item.id).copied().unwrap_or(Change::Create) == Change::Unchanged {
                continue;
            }
            bar.set(&format!("applying {}", item.id));
            applier.apply(&catalog, item).await?;
            outcome.applied += 1;
        }
        for r in &prune_list {
            bar.set(&format!("pruning {r}"));
            applier.guard.check()?;
            if prune::delete(&applier.client, &applier.server, &catalog, r).await? {
                outcome.pruned += 1;
            }
        }
        if opts.wait {
            let ids: Vec<ObjectRef> = app.items.iter().map(|i| i.id.clone()).collect();
            wait::until_ready(
                &applier.client,
                &applier.server,
                &catalog,
                &ids,
                Some(&app.name),
                opts.deadline,
                Some(&bar),
            )
            .await?;
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            let what = if outcome.applied + outcome.pruned == 0 {
                "unchanged".to_string()
            } else {
                format!("{} applied, {} pruned", outcome.applied, outcome.pruned)
            };
            bar.finish(
                true,
                &format!("{} ({what})", if opts.wait { "ready" } else { "applied" }),
            );
        }
        Err(e) => {
            bar.finish(false, &e.to_string());
            outcome.result = Err(e.to_string());
        }
    }
    outcome
}
