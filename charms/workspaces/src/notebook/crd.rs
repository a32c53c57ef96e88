//! The `Notebook` custom resource in the shape of Kubeflow's `kubeflow.org/v1` Notebook: a
//! Jupyter server in a user's namespace, whose `spec.template.spec` is a core/v1 PodSpec. The Rust
//! type is the source of truth; `wharf-workspaces crd notebook` prints the CRD YAML and a test
//! keeps `charms/workspaces/templates/notebook-crd.yaml` identical to it.
//!
//! The PodSpec is kept as JSON in the type (`x-kubernetes-preserve-unknown-fields` in the
//! schema, as upstream's CRD effectively does for the template): a typed PodSpec would make one
//! malformed Notebook fail the operator's whole watch (kube's watcher decodes every object of a
//! list), where a JSON value lets the reconcile decode it and report InvalidSpec on that
//! Notebook alone.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The server runs and its pod is ready (or why not: Starting, Stopped, InvalidSpec).
pub const CONDITION_READY: &str = "Ready";

/// Kubeflow's annotation: present, the server is stopped (scaled to 0) and its value says when;
/// removing it starts the server again. The culler sets it on an idle server.
pub const STOPPED_ANNOTATION: &str = "kubeflow-resource-stopped";
/// Kubeflow's annotation: the last activity the culler read from Jupyter (RFC 3339).
pub const LAST_ACTIVITY_ANNOTATION: &str = "notebooks.kubeflow.org/last-activity";

/// A Jupyter server: a StatefulSet of one pod from `template.spec`, the workspace volume at
/// /home/jovyan, and a Service reached through the gateway at `/notebook/<namespace>/<name>/`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "kubeflow.org",
    version = "v1",
    kind = "Notebook",
    plural = "notebooks",
    namespaced,
    category = "wharf",
    status = "NotebookStatus",
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"REASON","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NotebookSpec {
    pub template: NotebookTemplate,
}

/// Upstream's `spec.template`: only `spec` (a PodSpec) is read.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct NotebookTemplate {
    /// A core/v1 PodSpec. Its first container is the Jupyter server: an empty `image` takes the
    /// operator's default image, and `image: minimal` or `image: scipy` the pinned image of that
    /// name (the charm's `notebook-images`).
    #[schemars(schema_with = "pod_spec_schema")]
    pub spec: serde_json::Value,
}

fn pod_spec_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// What the operator observed (upstream's `readyReplicas` and `conditions`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotebookStatus {
    /// Ready, with its reason and message, and observedGeneration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Ready pods of the server's StatefulSet (0 or 1).
    #[serde(default)]
    pub ready_replicas: i32,
    /// Where the server answers through the gateway: `/notebook/<namespace>/<name>/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The path the gateway serves a notebook under, and Jupyter's base URL (NB_PREFIX).
pub fn prefix(namespace: &str, name: &str) -> String {
    format!("/notebook/{namespace}/{name}")
}

/// The CRD as YAML, exactly what `wharf-workspaces crd notebook` prints.
pub fn crd_yaml() -> Result<String, serde_saphyr::ser::Error> {
    serde_saphyr::to_string(&Notebook::crd())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_notebook_crd_yaml_matches_the_rust_type() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/templates/notebook-crd.yaml");
        let on_disk = std::fs::read_to_string(path).unwrap_or_else(|e| {
            panic!("{path}: {e}; regenerate with `wharf-workspaces crd notebook > {path}`")
        });
        assert!(
            on_disk == crd_yaml().unwrap(),
            "{path} differs from the Notebook type; regenerate with `cargo run -p wharf-workspaces -- crd notebook > {path}`"
        );
    }

    #[test]
    fn the_crd_is_kubeflows_namespaced_notebook_with_a_free_pod_spec() {
        let crd = serde_json::to_value(Notebook::crd()).unwrap();
        assert_eq!(crd["metadata"]["name"], "notebooks.kubeflow.org");
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["name"], "v1");
        assert_eq!(version["subresources"]["status"], serde_json::json!({}));
        let template = &version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["template"]
            ["properties"]["spec"];
        assert_eq!(template["x-kubernetes-preserve-unknown-fields"], true);
    }

    /// An upstream Kubeflow Notebook (as its web app writes one) reads as is.
    #[test]
    fn an_upstream_notebook_manifest_parses() {
        let text = r#"
apiVersion: kubeflow.org/v1
kind: Notebook
metadata:
  name: my-notebook
  namespace: kubeflow-user-example-com
  labels: {app: my-notebook}
spec:
  template:
    spec:
      containers:
        - name: my-notebook
          image: kubeflownotebookswg/jupyter-scipy:v1.9.0
          resources:
            requests: {cpu: "0.5", memory: 1Gi}
          volumeMounts:
            - {mountPath: /dev/shm, name: dshm}
      volumes:
        - name: dshm
          emptyDir: {medium: Memory}
"#;
        let nb: Notebook = serde_saphyr::from_str(text).unwrap();
        assert_eq!(
            nb.spec.template.spec["containers"][0]["image"],
            "kubeflownotebookswg/jupyter-scipy:v1.9.0"
        );
        assert_eq!(
            prefix("kubeflow-user-example-com", "my-notebook"),
            "/notebook/kubeflow-user-example-com/my-notebook"
        );
    }
}
