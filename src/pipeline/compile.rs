//! KFP IR → Argo Workflow. The root DAG becomes one DAG template (`pipeline`), each component a
//! container template named after it, each task a DAG task:
//!
//! - pipeline parameters (`root.inputDefinitions`) → `spec.arguments.parameters`, with their
//!   defaults; tasks read them as `{{workflow.parameters.x}}`;
//! - `runtimeValue.constant` → the argument's value (numbers, booleans as text, lists and structs
//!   as JSON, as KFP passes them);
//! - `taskOutputParameter` → `{{tasks.P.outputs.parameters.K}}`, the producer's template reading
//!   the file its executor wrote (`outputs.parameters[].valueFrom.path`);
//! - `taskOutputArtifact` → `from: {{tasks.P.outputs.artifacts.K}}`: Argo uploads the producer's
//!   output to the artifact repository (the platform's S3 store) and downloads it for the consumer;
//! - `dependentTasks` (and every producer a task reads from) → `dependencies`;
//! - kfp-kubernetes `pvcMount` → a Workflow volume per claim and a `volumeMount` in the template.
//!
//! The checks that refuse features outside the subset run first (`subset`); this module refuses
//! what is inconsistent: references to undefined components, tasks, inputs or outputs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use k8s_openapi::api::core::v1::{
    Container, EnvVar, PersistentVolumeClaimVolumeSource, Volume, VolumeMount,
};
use regex::Regex;
use serde_json::Value;

use super::argo::{self, Arguments, Artifact, Dag, DagTask, Io, Parameter, Template, ValueFrom};
use super::ir::{ComponentSpec, InputParameter, ParameterType, PipelineSpec, PvcMount, TaskSpec};
use super::placeholder::{self, Declared, Problem};
use super::{Error, Pipeline, subset};

/// The DAG template the Workflow starts at.
pub const ENTRYPOINT: &str = "pipeline";
/// The label naming the pipeline a Workflow was compiled from (`kubectl get wf -l …`).
pub const PIPELINE_LABEL: &str = "wharf.dev/pipeline";
/// The name of every step's container, as Argo names it.
const CONTAINER: &str = "main";

/// Argo's rule for template and DAG task names.
static ARGO_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9][-a-zA-Z0-9]{0,127}$").expect("valid regex"));
/// Argo's rule for parameter and artifact names.
static IO_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[-a-zA-Z0-9_]+$").expect("valid regex"));

struct Ctx<'a> {
    doc: &'a str,
    platform_doc: &'a str,
    spec: &'a PipelineSpec,
}

impl Ctx<'_> {
    fn invalid(&self, path: impl Into<String>, why: impl Into<String>) -> Error {
        Error::Invalid {
            doc: self.doc.to_string(),
            path: path.into(),
            why: why.into(),
        }
    }
}

