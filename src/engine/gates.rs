//! The gates: changes a real apiserver would refuse half-way through a run, or that would lose
//! data, found before anything is written — each with what to do instead. Pure over the prepared
//! changes and a few facts read from the cluster (StorageClasses, what it serves).
//!
//! - a kind the cluster does not serve (an API removed from this Kubernetes);
//! - a CRD change that drops a version still in `status.storedVersions`;
//! - immutable fields: a Job's template and selector, a PVC shrinking or growing on a class
//!   without `allowVolumeExpansion` (and any other PVC spec change), a workload's selector, a
//!   StatefulSet's volumeClaimTemplates and serviceName, a (Cluster)RoleBinding's roleRef, a
//!   Service's clusterIP;
//! - a CRD the apiserver would refuse (a CEL rule that does not compile, a default that does
//!   not fit its schema): each CRD this run writes is first sent as a server-side dry run, so
//!   the apiserver's own verdict, naming the rule, stops the run before anything is written.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::anyhow;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ListParams};
use serde::Serialize;
use serde_json::Value;

use super::Prepared;
use crate::kube::apply::Change;
use crate::kube::{Catalog, ObjectRef, compare, errors};

/// One refused change: the object, why, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub object: String,
    pub why: String,
    pub fix: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}; {}", self.object, self.why, self.fix)
    }
}

/// What the gates need to know about the cluster.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// StorageClass name → allowVolumeExpansion.
    pub storage_classes: BTreeMap<String, bool>,
    /// The class a PVC without `storageClassName` gets.
    pub default_class: Option<String>,
    /// (apiVersion, kind) the cluster serves.
    pub served: BTreeSet<(String, String)>,
    /// CRDs the apiserver refused in a dry run: object → its message.
    pub invalid_crds: BTreeMap<ObjectRef, String>,
}

impl Facts {
    /// Read the StorageClasses (a user who may not list them gets no expansion verdicts beyond
    /// "unknown class") and what the cluster serves for every kind in the plan.
    pub async fn read(
        client: &kube::Client,
        server: &str,
        catalog: &Catalog,
        prepared: &Prepared,
    ) -> anyhow::Result<Facts> {
        let mut facts = Facts::default();
        let needs_classes = prepared
            .plan
            .items()
            .any(|i| i.id.is_pvc() && prepared.changes[&i.id] == Change::Update);
        if needs_classes {
            let api: Api<StorageClass> = Api::all(client.clone());
            match api.list(&ListParams::default()).await {
                Ok(list) => {
                    for class in list.items {
                        let name = class.metadata.name.clone().unwrap_or_default();
                        let is_default = class
                            .metadata
                            .annotations
                            .as_ref()
                            .and_then(|a| a.get("storageclass.kubernetes.io/is-default-class"))
                            .is_some_and(|v| v == "true");
                        if is_default {
                            facts.default_class = Some(name.clone());
                        }
                        facts
                            .storage_classes
                            .insert(name, class.allow_volume_expansion.unwrap_or(false));
                    }
                }
                Err(e) if errors::status_code(&e) == Some(403) => {}
                Err(e) => {
                    return Err(anyhow!(errors::describe(&e, "list StorageClasses", server)));
                }
            }
        }
        facts.invalid_crds = invalid_crds(client, catalog, prepared).await?;
        for item in prepared.plan.items() {
            if catalog.resolve(&item.id).is_some() {
                facts
                    .served
                    .insert((item.id.api_version.clone(), item.id.kind.clone()));
            }
        }
        Ok(facts)
    }
}

