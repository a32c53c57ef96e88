//! RBAC authorization for service-account tokens: Role/ClusterRole rules reached through
//! RoleBindings (namespace-scoped) and ClusterRoleBindings, with `*` verbs/groups/resources,
//! subresources (`jobs/status`, `*/status`) and resourceNames. Subjects: ServiceAccount, plus the
//! groups every service account is in (`system:serviceaccounts[:ns]`, `system:authenticated`)
//! and `User` subjects by name. Writes of roles and bindings get the RBAC storage's
//! privilege-escalation checks (`escalate`, `bind`); an apply that creates needs `create`.
//! Impersonation (`Impersonate-User`/`-Group`, server.rs) needs `impersonate` on `users`/`groups`;
//! the impersonated user is then authorized here like any other.
//! ClusterRoles with an `aggregationRule` hold the rules of every ClusterRole their selectors match
//! (nested: `admin` ⊇ `edit` ⊇ `view`), read at authorization time where the apiserver's
//! aggregation controller writes them into `rules` a moment after a change; the default `admin`,
//! `edit` and `view` roles are seeded by [`bootstrap_roles`], so a charm's ClusterRole labelled
//! `rbac.authorization.k8s.io/aggregate-to-edit` reaches everyone bound to `edit`, as on a real
//! cluster. Not modelled: non-resource URLs in escalation checks, impersonated groups as Group
//! subjects.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::catalog::ResourceType;
use crate::error::ApiError;
use crate::selector::LabelSelector;
use crate::store::State;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// What a request wants to do, in RBAC terms.
#[derive(Debug, Clone)]
pub struct Attributes {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: Option<String>,
    /// Empty for cluster-scoped requests.
    pub namespace: String,
    pub name: Option<String>,
}

impl Attributes {
    /// `create` on the object `name` of `rt` in `ns`.
    pub fn create(rt: &ResourceType, ns: &str, name: &str) -> Self {
        Attributes {
            verb: "create".into(),
            group: rt.group.clone(),
            resource: rt.plural.clone(),
            subresource: None,
            namespace: if rt.namespaced {
                ns.into()
            } else {
                String::new()
            },
            name: Some(name.into()),
        }
    }
}

/// The groups the apiserver puts a user in (shown in escalation errors).
fn groups_of(user: &str) -> Vec<String> {
    match user
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'))
    {
        Some((ns, _)) => vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".into(),
        ],
        None => vec!["system:authenticated".into()],
    }
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn go_quoted(list: &[String]) -> String {
    let inner: Vec<String> = list.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", inner.join(" "))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn contains(list: &Value, want: &str) -> bool {
    list.as_array()
        .is_some_and(|a| a.iter().any(|v| v == want || v == "*"))
}

fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    if !contains(&rule["verbs"], &a.verb) || !contains(&rule["apiGroups"], &a.group) {
        return false;
    }
    let resources = rule["resources"].as_array().cloned().unwrap_or_default();
    let res_ok = resources
        .iter()
        .filter_map(Value::as_str)
        .any(|r| match &a.subresource {
            None => r == "*" || r == a.resource,
            Some(sub) => {
                r == "*" || *r == format!("{}/{sub}", a.resource) || *r == format!("*/{sub}")
            }
        });
    if !res_ok {
        return false;
    }
    match rule["resourceNames"].as_array() {
        Some(names) if !names.is_empty() => a
            .name
            .as_deref()
            .is_some_and(|n| names.iter().any(|v| v == n)),
        _ => true,
    }
}

fn subject_matches(subjects: &Value, user: &str, binding_ns: &str) -> bool {
    let (sa_ns, sa_name) = match user
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'))
    {
        Some((n, m)) => (n, m),
        None => ("", ""),
    };
    subjects.as_array().into_iter().flatten().any(|s| {
        let name = s["name"].as_str().unwrap_or_default();
        match s["kind"].as_str().unwrap_or_default() {
            "ServiceAccount" => {
                let ns = s["namespace"]
                    .as_str()
                    .filter(|n| !n.is_empty())
                    .unwrap_or(binding_ns);
                !sa_name.is_empty() && name == sa_name && ns == sa_ns
            }
            "Group" => {
                name == "system:authenticated"
                    || (!sa_name.is_empty()
                        && (name == "system:serviceaccounts"
                            || name == format!("system:serviceaccounts:{sa_ns}")))
            }
            "User" => name == user,
            _ => false,
        }
    })
}

