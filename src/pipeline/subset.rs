//! The KFP features outside the subset `wharf pipeline compile` covers, found by their JSON path
//! in the IR and refused with what they are (in `kfp`'s Python terms) and what to do instead.
//! Unknown fields never get this far: the IR types deny them when parsing.

use serde_json::Value;

use super::Error;
use super::ir::{
    ArtifactSpec, ComponentSpec, InputDefinitions, KubernetesPlatform, OutputDefinitions,
    ParameterType, PipelineSpec,
};

/// The document names the errors use: the pipeline's, and the platform section's.
pub struct Docs<'a> {
    pub pipeline: &'a str,
    pub platform: &'a str,
}

struct Check<'a> {
    doc: &'a str,
}

impl Check<'_> {
    fn refuse(&self, path: String, feature: &str, fix: &str) -> Error {
        Error::Unsupported {
            doc: self.doc.to_string(),
            path,
            feature: feature.to_string(),
            fix: fix.to_string(),
        }
    }

    /// Refuse `value` at `path` when it is there (an empty map or list counts as absent: kfp
    /// writes some of them empty).
    fn absent(
        &self,
        value: &Option<Value>,
        path: String,
        feature: &str,
        fix: &str,
    ) -> Result<(), Error> {
        match value {
            None | Some(Value::Null) => Ok(()),
            Some(Value::Object(m)) if m.is_empty() => Ok(()),
            Some(Value::Array(a)) if a.is_empty() => Ok(()),
            Some(_) => Err(self.refuse(path, feature, fix)),
        }
    }
}

const EXIT_HANDLER: &str = "the exit handler's task status (dsl.PipelineTaskFinalStatus)";
const NO_EXIT_HANDLER: &str = "leave dsl.ExitHandler out";

/// Refuse the first feature outside the subset, in document order.
pub fn check(
    spec: &PipelineSpec,
    platform: Option<&KubernetesPlatform>,
    docs: &Docs,
) -> Result<(), Error> {
    let c = Check { doc: docs.pipeline };
    c.absent(
        &spec.default_pipeline_root,
        "defaultPipelineRoot".into(),
        "a pipeline root",
        "artifacts go to the platform's S3 artifact repository; compile without `pipeline_root`",
    )?;
    root(&c, &spec.root)?;
    for (name, component) in &spec.components {
        self::component(&c, &format!("components.{name}"), component)?;
    }
    let no_tasks = Default::default();
    let tasks = spec.root.dag.as_ref().map_or(&no_tasks, |d| &d.tasks);
    for (name, task) in tasks {
        let at = format!("root.dag.tasks.{name}");
        if let Some(caching) = &task.caching_options {
            if caching.enable_cache {
                return Err(c.refuse(
                    format!("{at}.cachingOptions.enableCache"),
                    "execution caching",
                    "Argo runs every step; compile with `kfp dsl compile \
                     --disable-execution-caching-by-default` or call \
                     `task.set_caching_options(False)`",
                ));
            }
            c.absent(
                &caching.cache_key,
                format!("{at}.cachingOptions.cacheKey"),
                "cache keys",
                "remove the cache key",
            )?;
        }
        c.absent(
            &task.trigger_policy,
            format!("{at}.triggerPolicy"),
            "conditions (dsl.If / dsl.Condition)",
            "run the step unconditionally, or decide inside the component",
        )?;
        c.absent(
            &task.iterator_policy,
            format!("{at}.iteratorPolicy"),
            "loop parallelism (dsl.ParallelFor(parallelism=…))",
            "loops are not compiled; write the iterations out as tasks",
        )?;
        c.absent(
            &task.parameter_iterator,
            format!("{at}.parameterIterator"),
            "loops over parameters (dsl.ParallelFor)",
            "write the iterations out as tasks",
        )?;
        c.absent(
            &task.artifact_iterator,
            format!("{at}.artifactIterator"),
            "loops over artifacts (dsl.ParallelFor)",
            "write the iterations out as tasks",
        )?;
        c.absent(
            &task.retry_policy,
            format!("{at}.retryPolicy"),
            "retries (task.set_retry)",
            "remove the retry policy",
        )?;
        for (input, p) in &task.inputs.parameters {
            let at = format!("{at}.inputs.parameters.{input}");
            c.absent(
                &p.task_final_status,
                format!("{at}.taskFinalStatus"),
                EXIT_HANDLER,
                NO_EXIT_HANDLER,
            )?;
            c.absent(
                &p.parameter_expression_selector,
                format!("{at}.parameterExpressionSelector"),
                "parameter expressions",
                "pass the whole value and select inside the component",
            )?;
        }
        for (input, a) in &task.inputs.artifacts {
            c.absent(
                &a.component_input_artifact,
                format!("{at}.inputs.artifacts.{input}.componentInputArtifact"),
                "pipeline artifact inputs",
                "produce the artifact in a task of the pipeline (artifacts pass between tasks)",
            )?;
        }
    }
    for (name, executor) in &spec.deployment_spec.executors {
        let at = format!("deploymentSpec.executors.{name}");
        c.absent(
            &executor.importer,
            format!("{at}.importer"),
            "importers (dsl.importer), which record artifacts in MLMD",
            "read the data inside a component, from S3 or a mounted volume",
        )?;
        c.absent(
            &executor.resolver,
            format!("{at}.resolver"),
            "Vertex AI's resolver",
            "remove it",
        )?;
        c.absent(
            &executor.custom_job,
            format!("{at}.customJob"),
            "Vertex AI custom jobs",
            "use a container component",
        )?;
        if let Some(container) = &executor.container {
            c.absent(
                &container.resources,
                format!("{at}.container.resources"),
                "resource requests and limits (set_cpu_limit, set_memory_limit, accelerators)",
                "remove them; the namespace's LimitRange applies",
            )?;
            c.absent(
                &container.lifecycle,
                format!("{at}.container.lifecycle"),
                "container lifecycle hooks",
                "remove them",
            )?;
        }
    }
    if let Some(k8s) = platform {
        kubernetes(&Check { doc: docs.platform }, k8s)?;
    }
    Ok(())
}

