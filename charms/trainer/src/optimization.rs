//! The `OptimizationJob` custom resource (`wharf.dev/v1alpha1`): hyperparameter tuning over
//! TrainJobs, in the shape of Kubeflow Trainer's OptimizationJob (objectives, a search algorithm,
//! parameters, a trial budget and a TrainJob template). The operator
//! ([`crate::operator::optimize`]) creates one TrainJob per trial, reads each trial's metric from
//! the TrainJob's status and records every trial and the best one here.
//!
//! The group is wharf's own, `wharf.dev`, like the TrainJob it tunes: the `trainer.kubeflow.org`
//! names belong to upstream's CRDs, which wharf must never replace on a cluster that has them
//! (README, "Kubeflow Trainer v2"). `wharf-trainer crd` prints this CRD after the TrainJob's, and a
//! test keeps `charms/trainer/templates/optimizationjob-crd.yaml` identical to the type.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::crd::TrainJobSpec;

/// Tune a TrainJob's hyperparameters: run up to `numTrials` TrainJobs from `trainJobTemplate`,
/// each with parameters the search algorithm proposes, and keep the best by the objective.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "wharf.dev",
    version = "v1alpha1",
    kind = "OptimizationJob",
    plural = "optimizationjobs",
    shortname = "oj",
    category = "wharf",
    namespaced,
    status = "OptimizationJobStatus",
    printcolumn = r#"{"name":"STATE","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"TRIALS","type":"string","jsonPath":".status.progress","description":"finished / planned trials"}"#,
    printcolumn = r#"{"name":"BEST","type":"number","jsonPath":".status.result.value"}"#,
    printcolumn = r#"{"name":"ALGORITHM","type":"string","jsonPath":".spec.searchAlgorithm.name"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct OptimizationJobSpec {
    /// What to optimise: exactly one metric and its direction (a list, as upstream, so that
    /// multi-objective search can come without a new version).
    #[schemars(length(min = 1, max = 1))]
    pub objectives: Vec<Objective>,
    /// How the next trial's parameters are chosen.
    pub search_algorithm: SearchAlgorithm,
    /// The search space: each parameter sets one field of the TrainJob spec.
    #[schemars(length(min = 1))]
    pub parameters: Vec<Parameter>,
    /// How many trials (TrainJobs) to run at most; a grid smaller than this runs once.
    #[schemars(range(min = 1, max = 1000))]
    pub num_trials: u32,
    /// How many trials run at the same time.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub parallel_trials: u32,
    /// The OptimizationJob fails, and starts no more trials, once more trials than this failed.
    /// Unset: failed trials are counted but never stop the search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_failed_trials: Option<u32>,
    /// The TrainJob every trial starts from (wharf's built-in trainer: `model`); the parameters
    /// replace its fields, and each trial writes to `<output.uri>/<trial name>`.
    pub train_job_template: TrainJobSpec,
}

fn one() -> u32 {
    1
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Objective {
    /// The TrainJob metric: `accuracy` (held-out, `status.metrics.testAccuracy`), `loss` or
    /// `trainAccuracy`.
    pub metric: Metric,
    pub direction: Direction,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Metric {
    Accuracy,
    Loss,
    TrainAccuracy,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    Maximize,
    Minimize,
}

impl Direction {
    /// True when `a` is strictly better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Direction::Maximize => a > b,
            Direction::Minimize => a < b,
        }
    }

    /// The value as a loss (lower is better), so search algorithms need not know the direction.
    pub fn as_loss(self, value: f64) -> f64 {
        match self {
            Direction::Maximize => -value,
            Direction::Minimize => value,
        }
    }
}

/// The search algorithm and its settings; a setting another algorithm reads is ignored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchAlgorithm {
    pub name: AlgorithmName,
    /// random, tpe, hyperband: the same seed and the same finished trials give the same proposal.
    #[serde(default)]
    pub seed: u64,
    /// grid: points of a `uniform` or `logUniform` parameter (default 3); `intUniform` and
    /// `categorical` parameters contribute all their values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 100))]
    pub grid_points: Option<u32>,
    /// tpe: random trials before the model proposes (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub startup_trials: Option<u32>,
    /// hyperband: the reduction factor; at each rung only the best 1/eta of the trials that
    /// reached it continue (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2))]
    pub eta: Option<u32>,
    /// hyperband: the epochs of the first rung (default 1); the template's `epochs` is the most
    /// any trial trains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_epochs: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AlgorithmName {
    /// Independent uniform draws (upstream's `random`).
    Random,
    /// Every combination, in order (upstream's `grid`).
    Grid,
    /// Tree-structured Parzen Estimator: draws where good trials were dense and bad ones sparse.
    Tpe,
    /// Random draws, trials stopped early at rungs (asynchronous successive halving in brackets).
    Hyperband,
}

/// One dimension of the search space.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Parameter {
    /// The TrainJob spec field it sets.
    pub name: ParameterName,
    pub distribution: Distribution,
    /// Lower bound (uniform, logUniform, intUniform).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Upper bound, included (uniform, logUniform, intUniform).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The choices (categorical).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<f64>>,
}