/// Each CRD this run creates or changes, applied with `dryRun=All`: the ones the apiserver
/// answers 422 (Invalid), with its message. Only the apiserver knows its CEL environment and
/// schema rules, so it is asked rather than imitated. Any other answer (403 for a user who may
/// not write CRDs, a conflict) is left to the real write, which reports it in its place.
async fn invalid_crds(
    client: &kube::Client,
    catalog: &Catalog,
    prepared: &Prepared,
) -> anyhow::Result<BTreeMap<ObjectRef, String>> {
    use kube::api::{DynamicObject, Patch, PatchParams};
    let mut out = BTreeMap::new();
    for item in &prepared.plan.crds {
        if prepared.changes.get(&item.id) == Some(&Change::Unchanged) {
            continue;
        }
        let api = catalog.api_for(client, &item.id)?;
        let params = PatchParams::apply(crate::kube::FIELD_MANAGER)
            .force()
            .dry_run();
        let obj: DynamicObject = serde_json::from_value(item.object.clone())
            .map_err(|e| anyhow!("{}: not a Kubernetes object: {e}", item.id))?;
        if let Err(kube::Error::Api(status)) =
            api.patch(&item.id.name, &params, &Patch::Apply(&obj)).await
            && status.code == 422
        {
            out.insert(item.id.clone(), status.message.clone());
        }
    }
    Ok(out)
}

/// Every refused change of `prepared`, in plan order.
pub fn check(prepared: &Prepared, facts: &Facts) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    for (id, message) in &facts.invalid_crds {
        refusals.push(Refusal {
            object: id.to_string(),
            why: format!("the API server refuses this CRD: {message}"),
            fix: "fix the charm's CRD (its x-kubernetes-validations rule or default named \
                  above); nothing was written"
                .into(),
        });
    }
    // Kinds this run's own CRDs will serve.
    let mut from_crds: BTreeSet<(String, String)> = BTreeSet::new();
    for item in &prepared.plan.crds {
        let group = item.object.pointer("/spec/group").and_then(Value::as_str);
        let kind = item
            .object
            .pointer("/spec/names/kind")
            .and_then(Value::as_str);
        let versions = item
            .object
            .pointer("/spec/versions")
            .and_then(Value::as_array);
        if let (Some(group), Some(kind), Some(versions)) = (group, kind, versions) {
            for v in versions
                .iter()
                .filter_map(|v| v.get("name").and_then(Value::as_str))
            {
                from_crds.insert((format!("{group}/{v}"), kind.to_owned()));
            }
        }
    }
    for item in prepared.plan.items() {
        let key = (item.id.api_version.clone(), item.id.kind.clone());
        if !facts.served.contains(&key) && !from_crds.contains(&key) {
            refusals.push(Refusal {
                object: item.id.to_string(),
                why: format!(
                    "this cluster does not serve {} {}",
                    item.id.api_version, item.id.kind
                ),
                fix: "the charm was written for another Kubernetes: use a charm version made for \
                      this one, or install what serves that API first"
                    .into(),
            });
            continue;
        }
        if prepared.changes.get(&item.id) != Some(&Change::Update) {
            continue;
        }
        let Some(live) = prepared.live.get(&item.id) else {
            continue;
        };
        refusals.extend(immutable(&item.id, live, &item.object, facts));
    }
    refusals
}