fn root(c: &Check, root: &ComponentSpec) -> Result<(), Error> {
    if root.executor_label.is_some() {
        return Err(c.refuse(
            "root.executorLabel".into(),
            "a pipeline that is a single container",
            "compile a @dsl.pipeline that calls the component",
        ));
    }
    if let Some((name, _)) = root.input_definitions.artifacts.iter().next() {
        return Err(c.refuse(
            format!("root.inputDefinitions.artifacts.{name}"),
            "pipeline artifact inputs",
            "produce the artifact in a task of the pipeline",
        ));
    }
    for (name, p) in &root.input_definitions.parameters {
        if p.parameter_type == ParameterType::TaskFinalStatus {
            return Err(c.refuse(
                format!("root.inputDefinitions.parameters.{name}.parameterType"),
                EXIT_HANDLER,
                NO_EXIT_HANDLER,
            ));
        }
    }
    let outputs = &root.output_definitions;
    if let Some(name) = outputs
        .parameters
        .keys()
        .chain(outputs.artifacts.keys())
        .next()
    {
        let kind = if outputs.parameters.contains_key(name) {
            "parameters"
        } else {
            "artifacts"
        };
        return Err(c.refuse(format!("root.outputDefinitions.{kind}.{name}"), "pipeline outputs", "return nothing from the pipeline; the steps' artifacts stay in the S3 artifact repository"));
    }
    if let Some(dag) = &root.dag {
        c.absent(
            &dag.outputs,
            "root.dag.outputs".into(),
            "pipeline outputs",
            "return nothing from the pipeline",
        )?;
    }
    c.absent(
        &root.single_platform_specs,
        "root.singlePlatformSpecs".into(),
        "single-platform specs",
        "remove them",
    )?;
    c.absent(
        &root.task_config_passthroughs,
        "root.taskConfigPassthroughs".into(),
        "task config passthroughs",
        "remove them",
    )
}

fn component(c: &Check, at: &str, component: &ComponentSpec) -> Result<(), Error> {
    if component.dag.is_some() {
        return Err(c.refuse(
            format!("{at}.dag"),
            "components with a DAG of their own (dsl.Condition, dsl.ParallelFor, dsl.ExitHandler, a pipeline used as a component)",
            "flatten the pipeline: every task in the root DAG, each a container component",
        ));
    }
    c.absent(
        &component.single_platform_specs,
        format!("{at}.singlePlatformSpecs"),
        "single-platform specs",
        "remove them",
    )?;
    c.absent(
        &component.task_config_passthroughs,
        format!("{at}.taskConfigPassthroughs"),
        "task config passthroughs",
        "remove them",
    )?;
    inputs(
        c,
        &format!("{at}.inputDefinitions"),
        &component.input_definitions,
    )?;
    outputs(
        c,
        &format!("{at}.outputDefinitions"),
        &component.output_definitions,
    )
}

