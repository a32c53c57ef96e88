//! Server-side apply with field manager `wharf`, preceded by a read that skips the write when the
//! live object already has every desired field and the object did not change since the last
//! release. A conflict with another field manager names it and the opt-in fix.

use std::collections::BTreeMap;

use anyhow::anyhow;
use kube::Client;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use serde::Serialize;
use serde_json::Value;

use super::plan::Item;
use super::{Catalog, FIELD_MANAGER, ObjectRef, compare, errors, owned};
use crate::store::lock::Guard;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Create,
    Update,
    Unchanged,
    Prune,
}

impl Change {
    pub fn verb(self) -> &'static str {
        match self {
            Change::Create => "create",
            Change::Update => "update",
            Change::Unchanged => "unchanged",
            Change::Prune => "prune",
        }
    }
}

#[derive(Clone)]
pub struct Applier {
    pub client: Client,
    pub server: String,
    pub force_conflicts: bool,
    /// The model lock: every write checks it first, so a run that lost it stops.
    pub guard: Guard,
}

impl Applier {
    /// The live object, or None when it does not exist (or its kind is not served yet: a custom
    /// resource whose CRD is applied earlier in the same run).
    pub async fn live(&self, catalog: &Catalog, item: &Item) -> anyhow::Result<Option<Value>> {
        let Some(_) = catalog.resolve(&item.id) else {
            return Ok(None);
        };
        let api = catalog.api_for(&self.client, &item.id)?;
        let live = api.get_opt(&item.id.name).await.map_err(|e| {
            anyhow!(errors::describe(
                &e,
                &format!("read {}", item.id),
                &self.server
            ))
        })?;
        Ok(live.map(|o| serde_json::to_value(o).unwrap_or(Value::Null)))
    }

    /// The live objects of a whole plan with one LIST per (kind, namespace) instead of a GET per
    /// object; falls back to GETs for a kind the user may not list (403).
    pub async fn live_all<'a>(
        &self,
        catalog: &Catalog,
        items: impl Iterator<Item = &'a Item>,
    ) -> anyhow::Result<BTreeMap<ObjectRef, Value>> {
        let mut groups: BTreeMap<(String, String, Option<String>), Vec<&Item>> = BTreeMap::new();
        for item in items {
            if catalog.resolve(&item.id).is_none() {
                continue; // not served yet: it will be created
            }
            let key = (
                item.id.api_version.clone(),
                item.id.kind.clone(),
                item.id.namespace.clone(),
            );
            groups.entry(key).or_default().push(item);
        }
        let mut out = BTreeMap::new();
        for ((api_version, kind, _), members) in groups {
            let api = catalog.api_for(&self.client, &members[0].id)?;
            let listed = match api.list(&ListParams::default()).await {
                Ok(list) => list,
                Err(e) if errors::status_code(&e) == Some(403) => {
                    for item in members {
                        if let Some(v) = self.live(catalog, item).await? {
                            out.insert(item.id.clone(), v);
                        }
                    }
                    continue;
                }
                Err(e) if errors::is_not_found(&e) => continue, // namespace not there yet
                Err(e) => {
                    return Err(anyhow!(errors::describe(
                        &e,
                        &format!("list {kind} objects"),
                        &self.server
                    )));
                }
            };
            let mut by_name: BTreeMap<String, Value> = BTreeMap::new();
            for obj in listed.items {
                let mut v = serde_json::to_value(&obj)?;
                // List items may come without their type; the comparison needs it.
                v["apiVersion"] = Value::String(api_version.clone());
                v["kind"] = Value::String(kind.clone());
                if let Some(name) = obj.metadata.name {
                    by_name.insert(name, v);
                }
            }
            for item in members {
                if let Some(v) = by_name.remove(&item.id.name) {
                    out.insert(item.id.clone(), v);
                }
            }
        }
        Ok(out)
    }

    /// What applying would do: create when absent, unchanged when the live object has the
    /// desired fields and the desired object is the one the last release applied (`recorded`
    /// digest; None when unknown, then the live comparison alone decides).
    pub fn decide(live: Option<&Value>, desired: &Value, recorded: Option<&str>) -> Change {
        match live {
            None => Change::Create,
            Some(live) => {
                let same_as_recorded = recorded.is_none_or(|d| d == compare::digest(desired));
                if same_as_recorded && compare::contains(&owned::wharf_view(live), desired) {
                    Change::Unchanged
                } else {
                    Change::Update
                }
            }
        }
    }

    /// Server-side apply of one object; returns the object as the server stored it.
    pub async fn apply(&self, catalog: &Catalog, item: &Item) -> anyhow::Result<Value> {
        self.guard.check()?;
        let api = catalog.api_for(&self.client, &item.id)?;
        let mut params = PatchParams::apply(FIELD_MANAGER);
        if self.force_conflicts {
            params = params.force();
        }
        let obj: DynamicObject = serde_json::from_value(item.object.clone())
            .map_err(|e| anyhow!("{}: not a Kubernetes object: {e}", item.id))?;
        match api.patch(&item.id.name, &params, &Patch::Apply(&obj)).await {
            Ok(stored) => Ok(serde_json::to_value(stored)?),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let (managers, fields) = errors::conflict_parts(&status.message);
                let managers = if managers.is_empty() {
                    "another field manager".to_owned()
                } else {
                    managers
                        .iter()
                        .map(|m| format!("\"{m}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                Err(anyhow!(
                    "{}: field(s) {} are managed by {managers}, not wharf; re-run with \
                     --force-conflicts to take them over",
                    item.id,
                    if fields.is_empty() {
                        "?".to_owned()
                    } else {
                        fields.join(", ")
                    }
                ))
            }
            // The object does not exist yet: the apiserver authorizes an apply that creates as a
            // `create` too, which a user allowed only to `patch` lacks. Say so: "apply" hides it.
            Err(kube::Error::Api(status))
                if status.code == 403 && status.message.contains("cannot create resource") =>
            {
                Err(anyhow!(
                    "apply {}: forbidden (403): {}; the object does not exist yet, and an apply \
                     that creates it needs the `create` verb as well as `patch`: grant `create` \
                     on it to this kubeconfig's user, or use one that has it (on MicroK8s: \
                     `microk8s config` gives the admin one)",
                    item.id,
                    errors::one_line(&status.message)
                ))
            }
            Err(e) => Err(anyhow!(errors::describe(
                &e,
                &format!("apply {}", item.id),
                &self.server
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decide_table() {
        let desired = json!({"kind": "ConfigMap", "data": {"a": "1"}});
        let live_same = json!({"kind": "ConfigMap", "data": {"a": "1"}, "metadata": {"uid": "x"}});
        let live_diff = json!({"kind": "ConfigMap", "data": {"a": "2"}});
        let d = compare::digest(&desired);
        assert_eq!(Applier::decide(None, &desired, None), Change::Create);
        assert_eq!(
            Applier::decide(Some(&live_same), &desired, None),
            Change::Unchanged
        );
        assert_eq!(
            Applier::decide(Some(&live_same), &desired, Some(&d)),
            Change::Unchanged
        );
        // The render changed since the last release (e.g. a field was dropped): apply.
        assert_eq!(
            Applier::decide(Some(&live_same), &desired, Some("old")),
            Change::Update
        );
        // Someone edited the live object: apply restores it.
        assert_eq!(
            Applier::decide(Some(&live_diff), &desired, Some(&d)),
            Change::Update
        );
    }
}
