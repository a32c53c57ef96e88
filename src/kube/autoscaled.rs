//! Objects a HorizontalPodAutoscaler scales are applied without `spec.replicas`, so a deploy
//! never resets the count the HPA chose. This is the rule the Kubernetes docs give for
//! server-side apply ("Transferring ownership": leave `replicas` out of the configuration and
//! let the HPA own it) and the one Argo CD and Helm users learn the hard way.
//!
//! The HPAs counted are those live in the plan's namespaces and those the plan itself renders.
//! When wharf still owns `spec.replicas` of a live object (the HPA has not changed the count
//! yet), dropping the field from wharf's apply would delete it and the workload would fall back
//! to one replica; so first a manager named [`HANDOVER`] applies the current count, keeping it
//! set until the HPA writes its own (the docs' `handover-to-hpa` step).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::anyhow;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use super::apply::Applier;
use super::plan::{Item, Plan};
use super::{Catalog, FIELD_MANAGER, ObjectRef, errors};

/// The field manager that keeps `spec.replicas` while it passes from wharf to an HPA.
pub const HANDOVER: &str = "wharf-handover-to-hpa";

/// The scale target of one HPA, with the HPA's name (for messages).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub hpa: String,
}

impl Target {
    fn of(hpa: &Value) -> Option<Target> {
        let r = &hpa["spec"]["scaleTargetRef"];
        let api_version = r["apiVersion"].as_str().unwrap_or_default();
        Some(Target {
            group: api_version
                .rsplit_once('/')
                .map(|(g, _)| g.to_string())
                .unwrap_or_default(),
            kind: r["kind"].as_str()?.to_string(),
            namespace: hpa["metadata"]["namespace"].as_str()?.to_string(),
            name: r["name"].as_str()?.to_string(),
            hpa: hpa["metadata"]["name"].as_str()?.to_string(),
        })
    }

    fn scales(&self, id: &ObjectRef) -> bool {
        id.group() == self.group
            && id.kind == self.kind
            && id.namespace.as_deref() == Some(self.namespace.as_str())
            && id.name == self.name
    }
}

/// The targets of the HPAs the plan renders.
pub fn rendered_targets(plan: &Plan) -> Vec<Target> {
    plan.items()
        .filter(|i| i.id.group() == "autoscaling" && i.id.kind == "HorizontalPodAutoscaler")
        .filter_map(|i| {
            let mut hpa = i.object.clone();
            if hpa["metadata"]["namespace"].is_null() {
                hpa["metadata"]["namespace"] = json!(i.id.namespace);
            }
            Target::of(&hpa)
        })
        .collect()
}

/// The targets of the HPAs live in `namespaces`. A cluster that does not serve
/// `autoscaling/v2` or a namespace that does not exist yet has none.
pub async fn live_targets(
    client: &kube::Client,
    server: &str,
    namespaces: &BTreeSet<String>,
) -> anyhow::Result<Vec<Target>> {
    let mut out = Vec::new();
    for ns in namespaces {
        let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), ns);
        match api.list(&ListParams::default()).await {
            Ok(list) => out.extend(list.items.iter().filter_map(|h| {
                let mut v = serde_json::to_value(h).ok()?;
                v["metadata"]["namespace"] = json!(ns);
                Target::of(&v)
            })),
            Err(e) if errors::is_not_found(&e) => {}
            Err(e) => {
                return Err(anyhow!(errors::describe(
                    &e,
                    &format!(
                        "list the HorizontalPodAutoscalers in namespace {ns} (wharf leaves \
                         the replicas of what they scale to them)"
                    ),
                    server
                )));
            }
        }
    }
    Ok(out)
}

/// The note a run prints for each object it leaves to an HPA, so a changed `scale` that has no
/// effect is not a surprise.
pub fn note(id: &ObjectRef, hpa: &str) -> String {
    format!(
        "{id}: spec.replicas is left to HorizontalPodAutoscaler {hpa}, which scales it \
         (the application's scale is not applied)"
    )
}