/// Compile a parsed pipeline to its Workflow.
pub fn compile(pipeline: &Pipeline) -> Result<argo::Workflow, Error> {
    let platform = pipeline
        .platform
        .as_ref()
        .and_then(|p| p.platforms.kubernetes.as_ref());
    subset::check(
        &pipeline.spec,
        platform,
        &subset::Docs {
            pipeline: &pipeline.doc,
            platform: &pipeline.platform_doc,
        },
    )?;
    let cx = Ctx {
        doc: &pipeline.doc,
        platform_doc: &pipeline.platform_doc,
        spec: &pipeline.spec,
    };
    let spec = &pipeline.spec;
    let Some(dag) = &spec.root.dag else {
        return Err(cx.invalid("root.dag", "missing: the pipeline has no DAG of tasks"));
    };
    if dag.tasks.is_empty() {
        return Err(cx.invalid("root.dag.tasks", "the pipeline has no tasks"));
    }
    if spec.components.contains_key(ENTRYPOINT) {
        return Err(cx.invalid(
            format!("components.{ENTRYPOINT}"),
            format!(
                "`{ENTRYPOINT}` is the name of the Workflow's DAG template; rename the component"
            ),
        ));
    }

    let arguments = pipeline_parameters(&cx)?;
    let mut volumes = Volumes::default();
    let pvc_mounts = platform
        .map(|k| k.deployment_spec.executors.clone())
        .unwrap_or_default();
    for name in pvc_mounts.keys() {
        if !spec.deployment_spec.executors.contains_key(name) {
            return Err(Error::Invalid {
                doc: cx.platform_doc.to_string(),
                path: format!("platforms.kubernetes.deploymentSpec.executors.{name}"),
                why: format!(
                    "names no executor of the pipeline (deploymentSpec.executors has: {})",
                    list(spec.deployment_spec.executors.keys())
                ),
            });
        }
    }

    // Tasks, grouped by the component they run (one template per component).
    let mut users: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, task) in &dag.tasks {
        let at = format!("root.dag.tasks.{name}");
        argo_name(&cx, &at, name, "a task name")?;
        let component = task.component_ref.name.as_str();
        if !spec.components.contains_key(component) {
            return Err(cx.invalid(
                format!("{at}.componentRef.name"),
                format!(
                    "names the component `{component}`, which `components` does not define (it has: {})",
                    list(spec.components.keys())
                ),
            ));
        }
        users.entry(component).or_default().push(name);
    }

    let mut templates = Vec::new();
    let mut given: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (component, tasks) in &users {
        let c = &spec.components[*component];
        let with_value = inputs_with_value(&cx, c, tasks)?;
        given.insert(*component, with_value.clone());
        let mounts = c
            .executor_label
            .as_ref()
            .and_then(|e| pvc_mounts.get(e))
            .map(|e| e.pvc_mount.as_slice())
            .unwrap_or_default();
        templates.push(component_template(
            &cx,
            component,
            c,
            &with_value,
            mounts,
            &mut volumes,
        )?);
    }

    let mut tasks = Vec::new();
    for name in topological(&cx, dag.tasks.iter().map(|(n, t)| (n.as_str(), t)))? {
        let task = &dag.tasks[name];
        let component = task.component_ref.name.as_str();
        tasks.push(dag_task(&cx, name, task, &given[component])?);
    }
    let mut all = vec![Template {
        name: ENTRYPOINT.into(),
        dag: Some(Dag { tasks }),
        ..Template::default()
    }];
    all.extend(templates);

    let dns = dns_name(&spec.pipeline_info.name);
    let mut annotations = BTreeMap::new();
    if let Some(title) = &spec.pipeline_info.display_name {
        annotations.insert("workflows.argoproj.io/title".to_string(), title.clone());
    }
    if let Some(description) = &spec.pipeline_info.description {
        annotations.insert(
            "workflows.argoproj.io/description".to_string(),
            description.clone(),
        );
    }
    Ok(argo::Workflow {
        api_version: argo::API_VERSION.into(),
        kind: argo::KIND.into(),
        metadata: argo::Metadata {
            generate_name: format!("{dns}-"),
            labels: BTreeMap::from([(PIPELINE_LABEL.to_string(), dns)]),
            annotations,
        },
        spec: argo::WorkflowSpec {
            entrypoint: ENTRYPOINT.into(),
            arguments,
            volumes: volumes.list,
            templates: all,
        },
    })
}

/// `root.inputDefinitions.parameters` → the Workflow's parameters, defaults as values.
fn pipeline_parameters(cx: &Ctx) -> Result<Arguments, Error> {
    let mut parameters = Vec::new();
    for (name, p) in &cx.spec.root.input_definitions.parameters {
        let at = format!("root.inputDefinitions.parameters.{name}");
        io_name(cx, &at, name)?;
        let value = match &p.default_value {
            Some(v) => Some(argo_value(
                cx,
                &format!("{at}.defaultValue"),
                v,
                p.parameter_type,
            )?),
            None => None,
        };
        parameters.push(Parameter {
            name: name.clone(),
            value,
            description: p.description.clone(),
            ..Parameter::default()
        });
    }
    Ok(Arguments {
        parameters,
        artifacts: Vec::new(),
    })
}