/// The refusals for updating `live` to `desired`.
fn immutable(id: &ObjectRef, live: &Value, desired: &Value, facts: &Facts) -> Vec<Refusal> {
    let refuse = |why: String, fix: &str| Refusal {
        object: id.to_string(),
        why,
        fix: fix.to_owned(),
    };
    // A field the desired object sets that differs from the live one.
    let changed = |path: &str| match (desired.pointer(path), live.pointer(path)) {
        (Some(d), Some(l)) => !compare::contains(l, d),
        (Some(d), None) => !d.is_null(),
        _ => false,
    };
    let mut out = Vec::new();
    match (id.group(), id.kind.as_str()) {
        ("batch", "Job") => {
            for field in ["/spec/template", "/spec/selector"] {
                if changed(field) {
                    out.push(refuse(
                        format!("a Job's {} cannot change", &field[1..].replace('/', ".")),
                        "let the Job finish and delete it (`kubectl delete job`), or have the charm \
                         name the new Job differently",
                    ));
                }
            }
        }
        ("", "PersistentVolumeClaim") => out.extend(pvc(id, live, desired, facts)),
        ("apps", "Deployment" | "DaemonSet" | "ReplicaSet") if changed("/spec/selector") => {
            out.push(refuse(
                "a workload's spec.selector cannot change".into(),
                "delete the workload first (its pods restart), or keep the charm's selector",
            ));
        }
        ("apps", "StatefulSet") => {
            for field in [
                "/spec/selector",
                "/spec/volumeClaimTemplates",
                "/spec/serviceName",
                "/spec/podManagementPolicy",
            ] {
                if changed(field) {
                    out.push(refuse(
                        format!(
                            "a StatefulSet's {} cannot change",
                            &field[1..].replace('/', ".")
                        ),
                        "delete the StatefulSet with `kubectl delete statefulset --cascade=orphan` \
                         (its pods and volumes stay) and run again",
                    ));
                }
            }
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding")
            if changed("/roleRef") =>
        {
            out.push(refuse(
                "a binding's roleRef cannot change".into(),
                "delete the binding and run again (access through it pauses meanwhile)",
            ));
        }
        ("", "Service") => {
            let ip = |v: &Value| {
                v.pointer("/spec/clusterIP")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            if let (Some(want), Some(have)) = (ip(desired), ip(live))
                && !want.is_empty()
                && want != have
            {
                out.push(refuse(
                    format!("a Service's spec.clusterIP cannot change ({have} → {want})"),
                    "delete the Service and run again, or drop clusterIP from the charm",
                ));
            }
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            let served: BTreeSet<&str> = desired
                .pointer("/spec/versions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| v.get("name").and_then(Value::as_str))
                .collect();
            let stored = live
                .pointer("/status/storedVersions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str);
            for version in stored.filter(|v| !served.contains(v)) {
                out.push(refuse(
                    format!(
                        "the new CRD drops version {version}, which objects are still stored as \
                         (status.storedVersions)"
                    ),
                    "migrate the stored objects to a kept version first (read and write each \
                     back), then remove it from status.storedVersions",
                ));
            }
        }
        _ => {}
    }
    out
}

fn pvc(id: &ObjectRef, live: &Value, desired: &Value, facts: &Facts) -> Vec<Refusal> {
    let refuse = |why: String, fix: String| Refusal {
        object: id.to_string(),
        why,
        fix,
    };
    let mut out = Vec::new();
    let size = |v: &Value| {
        v.pointer("/spec/resources/requests/storage")
            .and_then(|q| match q {
                Value::String(s) => compare::quantity(s).map(|n| (n, s.clone())),
                Value::Number(n) => n.as_f64().map(|f| (f, n.to_string())),
                _ => None,
            })
    };
    if let (Some((want, want_text)), Some((have, have_text))) = (size(desired), size(live)) {
        if want < have {
            out.push(refuse(
                format!("a volume cannot shrink ({have_text} → {want_text})"),
                format!("keep storage at {have_text} or more (`--set` the charm's size option)"),
            ));
        } else if want > have {
            let class = live
                .pointer("/spec/storageClassName")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| facts.default_class.clone());
            let expandable = class
                .as_deref()
                .and_then(|c| facts.storage_classes.get(c))
                .copied()
                .unwrap_or(false);
            if !expandable {
                let class = class.unwrap_or_else(|| "(none)".into());
                out.push(refuse(
                    format!(
                        "growing the volume {have_text} → {want_text} needs a StorageClass with \
                         allowVolumeExpansion, and `{class}` has none"
                    ),
                    format!(
                        "keep storage at {have_text} (`--set` the charm's size option), or move the \
                         data to a new claim on an expandable class (`wharf backup`, then restore)"
                    ),
                ));
            }
        }
    }
    for field in [
        "accessModes",
        "storageClassName",
        "volumeMode",
        "volumeName",
    ] {
        let path = format!("/spec/{field}");
        if let (Some(d), Some(l)) = (desired.pointer(&path), live.pointer(&path))
            && !compare::contains(l, d)
        {
            out.push(refuse(
                format!("a claim's spec.{field} cannot change"),
                "keep the charm's earlier value, or move the data to a new claim".into(),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(api: &str, kind: &str) -> ObjectRef {
        ObjectRef {
            api_version: api.into(),
            kind: kind.into(),
            namespace: Some("m".into()),
            name: "x".into(),
        }
    }

    fn pvc_obj(size: &str, class: Option<&str>) -> Value {
        let mut v = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}});
        if let Some(c) = class {
            v["spec"]["storageClassName"] = json!(c);
        }
        v
    }

    fn facts(expandable: bool) -> Facts {
        Facts {
            storage_classes: [("microk8s-hostpath".to_string(), expandable)].into(),
            default_class: Some("microk8s-hostpath".into()),
            served: BTreeSet::new(),
            invalid_crds: BTreeMap::new(),
        }
    }

    #[test]
    fn immutable_field_table() {
        let pvc = id("v1", "PersistentVolumeClaim");
        let job = id("batch/v1", "Job");
        let rb = id("rbac.authorization.k8s.io/v1", "RoleBinding");
        let svc = id("v1", "Service");
        let crd = id("apiextensions.k8s.io/v1", "CustomResourceDefinition");
        let sts = id("apps/v1", "StatefulSet");
        let live_pvc = pvc_obj("10Gi", Some("microk8s-hostpath"));
        let cases: Vec<(&str, &ObjectRef, Value, Value, bool, usize, &str)> = vec![
            (
                "pvc grows, class not expandable",
                &pvc,
                live_pvc.clone(),
                pvc_obj("30Gi", None),
                false,
                1,
                "allowVolumeExpansion",
            ),
            (
                "pvc grows, class expandable",
                &pvc,
                live_pvc.clone(),
                pvc_obj("30Gi", None),
                true,
                0,
                "",
            ),
            (
                "pvc same size in other units",
                &pvc,
                live_pvc.clone(),
                pvc_obj("10240Mi", None),
                false,
                0,
                "",
            ),
            (
                "pvc shrinks",
                &pvc,
                live_pvc.clone(),
                pvc_obj("5Gi", None),
                true,
                1,
                "cannot shrink",
            ),
            (
                "pvc class changes",
                &pvc,
                live_pvc.clone(),
                pvc_obj("10Gi", Some("fast")),
                true,
                1,
                "storageClassName",
            ),
            (
                "job template",
                &job,
                json!({"spec": {"template": {"spec": {"containers": [{"image": "a"}]}}}}),
                json!({"spec": {"template": {"spec": {"containers": [{"image": "b"}]}}}}),
                false,
                1,
                "template",
            ),
            (
                "job same template",
                &job,
                json!({"spec": {"template": {"spec": {"containers": [{"image": "a", "x": 1}]}}}}),
                json!({"spec": {"template": {"spec": {"containers": [{"image": "a"}]}}}}),
                false,
                0,
                "",
            ),
            (
                "roleRef",
                &rb,
                json!({"roleRef": {"name": "a"}}),
                json!({"roleRef": {"name": "b"}}),
                false,
                1,
                "roleRef",
            ),
            (
                "clusterIP",
                &svc,
                json!({"spec": {"clusterIP": "10.0.0.1"}}),
                json!({"spec": {"clusterIP": "10.0.0.2"}}),
                false,
                1,
                "clusterIP",
            ),
            (
                "clusterIP unset in charm",
                &svc,
                json!({"spec": {"clusterIP": "10.0.0.1"}}),
                json!({"spec": {"ports": []}}),
                false,
                0,
                "",
            ),
            (
                "crd drops stored version",
                &crd,
                json!({"status": {"storedVersions": ["v1alpha1"]}}),
                json!({"spec": {"versions": [{"name": "v1"}]}}),
                false,
                1,
                "storedVersions",
            ),
            (
                "crd keeps stored version",
                &crd,
                json!({"status": {"storedVersions": ["v1alpha1"]}}),
                json!({"spec": {"versions": [{"name": "v1alpha1"}, {"name": "v1"}]}}),
                false,
                0,
                "",
            ),
            (
                "statefulset claims",
                &sts,
                json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "a"}}]}}),
                json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "b"}}]}}),
                false,
                1,
                "volumeClaimTemplates",
            ),
        ];
        for (name, id, live, desired, expandable, n, needle) in cases {
            let got = immutable(id, &live, &desired, &facts(expandable));
            assert_eq!(got.len(), n, "{name}: {got:?}");
            if n > 0 {
                assert!(got[0].why.contains(needle), "{name}: {got:?}");
                assert!(!got[0].fix.is_empty(), "{name}: a refusal says what to do");
            }
        }
    }
}
