//! The `InferenceService` custom resource (`wharf.dev/v1alpha1`): what the operator reconciles
//! into a wharf-server Deployment. The Rust type is the source of truth; `wharf-server crd`
//! prints the CRD YAML and a test keeps `charms/server/templates/crd.yaml` identical to it.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types the operator maintains in `status.conditions`.
pub const CONDITION_READY: &str = "Ready";
pub const CONDITION_PREDICTOR_READY: &str = "PredictorReady";
pub const CONDITION_INGRESS_READY: &str = "IngressReady";

/// Serve one model with wharf-server, scaled between `minReplicas` and `maxReplicas`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "wharf.dev",
    version = "v1alpha1",
    kind = "InferenceService",
    plural = "inferenceservices",
    shortname = "isvc",
    category = "wharf",
    namespaced,
    status = "InferenceServiceStatus",
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.url"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Model","type":"string","jsonPath":".spec.model.name"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(
    cel,
    validation = Rule::new("self.minReplicas <= self.maxReplicas").message("spec.minReplicas must be less than or equal to spec.maxReplicas")
)]
#[serde(rename_all = "camelCase")]
pub struct InferenceServiceSpec {
    /// The model artifact to serve.
    pub model: ModelSpec,
    /// Fewest replicas (0 allows scale to zero).
    #[serde(default = "one")]
    #[x_kube(validation = Rule::new("self >= 0").message("spec.minReplicas cannot be negative"))]
    pub min_replicas: i32,
    /// Most replicas.
    #[serde(default = "one")]
    #[x_kube(validation = Rule::new("self >= 1").message("spec.maxReplicas must be at least 1"))]
    pub max_replicas: i32,
    /// CPU and memory for each wharf-server container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

fn one() -> i32 {
    1
}

/// Where the artifact lives and which version to serve.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(cel)]
#[serde(rename_all = "camelCase")]
pub struct ModelSpec {
    /// Model name: the directory under the repository and the name in the inference URLs.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$')").message("spec.model.name must be a lowercase name (letters, digits, '-', '_', '.')"))]
    pub name: String,
    /// The model repository: `pvc://<claim>/<path>`, `s3://<bucket>/<path>` or `file:///<path>`.
    #[x_kube(validation = Rule::new("self.matches('^(pvc|s3|file)://.+')").message("spec.model.storageUri must start with pvc://, s3:// or file://"))]
    pub storage_uri: String,
    /// Serve only this version; unset serves the latest one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("spec.model.version must be a positive integer"))]
    pub version: Option<i64>,
}

/// What the operator observed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InferenceServiceStatus {
    /// Base URL of the V2 and TF Serving APIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Ready, PredictorReady and IngressReady.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Where the model is in its lifecycle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_state: Option<ModelState>,
    /// The protocols the model is served with: `v2-rest` (Open Inference Protocol V2 over HTTP,
    /// with the binary tensor data extension), `v2-grpc` (inference.GRPCInferenceService),
    /// `tfserving-rest` (TensorFlow Serving's REST API) and `tfserving-grpc` (TensorFlow Serving's
    /// PredictionService, on the gRPC port).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protocols: Vec<String>,
    /// `host:port` of the V2 gRPC service inside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_address: Option<String>,
    /// The version being served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The model's lifecycle, as KServe reports it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ModelState {
    Pending,
    Loading,
    Loaded,
    FailedToLoad,
}

/// The CRD as YAML, exactly what `wharf-server crd` prints.
pub fn crd_yaml() -> Result<String, serde_saphyr::ser::Error> {
    serde_saphyr::to_string(&InferenceService::crd())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(min: i32, max: i32) -> serde_json::Value {
        json!({
            "model": {"name": "fashion", "storageUri": "pvc://models/fashion"},
            "minReplicas": min,
            "maxReplicas": max,
        })
    }

    #[test]
    fn the_crd_names_group_version_kind_and_scope() {
        let crd = InferenceService::crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("inferenceservices.wharf.dev")
        );
        assert_eq!(crd.spec.group, "wharf.dev");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.kind, "InferenceService");
        assert_eq!(crd.spec.names.short_names, Some(vec!["isvc".to_string()]));
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(version.subresources.as_ref().unwrap().status.is_some());
    }

    #[test]
    fn min_replicas_above_max_is_refused_by_the_cel_rule() {
        assert!(InferenceServiceSpec::validate_cel(&spec(1, 3), None).is_ok());
        assert!(InferenceServiceSpec::validate_cel(&spec(2, 2), None).is_ok());
        let err = InferenceServiceSpec::validate_cel(&spec(3, 1), None).unwrap_err();
        assert!(
            format!("{err:?}").contains("minReplicas must be less than or equal"),
            "{err:?}"
        );
        let yaml = crd_yaml().unwrap();
        assert!(yaml.contains("x-kubernetes-validations"), "{yaml}");
        assert!(
            yaml.contains("self.minReplicas <= self.maxReplicas"),
            "{yaml}"
        );
    }

    #[test]
    fn field_rules_catch_bad_names_uris_and_versions() {
        for (model, says) in [
            (
                json!({"name": "Fashion!", "storageUri": "pvc://m"}),
                "lowercase name",
            ),
            (
                json!({"name": "fashion", "storageUri": "http://x"}),
                "pvc://, s3:// or file://",
            ),
            (
                json!({"name": "fashion", "storageUri": "pvc://m", "version": 0}),
                "positive integer",
            ),
        ] {
            let err = ModelSpec::validate_cel(&model, None).unwrap_err();
            assert!(format!("{err:?}").contains(says), "{model}: {err:?}");
        }
        let ok = json!({"name": "fashion-mnist", "storageUri": "s3://bucket/models", "version": 3});
        assert!(ModelSpec::validate_cel(&ok, None).is_ok());
    }

    #[test]
    fn replicas_default_to_one() {
        let spec: InferenceServiceSpec = serde_json::from_value(json!({
            "model": {"name": "fashion", "storageUri": "pvc://models"},
        }))
        .unwrap();
        assert_eq!((spec.min_replicas, spec.max_replicas), (1, 1));
    }

    #[test]
    fn the_chart_template_is_the_generated_crd() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/templates/crd.yaml");
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == crd_yaml().unwrap(),
            "{path} is out of date with src/crd.rs; regenerate it with \
             `cargo run -p wharf-server -- crd > charms/server/templates/crd.yaml`"
        );
    }
}
