//! The plan of a deploy: which objects go in which stage, and in which order the applications
//! run. Stage 1 is every CRD (waited for until Established, then discovery runs again), stage 2
//! the cluster-wide and namespace-like kinds, stage 3 each application's own objects, with an
//! application started only once the applications it needs are ready.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::bail;
use serde::Serialize;
use serde_json::Value;

use super::ObjectRef;

/// What the engine deploys for one application: the renderer's output, in the engine's terms.
#[derive(Debug, Clone, Serialize)]
pub struct AppSpec {
    pub name: String,
    pub charm: String,
    pub charm_version: String,
    /// Applications this one requires through relations: they are deployed and ready first.
    pub needs: Vec<String>,
    /// Effective config with secret values already replaced by digests (never clear text).
    pub config: BTreeMap<String, Value>,
    /// The charm-declared status when one of its rules matched: (status, message).
    pub declared_status: Option<(String, String)>,
    pub objects: Vec<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Crds,
    Cluster,
    Apps,
}

impl Stage {
    pub fn title(self) -> &'static str {
        match self {
            Stage::Crds => "custom resource definitions",
            Stage::Cluster => "cluster-wide objects",
            Stage::Apps => "applications",
        }
    }
}

/// Kinds that other objects need to exist first, or that live outside any namespace.
const CLUSTER_KINDS: &[&str] = &[
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
    "RuntimeClass",
    "PersistentVolume",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "APIService",
];

pub fn stage_of(r: &ObjectRef) -> Stage {
    if r.is_crd() {
        Stage::Crds
    } else if CLUSTER_KINDS.contains(&r.kind.as_str()) {
        Stage::Cluster
    } else {
        Stage::Apps
    }
}

/// The order of kinds inside an application, like Helm's install order: what others reference
/// (accounts, config, storage, RBAC) before the workloads that use it, custom resources last.
const KIND_ORDER: &[&str] = &[
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "Role",
    "RoleBinding",
    "Service",
    "DaemonSet",
    "Deployment",
    "StatefulSet",
    "Job",
    "CronJob",
    "Ingress",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
];

/// The sort key of a kind: known kinds in KIND_ORDER, unknown ones (custom resources) after.
pub fn kind_rank(r: &ObjectRef) -> usize {
    if stage_of(r) != Stage::Apps {
        return 0;
    }
    KIND_ORDER
        .iter()
        .position(|k| *k == r.kind)
        .unwrap_or(KIND_ORDER.len())
}

/// A custom resource: a kind wharf does not know, served by a CRD (removed before the CRD).
pub fn is_custom(r: &ObjectRef) -> bool {
    stage_of(r) == Stage::Apps && kind_rank(r) == KIND_ORDER.len() && r.group().contains('.')
}

/// One object in the plan.
#[derive(Debug, Clone)]
pub struct Item {
    pub app: String,
    pub id: ObjectRef,
    pub object: Value,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub crds: Vec<Item>,
    pub cluster: Vec<Item>,
    /// Applications in an order where every app comes after what it needs.
    pub apps: Vec<AppPlan>,
}

#[derive(Debug, Clone)]
pub struct AppPlan {
    pub name: String,
    pub needs: Vec<String>,
    /// This app's namespaced objects in kind order.
    pub items: Vec<Item>,
}

impl Plan {
    pub fn build(apps: &[AppSpec]) -> anyhow::Result<Plan> {
        let names: BTreeSet<&str> = apps.iter().map(|a| a.name.as_str()).collect();
        let mut seen: BTreeMap<ObjectRef, String> = BTreeMap::new();
        let mut crds = Vec::new();
        let mut cluster = Vec::new();
        let mut app_plans = Vec::new();
        for app in apps {
            for need in &app.needs {
                if !names.contains(need.as_str()) {
                    bail!(
                        "application `{}` needs `{need}`, which is not in the bundle",
                        app.name
                    );
                }
            }
            let mut items = Vec::new();
            for obj in &app.objects {
                let id = ObjectRef::of(obj)
                    .map_err(|e| anyhow::anyhow!("application `{}`: {e}", app.name))?;
                if let Some(other) = seen.insert(id.clone(), app.name.clone()) {
                    bail!(
                        "{id} is rendered by both `{other}` and `{}`; rename it in one of the charms",
                        app.name
                    );
                }
                let item = Item {
                    app: app.name.clone(),
                    id,
                    object: obj.clone(),
                };
                match stage_of(&item.id) {
                    Stage::Crds => crds.push(item),
                    Stage::Cluster => cluster.push(item),
                    Stage::Apps => items.push(item),
                }
            }
            items.sort_by_key(|i| kind_rank(&i.id));
            app_plans.push(AppPlan {
                name: app.name.clone(),
                needs: app.needs.clone(),
                items,
            });
        }
        // Namespaces before the roles that live in them.
        cluster.sort_by_key(|i| i.id.kind != "Namespace");
        Ok(Plan {
            crds,
            cluster,
            apps: topo_order(app_plans)?,
        })
    }

