//! The Kubeflow Pipelines v2 IR (`PipelineSpec`, what `kfp` compiles a pipeline to) as serde
//! types: exactly the subset `wharf pipeline compile` turns into an Argo Workflow.
//!
//! Every struct denies unknown fields, so a field outside the subset fails parsing with its JSON
//! path instead of being dropped. Fields that real `kfp` output carries but the compiler cannot
//! honour (loops, conditions, importers, caching…) are declared here as raw values so that
//! `compile` can reject them by name with the reason (see [`super::unsupported`]).
//!
//! Field names follow `pipeline_spec.proto` and `kubernetes_executor_config.proto` in their JSON
//! (camelCase) form, which is how `kfp` writes its YAML.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// The first document of a compiled pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelineSpec {
    pub pipeline_info: PipelineInfo,
    #[serde(default)]
    pub components: BTreeMap<String, ComponentSpec>,
    #[serde(default)]
    pub deployment_spec: DeploymentSpec,
    pub root: ComponentSpec,
    #[serde(default)]
    pub schema_version: Option<String>,
    #[serde(default)]
    pub sdk_version: Option<String>,
    /// Unsupported: artifacts go to the platform's S3 artifact repository.
    #[serde(default)]
    pub default_pipeline_root: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelineInfo {
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// A component (`components.<name>`) or the pipeline itself (`root`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComponentSpec {
    #[serde(default)]
    pub input_definitions: InputDefinitions,
    #[serde(default)]
    pub output_definitions: OutputDefinitions,
    /// The executor that runs it (a container component).
    #[serde(default)]
    pub executor_label: Option<String>,
    /// Its DAG: the root's tasks. A component with a DAG of its own is a sub-pipeline
    /// (`dsl.Condition`, `dsl.ParallelFor`, `dsl.ExitHandler`, a pipeline used as a component).
    #[serde(default)]
    pub dag: Option<Dag>,
    /// Unsupported: per-component platform settings.
    #[serde(default)]
    pub single_platform_specs: Option<Value>,
    /// Unsupported.
    #[serde(default)]
    pub task_config_passthroughs: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InputDefinitions {
    #[serde(default)]
    pub parameters: BTreeMap<String, ParameterSpec>,
    #[serde(default)]
    pub artifacts: BTreeMap<String, ArtifactSpec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutputDefinitions {
    #[serde(default)]
    pub parameters: BTreeMap<String, ParameterSpec>,
    #[serde(default)]
    pub artifacts: BTreeMap<String, ArtifactSpec>,
}

/// The type of a parameter: `STRING`, `NUMBER_INTEGER`, `NUMBER_DOUBLE`, `BOOLEAN`, `LIST`, `STRUCT`
/// (`TASK_FINAL_STATUS` is the exit handler's, unsupported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ParameterType {
    String,
    NumberInteger,
    NumberDouble,
    Boolean,
    List,
    Struct,
    TaskFinalStatus,
}

impl ParameterType {
    /// The name KFP writes.
    pub fn as_str(self) -> &'static str {
        match self {
            ParameterType::String => "STRING",
            ParameterType::NumberInteger => "NUMBER_INTEGER",
            ParameterType::NumberDouble => "NUMBER_DOUBLE",
            ParameterType::Boolean => "BOOLEAN",
            ParameterType::List => "LIST",
            ParameterType::Struct => "STRUCT",
            ParameterType::TaskFinalStatus => "TASK_FINAL_STATUS",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParameterSpec {
    pub parameter_type: ParameterType,
    #[serde(default)]
    pub default_value: Option<Value>,
    #[serde(default)]
    pub is_optional: bool,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArtifactSpec {
    #[serde(default)]
    pub artifact_type: Option<ArtifactType>,
    /// Unsupported when true: lists of artifacts come from `dsl.Collected` over a loop.
    #[serde(default)]
    pub is_artifact_list: bool,
    #[serde(default)]
    pub is_optional: bool,
    #[serde(default)]
    pub description: Option<String>,
}

/// `system.Model`, `system.Dataset`… only named: wharf keeps no MLMD lineage.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArtifactType {
    #[serde(default)]
    pub schema_title: Option<String>,
    #[serde(default)]
    pub schema_version: Option<String>,
    /// Unsupported: custom artifact types defined inline.
    #[serde(default)]
    pub instance_schema: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dag {
    #[serde(default)]
    pub tasks: BTreeMap<String, TaskSpec>,
    /// Unsupported: pipeline outputs.
    #[serde(default)]
    pub outputs: Option<Value>,
}

/// One task of the root DAG.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskSpec {
    #[serde(default)]
    pub task_info: Option<TaskInfo>,
    pub component_ref: ComponentRef,
    #[serde(default)]
    pub dependent_tasks: Vec<String>,
    #[serde(default)]
    pub inputs: TaskInputs,
    /// Checked: only `enableCache: false` (or nothing) compiles; Argo runs every step.
    #[serde(default)]
    pub caching_options: Option<CachingOptions>,
    /// Unsupported: `dsl.Condition` / `dsl.If`.
    #[serde(default)]
    pub trigger_policy: Option<Value>,
    /// Unsupported: `dsl.ParallelFor(parallelism=…)`.
    #[serde(default)]
    pub iterator_policy: Option<Value>,
    /// Unsupported: `dsl.ParallelFor` over parameters.
    #[serde(default)]
    pub parameter_iterator: Option<Value>,
    /// Unsupported: `dsl.ParallelFor` over artifacts.
    #[serde(default)]
    pub artifact_iterator: Option<Value>,
    /// Unsupported: `task.set_retry(…)`.
    #[serde(default)]
    pub retry_policy: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskInfo {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComponentRef {
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CachingOptions {
    #[serde(default)]
    pub enable_cache: bool,
    #[serde(default)]
    pub cache_key: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskInputs {
    #[serde(default)]
    pub parameters: BTreeMap<String, InputParameter>,
    #[serde(default)]
    pub artifacts: BTreeMap<String, InputArtifact>,
}

/// Where a task input parameter's value comes from: exactly one of the supported fields is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InputParameter {
    #[serde(default)]
    pub runtime_value: Option<RuntimeValue>,
    /// A pipeline parameter (`root.inputDefinitions.parameters`).
    #[serde(default)]
    pub component_input_parameter: Option<String>,
    #[serde(default)]
    pub task_output_parameter: Option<TaskOutputParameter>,
    /// Unsupported: the exit handler's status.
    #[serde(default)]
    pub task_final_status: Option<Value>,
    /// Unsupported: a CEL expression over the value.
    #[serde(default)]
    pub parameter_expression_selector: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuntimeValue {
    pub constant: Value,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskOutputParameter {
    pub producer_task: String,
    pub output_parameter_key: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InputArtifact {
    #[serde(default)]
    pub task_output_artifact: Option<TaskOutputArtifact>,
    /// Unsupported: pipeline-level artifact inputs and sub-pipeline artifacts.
    #[serde(default)]
    pub component_input_artifact: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskOutputArtifact {
    pub producer_task: String,
    pub output_artifact_key: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentSpec {
    #[serde(default)]
    pub executors: BTreeMap<String, Executor>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Executor {
    #[serde(default)]
    pub container: Option<Container>,
    /// Unsupported: `dsl.importer` (it records an MLMD artifact).
    #[serde(default)]
    pub importer: Option<Value>,
    /// Unsupported: Vertex AI's resolver.
    #[serde(default)]
    pub resolver: Option<Value>,
    /// Unsupported: Vertex AI custom jobs.
    #[serde(default)]
    pub custom_job: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Container {
    pub image: String,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    /// Unsupported: `set_cpu_limit` / `set_memory_limit` / accelerators.
    #[serde(default)]
    pub resources: Option<Value>,
    /// Unsupported: container lifecycle hooks.
    #[serde(default)]
    pub lifecycle: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

/// The optional second document: what the kfp-kubernetes extension adds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlatformSpec {
    #[serde(default)]
    pub platforms: Platforms,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Platforms {
    #[serde(default)]
    pub kubernetes: Option<KubernetesPlatform>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubernetesPlatform {
    #[serde(default)]
    pub deployment_spec: KubernetesDeploymentSpec,
    /// Unsupported: pipeline-wide Kubernetes settings.
    #[serde(default)]
    pub pipeline_config: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubernetesDeploymentSpec {
    #[serde(default)]
    pub executors: BTreeMap<String, KubernetesExecutorConfig>,
}

/// `KubernetesExecutorConfig`: of its many fields only `pvcMount` is in the subset; the others
/// are named so that they are rejected with the reason rather than as unknown.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubernetesExecutorConfig {
    #[serde(default)]
    pub pvc_mount: Vec<PvcMount>,
    #[serde(default)]
    pub secret_as_volume: Option<Value>,
    #[serde(default)]
    pub secret_as_env: Option<Value>,
    #[serde(default)]
    pub config_map_as_volume: Option<Value>,
    #[serde(default)]
    pub config_map_as_env: Option<Value>,
    #[serde(default)]
    pub node_selector: Option<Value>,
    #[serde(default)]
    pub tolerations: Option<Value>,
    #[serde(default)]
    pub node_affinity: Option<Value>,
    #[serde(default)]
    pub pod_metadata: Option<Value>,
    #[serde(default)]
    pub image_pull_secret: Option<Value>,
    #[serde(default)]
    pub image_pull_policy: Option<Value>,
    #[serde(default)]
    pub field_path_as_env: Option<Value>,
    #[serde(default)]
    pub active_deadline_seconds: Option<Value>,
    #[serde(default)]
    pub enabled_shared_memory: Option<Value>,
    #[serde(default)]
    pub empty_dir_mounts: Option<Value>,
    #[serde(default)]
    pub generic_ephemeral_volume: Option<Value>,
}

/// A PersistentVolumeClaim mounted into an executor's container. The claim is named by
/// `pvcNameParameter` (kfp-kubernetes ≥ 1.3) or, in older output, by `constant`; when both are
/// there `pvcNameParameter` wins, as in the KFP driver.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PvcMount {
    pub mount_path: String,
    #[serde(default)]
    pub constant: Option<String>,
    #[serde(default)]
    pub pvc_name_parameter: Option<InputParameter>,
    /// Unsupported: a claim created by an earlier task (`CreatePVC`).
    #[serde(default)]
    pub task_output_parameter: Option<Value>,
    /// Older output's form of a pipeline parameter naming the claim.
    #[serde(default)]
    pub component_input_parameter: Option<String>,
    /// Unsupported: sub-paths of a claim.
    #[serde(default)]
    pub sub_path: Option<Value>,
}