/// The input parameters of a component that have a value in its template: a default, or one
/// every task running it gives. An input some task gives and another does not, without a
/// default, is an error at the task that does not.
fn inputs_with_value(
    cx: &Ctx,
    c: &ComponentSpec,
    tasks: &[&str],
) -> Result<BTreeSet<String>, Error> {
    let dag = cx.spec.root.dag.as_ref().expect("checked");
    let mut out = BTreeSet::new();
    for (name, p) in &c.input_definitions.parameters {
        if p.default_value.is_some() {
            out.insert(name.clone());
            continue;
        }
        let giving: Vec<&&str> = tasks
            .iter()
            .filter(|t| dag.tasks[**t].inputs.parameters.contains_key(name))
            .collect();
        if giving.is_empty() && p.is_optional {
            continue; // never given: the executor must not read it (its placeholder is refused)
        }
        if let Some(lacking) = tasks
            .iter()
            .find(|t| !dag.tasks[**t].inputs.parameters.contains_key(name))
        {
            return Err(cx.invalid(
                format!("root.dag.tasks.{lacking}.inputs.parameters"),
                format!(
                    "gives no value for `{name}`, an input of component `{}` without a defaultValue",
                    dag.tasks[*lacking].component_ref.name
                ),
            ));
        }
        out.insert(name.clone());
    }
    Ok(out)
}

