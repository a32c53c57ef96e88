//! The objects one Profile becomes, as server-side-apply bodies, and the checks that come before
//! them. Pure: the reconcile ([`super::reconcile`]) does the API calls.
//!
//! - the Namespace named like the Profile, labelled as a profile's and owned by it (a controller
//!   ownerReference: deleting the Profile deletes the namespace by garbage collection, and the
//!   namespace takes everything in it along);
//! - the RoleBinding `namespace-admin` giving the owner the configured ClusterRole (`edit`),
//!   annotated `role: admin`, `user: <owner>` as Kubeflow's access management reads them;
//! - the ServiceAccount `default-editor` and its RoleBinding to the same ClusterRole: what the
//!   profile's notebooks run as (Kubeflow's name), so code in a notebook may create TrainJobs
//!   and InferenceServices in the namespace with the `kubernetes` client and nothing more;
//! - the ResourceQuota `kf-resource-quota` from `spec.resourceQuotaSpec` (Kubeflow's name);
//! - the LimitRange `wharf-container-defaults`: requests and limits for containers that set none;
//! - a copy of the platform's MinIO Secret;
//! - NetworkPolicies: ingress from the same namespace and from the gateway's, nothing else (so
//!   other profiles cannot reach this one's pods);
//! - with pipelines (the argo charm related): the ServiceAccount workflow pods run as, bound to
//!   Argo's executor ClusterRole in the namespace only (RoleBinding `<account>-executor`).

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::crd::Profile;
use crate::config::{OperatorConfig, WorkflowExecutor};

/// The label naming the Profile a namespace (and every object in it the operator made) belongs to.
pub const PROFILE_LABEL: &str = "wharf.dev/profile";
/// The `managed-by` value of everything the operator creates (and what its watch selects).
pub const MANAGED_BY: &str = "wharf-workspaces";
/// Kubeflow's names, kept so that its tools find them.
pub const OWNER_BINDING: &str = "namespace-admin";
/// The ServiceAccount of the profile's workloads that act on the namespace (notebooks).
pub const EDITOR: &str = "default-editor";
pub const QUOTA: &str = "kf-resource-quota";
pub const LIMIT_RANGE: &str = "wharf-container-defaults";
pub const POLICY_SAME_NAMESPACE: &str = "wharf-allow-same-namespace";
pub const POLICY_FROM_GATEWAY: &str = "wharf-allow-from-gateway";

/// Why a Profile is not turned into a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

/// The label selector of the operator's own objects.
pub fn managed_selector() -> String {
    format!("app.kubernetes.io/managed-by={MANAGED_BY}")
}

fn labels(profile: &Profile) -> Value {
    json!({
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": "kubeflow-profile",
        PROFILE_LABEL: profile.name_any(),
    })
}

fn owner_reference(profile: &Profile) -> Value {
    json!([{
        "apiVersion": Profile::api_version(&()),
        "kind": Profile::kind(&()),
        "name": profile.name_any(),
        "uid": profile.uid().unwrap_or_default(),
        "controller": true,
        "blockOwnerDeletion": true,
    }])
}

fn metadata(profile: &Profile, name: &str) -> Value {
    json!({
        "name": name,
        "namespace": profile.name_any(),
        "labels": labels(profile),
        "ownerReferences": owner_reference(profile),
    })
}

/// A Profile's name becomes a namespace name: a DNS label (a Profile may be named like a
/// subdomain, with dots, or longer than 63 characters; a namespace may not). The owner must name
/// someone, in RBAC's group.
pub fn check(profile: &Profile) -> Result<(), Refusal> {
    let name = profile.name_any();
    let label_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !label_ok {
        return Err(Refusal {
            reason: "InvalidName",
            message: format!(
                "the profile name `{name}` cannot name a namespace: use at most 63 lowercase \
                 letters, digits and '-', starting and ending with a letter or digit (delete this \
                 profile and create one with such a name)"
            ),
        });
    }
    let owner = &profile.spec.owner;
    if owner.name.trim().is_empty() {
        return Err(Refusal {
            reason: "InvalidSpec",
            message: "spec.owner.name is empty: set it to the owner's login email".into(),
        });
    }
    if let Some(group) = owner.api_group.as_deref()
        && !group.is_empty()
        && group != "rbac.authorization.k8s.io"
    {
        return Err(Refusal {
            reason: "InvalidSpec",
            message: format!(
                "spec.owner.apiGroup is `{group}`: a User belongs to rbac.authorization.k8s.io \
                 (or leave the field out)"
            ),
        });
    }
    Ok(())
}

/// Whether the namespace belongs to this Profile: its controller ownerReference names the
/// Profile's uid. A namespace that merely has the same name is someone else's.
pub fn owned_by(namespace: &Namespace, profile: &Profile) -> bool {
    let Some(uid) = profile.uid() else {
        return false;
    };
    namespace
        .owner_references()
        .iter()
        .any(|o| o.uid == uid && o.kind == Profile::kind(&()))
}

