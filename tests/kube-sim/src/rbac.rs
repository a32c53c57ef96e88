//! RBAC authorization for service-account tokens: Role/ClusterRole rules reached through
//! RoleBindings (namespace-scoped) and ClusterRoleBindings, with `*` verbs/groups/resources,
//! subresources (`jobs/status`, `*/status`) and resourceNames. Subjects: ServiceAccount, plus the
//! groups every service account is in (`system:serviceaccounts[:ns]`, `system:authenticated`)
//! and `User` subjects by name. Writes of roles and bindings get the RBAC storage's
//! privilege-escalation checks (`escalate`, `bind`); an apply that creates needs `create`.
//! Impersonation (`Impersonate-User`/`-Group`, server.rs) needs `impersonate` on `users`/`groups`;
//! the impersonated user is then authorized here like any other.
//! Not modelled: aggregated ClusterRoles, non-resource URLs in escalation checks, impersonated
//! groups as Group subjects.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::catalog::ResourceType;
use crate::error::ApiError;
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
        let (plural, ns) = match role_ref["kind"].as_str() {
            Some("Role") => ("roles", binding_ns),
            _ => ("clusterroles", ""),
        };
        self.scan("rbac.authorization.k8s.io", plural, Some(ns))
            .find(|(k, _)| k.name == name)
            .and_then(|(_, r)| r["rules"].as_array().cloned())
            .unwrap_or_default()
    }

    fn allowed(&self, user: &str, a: &Attributes) -> bool {
        let g = "rbac.authorization.k8s.io";
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
}
