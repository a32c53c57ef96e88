//! Built-in validation the apiserver does that clients trip over: object names (RFC 1123),
//! immutable fields, and the shape of workloads (selector present and matching the pod labels).

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use crate::catalog::ResourceType;
use crate::selector::LabelSelector;

static SUBDOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
        .expect("static regex")
});
static LABEL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").expect("static regex"));

/// Causes for an invalid `metadata.name`; Namespaces and Services need a DNS-1123 label, RBAC's
/// kinds a path segment (`system:aggregate-to-edit`: RBAC's own validation), the rest a subdomain.
pub fn name(rt: &ResourceType, name: &str) -> Vec<(String, String)> {
    if rt.group == "rbac.authorization.k8s.io" {
        let bad = if name == "." || name == ".." {
            Some(format!("may not be '{name}'"))
        } else {
            ["/", "%"]
                .into_iter()
                .find(|c| name.contains(c))
                .map(|c| format!("may not contain '{c}'"))
        };
        return bad
            .map(|why| {
                (
                    "metadata.name".into(),
                    format!("Invalid value: \"{name}\": {why}"),
                )
            })
            .into_iter()
            .collect();
    }
    let label_kind = rt.group.is_empty() && (rt.kind == "Namespace" || rt.kind == "Service");
    let ok = if label_kind {
        name.len() <= 63 && LABEL.is_match(name)
    } else {
        name.len() <= 253 && SUBDOMAIN.is_match(name)
    };
    if ok {
        return vec![];
    }
    let msg = if label_kind {
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?') and be at most 63 characters"
    } else {
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*') and be at most 253 characters"
    };
    vec![(
        "metadata.name".into(),
        format!("Invalid value: \"{name}\": {msg}"),
    )]
}

/// Fields that may not change once set, per kind.
fn immutable_fields(rt: &ResourceType) -> &'static [&'static str] {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("apps", "Deployment" | "DaemonSet") => &["/spec/selector"],
        ("batch", "Job") => &["/spec/selector", "/spec/template"],
        ("", "Service") => &["/spec/clusterIP"],
        _ => &[],
    }
}

/// Causes for changes to immutable fields between `old` and `new`.
pub fn immutable(rt: &ResourceType, old: &Value, new: &Value) -> Vec<(String, String)> {
    let mut causes = Vec::new();
    for ptr in immutable_fields(rt) {
        let (before, after) = (old.pointer(ptr), new.pointer(ptr));
        if before.is_some_and(|b| !b.is_null() && b != "") && before != after {
            let field = ptr.trim_start_matches('/').replace('/', ".");
            let shown = after.map(Value::to_string).unwrap_or_else(|| "null".into());
            causes.push((field, format!("Invalid value: {shown}: field is immutable")));
        }
    }
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding")
            if old["roleRef"] != new["roleRef"] =>
        {
            causes.push((
                "roleRef".into(),
                format!("Invalid value: {}: cannot change roleRef", new["roleRef"]),
            ));
        }
        ("apps", "StatefulSet") => {
            // Only these may change; the rest of the spec is fixed at creation.
            const MUTABLE: &[&str] = &[
                "replicas",
                "ordinals",
                "template",
                "updateStrategy",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
            ];
            let fixed = |v: &Value| {
                let mut spec = v["spec"].clone();
                if let Some(m) = spec.as_object_mut() {
                    m.retain(|k, _| !MUTABLE.contains(&k.as_str()));
                }
                spec
            };
            if fixed(old) != fixed(new) {
                causes.push((
                    "spec".into(),
                    "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden".into(),
                ));
            }
        }
        ("", "Secret") if old["type"] != new["type"] => {
            causes.push((
                "type".into(),
                format!("Invalid value: {}: field is immutable", new["type"]),
            ));
        }
        _ => {}
    }
    // ConfigMaps and Secrets marked `immutable: true` keep their data.
    if rt.group.is_empty()
        && (rt.kind == "ConfigMap" || rt.kind == "Secret")
        && old["immutable"] == Value::Bool(true)
    {
        for f in ["data", "binaryData", "immutable"] {
            if old.get(f) != new.get(f) {
                causes.push((
                    f.to_string(),
                    "Forbidden: field is immutable when `immutable` is set".into(),
                ));
            }
        }
    }
    causes
}