impl State {
    fn role_rules(&self, role_ref: &Value, binding_ns: &str) -> Vec<Value> {
        let name = role_ref["name"].as_str().unwrap_or_default();
        match role_ref["kind"].as_str() {
            Some("Role") => self
                .scan(RBAC_GROUP, "roles", Some(binding_ns))
                .find(|(k, _)| k.name == name)
                .and_then(|(_, r)| r["rules"].as_array().cloned())
                .unwrap_or_default(),
            _ => {
                let mut rules = Vec::new();
                self.cluster_role_rules(name, &mut Vec::new(), &mut rules);
                rules
            }
        }
    }

    /// The rules of ClusterRole `name`: its own, and for an aggregated one those of every
    /// ClusterRole its `clusterRoleSelectors` match, recursively (`seen` stops a cycle).
    fn cluster_role_rules(&self, name: &str, seen: &mut Vec<String>, out: &mut Vec<Value>) {
        if seen.iter().any(|s| s == name) {
            return;
        }
        seen.push(name.to_owned());
        let Some((_, role)) = self
            .scan(RBAC_GROUP, "clusterroles", Some(""))
            .find(|(k, _)| k.name == name)
        else {
            return;
        };
        out.extend(role["rules"].as_array().into_iter().flatten().cloned());
        let selectors: Vec<LabelSelector> = role["aggregationRule"]["clusterRoleSelectors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(LabelSelector::from_object)
            .collect();
        if selectors.is_empty() {
            return;
        }
        let members: Vec<String> = self
            .scan(RBAC_GROUP, "clusterroles", Some(""))
            .filter(|(k, r)| k.name != name && selectors.iter().any(|s| s.matches(r)))
            .map(|(k, _)| k.name.clone())
            .collect();
        for member in members {
            self.cluster_role_rules(&member, seen, out);
        }
    }

    fn allowed(&self, user: &str, a: &Attributes) -> bool {
        let g = RBAC_GROUP;
        let via_cluster = self.scan(g, "clusterrolebindings", Some("")).any(|(_, b)| {
            subject_matches(&b["subjects"], user, "")
                && self
                    .role_rules(&b["roleRef"], "")
                    .iter()
                    .any(|r| rule_allows(r, a))
        });
        if via_cluster || a.namespace.is_empty() {
            return via_cluster;
        }
        self.scan(g, "rolebindings", Some(&a.namespace))
            .any(|(_, b)| {
                subject_matches(&b["subjects"], user, &a.namespace)
                    && self
                        .role_rules(&b["roleRef"], &a.namespace)
                        .iter()
                        .any(|r| rule_allows(r, a))
            })
    }

    /// Writes of Roles, ClusterRoles and their bindings, after the ordinary authorization: the
    /// RBAC storage's escalation checks. A role may grant only what its author holds, unless
    /// the author has `escalate` on it; a binding needs `bind` on the role it refers to, or
    /// the author holding everything that role grants. Other kinds pass.
    pub fn confirm_no_escalation(
        &self,
        user: &str,
        rt: &ResourceType,
        obj: &Value,
    ) -> Result<(), ApiError> {
        if rt.group != RBAC_GROUP {
            return Ok(());
        }
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
        let ns = if rt.namespaced { ns } else { "" };
        let on = |verb: &str, resource: &str, target: &str| Attributes {
            verb: verb.into(),
            group: RBAC_GROUP.into(),
            resource: resource.into(),
            subresource: None,
            namespace: ns.into(),
            name: Some(target.into()),
        };
        let rules = match rt.kind.as_str() {
            "Role" | "ClusterRole" => {
                if self.allowed(user, &on("escalate", &rt.plural, name)) {
                    return Ok(());
                }
                obj["rules"].as_array().cloned().unwrap_or_default()
            }
            "RoleBinding" | "ClusterRoleBinding" => {
                let role_ref = &obj["roleRef"];
                let role = role_ref["name"].as_str().unwrap_or_default();
                let role_plural = match role_ref["kind"].as_str() {
                    Some("Role") => "roles",
                    _ => "clusterroles",
                };
                if self.allowed(user, &on("bind", role_plural, role)) {
                    return Ok(());
                }
                let exists = self
                    .scan(
                        RBAC_GROUP,
                        role_plural,
                        Some(if role_plural == "roles" { ns } else { "" }),
                    )
                    .any(|(k, _)| k.name == role);
                if !exists {
                    return Err(ApiError::not_found(role_plural, RBAC_GROUP, role));
                }
                self.role_rules(role_ref, ns)
            }
            _ => return Ok(()),
        };
        let missing = self.missing_rights(user, ns, &rules);
        if missing.is_empty() {
            return Ok(());
        }
        let mut e = ApiError::forbidden(format!(
            "{} \"{name}\" is forbidden: user \"{user}\" (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
            crate::error::qualified(&rt.plural, &rt.group),
            go_quoted(&groups_of(user)),
            missing.join("\n")
        ));
        e.details = Some(serde_json::json!({"name": name, "group": rt.group, "kind": rt.plural}));
        Err(e)
    }

    /// The rights in `rules` that `user` does not hold in `ns` ("" = cluster-wide), broken down
    /// per resource and name with their verbs merged, in the apiserver's compact text, sorted.
    fn missing_rights(&self, user: &str, ns: &str, rules: &[Value]) -> Vec<String> {
        // (group, resource, name) -> verbs
        let mut missing: BTreeMap<(String, String, Option<String>), Vec<String>> = BTreeMap::new();
        for rule in rules {
            let names = strings(&rule["resourceNames"]);
            let names: Vec<Option<String>> = if names.is_empty() {
                vec![None]
            } else {
                names.into_iter().map(Some).collect()
            };
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    let (res, sub) = match resource.split_once('/') {
                        Some((r, s)) => (r.to_string(), Some(s.to_string())),
                        None => (resource.clone(), None),
                    };
                    for verb in strings(&rule["verbs"]) {
                        for name in &names {
                            let a = Attributes {
                                verb: verb.clone(),
                                group: group.clone(),
                                resource: res.clone(),
                                subresource: sub.clone(),
                                namespace: ns.into(),
                                name: name.clone(),
                            };
                            if !self.allowed(user, &a) {
                                missing
                                    .entry((group.clone(), resource.clone(), name.clone()))
                                    .or_default()
                                    .push(verb.clone());
                            }
                        }
                    }
                }
            }
        }
        let q = |s: &str| format!("{s:?}");
        let mut out: Vec<String> = missing
            .into_iter()
            .map(|((g, r, n), verbs)| {
                let verbs: Vec<String> = verbs.iter().map(|v| q(v)).collect();
                let names = n
                    .map(|n| format!(", ResourceNames:[{}]", q(&n)))
                    .unwrap_or_default();
                format!(
                    "{{APIGroups:[{}], Resources:[{}]{names}, Verbs:[{}]}}",
                    q(&g),
                    q(&r),
                    verbs.join(" ")
                )
            })
            .collect();
        out.sort();
        out
    }

    /// Ok, or 403 with the apiserver's message.
    pub fn authorize(&self, user: &str, a: &Attributes) -> Result<(), ApiError> {
        if self.allowed(user, a) {
            return Ok(());
        }
        let res = match &a.subresource {
            Some(s) => format!("{}/{s}", a.resource),
            None => a.resource.clone(),
        };
        let what = crate::error::qualified(&res, &a.group);
        let subject = match &a.name {
            Some(n) => format!("{what} \"{n}\""),
            None => what,
        };
        let scope = if a.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace \"{}\"", a.namespace)
        };
        let mut e = ApiError::forbidden(format!(
            "{subject} is forbidden: User \"{user}\" cannot {} resource \"{res}\" in API group \"{}\" {scope}",
            a.verb, a.group
        ));
        let mut d = serde_json::json!({"kind": a.resource, "group": a.group});
        if let Some(n) = &a.name {
            d["name"] = serde_json::json!(n);
        }
        e.details = Some(d);
        Err(e)
    }
}