/// The TrainJob spec fields a parameter can set.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum ParameterName {
    LearningRate,
    BatchSize,
    Epochs,
}

impl ParameterName {
    /// The field's name as written in YAML (and in `status.trials[].parameters`).
    pub fn as_str(self) -> &'static str {
        match self {
            ParameterName::LearningRate => "learningRate",
            ParameterName::BatchSize => "batchSize",
            ParameterName::Epochs => "epochs",
        }
    }

    /// Whole numbers only (batchSize, epochs): proposals are rounded.
    pub fn is_integer(self) -> bool {
        !matches!(self, ParameterName::LearningRate)
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Distribution {
    /// Any number in [min, max].
    Uniform,
    /// Any number in [min, max], uniform in its logarithm (min > 0): learning rates.
    LogUniform,
    /// A whole number in [min, max].
    IntUniform,
    /// One of `values`.
    Categorical,
}

/// What the operator observed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OptimizationJobStatus {
    /// Running, Succeeded or Failed: the latest condition, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// `finished/planned` trials, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    #[serde(default)]
    pub succeeded_trials: u32,
    #[serde(default)]
    pub failed_trials: u32,
    #[serde(default)]
    pub early_stopped_trials: u32,
    /// Created or running now.
    #[serde(default)]
    pub active_trials: u32,
    /// Every trial, by index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trials: Vec<Trial>,
    /// The best succeeded trial so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<TrialResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
}

/// One trial: a TrainJob and what came of it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Trial {
    /// The TrainJob's name: `<OptimizationJob>-trial-<index>`.
    pub name: String,
    pub index: u32,
    /// The values set on the TrainJob, by field name.
    pub parameters: BTreeMap<String, f64>,
    pub state: TrialState,
    /// The objective metric: the last epoch's (the one the artifact holds) for a finished trial,
    /// the rung's for an early-stopped one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The objective at each hyperband rung the trial reached.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rungs: Vec<RungValue>,
    /// Why it failed or stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The artifact the trial wrote (succeeded trials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_uri: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TrialState {
    Created,
    Running,
    Succeeded,
    Failed,
    /// Stopped by hyperband at a rung: its TrainJob was deleted.
    EarlyStopped,
}

impl TrialState {
    pub fn is_active(self) -> bool {
        matches!(self, TrialState::Created | TrialState::Running)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TrialState::Created => "Created",
            TrialState::Running => "Running",
            TrialState::Succeeded => "Succeeded",
            TrialState::Failed => "Failed",
            TrialState::EarlyStopped => "EarlyStopped",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RungValue {
    pub epoch: u32,
    pub value: f64,
}

/// The best trial.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrialResult {
    pub trial_name: String,
    /// The TrainJob that trained it (named like the trial).
    pub train_job: String,
    pub parameters: BTreeMap<String, f64>,
    pub value: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_uri: Option<String>,
}

/// The CRD as YAML, exactly what the second document of `wharf-trainer crd` is.
pub fn crd_yaml() -> Result<String, serde_saphyr::ser::Error> {
    serde_saphyr::to_string(&OptimizationJob::crd())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_crd_yaml_matches_the_rust_type() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/templates/optimizationjob-crd.yaml"
        );
        let on_disk = std::fs::read_to_string(path).unwrap_or_else(|e| {
            panic!(
                "{path}: {e}; regenerate with `wharf-trainer crd --kind optimizationjob > {path}`"
            )
        });
        assert!(
            on_disk == crd_yaml().unwrap(),
            "{path} differs from the OptimizationJob type; regenerate with `cargo run -p \
             wharf-trainer -- crd --kind optimizationjob > {path}`"
        );
    }

    #[test]
    fn crd_has_the_columns_and_bounds() {
        let crd = serde_json::to_value(OptimizationJob::crd()).unwrap();
        assert_eq!(crd["metadata"]["name"], "optimizationjobs.wharf.dev");
        let version = &crd["spec"]["versions"][0];
        let columns: Vec<_> = version["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["jsonPath"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            columns,
            [
                ".status.state",
                ".status.progress",
                ".status.result.value",
                ".spec.searchAlgorithm.name",
                ".metadata.creationTimestamp"
            ]
        );
        let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(spec["properties"]["objectives"]["maxItems"], 1);
        assert_eq!(spec["properties"]["numTrials"]["minimum"], 1.0);
        assert_eq!(
            spec["properties"]["searchAlgorithm"]["properties"]["name"]["enum"],
            serde_json::json!(["random", "grid", "tpe", "hyperband"])
        );
        // The template is a whole TrainJob spec, with the TrainJob's own CEL rule.
        let template = &spec["properties"]["trainJobTemplate"];
        assert_eq!(
            template["x-kubernetes-validations"][0]["rule"],
            "has(self.model) != has(self.trainer)"
        );
    }
}