/// The namespace. The owner annotation is Kubeflow's (its dashboard reads it).
pub fn namespace(profile: &Profile) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": profile.name_any(),
            "labels": labels(profile),
            "annotations": {"owner": profile.spec.owner.name},
            "ownerReferences": owner_reference(profile),
        },
    })
}

/// The owner's rights in the namespace.
pub fn owner_binding(profile: &Profile, config: &OperatorConfig) -> Value {
    let owner = &profile.spec.owner.name;
    let mut meta = metadata(profile, OWNER_BINDING);
    meta["annotations"] = json!({"role": "admin", "user": owner});
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta,
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": config.owner_role,
        },
        "subjects": [{
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "User",
            "name": owner,
        }],
    })
}

/// The ServiceAccount notebooks run as (`wharf notebook create` names it, as Kubeflow's notebook
/// web app does).
pub fn editor_account(profile: &Profile) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(profile, EDITOR),
    })
}

/// The editor account's rights in the namespace: the owner's ClusterRole, bound in the namespace
/// only (so a notebook can do there what its owner can, and nothing elsewhere).
pub fn editor_binding(profile: &Profile, config: &OperatorConfig) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": metadata(profile, EDITOR),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": config.owner_role,
        },
        "subjects": [{
            "kind": "ServiceAccount",
            "name": EDITOR,
            "namespace": profile.name_any(),
        }],
    })
}

/// The quota, when the spec asks for one (an empty `hard` is no quota).
pub fn quota(profile: &Profile) -> Option<Value> {
    let spec = profile.spec.resource_quota_spec.as_ref()?;
    let empty = spec.hard.as_ref().is_none_or(|h| h.is_empty())
        && spec.scopes.as_ref().is_none_or(|s| s.is_empty())
        && spec.scope_selector.is_none();
    if empty {
        return None;
    }
    Some(json!({
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": metadata(profile, QUOTA),
        "spec": spec,
    }))
}

/// Requests and limits for containers that set none.
pub fn limit_range(profile: &Profile, config: &OperatorConfig) -> Value {
    let d = &config.container_defaults;
    json!({
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": metadata(profile, LIMIT_RANGE),
        "spec": {"limits": [{
            "type": "Container",
            "defaultRequest": {"cpu": d.cpu_request, "memory": d.memory_request},
            "default": {"cpu": d.cpu_limit, "memory": d.memory_limit},
        }]},
    })
}

/// The copy of the platform's S3 Secret: its data and type, under the same name. Its values are
/// never logged; the copy says where it came from.
pub fn credentials(profile: &Profile, source: &Secret, source_namespace: &str) -> Value {
    let name = source.name_any();
    let mut meta = metadata(profile, &name);
    meta["annotations"] = json!({"wharf.dev/copied-from": format!("{source_namespace}/{name}")});
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": source.type_.clone().unwrap_or_else(|| "Opaque".into()),
        "data": source.data.clone().unwrap_or_default(),
    })
}

/// The ServiceAccount workflow pods run as (Argo's `workflowDefaults` name it), and the
/// RoleBinding giving it the executor's rights (create and patch WorkflowTaskResults) in this
/// namespace only. Owned by the Profile like everything else here.
pub fn workflow_executor(profile: &Profile, executor: &WorkflowExecutor) -> [Value; 2] {
    let account = &executor.service_account;
    [
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": metadata(profile, account),
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": metadata(profile, &format!("{account}-executor")),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": executor.cluster_role,
            },
            "subjects": [{
                "kind": "ServiceAccount",
                "name": account,
                "namespace": profile.name_any(),
            }],
        }),
    ]
}

