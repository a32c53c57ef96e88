//! The `TrainJob` custom resource (`wharf.dev/v1alpha1`): what the operator ([`crate::operator`])
//! turns into a Kubernetes Job running `wharf-trainer train` (`spec.model`) or the user's own
//! container (`spec.trainer`, in the shape of Kubeflow Trainer v2's `trainer` block), and the status
//! it reports back: conditions, final metrics and the per-epoch history ([`crate::progress`]).
//! The Rust type is the source of truth;
//! `wharf-trainer crd` prints the CRD YAML and a test keeps `charms/trainer/templates/crd.yaml`
//! identical to it.

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types the operator maintains in `status.conditions`.
pub const CONDITION_CREATED: &str = "Created";
pub const CONDITION_RUNNING: &str = "Running";
pub const CONDITION_SUCCEEDED: &str = "Succeeded";
pub const CONDITION_FAILED: &str = "Failed";

/// Train one model and write its artifact to `output.uri`: one of wharf's Fashion-MNIST models
/// (`model`), or whatever your own container (`trainer`) trains.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
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
// The API server refuses both or neither at once (CEL, Kubernetes 1.25+); the operator checks
// again (job::validate), so a cluster that skipped the rule still gets an InvalidSpec condition.
#[x_kube(
    validation = Rule::new("has(self.model) != has(self.trainer)").message("set exactly one of spec.model (wharf's built-in trainer: mlp or cnn) and spec.trainer (your own container: spec.trainer.image)")
)]
pub struct TrainJobSpec {
    /// Architecture for wharf's built-in trainer: mlp or cnn. Exactly one of `model` and `trainer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelKind>,
    /// Your own training container instead of the built-in trainer. Exactly one of `model` and
    /// `trainer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainer: Option<ContainerTrainer>,
    /// Passes over the training set (built-in trainer). Unset: the trainer's default (10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub epochs: Option<u32>,
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
    /// Seed for initialisation and shuffling (built-in trainer): the same seed gives the same model.
    #[serde(default)]
    pub seed: u64,
    /// Where the Fashion-MNIST IDX files are.
    pub dataset: Location,
    /// Where the artifact is written (a new numbered version under it).
    pub output: Location,
    /// CPU and memory for the training container (with `trainer`, set them there instead).
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

/// A training container of your own (Kubeflow Trainer v2's `trainer` block, without its
/// multi-node fields). It runs with the dataset and output the TrainJob names: `WHARF_DATASET_URI`
/// and `WHARF_OUTPUT_URI` always, `WHARF_DATASET_DIR` / `WHARF_OUTPUT_DIR` for `pvc://` and
/// `file://` (mounted there), S3 credentials as `AWS_*` for `s3://`; and reports progress as JSON
/// lines on stdout (see `crate::progress`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerTrainer {
    /// The image to run, e.g. `ghcr.io/me/train:1.0` (a digest pins it).
    #[schemars(length(min = 1))]
    pub image: String,
    /// The entrypoint; unset: the image's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Arguments to the entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// More environment variables (names wharf sets itself, WHARF_* and AWS_*, are refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    /// CPU and memory for the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
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
    /// The final metrics: the trainer's termination message, else its last epoch line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<TrainMetrics>,
    /// Per-epoch metrics from the training container's JSON lines, read while it runs, oldest
    /// first; the most recent `progress::MAX_EPOCHS` (500) are kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub epochs: Vec<EpochMetrics>,
    /// Where the artifact was written (the version directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_uri: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrainMetrics {
    pub test_accuracy: f64,
    /// Reported by the built-in trainer; a container's final line may leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_accuracy: Option<f64>,
    pub loss: f64,
    pub epochs: u32,
}

/// One epoch of `status.epochs`: what one JSON line of the trainer said.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EpochMetrics {
    pub epoch: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    /// The held-out accuracy (the built-in trainer's `test_accuracy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_accuracy: Option<f64>,
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
        // Optional since spec.trainer: `null` is in the enum, allowed by `nullable: true`.
        assert_eq!(
            spec["properties"]["model"]["enum"],
            serde_json::json!(["mlp", "cnn", null])
        );
        assert_eq!(spec["properties"]["model"]["nullable"], true);
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
            (Some(ModelKind::Cnn), None, None)
        );
    }

    #[test]
    fn the_crd_refuses_both_or_neither_trainer_with_a_cel_rule() {
        let crd = serde_json::to_value(TrainJob::crd()).unwrap();
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let rules = spec["x-kubernetes-validations"].as_array().unwrap();
        assert_eq!(rules[0]["rule"], "has(self.model) != has(self.trainer)");
        assert!(
            rules[0]["message"]
                .as_str()
                .unwrap()
                .contains("spec.trainer.image")
        );
        let required: Vec<&str> = spec["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        assert_eq!(
            required,
            ["dataset", "output"],
            "model and epochs became optional"
        );
        let image = &spec["properties"]["trainer"]["properties"]["image"];
        assert_eq!(image["minLength"], 1);
    }
}