fn inputs(c: &Check, at: &str, defs: &InputDefinitions) -> Result<(), Error> {
    for (name, p) in &defs.parameters {
        if p.parameter_type == ParameterType::TaskFinalStatus {
            return Err(c.refuse(
                format!("{at}.parameters.{name}.parameterType"),
                EXIT_HANDLER,
                NO_EXIT_HANDLER,
            ));
        }
    }
    artifacts(c, &format!("{at}.artifacts"), defs.artifacts.iter())
}

fn outputs(c: &Check, at: &str, defs: &OutputDefinitions) -> Result<(), Error> {
    artifacts(c, &format!("{at}.artifacts"), defs.artifacts.iter())
}

fn artifacts<'a>(
    c: &Check,
    at: &str,
    all: impl Iterator<Item = (&'a String, &'a ArtifactSpec)>,
) -> Result<(), Error> {
    for (name, a) in all {
        if a.is_artifact_list {
            return Err(c.refuse(
                format!("{at}.{name}.isArtifactList"),
                "lists of artifacts (dsl.Collected, List[Artifact])",
                "pass one artifact per input",
            ));
        }
        if let Some(t) = &a.artifact_type {
            c.absent(
                &t.instance_schema,
                format!("{at}.{name}.artifactType.instanceSchema"),
                "custom artifact types",
                "use one of KFP's system types (Artifact, Dataset, Model, Metrics…)",
            )?;
        }
    }
    Ok(())
}

/// The kfp-kubernetes settings besides `pvcMount`, by the function that writes each.
fn kubernetes(c: &Check, k8s: &KubernetesPlatform) -> Result<(), Error> {
    c.absent(
        &k8s.pipeline_config,
        "platforms.kubernetes.pipelineConfig".into(),
        "pipeline-wide Kubernetes settings",
        "remove them",
    )?;
    for (name, e) in &k8s.deployment_spec.executors {
        let at = format!("platforms.kubernetes.deploymentSpec.executors.{name}");
        let others: [(&Option<Value>, &str, &str); 15] = [
            (
                &e.secret_as_volume,
                "secretAsVolume",
                "kubernetes.use_secret_as_volume",
            ),
            (
                &e.secret_as_env,
                "secretAsEnv",
                "kubernetes.use_secret_as_env",
            ),
            (
                &e.config_map_as_volume,
                "configMapAsVolume",
                "kubernetes.use_config_map_as_volume",
            ),
            (
                &e.config_map_as_env,
                "configMapAsEnv",
                "kubernetes.use_config_map_as_env",
            ),
            (
                &e.node_selector,
                "nodeSelector",
                "kubernetes.add_node_selector",
            ),
            (&e.tolerations, "tolerations", "kubernetes.add_toleration"),
            (
                &e.node_affinity,
                "nodeAffinity",
                "kubernetes.add_node_affinity",
            ),
            (
                &e.pod_metadata,
                "podMetadata",
                "kubernetes.add_pod_label / add_pod_annotation",
            ),
            (
                &e.image_pull_secret,
                "imagePullSecret",
                "kubernetes.set_image_pull_secrets",
            ),
            (
                &e.image_pull_policy,
                "imagePullPolicy",
                "kubernetes.set_image_pull_policy",
            ),
            (
                &e.field_path_as_env,
                "fieldPathAsEnv",
                "kubernetes.use_field_path_as_env",
            ),
            (
                &e.active_deadline_seconds,
                "activeDeadlineSeconds",
                "kubernetes.set_timeout",
            ),
            (
                &e.enabled_shared_memory,
                "enabledSharedMemory",
                "kubernetes.add_shared_memory",
            ),
            (
                &e.empty_dir_mounts,
                "emptyDirMounts",
                "kubernetes.empty_dir_mount",
            ),
            (
                &e.generic_ephemeral_volume,
                "genericEphemeralVolume",
                "kubernetes.add_ephemeral_volume",
            ),
        ];
        for (value, field, function) in others {
            c.absent(
                value,
                format!("{at}.{field}"),
                &format!("`{function}`"),
                "of kfp-kubernetes, only `kubernetes.mount_pvc` is compiled; remove the call",
            )?;
        }
        for (i, m) in e.pvc_mount.iter().enumerate() {
            let at = format!("{at}.pvcMount[{i}]");
            c.absent(
                &m.task_output_parameter,
                format!("{at}.taskOutputParameter"),
                "mounting a claim an earlier task created (kubernetes.CreatePVC)",
                "create the claim before the run and mount it by name or by a pipeline parameter",
            )?;
            c.absent(
                &m.sub_path,
                format!("{at}.subPath"),
                "sub-paths of a claim",
                "mount the claim and use the sub-directory in the component",
            )?;
        }
    }
    Ok(())
}