fn component_template(
    cx: &Ctx,
    name: &str,
    c: &ComponentSpec,
    with_value: &BTreeSet<String>,
    mounts: &[PvcMount],
    volumes: &mut Volumes,
) -> Result<Template, Error> {
    let at = format!("components.{name}");
    argo_name(cx, &at, name, "a component name")?;
    let Some(label) = &c.executor_label else {
        return Err(cx.invalid(
            format!("{at}.executorLabel"),
            "missing: the component names no executor",
        ));
    };
    let Some(executor) = cx.spec.deployment_spec.executors.get(label) else {
        return Err(cx.invalid(
            format!("{at}.executorLabel"),
            format!(
                "names the executor `{label}`, which deploymentSpec.executors does not define (it has: {})",
                list(cx.spec.deployment_spec.executors.keys())
            ),
        ));
    };
    let exec_at = format!("deploymentSpec.executors.{label}");
    let Some(container) = &executor.container else {
        return Err(cx.invalid(
            format!("{exec_at}.container"),
            "missing: only container executors are compiled",
        ));
    };

    let mut inputs = Io::default();
    for (p, spec) in &c.input_definitions.parameters {
        io_name(cx, &format!("{at}.inputDefinitions.parameters.{p}"), p)?;
        if !with_value.contains(p) {
            continue;
        }
        let default = match &spec.default_value {
            Some(v) => Some(argo_value(
                cx,
                &format!("{at}.inputDefinitions.parameters.{p}.defaultValue"),
                v,
                spec.parameter_type,
            )?),
            None => None,
        };
        inputs.parameters.push(Parameter {
            name: p.clone(),
            default,
            ..Parameter::default()
        });
    }
    for a in c.input_definitions.artifacts.keys() {
        io_name(cx, &format!("{at}.inputDefinitions.artifacts.{a}"), a)?;
        inputs.artifacts.push(Artifact {
            name: a.clone(),
            path: Some(placeholder::input_artifact_path(a)),
            ..Artifact::default()
        });
    }
    let mut outputs = Io::default();
    for p in c.output_definitions.parameters.keys() {
        io_name(cx, &format!("{at}.outputDefinitions.parameters.{p}"), p)?;
        outputs.parameters.push(Parameter {
            name: p.clone(),
            value_from: Some(ValueFrom {
                path: placeholder::output_parameter_path(p),
            }),
            ..Parameter::default()
        });
    }
    for a in c.output_definitions.artifacts.keys() {
        io_name(cx, &format!("{at}.outputDefinitions.artifacts.{a}"), a)?;
        outputs.artifacts.push(Artifact {
            name: a.clone(),
            path: Some(placeholder::output_artifact_path(a)),
            ..Artifact::default()
        });
    }

    let declared = Declared {
        input_parameters: with_value.clone(),
        input_artifacts: c.input_definitions.artifacts.keys().cloned().collect(),
        output_parameters: c.output_definitions.parameters.keys().cloned().collect(),
        output_artifacts: c.output_definitions.artifacts.keys().cloned().collect(),
    };
    let translate = |field: &str, items: &[String]| -> Result<Vec<String>, Error> {
        items
            .iter()
            .enumerate()
            .map(|(i, arg)| {
                placeholder::translate(arg, &declared)
                    .map_err(|p| problem(cx, format!("{exec_at}.container.{field}[{i}]"), p))
            })
            .collect()
    };
    let command = translate("command", &container.command)?;
    let args = translate("args", &container.args)?;
    let mut env = Vec::new();
    for (i, e) in container.env.iter().enumerate() {
        if e.value.contains("{{") {
            return Err(Error::Unsupported {
                doc: cx.doc.to_string(),
                path: format!("{exec_at}.container.env[{i}].value"),
                feature: "`{{` in an environment variable".into(),
                fix: "KFP does not substitute placeholders there and Argo would; pass the value as an argument".into(),
            });
        }
        env.push(EnvVar {
            name: e.name.clone(),
            value: Some(e.value.clone()),
            ..EnvVar::default()
        });
    }
    let mut volume_mounts = Vec::new();
    for (i, m) in mounts.iter().enumerate() {
        let at = format!("platforms.kubernetes.deploymentSpec.executors.{label}.pvcMount[{i}]");
        let volume = volumes.claim(cx, &at, m)?;
        volume_mounts.push(VolumeMount {
            name: volume,
            mount_path: m.mount_path.clone(),
            ..VolumeMount::default()
        });
    }
    Ok(Template {
        name: name.to_string(),
        inputs,
        outputs,
        container: Some(Container {
            name: CONTAINER.into(),
            image: Some(container.image.clone()),
            command: non_empty(command),
            args: non_empty(args),
            env: non_empty(env),
            volume_mounts: non_empty(volume_mounts),
            ..Container::default()
        }),
        dag: None,
    })
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

fn problem(cx: &Ctx, path: String, p: Problem) -> Error {
    match p {
        Problem::Unsupported { feature, fix } => Error::Unsupported {
            doc: cx.doc.to_string(),
            path,
            feature,
            fix,
        },
        Problem::Undeclared(why) => cx.invalid(path, why),
    }
}

/// One DAG task: its template, what it waits for, and its arguments.
fn dag_task(
    cx: &Ctx,
    name: &str,
    task: &TaskSpec,
    with_value: &BTreeSet<String>,
) -> Result<DagTask, Error> {
    let at = format!("root.dag.tasks.{name}");
    let dag = cx.spec.root.dag.as_ref().expect("checked");
    let component = &cx.spec.components[&task.component_ref.name];
    let mut dependencies: BTreeSet<String> = BTreeSet::new();
    for (i, d) in task.dependent_tasks.iter().enumerate() {
        if !dag.tasks.contains_key(d) {
            return Err(cx.invalid(
                format!("{at}.dependentTasks[{i}]"),
                format!(
                    "names the task `{d}`, which root.dag.tasks does not define (it has: {})",
                    list(dag.tasks.keys())
                ),
            ));
        }
        dependencies.insert(d.clone());
    }
    let mut arguments = Arguments::default();
    for (p, input) in &task.inputs.parameters {
        let at = format!("{at}.inputs.parameters.{p}");
        let Some(declared) = component.input_definitions.parameters.get(p) else {
            return Err(cx.invalid(
                at,
                format!(
                    "component `{}` has no input parameter `{p}` (it has: {})",
                    task.component_ref.name,
                    list(component.input_definitions.parameters.keys())
                ),
            ));
        };
        if !with_value.contains(p) {
            continue; // given by this task only, for an optional input others leave out
        }
        let value = parameter_source(cx, &at, input, declared.parameter_type, &mut dependencies)?;
        arguments.parameters.push(Parameter {
            name: p.clone(),
            value: Some(value),
            ..Parameter::default()
        });
    }
    for (a, declared) in &component.input_definitions.artifacts {
        let at = format!("{at}.inputs.artifacts.{a}");
        let Some(input) = task.inputs.artifacts.get(a) else {
            if declared.is_optional {
                return Err(Error::Unsupported {
                    doc: cx.doc.to_string(),
                    path: at,
                    feature: "optional artifact inputs left unset".into(),
                    fix: "give the task the artifact".into(),
                });
            }
            return Err(cx.invalid(
                at,
                format!(
                    "missing: component `{}` needs the artifact `{a}`",
                    task.component_ref.name
                ),
            ));
        };
        let Some(from) = &input.task_output_artifact else {
            return Err(cx.invalid(at, "names no taskOutputArtifact"));
        };
        let producer = producer(
            cx,
            &format!("{at}.taskOutputArtifact.producerTask"),
            &from.producer_task,
        )?;
        if !producer
            .output_definitions
            .artifacts
            .contains_key(&from.output_artifact_key)
        {
            return Err(cx.invalid(
                format!("{at}.taskOutputArtifact.outputArtifactKey"),
                format!(
                    "task `{}` has no output artifact `{}` (it has: {})",
                    from.producer_task,
                    from.output_artifact_key,
                    list(producer.output_definitions.artifacts.keys())
                ),
            ));
        }
        dependencies.insert(from.producer_task.clone());
        arguments.artifacts.push(Artifact {
            name: a.clone(),
            from: Some(format!(
                "{{{{tasks.{}.outputs.artifacts.{}}}}}",
                from.producer_task, from.output_artifact_key
            )),
            ..Artifact::default()
        });
    }
    for a in task.inputs.artifacts.keys() {
        if !component.input_definitions.artifacts.contains_key(a) {
            return Err(cx.invalid(
                format!("{at}.inputs.artifacts.{a}"),
                format!(
                    "component `{}` has no input artifact `{a}` (it has: {})",
                    task.component_ref.name,
                    list(component.input_definitions.artifacts.keys())
                ),
            ));
        }
    }
    dependencies.remove(name);
    Ok(DagTask {
        name: name.to_string(),
        template: task.component_ref.name.clone(),
        dependencies: dependencies.into_iter().collect(),
        arguments,
    })
}

/// The value of a task's input parameter, as Argo writes it; a producer it reads from becomes a
/// dependency.
fn parameter_source(
    cx: &Ctx,
    at: &str,
    input: &InputParameter,
    kind: ParameterType,
    dependencies: &mut BTreeSet<String>,
) -> Result<String, Error> {
    let sources = [
        input.runtime_value.is_some(),
        input.component_input_parameter.is_some(),
        input.task_output_parameter.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() != 1 {
        return Err(cx.invalid(
            at,
            "needs exactly one of runtimeValue, componentInputParameter, taskOutputParameter",
        ));
    }
    if let Some(v) = &input.runtime_value {
        return argo_value(
            cx,
            &format!("{at}.runtimeValue.constant"),
            &v.constant,
            kind,
        );
    }
    if let Some(p) = &input.component_input_parameter {
        return workflow_parameter(cx, &format!("{at}.componentInputParameter"), p);
    }
    let from = input.task_output_parameter.as_ref().expect("one source");
    let producer = producer(
        cx,
        &format!("{at}.taskOutputParameter.producerTask"),
        &from.producer_task,
    )?;
    if !producer
        .output_definitions
        .parameters
        .contains_key(&from.output_parameter_key)
    {
        return Err(cx.invalid(
            format!("{at}.taskOutputParameter.outputParameterKey"),
            format!(
                "task `{}` has no output parameter `{}` (it has: {})",
                from.producer_task,
                from.output_parameter_key,
                list(producer.output_definitions.parameters.keys())
            ),
        ));
    }
    dependencies.insert(from.producer_task.clone());
    Ok(format!(
        "{{{{tasks.{}.outputs.parameters.{}}}}}",
        from.producer_task, from.output_parameter_key
    ))
}

/// `{{workflow.parameters.x}}` for a pipeline parameter that exists.
fn workflow_parameter(cx: &Ctx, at: &str, name: &str) -> Result<String, Error> {
    let root = &cx.spec.root.input_definitions.parameters;
    if !root.contains_key(name) {
        return Err(cx.invalid(
            at,
            format!("names the pipeline parameter `{name}`, which root.inputDefinitions does not define (it has: {})", list(root.keys())),
        ));
    }
    Ok(format!("{{{{workflow.parameters.{name}}}}}"))
}

/// The component a producer task runs.
fn producer<'a>(cx: &'a Ctx, at: &str, task: &str) -> Result<&'a ComponentSpec, Error> {
    let dag = cx.spec.root.dag.as_ref().expect("checked");
    let Some(t) = dag.tasks.get(task) else {
        return Err(cx.invalid(
            at,
            format!(
                "names the task `{task}`, which root.dag.tasks does not define (it has: {})",
                list(dag.tasks.keys())
            ),
        ));
    };
    Ok(&cx.spec.components[&t.component_ref.name])
}

