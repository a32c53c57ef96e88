//! The pure half of a run: (what each application should be, the live objects, the history) →
//! the changes — each object's create/update/unchanged, what to prune and what to keep, and which
//! applications get a new revision. No cluster call happens here, so every decision is
//! unit-testable and a dry run shows exactly what a real run would do.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{Desired, Prune};
use crate::kube::apply::{Applier, Change};
use crate::kube::plan::{AppSpec, Plan};
use crate::kube::{ObjectRef, compare, prune};
use crate::store::record::{InventoryEntry, Release, ReleaseStatus};
use crate::store::releases::History;

pub struct Prepared {
    pub desired: BTreeMap<String, Desired>,
    pub plan: Plan,
    pub live: BTreeMap<ObjectRef, Value>,
    pub changes: BTreeMap<ObjectRef, Change>,
    /// Per application: objects an earlier revision applied and this one drops, to delete.
    pub prunes: BTreeMap<String, Vec<ObjectRef>>,
    /// Per application: dropped, but kept because they hold data (PVCs) or kinds (CRDs).
    pub kept: BTreeMap<String, Vec<ObjectRef>>,
    /// Applications that get a new revision (something to apply or prune, or a record that
    /// differs, or a forced revision).
    pub revisions: BTreeSet<String>,
    pub history: History,
    /// Objects applied without `spec.replicas` because an HPA (named) scales them.
    pub released: BTreeMap<ObjectRef, String>,
}

/// The plan of `desired`: stages and order. Needs on applications outside this run (a rollback of
/// one application) are already satisfied, so they are left out.
pub fn plan(desired: &[Desired]) -> anyhow::Result<Plan> {
    let names: BTreeSet<&str> = desired.iter().map(Desired::name).collect();
    let specs: Vec<AppSpec> = desired
        .iter()
        .map(|d| {
            let mut spec = d.spec.clone();
            spec.needs.retain(|n| names.contains(n.as_str()));
            spec
        })
        .collect();
    Plan::build(&specs)
}

pub fn prepare(
    desired: Vec<Desired>,
    plan: Plan,
    live: BTreeMap<ObjectRef, Value>,
    history: History,
    allow: Prune,
) -> Prepared {
    let mut changes = BTreeMap::new();
    for item in plan.items() {
        let recorded = history
            .last(&item.app)
            .and_then(|r| r.digests().get(&item.id).cloned());
        changes.insert(
            item.id.clone(),
            Applier::decide(live.get(&item.id), &item.object, recorded.as_deref()),
        );
    }
    let mut prunes = BTreeMap::new();
    let mut kept = BTreeMap::new();
    let mut revisions = BTreeSet::new();
    for d in &desired {
        let app = d.name();
        let current: BTreeSet<ObjectRef> = plan
            .items()
            .filter(|i| i.app == app)
            .map(|i| i.id.clone())
            .collect();
        let previous = previous_inventory(history.of(app));
        let pruned = prune::dropped(&previous, &current, allow);
        let everything = Prune {
            crds: true,
            data: true,
        };
        // Dropped but kept (CRDs, PVCs): they stay in the inventory, so a later `--prune-data`
        // or `remove --destroy-data` still finds them.
        let held: Vec<ObjectRef> = prune::dropped(&previous, &current, everything)
            .into_iter()
            .filter(|r| !pruned.contains(r))
            .collect();
        let touches = plan
            .items()
            .any(|i| i.app == app && changes[&i.id] != Change::Unchanged)
            || !pruned.is_empty();
        let inventory = inventory(&plan, app, &held);
        // A pending last record is a run that was killed: always finish it with a new one.
        let same_record = history.last(app).is_some_and(|l| {
            !l.status.is_pending()
                && l.charm_version == d.spec.charm_version
                && l.config == d.spec.config
                && l.declared_status == d.spec.declared_status
                && l.inventory == inventory
                && l.user_config == d.user_config
        });
        if touches || !same_record || d.force_revision {
            revisions.insert(app.to_owned());
        }
        prunes.insert(app.to_owned(), pruned);
        kept.insert(app.to_owned(), held);
    }
    Prepared {
        desired: desired
            .into_iter()
            .map(|d| (d.name().to_owned(), d))
            .collect(),
        plan,
        live,
        changes,
        prunes,
        kept,
        revisions,
        history,
        released: BTreeMap::new(),
    }
}

/// What an application's recent runs may have applied: the inventories of its last deployed
/// record and of every later record (failed or pending runs applied some of theirs).
pub fn previous_inventory(records: &[Release]) -> BTreeSet<ObjectRef> {
    let start = records
        .iter()
        .rposition(|r| r.status == ReleaseStatus::Deployed)
        .unwrap_or(0);
    records[start..]
        .iter()
        .flat_map(|r| r.inventory.iter().map(|e| e.id.clone()))
        .collect()
}

/// The inventory a record of `app` keeps: the applied objects with their digests, and the
/// dropped-but-kept ones without.
pub fn inventory(plan: &Plan, app: &str, held: &[ObjectRef]) -> Vec<InventoryEntry> {
    plan.items()
        .filter(|i| i.app == app)
        .map(|i| InventoryEntry {
            id: i.id.clone(),
            digest: compare::digest(&i.object),
        })
        .chain(held.iter().map(|r| InventoryEntry {
            id: r.clone(),
            digest: String::new(),
        }))
        .collect()
}

impl Prepared {
    /// Objects to create or update, by application (the global stages under "").
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        for change in self.changes.values() {
            *counts.entry(change.verb()).or_default() += 1;
        }
        let pruned: usize = self.prunes.values().map(Vec::len).sum();
        if pruned > 0 {
            *counts.entry("prune").or_default() += pruned;
        }
        counts
    }

    /// Nothing to apply or prune and no new revision.
    pub fn is_noop(&self) -> bool {
        self.revisions.is_empty()
            && self.changes.values().all(|c| *c == Change::Unchanged)
            && self.prunes.values().all(Vec::is_empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record::InventoryEntry;

    fn record(revision: u32, status: ReleaseStatus, names: &[&str]) -> Release {
        let mut r = Release::fixture("a", revision).with_status(status);
        r.inventory = names
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
            .collect();
        r
    }

    #[test]
    fn previous_inventory_covers_the_last_deployed_and_later_runs() {
        let records = [
            record(1, ReleaseStatus::Superseded, &["old"]),
            record(2, ReleaseStatus::Deployed, &["a"]),
            record(3, ReleaseStatus::Failed, &["b"]),
            record(4, ReleaseStatus::PendingUpgrade, &["c"]),
        ];
        let names: Vec<String> = previous_inventory(&records)
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        let names: Vec<String> = previous_inventory(&records[2..])
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["b", "c"]);
    }
}
