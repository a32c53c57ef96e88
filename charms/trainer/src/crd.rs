//! The `TrainJob` custom resource (`wharf.dev/v1alpha1`): what the operator ([`crate::operator`])
//! turns into a Kubernetes Job running `wharf-trainer train`. The Rust type is the source of truth;
//! `wharf-trainer crd` prints the CRD YAML and a test keeps `charms/trainer/templates/crd.yaml`
//! identical to it.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types the operator maintains in `status.conditions`.
pub const CONDITION_CREATED: &str = "Created";
pub const CONDITION_RUNNING: &str = "Running";
pub const CONDITION_SUCCEEDED: &str = "Succeeded";
pub const CONDITION_FAILED: &str = "Failed";

/// Train one Fashion-MNIST model and write its artifact to `output.uri`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "wharf.dev",
    version = "v1alpha1",
    kind = "TrainJob",
    plural = "trainjobs",
    shortname = "tj",
    category = "wharf",
    namespaced,
    status = "TrainJobStatus",
    printcolumn = r#"{"name":"STATE","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"MODEL","type":"string","jsonPath":".spec.model"}"#,
    printcolumn = r#"{"name":"ACCURACY","type":"number","jsonPath":".status.metrics.testAccuracy"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TrainJobSpec {
    /// Architecture to train.
    pub model: ModelKind,
    /// Passes over the training set.
    #[schemars(range(min = 1))]
    pub epochs: u32,
    /// Examples per optimiser step. Unset: the trainer's default for the model (mlp 32, cnn 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub batch_size: Option<u32>,
    /// Adam learning rate (greater than 0). Unset: the trainer's default for the model (mlp 0.001
    /// constant, cnn 0.002 with a cosine decay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // OpenAPI v3.0 (what CRDs use) spells an exclusive bound as minimum + exclusiveMinimum: true.
    #[schemars(extend("minimum" = 0, "exclusiveMinimum" = true))]
    pub learning_rate: Option<f64>,
    /// Seed for initialisation and shuffling: the same seed gives the same model.
    #[serde(default)]
    pub seed: u64,
    /// Where the Fashion-MNIST IDX files are.
    pub dataset: Location,
    /// Where the artifact is written (a new numbered version under it).
    pub output: Location,
    /// CPU and memory for the training container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Retries of a failed training pod before the TrainJob fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub backoff_limit: Option<i32>,
    /// Wall-clock limit of the whole job, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Mlp,
    Cnn,
}

/// A storage location: `pvc://<claim>/<path>`, `s3://<bucket>/<prefix>` or `file:///<path>`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct Location {
    #[schemars(regex(pattern = r"^(pvc|s3|file)://.+"))]
    pub uri: String,
}

/// What the operator observed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrainJobStatus {
    /// Created, Running, Succeeded or Failed: the latest condition, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Created, Running, Succeeded and Failed, each with its observedGeneration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// The final metrics the trainer reported in its termination message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<TrainMetrics>,
    /// Where the artifact was written (the version directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_uri: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrainMetrics {
    pub test_accuracy: f64,
    pub train_accuracy: f64,
    pub loss: f64,
    pub epochs: u32,
}

/// The CRD as YAML, exactly what `wharf-trainer crd` prints.
pub fn crd_yaml() -> Result<String, serde_saphyr::ser::Error> {
    serde_saphyr::to_string(&TrainJob::crd())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_crd_yaml_matches_the_rust_type() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/templates/crd.yaml");
        let on_disk = std::fs::read_to_string(path).unwrap_or_else(|e| {
            panic!("{path}: {e}; regenerate with `wharf-trainer crd > {path}`")
        });
        assert!(
            on_disk == crd_yaml().unwrap(),
            "{path} differs from the TrainJob type; regenerate with `cargo run -p wharf-trainer -- crd > {path}`"
        );
    }

    #[test]
    fn crd_has_the_validation_and_columns() {
        let crd = serde_json::to_value(TrainJob::crd()).unwrap();
        let version = &crd["spec"]["versions"][0];
        let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(spec["properties"]["epochs"]["minimum"], 1.0);
        assert_eq!(spec["properties"]["learningRate"]["exclusiveMinimum"], true);
        assert_eq!(spec["properties"]["learningRate"]["minimum"], 0.0);
        assert_eq!(
            spec["properties"]["model"]["enum"],
            serde_json::json!(["mlp", "cnn"])
        );
        let columns: Vec<_> = version["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(columns, ["STATE", "MODEL", "ACCURACY", "AGE"]);
        assert_eq!(crd["metadata"]["name"], "trainjobs.wharf.dev");
    }

    #[test]
    fn a_spec_without_batch_size_or_learning_rate_leaves_them_to_the_trainer() {
        let spec: TrainJobSpec = serde_json::from_value(serde_json::json!({
            "model": "cnn", "epochs": 3,
            "dataset": {"uri": "pvc://data/fashion"}, "output": {"uri": "s3://models/fashion"}
        }))
        .unwrap();
        assert_eq!(
            (spec.model, spec.batch_size, spec.learning_rate),
            (ModelKind::Cnn, None, None)
        );
    }
}