/// The Workflow's volumes: one per claim (or per pipeline parameter naming a claim), shared by
/// every template that mounts it.
#[derive(Default)]
struct Volumes {
    list: Vec<Volume>,
    /// claim name (or `{{workflow.parameters.x}}`) → volume name.
    by_claim: BTreeMap<String, String>,
}

impl Volumes {
    fn claim(&mut self, cx: &Ctx, at: &str, m: &PvcMount) -> Result<String, Error> {
        let invalid = |why: String| Error::Invalid {
            doc: cx.platform_doc.to_string(),
            path: at.to_string(),
            why,
        };
        // pvcNameParameter wins over the older fields, as in KFP's driver.
        let (claim, hint) = if let Some(p) = &m.pvc_name_parameter {
            if p.task_output_parameter.is_some() {
                return Err(Error::Unsupported {
                    doc: cx.platform_doc.to_string(),
                    path: format!("{at}.pvcNameParameter.taskOutputParameter"),
                    feature: "mounting a claim an earlier task names".into(),
                    fix: "create the claim before the run and mount it by name or by a pipeline parameter".into(),
                });
            }
            if let Some(v) = &p.runtime_value {
                match &v.constant {
                    Value::String(s) => (s.clone(), s.clone()),
                    other => {
                        return Err(invalid(format!(
                            "pvcNameParameter.runtimeValue.constant must be a claim name, not {other}"
                        )));
                    }
                }
            } else if let Some(param) = &p.component_input_parameter {
                let at = format!("{at}.pvcNameParameter.componentInputParameter");
                (
                    workflow_parameter(cx, &at, param).map_err(|e| retarget(e, cx.platform_doc))?,
                    format!("param-{param}"),
                )
            } else {
                return Err(invalid("pvcNameParameter names no claim: give runtimeValue.constant or componentInputParameter".into()));
            }
        } else if let Some(param) = &m.component_input_parameter {
            let at = format!("{at}.componentInputParameter");
            (
                workflow_parameter(cx, &at, param).map_err(|e| retarget(e, cx.platform_doc))?,
                format!("param-{param}"),
            )
        } else if let Some(name) = &m.constant {
            (name.clone(), name.clone())
        } else {
            return Err(invalid(
                "names no claim: give pvcNameParameter (or constant)".into(),
            ));
        };
        if !m.mount_path.starts_with('/') {
            return Err(invalid(format!(
                "mountPath `{}` must be an absolute path",
                m.mount_path
            )));
        }
        if let Some(volume) = self.by_claim.get(&claim) {
            return Ok(volume.clone());
        }
        let mut volume = dns_label(&format!("pvc-{hint}"));
        let mut n = 2;
        while self.list.iter().any(|v| v.name == volume) {
            volume = dns_label(&format!("pvc-{hint}-{n}"));
            n += 1;
        }
        self.list.push(Volume {
            name: volume.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: None,
            }),
            ..Volume::default()
        });
        self.by_claim.insert(claim, volume.clone());
        Ok(volume)
    }
}

