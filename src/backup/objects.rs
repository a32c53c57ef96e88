//! Kubernetes objects as a backup keeps them and a restore writes them back: without what the API
//! server sets (uid, resourceVersion, managedFields, status…) and without operator ownership;
//! wharf's own kinds found in the release records' CRDs; namespaces mapped on restore. Pure, so
//! every rule is unit-tested.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::store::releases::History;

/// What the API server sets, never written back.
const SERVER_FIELDS: [&str; 9] = [
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "ownerReferences",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// The object without status and server-set metadata (finalizers too: an operator adds its own
/// again), ready to be created anew.
pub fn clean(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(o) = obj.as_object_mut() {
        o.remove("status");
    }
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in SERVER_FIELDS {
            meta.remove(f);
        }
        meta.remove("finalizers");
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
            if a.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    obj
}

/// Made by an operator (it has an owner): its owner makes it again, so it is never restored.
pub fn operator_owned(obj: &Value) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|r| !r.is_empty())
}

/// Whether an API group is wharf's: `wharf.dev` or a subgroup of it.
pub fn is_wharf_group(group: &str) -> bool {
    group == "wharf.dev" || group.ends_with(".wharf.dev")
}

pub const DEX_GROUP: &str = "dex.coreos.com";

/// A kind defined by a CRD: what listing its objects takes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CrdKind {
    /// `<plural>.<group>`, the CRD's name.
    pub crd: String,
    pub group: String,
    /// The storage version.
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
}

impl CrdKind {
    pub fn from_crd(crd: &Value) -> Option<CrdKind> {
        let spec = crd.get("spec")?;
        let versions = spec.get("versions")?.as_array()?;
        let version = versions
            .iter()
            .find(|v| v["storage"] == true)
            .or_else(|| versions.first())?["name"]
            .as_str()?
            .to_owned();
        Some(CrdKind {
            crd: crd.pointer("/metadata/name")?.as_str()?.to_owned(),
            group: spec.get("group")?.as_str()?.to_owned(),
            version,
            kind: spec.pointer("/names/kind")?.as_str()?.to_owned(),
            plural: spec.pointer("/names/plural")?.as_str()?.to_owned(),
            namespaced: spec.get("scope").and_then(Value::as_str) != Some("Cluster"),
        })
    }

    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }
}

/// wharf's kinds: the CRDs of group wharf.dev (or `*.wharf.dev`) in any application's latest
/// record, so that kinds a later charm adds are found with no change here.
pub fn wharf_kinds(history: &History) -> Vec<CrdKind> {
    let mut out: Vec<CrdKind> = history
        .apps
        .values()
        .filter_map(|records| records.last())
        .flat_map(|r| r.manifests.iter())
        .filter(|m| m["kind"] == "CustomResourceDefinition")
        .filter_map(CrdKind::from_crd)
        .filter(|k| is_wharf_group(&k.group))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `old=new` namespace mappings.
pub fn parse_mapping(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a.to_owned(), b.to_owned())),
            _ => anyhow::bail!("`{p}` is not a namespace mapping: write OLD=NEW"),
        })
        .collect()
}

/// The object in the namespace `mapping` sends its namespace to.
pub fn map_namespace(obj: &mut Value, mapping: &BTreeMap<String, String>) {
    if let Some(ns) = obj.pointer("/metadata/namespace").and_then(Value::as_str)
        && let Some(new) = mapping.get(ns)
    {
        obj["metadata"]["namespace"] = Value::String(new.clone());
    }
}

/// "Kind/namespace/name" for messages.
pub fn describe(obj: &Value) -> String {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or("");
    match s("/metadata/namespace") {
        "" => format!("{}/{}", s("/kind"), s("/metadata/name")),
        ns => format!("{}/{ns}/{}", s("/kind"), s("/metadata/name")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn clean_drops_what_the_server_sets() {
        let obj = json!({"apiVersion": "wharf.dev/v1alpha1", "kind": "TrainJob",
            "metadata": {"name": "t", "namespace": "a", "uid": "u", "resourceVersion": "5",
                "generation": 2, "managedFields": [], "finalizers": ["x"],
                "labels": {"l": "1"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"epochs": 3}, "status": {"phase": "Running"}});
        assert_eq!(
            clean(&obj),
            json!({"apiVersion": "wharf.dev/v1alpha1", "kind": "TrainJob",
                "metadata": {"name": "t", "namespace": "a", "labels": {"l": "1"}},
                "spec": {"epochs": 3}})
        );
    }

    #[test]
    fn owned_objects_are_the_operators() {
        assert!(operator_owned(
            &json!({"metadata": {"ownerReferences": [{"uid": "x"}]}})
        ));
        assert!(!operator_owned(
            &json!({"metadata": {"ownerReferences": []}})
        ));
        assert!(!operator_owned(&json!({"metadata": {}})));
    }

    #[test]
    fn wharf_groups() {
        for (g, yes) in [
            ("wharf.dev", true),
            ("tiny.wharf.dev", true),
            ("notwharf.dev", false),
            ("dex.coreos.com", false),
        ] {
            assert_eq!(is_wharf_group(g), yes, "{g}");
        }
    }

    #[test]
    fn a_crd_gives_its_storage_version() {
        let crd = json!({"metadata": {"name": "trainjobs.wharf.dev"}, "spec": {"group": "wharf.dev",
            "scope": "Namespaced", "names": {"kind": "TrainJob", "plural": "trainjobs"},
            "versions": [{"name": "v1alpha1", "storage": false}, {"name": "v1", "storage": true}]}});
        let k = CrdKind::from_crd(&crd).unwrap();
        assert_eq!(k.api_version(), "wharf.dev/v1");
        assert!(k.namespaced);
    }

    #[test]
    fn mappings_parse_and_apply() {
        let m = parse_mapping(&["a=b".into()]).unwrap();
        let mut obj = json!({"metadata": {"namespace": "a"}});
        map_namespace(&mut obj, &m);
        assert_eq!(obj["metadata"]["namespace"], "b");
        assert!(parse_mapping(&["a".into()]).is_err());
        assert!(parse_mapping(&["=b".into()]).is_err());
    }
}