/// Shape checks on workloads: a selector that matches the pod template's labels, and containers.
pub fn workload(rt: &ResourceType, obj: &Value) -> Vec<(String, String)> {
    let mut causes = Vec::new();
    let is_workload = rt.group == "apps"
        && matches!(rt.kind.as_str(), "Deployment" | "StatefulSet" | "DaemonSet");
    let is_job = rt.group == "batch" && rt.kind == "Job";
    if !(is_workload || is_job) {
        return causes;
    }
    let template = &obj["spec"]["template"];
    let selector = &obj["spec"]["selector"];
    if is_workload && selector.is_null() {
        causes.push(("spec.selector".into(), "Required value".into()));
    } else if !selector.is_null() {
        let sel = LabelSelector::from_object(selector);
        if selector["matchLabels"]
            .as_object()
            .is_none_or(|m| m.is_empty())
            && selector["matchExpressions"]
                .as_array()
                .is_none_or(|a| a.is_empty())
        {
            causes.push((
                "spec.selector".into(),
                "Invalid value: empty selector is invalid for deployment".into(),
            ));
        } else if !sel.matches(template) {
            causes.push((
                "spec.template.metadata.labels".into(),
                format!(
                    "Invalid value: {}: `selector` does not match template `labels`",
                    template["metadata"]["labels"]
                ),
            ));
        }
    }
    if template["spec"]["containers"]
        .as_array()
        .is_none_or(|c| c.is_empty())
    {
        causes.push((
            "spec.template.spec.containers".into(),
            "Required value".into(),
        ));
    }
    if is_job {
        let policy = template["spec"]["restartPolicy"]
            .as_str()
            .unwrap_or_default();
        if policy != "Never" && policy != "OnFailure" {
            causes.push((
                "spec.template.spec.restartPolicy".into(),
                format!(
                    "Required value: valid values: \"OnFailure\", \"Never\" (got \"{policy}\")"
                ),
            ));
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use serde_json::json;

    #[test]
    fn names_table() {
        let c = Catalog::default();
        let cm = c.find("", "v1", "configmaps").unwrap();
        let ns = c.find("", "v1", "namespaces").unwrap();
        let role = c
            .find("rbac.authorization.k8s.io", "v1", "clusterroles")
            .unwrap();
        for (rt, n, ok) in [
            (&role, "system:aggregate-to-edit", true),
            (&role, "Mixed_Case", true),
            (&role, "a/b", false),
            (&role, "..", false),
            (&cm, "a.b-c", true),
            (&cm, "Bad", false),
            (&cm, "-a", false),
            (&cm, "a_b", false),
            (&ns, "a.b", false),
            (&ns, "kubeflow", true),
            (&ns, &"x".repeat(64), false),
        ] {
            assert_eq!(name(rt, n).is_empty(), ok, "{} {n}", rt.kind);
        }
    }

    #[test]
    fn deployment_selector_is_immutable() {
        let rt = Catalog::default()
            .find("apps", "v1", "deployments")
            .unwrap();
        let old = json!({"spec": {"selector": {"matchLabels": {"app": "a"}}}});
        let new = json!({"spec": {"selector": {"matchLabels": {"app": "b"}}}});
        let causes = immutable(&rt, &old, &new);
        assert_eq!(causes[0].0, "spec.selector");
        assert!(causes[0].1.ends_with("field is immutable"));
        assert!(immutable(&rt, &old, &old).is_empty());
    }

    #[test]
    fn immutable_fields_table() {
        let c = Catalog::default();
        let find = |g: &str, p: &str| c.find(g, "v1", p).unwrap();
        let cases = [
            (
                find("rbac.authorization.k8s.io", "rolebindings"),
                json!({"roleRef": {"kind": "Role", "name": "a"}}),
                json!({"roleRef": {"kind": "Role", "name": "b"}}),
                Some("roleRef"),
            ),
            (
                find("apps", "statefulsets"),
                json!({"spec": {"serviceName": "a", "replicas": 1}}),
                json!({"spec": {"serviceName": "b", "replicas": 1}}),
                Some("spec"),
            ),
            (
                find("apps", "statefulsets"),
                json!({"spec": {"serviceName": "a", "replicas": 1}}),
                json!({"spec": {"serviceName": "a", "replicas": 3}}),
                None,
            ),
            (
                find("", "secrets"),
                json!({"type": "Opaque"}),
                json!({"type": "kubernetes.io/tls"}),
                Some("type"),
            ),
        ];
        for (rt, old, new, field) in cases {
            let causes = immutable(&rt, &old, &new);
            assert_eq!(
                causes.first().map(|c| c.0.as_str()),
                field,
                "{} {new}",
                rt.kind
            );
        }
    }

    #[test]
    fn workload_selector_must_match_template() {
        let rt = Catalog::default()
            .find("apps", "v1", "deployments")
            .unwrap();
        let bad = json!({"spec": {"selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        assert_eq!(workload(&rt, &bad)[0].0, "spec.template.metadata.labels");
    }
}