/// An error found while reading the platform section belongs to that document.
fn retarget(e: Error, doc: &str) -> Error {
    match e {
        Error::Invalid { path, why, .. } => Error::Invalid {
            doc: doc.to_string(),
            path,
            why,
        },
        other => other,
    }
}

/// Tasks in dependency order (ties by name), or the cycle as an error.
fn topological<'a>(
    cx: &Ctx,
    tasks: impl Iterator<Item = (&'a str, &'a TaskSpec)>,
) -> Result<Vec<&'a str>, Error> {
    let mut needs: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, task) in tasks {
        let mut set: BTreeSet<&str> = task.dependent_tasks.iter().map(String::as_str).collect();
        for p in task.inputs.parameters.values() {
            if let Some(from) = &p.task_output_parameter {
                set.insert(&from.producer_task);
            }
        }
        for a in task.inputs.artifacts.values() {
            if let Some(from) = &a.task_output_artifact {
                set.insert(&from.producer_task);
            }
        }
        needs.insert(name, set);
    }
    let mut order = Vec::new();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    while done.len() < needs.len() {
        let ready: Vec<&str> = needs
            .iter()
            .filter(|(n, deps)| {
                !done.contains(*n)
                    && deps
                        .iter()
                        .all(|d| done.contains(d) || !needs.contains_key(d))
            })
            .map(|(n, _)| *n)
            .collect();
        if ready.is_empty() {
            let stuck: Vec<&str> = needs
                .keys()
                .filter(|n| !done.contains(*n))
                .copied()
                .collect();
            return Err(cx.invalid(
                "root.dag.tasks",
                format!(
                    "the tasks {} wait for each other in a cycle",
                    stuck.join(", ")
                ),
            ));
        }
        for n in ready {
            done.insert(n);
            order.push(n);
        }
    }
    Ok(order)
}