/// The user-facing ClusterRoles every cluster starts with (kube-apiserver's bootstrap policy):
/// `admin` ⊇ `edit` ⊇ `view`, each aggregated from the ClusterRoles labelled
/// `rbac.authorization.k8s.io/aggregate-to-<role>`, and the `system:aggregate-to-*` roles that
/// hold the built-in kinds' rules. The rules are the bootstrap policy's for the kinds kube-sim
/// serves (the real ones also list kinds it does not have, e.g. replicationcontrollers).
pub fn bootstrap_roles() -> Vec<Value> {
    use serde_json::json;
    let aggregate = |to: &str| json!({"rbac.authorization.k8s.io/aggregate-to-{to}".replace("{to}", to): "true"});
    let role = |name: &str, labels: Value, selects: Option<&str>, rules: Value| {
        let mut r = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "labels": labels, "annotations":
                {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
            "rules": rules});
        if let Some(to) = selects {
            r["aggregationRule"] =
                json!({"clusterRoleSelectors": [{"matchLabels": aggregate(to)}]});
        }
        r
    };
    let read = json!(["get", "list", "watch"]);
    let write = json!(["create", "delete", "deletecollection", "patch", "update"]);
    let mut edit_labels = aggregate("admin");
    edit_labels["kubernetes.io/bootstrapping"] = json!("rbac-defaults");
    let mut view_labels = aggregate("edit");
    view_labels["kubernetes.io/bootstrapping"] = json!("rbac-defaults");
    vec![
        role(
            "admin",
            json!({"kubernetes.io/bootstrapping": "rbac-defaults"}),
            Some("admin"),
            json!([]),
        ),
        role("edit", edit_labels, Some("edit"), json!([])),
        role("view", view_labels, Some("view"), json!([])),
        role(
            "system:aggregate-to-admin",
            aggregate("admin"),
            None,
            json!([
                {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings", "roles"],
                 "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]},
                {"apiGroups": ["authorization.k8s.io"], "resources": ["localsubjectaccessreviews"], "verbs": ["create"]},
            ]),
        ),
        role(
            "system:aggregate-to-edit",
            aggregate("edit"),
            None,
            json!([
                {"apiGroups": [""], "resources": ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"], "verbs": write},
                {"apiGroups": [""], "resources": ["configmaps", "endpoints", "persistentvolumeclaims", "secrets",
                  "serviceaccounts", "services", "services/proxy"], "verbs": write},
                {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
                {"apiGroups": [""], "resources": ["secrets", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy",
                  "services/proxy"], "verbs": read},
                {"apiGroups": ["apps"], "resources": ["daemonsets", "deployments", "deployments/rollback", "deployments/scale",
                  "replicasets", "replicasets/scale", "statefulsets", "statefulsets/scale"], "verbs": write},
                {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": write},
                {"apiGroups": ["batch"], "resources": ["cronjobs", "jobs"], "verbs": write},
                {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "networkpolicies"], "verbs": write},
                {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": write},
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": write},
            ]),
        ),
        role(
            "system:aggregate-to-view",
            aggregate("view"),
            None,
            json!([
                {"apiGroups": [""], "resources": ["configmaps", "endpoints", "persistentvolumeclaims",
                  "persistentvolumeclaims/status", "pods", "pods/log", "pods/status", "services", "services/status",
                  "serviceaccounts", "events", "limitranges", "resourcequotas", "resourcequotas/status",
                  "namespaces", "namespaces/status"], "verbs": read},
                {"apiGroups": ["apps"], "resources": ["daemonsets", "deployments", "deployments/scale", "replicasets",
                  "replicasets/scale", "statefulsets", "statefulsets/scale"], "verbs": read},
                {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": read},
                {"apiGroups": ["batch"], "resources": ["cronjobs", "jobs"], "verbs": read},
                {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "networkpolicies"], "verbs": read},
                {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": read},
                {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": read},
            ]),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(
        verb: &str,
        group: &str,
        resource: &str,
        sub: Option<&str>,
        name: Option<&str>,
    ) -> Attributes {
        Attributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.map(str::to_string),
            namespace: "ns".into(),
            name: name.map(str::to_string),
        }
    }

    #[test]
    fn rule_matching_table() {
        let rule = json!({"apiGroups": ["batch"], "resources": ["jobs", "jobs/status"], "verbs": ["get", "create"]});
        let star = json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]});
        let named = json!({"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["one"], "verbs": ["get"]});
        let cases = [
            (&rule, attrs("get", "batch", "jobs", None, None), true),
            (&rule, attrs("delete", "batch", "jobs", None, None), false),
            (&rule, attrs("get", "apps", "jobs", None, None), false),
            (
                &rule,
                attrs("get", "batch", "jobs", Some("status"), None),
                true,
            ),
            (&rule, attrs("get", "batch", "cronjobs", None, None), false),
            (
                &star,
                attrs("delete", "apps", "deployments", Some("scale"), None),
                true,
            ),
            (&named, attrs("get", "", "secrets", None, Some("one")), true),
            (
                &named,
                attrs("get", "", "secrets", None, Some("two")),
                false,
            ),
            (&named, attrs("get", "", "secrets", None, None), false),
        ];
        for (r, a, want) in cases {
            assert_eq!(rule_allows(r, &a), want, "{r} {a:?}");
        }
    }

    #[test]
    fn subjects() {
        let s = json!([{"kind": "ServiceAccount", "name": "op", "namespace": "ns"}]);
        assert!(subject_matches(&s, "system:serviceaccount:ns:op", "ns"));
        assert!(!subject_matches(&s, "system:serviceaccount:other:op", "ns"));
        let g = json!([{"kind": "Group", "name": "system:serviceaccounts:ns"}]);
        assert!(subject_matches(&g, "system:serviceaccount:ns:any", ""));
    }

    #[test]
    fn aggregated_cluster_roles_hold_the_rules_of_the_roles_they_select() {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let mut st = State::new(tx, crate::defaults::Allocator::new(vec![]));
        let ctx = crate::ops::WriteCtx::internal("test");
        let roles = st.catalog.find(RBAC_GROUP, "v1", "clusterroles").unwrap();
        let mut all = bootstrap_roles();
        all.push(json!({"metadata": {"name": "trainjobs-edit",
            "labels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}},
            "rules": [{"apiGroups": ["wharf.dev"], "resources": ["trainjobs"], "verbs": ["create"]}]}));
        all.push(json!({"metadata": {"name": "unlabelled"},
            "rules": [{"apiGroups": ["wharf.dev"], "resources": ["secrets-of-others"], "verbs": ["*"]}]}));
        for r in all {
            st.op_create(&roles, "", r, &ctx, false).unwrap();
        }
        let rules = |name: &str| st.role_rules(&json!({"kind": "ClusterRole", "name": name}), "ns");
        let allows = |name: &str, a: Attributes| rules(name).iter().any(|r| rule_allows(r, &a));
        let create_trainjob = attrs("create", "wharf.dev", "trainjobs", None, None);
        let list_pods = attrs("list", "", "pods", None, None);
        let create_role = attrs("create", RBAC_GROUP, "roles", None, None);
        // edit: its own aggregate, the charm's role labelled for edit, and view's (nested).
        assert!(allows("edit", create_trainjob.clone()));
        assert!(allows("edit", list_pods.clone()));
        assert!(!allows("edit", create_role.clone()));
        // admin ⊇ edit; view gets none of edit's writes; an unlabelled role joins nothing.
        assert!(allows("admin", create_trainjob.clone()));
        assert!(allows("admin", create_role));
        assert!(allows("view", list_pods));
        assert!(!allows("view", create_trainjob));
        assert!(!allows(
            "edit",
            attrs("get", "wharf.dev", "secrets-of-others", None, None)
        ));
    }
}
