//! The `Profile` custom resource in the shape of Kubeflow's `kubeflow.org/v1` Profile: a user's
//! workspace, cluster-scoped, named like the namespace it becomes, with an owner (the login
//! identity the gateway passes) and an optional ResourceQuota spec. The Rust type is the source of
//! truth; `wharf-workspaces crd` prints the CRD YAML and a test keeps
//! `charms/workspaces/templates/crd.yaml` identical to it.
//!
//! Compatible with upstream manifests: `spec.owner` is an RBAC subject (`kind: User`,
//! `name: <email>`, optional `apiGroup`), `spec.resourceQuotaSpec` a core/v1 ResourceQuotaSpec.
//! Upstream's `spec.plugins` (the AWS/GCP workload-identity plugins) has no meaning here and is
//! not accepted. `status.conditions` are metav1 Conditions (a superset of upstream's
//! `{type, status, message}`).

use k8s_openapi::api::core::v1::ResourceQuotaSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The namespace exists, belongs to this Profile, and its RoleBinding, ResourceQuota,
/// LimitRange and NetworkPolicies are applied.
pub const CONDITION_NAMESPACE_READY: &str = "NamespaceReady";
/// The platform's S3 credentials are copied into the namespace.
pub const CONDITION_CREDENTIALS_READY: &str = "CredentialsReady";
/// Both: the owner can work in the namespace.
pub const CONDITION_READY: &str = "Ready";

/// A user's workspace: the namespace named like the Profile, the owner's `edit` rights there,
/// a ResourceQuota and LimitRange, the platform's S3 credentials and default NetworkPolicies.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "kubeflow.org",
    version = "v1",
    kind = "Profile",
    plural = "profiles",
    category = "wharf",
    status = "ProfileStatus",
    printcolumn = r#"{"name":"OWNER","type":"string","jsonPath":".spec.owner.name"}"#,
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ProfileSpec {
    /// Who owns the workspace: the login identity the gateway passes (oauth2-proxy's
    /// `X-Auth-Request-Email`), bound to the `edit` ClusterRole in the namespace.
    pub owner: Owner,
    /// Limits for the whole namespace (a ResourceQuota named `kf-resource-quota`, as Kubeflow
    /// names it). Unset or empty: no quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_quota_spec: Option<ResourceQuotaSpec>,
}

/// An RBAC subject, as upstream's `spec.owner` (rbac/v1 Subject) with `kind: User`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    pub kind: OwnerKind,
    /// The user's name as the API server sees it: the email the login passes.
    #[schemars(length(min = 1))]
    pub name: String,
    /// `rbac.authorization.k8s.io` (the default) or empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,
}

/// Only users own profiles (as in Kubeflow); a closed set so that a typo is refused by the API.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum OwnerKind {
    User,
}

/// What the operator observed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileStatus {
    /// Ready, NamespaceReady and CredentialsReady, each with its observedGeneration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The CRD as YAML, exactly what `wharf-workspaces crd` prints.
pub fn crd_yaml() -> Result<String, serde_saphyr::ser::Error> {
    serde_saphyr::to_string(&Profile::crd())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_crd_yaml_matches_the_rust_type() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/templates/crd.yaml");
        let on_disk = std::fs::read_to_string(path).unwrap_or_else(|e| {
            panic!("{path}: {e}; regenerate with `wharf-workspaces crd > {path}`")
        });
        assert!(
            on_disk == crd_yaml().unwrap(),
            "{path} differs from the Profile type; regenerate with `cargo run -p wharf-workspaces -- crd > {path}`"
        );
    }

    #[test]
    fn the_crd_is_kubeflows_cluster_scoped_profile() {
        let crd = serde_json::to_value(Profile::crd()).unwrap();
        assert_eq!(crd["metadata"]["name"], "profiles.kubeflow.org");
        assert_eq!(crd["spec"]["scope"], "Cluster");
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["name"], "v1");
        let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(
            spec["properties"]["owner"]["properties"]["kind"]["enum"],
            serde_json::json!(["User"])
        );
        assert_eq!(spec["required"], serde_json::json!(["owner"]));
    }

    /// An upstream Kubeflow Profile (from its docs) reads as is.
    #[test]
    fn an_upstream_profile_manifest_parses() {
        let text = r#"
apiVersion: kubeflow.org/v1
kind: Profile
metadata:
  name: kubeflow-user-example-com
spec:
  owner:
    kind: User
    name: user@example.com
  resourceQuotaSpec:
    hard:
      cpu: "2"
      memory: 2Gi
      requests.nvidia.com/gpu: "1"
      persistentvolumeclaims: "1"
      requests.storage: "5Gi"
"#;
        let profile: Profile = serde_saphyr::from_str(text).unwrap();
        assert_eq!(profile.spec.owner.name, "user@example.com");
        let hard = profile.spec.resource_quota_spec.unwrap().hard.unwrap();
        assert_eq!(hard["memory"].0, "2Gi");
    }
}