/// A parameter value as Argo passes it (text), checked against its declared type.
fn argo_value(cx_doc: &Ctx, at: &str, v: &Value, kind: ParameterType) -> Result<String, Error> {
    // Protobuf's Struct keeps every number as a double, so kfp writes an integer 3 as `3.0`.
    let integer = v.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15);
    let fits = match kind {
        ParameterType::String => v.is_string(),
        ParameterType::NumberInteger => v.is_i64() || v.is_u64() || integer.is_some(),
        ParameterType::NumberDouble => v.is_number(),
        ParameterType::Boolean => v.is_boolean(),
        ParameterType::List => v.is_array(),
        ParameterType::Struct => v.is_object(),
        ParameterType::TaskFinalStatus => false,
    };
    if !fits {
        return Err(cx_doc.invalid(
            at,
            format!(
                "{v} is not a {} (the parameter's parameterType)",
                kind.as_str()
            ),
        ));
    }
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) if kind == ParameterType::NumberInteger && n.is_f64() => {
            format!("{}", integer.expect("checked above") as i64)
        }
        other => other.to_string(),
    };
    if text.contains("{{") {
        return Err(Error::Unsupported {
            doc: cx_doc.doc.to_string(),
            path: at.to_string(),
            feature: "`{{` in a value".into(),
            fix: "Argo would read it as a variable; remove it".into(),
        });
    }
    Ok(text)
}

fn argo_name(cx: &Ctx, at: &str, name: &str, what: &str) -> Result<(), Error> {
    if !ARGO_NAME.is_match(name) {
        return Err(cx.invalid(at, format!("{what} `{name}` is not a valid Argo name: letters, digits and '-', starting with a letter or digit, at most 128")));
    }
    Ok(())
}

fn io_name(cx: &Ctx, at: &str, name: &str) -> Result<(), Error> {
    if !IO_NAME.is_match(name) {
        return Err(cx.invalid(at, format!("`{name}` is not a valid Argo parameter or artifact name: letters, digits, '-' and '_'")));
    }
    Ok(())
}

/// A pipeline name as a DNS label for `generateName` and the label (at most 57 characters, so
/// that Argo's 5-character suffix and the dash still fit in 63).
pub fn dns_name(name: &str) -> String {
    let mut out = dns_label(name);
    out.truncate(57);
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "pipeline".into()
    } else {
        out
    }
}

fn dns_label(text: &str) -> String {
    let mut out = String::new();
    for ch in text.chars().flat_map(char::to_lowercase) {
        let ch = if ch.is_ascii_alphanumeric() { ch } else { '-' };
        if !(ch == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(ch);
        }
    }
    out.truncate(63);
    out.trim_end_matches('-').to_string()
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_names_become_dns_labels() {
        let table = [
            ("my-pipeline", "my-pipeline"),
            (
                "Fashion MNIST: train & predict",
                "fashion-mnist-train-predict",
            ),
            ("__x__", "x"),
            ("", "pipeline"),
            (&"a".repeat(80), &"a".repeat(57)),
        ];
        for (given, want) in table {
            assert_eq!(dns_name(given), want, "{given}");
        }
    }
}