/// Ingress only from pods of the same namespace and from the gateway's namespace; every other
/// source (other profiles among them) is denied, because these policies select every pod.
pub fn network_policies(profile: &Profile, config: &OperatorConfig) -> Vec<Value> {
    let policy = |name: &str, from: Value| {
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": metadata(profile, name),
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [from]}],
            },
        })
    };
    vec![
        policy(POLICY_SAME_NAMESPACE, json!({"podSelector": {}})),
        policy(
            POLICY_FROM_GATEWAY,
            json!({"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": config.gateway_namespace,
            }}}),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::crd::{Owner, OwnerKind, ProfileSpec};

    fn profile(name: &str, owner: &str) -> Profile {
        let mut p = Profile::new(
            name,
            ProfileSpec {
                owner: Owner {
                    kind: OwnerKind::User,
                    name: owner.into(),
                    api_group: None,
                },
                resource_quota_spec: None,
            },
        );
        p.metadata.uid = Some("uid-1".into());
        p
    }

    #[test]
    fn names_that_cannot_be_namespaces_are_refused_with_the_rule() {
        let long = "a".repeat(64);
        for bad in ["Alice", "a.b", "-a", "a-", long.as_str(), "a_b"] {
            let refusal = check(&profile(bad, "a@example.com")).unwrap_err();
            assert_eq!(refusal.reason, "InvalidName", "{bad}");
            assert!(refusal.message.contains("63 lowercase"), "{bad}");
        }
        assert!(check(&profile("alice-1", "a@example.com")).is_ok());
    }

    #[test]
    fn an_owner_must_be_named_and_a_user() {
        assert_eq!(
            check(&profile("alice", " ")).unwrap_err().reason,
            "InvalidSpec"
        );
        let mut p = profile("alice", "a@example.com");
        p.spec.owner.api_group = Some("example.com".into());
        assert!(check(&p).unwrap_err().message.contains("apiGroup"));
    }

    #[test]
    fn the_namespace_is_owned_by_the_profile_and_labelled() {
        let p = profile("alice", "alice@example.com");
        let ns = namespace(&p);
        assert_eq!(ns["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        assert_eq!(ns["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(ns["metadata"]["labels"][PROFILE_LABEL], "alice");
        assert_eq!(ns["metadata"]["annotations"]["owner"], "alice@example.com");
        let as_ns: Namespace = serde_json::from_value(ns).unwrap();
        assert!(owned_by(&as_ns, &p));
        let mut other = p.clone();
        other.metadata.uid = Some("uid-2".into());
        assert!(!owned_by(&as_ns, &other));
        assert!(!owned_by(&Namespace::default(), &p));
    }

    #[test]
    fn the_owner_gets_the_configured_role_as_a_user() {
        let p = profile("alice", "alice@example.com");
        let rb = owner_binding(&p, &OperatorConfig::new("wharf"));
        assert_eq!(rb["roleRef"]["name"], "edit");
        assert_eq!(rb["subjects"][0]["kind"], "User");
        assert_eq!(rb["subjects"][0]["name"], "alice@example.com");
        assert_eq!(rb["metadata"]["namespace"], "alice");
    }

    #[test]
    fn no_quota_without_limits() {
        let mut p = profile("alice", "a@example.com");
        assert!(quota(&p).is_none());
        p.spec.resource_quota_spec = Some(Default::default());
        assert!(quota(&p).is_none());
        p.spec.resource_quota_spec = serde_json::from_value(json!({"hard": {"cpu": "2"}})).unwrap();
        assert_eq!(quota(&p).unwrap()["spec"]["hard"]["cpu"], "2");
    }

    #[test]
    fn policies_admit_the_namespace_and_the_gateway_only() {
        let p = profile("alice", "a@example.com");
        let mut config = OperatorConfig::new("wharf");
        config.gateway_namespace = "edge".into();
        let policies = network_policies(&p, &config);
        assert_eq!(policies.len(), 2);
        for policy in &policies {
            assert_eq!(policy["spec"]["podSelector"], json!({}));
            assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]));
        }
        assert_eq!(
            policies[1]["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            "edge"
        );
    }

    #[test]
    fn workflow_pods_get_the_executor_role_in_their_namespace_only() {
        let p = profile("alice", "a@example.com");
        let executor = WorkflowExecutor {
            cluster_role: "wharf-argo-executor".into(),
            service_account: "workflow".into(),
        };
        let [account, binding] = workflow_executor(&p, &executor);
        assert_eq!(account["kind"], "ServiceAccount");
        assert_eq!(account["metadata"]["name"], "workflow");
        assert_eq!(account["metadata"]["namespace"], "alice");
        assert_eq!(account["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        // A RoleBinding (not a ClusterRoleBinding): the rights hold in the profile's namespace.
        assert_eq!(binding["kind"], "RoleBinding");
        assert_eq!(binding["metadata"]["namespace"], "alice");
        assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
        assert_eq!(binding["roleRef"]["name"], "wharf-argo-executor");
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": "workflow", "namespace": "alice"}])
        );
    }

    #[test]
    fn the_credentials_copy_keeps_data_and_type_and_says_where_from() {
        let p = profile("alice", "a@example.com");
        let source: Secret = serde_json::from_value(json!({
            "metadata": {"name": "minio-credentials", "namespace": "wharf"},
            "type": "Opaque",
            "data": {"access-key": "YWNjZXNz", "secret-key": "c2VjcmV0"},
        }))
        .unwrap();
        let copy = credentials(&p, &source, "wharf");
        assert_eq!(copy["metadata"]["namespace"], "alice");
        assert_eq!(copy["data"]["secret-key"], "c2VjcmV0");
        assert_eq!(
            copy["metadata"]["annotations"]["wharf.dev/copied-from"],
            "wharf/minio-credentials"
        );
    }
}