    /// Every object of the plan, in apply order.
    pub fn items(&self) -> impl Iterator<Item = &Item> {
        self.crds
            .iter()
            .chain(&self.cluster)
            .chain(self.apps.iter().flat_map(|a| &a.items))
    }
}

/// Order applications so each comes after its needs (stable otherwise); a cycle is an error
/// naming the applications in it.
fn topo_order(mut apps: Vec<AppPlan>) -> anyhow::Result<Vec<AppPlan>> {
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::with_capacity(apps.len());
    while !apps.is_empty() {
        let before = apps.len();
        let mut rest = Vec::new();
        for app in apps {
            if app.needs.iter().all(|n| done.contains(n)) {
                done.insert(app.name.clone());
                out.push(app);
            } else {
                rest.push(app);
            }
        }
        if rest.len() == before {
            let cycle: Vec<_> = rest.iter().map(|a| a.name.as_str()).collect();
            bail!(
                "the applications {} need each other in a cycle; remove one of their relations",
                cycle.join(", ")
            );
        }
        apps = rest;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app(name: &str, needs: &[&str], objects: Vec<Value>) -> AppSpec {
        AppSpec {
            name: name.into(),
            charm: name.into(),
            charm_version: "1.0.0".into(),
            needs: needs.iter().map(|s| s.to_string()).collect(),
            config: BTreeMap::new(),
            declared_status: None,
            objects,
        }
    }

    fn obj(api: &str, kind: &str, name: &str) -> Value {
        json!({"apiVersion": api, "kind": kind, "metadata": {"name": name}})
    }

    #[test]
    fn stages_kinds_and_needs_are_ordered() {
        let plan = Plan::build(&[
            app(
                "web",
                &["db"],
                vec![
                    obj("apps/v1", "Deployment", "web"),
                    obj("v1", "Service", "web"),
                    obj("wharf.dev/v1alpha1", "TrainJob", "t"),
                    obj("v1", "ServiceAccount", "web"),
                    obj("rbac.authorization.k8s.io/v1", "ClusterRole", "web"),
                ],
            ),
            app(
                "db",
                &[],
                vec![
                    obj(
                        "apiextensions.k8s.io/v1",
                        "CustomResourceDefinition",
                        "trainjobs.wharf.dev",
                    ),
                    obj("apps/v1", "StatefulSet", "db"),
                ],
            ),
        ])
        .unwrap();
        assert_eq!(plan.crds.len(), 1);
        assert_eq!(plan.cluster[0].id.kind, "ClusterRole");
        let order: Vec<_> = plan.apps.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(order, ["db", "web"]);
        let kinds: Vec<_> = plan.apps[1]
            .items
            .iter()
            .map(|i| i.id.kind.as_str())
            .collect();
        assert_eq!(
            kinds,
            ["ServiceAccount", "Service", "Deployment", "TrainJob"]
        );
        assert!(is_custom(&plan.apps[1].items[3].id));
        assert!(!is_custom(&plan.apps[1].items[2].id));
    }

    #[test]
    fn cycles_unknown_needs_and_duplicates_are_errors() {
        let e = Plan::build(&[app("a", &["b"], vec![]), app("b", &["a"], vec![])]).unwrap_err();
        assert!(e.to_string().contains("cycle"), "{e}");
        let e = Plan::build(&[app("a", &["zzz"], vec![])]).unwrap_err();
        assert!(e.to_string().contains("`zzz`"), "{e}");
        let o = obj("v1", "ConfigMap", "same");
        let e = Plan::build(&[app("a", &[], vec![o.clone()]), app("b", &[], vec![o])]).unwrap_err();
        assert!(e.to_string().contains("both `a` and `b`"), "{e}");
    }
}