/// Remove `spec.replicas` from every plan object an HPA scales; returns them with the HPA's name.
pub fn release_replicas(plan: &mut Plan, targets: &[Target]) -> BTreeMap<ObjectRef, String> {
    let mut released = BTreeMap::new();
    let items = plan
        .crds
        .iter_mut()
        .chain(plan.cluster.iter_mut())
        .chain(plan.apps.iter_mut().flat_map(|a| a.items.iter_mut()));
    for item in items {
        let Some(t) = targets.iter().find(|t| t.scales(&item.id)) else {
            continue;
        };
        if let Some(spec) = item.object["spec"].as_object_mut()
            && spec.remove("replicas").is_some()
        {
            released.insert(item.id.clone(), t.hpa.clone());
        }
    }
    released
}

/// Whether `field manager` owns `spec.replicas` of a live object (an Apply entry).
pub fn owns_replicas(live: &Value, manager: &str) -> bool {
    live["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| {
            e["manager"] == manager
                && e["operation"] == "Apply"
                && e.pointer("/fieldsV1/f:spec/f:replicas").is_some()
        })
}

/// The handover step for each released object whose live `spec.replicas` is still wharf's.
pub async fn hand_over<'a>(
    applier: &Applier,
    catalog: &Catalog,
    items: impl Iterator<Item = &'a Item>,
    released: &BTreeMap<ObjectRef, String>,
    live: &BTreeMap<ObjectRef, Value>,
) -> anyhow::Result<()> {
    for item in items.filter(|i| released.contains_key(&i.id)) {
        let Some(current) = live
            .get(&item.id)
            .filter(|l| owns_replicas(l, FIELD_MANAGER))
        else {
            continue;
        };
        let Some(replicas) = current.pointer("/spec/replicas") else {
            continue;
        };
        applier.guard.check()?;
        let mut keep = json!({
            "apiVersion": item.id.api_version, "kind": item.id.kind,
            "metadata": {"name": item.id.name},
            "spec": {"replicas": replicas},
        });
        if let Some(ns) = &item.id.namespace {
            keep["metadata"]["namespace"] = json!(ns);
        }
        let obj: DynamicObject = serde_json::from_value(keep)?;
        let api = catalog.api_for(&applier.client, &item.id)?;
        api.patch(
            &item.id.name,
            &PatchParams::apply(HANDOVER),
            &Patch::Apply(&obj),
        )
        .await
        .map_err(|e| {
            anyhow!(errors::describe(
                &e,
                &format!("hand spec.replicas of {} over to its HPA", item.id),
                &applier.server
            ))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::plan::AppSpec;

    fn plan(objects: Vec<Value>) -> Plan {
        Plan::build(&[AppSpec {
            name: "gateway".into(),
            charm: "gateway".into(),
            charm_version: "0.1.0".into(),
            needs: vec![],
            config: Default::default(),
            declared_status: None,
            objects,
        }])
        .unwrap()
    }

    fn deployment(name: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "kubeflow"}, "spec": {"replicas": 2}})
    }

    #[test]
    fn only_what_an_hpa_scales_loses_its_replicas() {
        let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web-hpa", "namespace": "kubeflow"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "maxReplicas": 3}});
        let mut p = plan(vec![deployment("web"), deployment("other"), hpa]);
        let targets = rendered_targets(&p);
        let released = release_replicas(&mut p, &targets);
        let web = ObjectRef::of(&deployment("web")).unwrap();
        assert_eq!(
            released,
            BTreeMap::from([(web.clone(), "web-hpa".to_string())])
        );
        let by_name = |n: &str| {
            p.items()
                .find(|i| i.id.name == n && i.id.kind == "Deployment")
                .unwrap()
                .object
                .clone()
        };
        assert!(by_name("web")["spec"].get("replicas").is_none());
        assert_eq!(by_name("other")["spec"]["replicas"], 2);
        // A target in another namespace or group is a different object.
        let elsewhere = Target {
            namespace: "default".into(),
            ..targets[0].clone()
        };
        assert!(!elsewhere.scales(&web));
    }

    #[test]
    fn ownership_is_read_from_apply_entries() {
        let live = json!({"metadata": {"managedFields": [
            {"manager": "wharf", "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
            {"manager": "kube-controller-manager", "operation": "Update", "subresource": "scale",
             "fieldsV1": {"f:spec": {"f:template": {}}}}]}});
        assert!(owns_replicas(&live, "wharf"));
        assert!(!owns_replicas(&live, "kube-controller-manager"));
    }
}
