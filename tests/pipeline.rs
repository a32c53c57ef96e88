//! `wharf pipeline compile` and `wharf pipeline run`: KFP IR documents written for these tests
//! (tests/fixtures/pipeline/cases) and the shipped example compile to their golden Workflows; the
//! features outside the subset and broken references are refused by JSON path; every compiled
//! Workflow is accepted by kube-sim with the Argo Workflow CRD installed (a faithful subset of
//! Argo's schema, tests/fixtures/pipeline/workflow-crd.yaml) and stored unchanged; `run` submits
//! and follows a Workflow whose status the test writes, as Argo's controller would.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use wharf::pipeline::{self, Error};

const CASES: [&str; 3] = ["parameters", "artifacts", "pvc-mounts"];
const NS: &str = "team-a";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pipeline")
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/pipelines/fashion-mnist-train-predict.yaml")
}

/// Each KFP document with its golden Workflow, the shipped example last.
fn goldens() -> Vec<(PathBuf, PathBuf)> {
    let mut all: Vec<(PathBuf, PathBuf)> = CASES
        .iter()
        .map(|c| {
            let dir = fixtures().join("cases");
            (
                dir.join(format!("{c}.kfp.yaml")),
                dir.join(format!("{c}.workflow.yaml")),
            )
        })
        .collect();
    all.push((
        example(),
        fixtures().join("fashion-mnist-train-predict.workflow.yaml"),
    ));
    all
}

fn compiled(path: &Path) -> Value {
    let p = pipeline::load(path).unwrap_or_else(|e| panic!("{e}"));
    let wf = pipeline::compile(&p).unwrap_or_else(|e| panic!("{e}"));
    serde_json::to_value(wf).unwrap()
}

fn yaml_file(path: &Path) -> Value {
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn assert_same(what: &str, got: &Value, want: &Value) {
    if got != want {
        let got = serde_saphyr::to_string(got).unwrap();
        let want = serde_saphyr::to_string(want).unwrap();
        let diff = similar::TextDiff::from_lines(&want, &got)
            .unified_diff()
            .header("expected", "compiled")
            .to_string();
        panic!("{what} differs from its golden Workflow:\n{diff}");
    }
}

#[test]
fn each_kfp_document_compiles_to_its_golden_workflow() {
    for (kfp, golden) in goldens() {
        assert_same(
            &kfp.display().to_string(),
            &compiled(&kfp),
            &yaml_file(&golden),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compile_command_prints_the_example_as_yaml_and_writes_it_with_o() {
    let example = example().display().to_string();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["pipeline", "compile", &example])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed: Value = serde_saphyr::from_str(&text(&out.stdout)).unwrap();
    let golden = yaml_file(&fixtures().join("fashion-mnist-train-predict.workflow.yaml"));
    assert_same("`wharf pipeline compile` of the example", &printed, &golden);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wf.yaml");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["pipeline", "compile", &example, "-o"])
        .arg(&file)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "with -o nothing goes to stdout");
    assert_same("the -o file", &yaml_file(&file), &golden);
}

// ---------------------------------------------------------------------------------------------
// Refusals: one base document per table row, changed at one JSON pointer.

/// The documents of a case file, as values to change.
fn documents(case: &str) -> Vec<Value> {
    let path = fixtures().join("cases").join(format!("{case}.kfp.yaml"));
    serde_saphyr::from_multiple(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Set (creating objects on the way) or, with `None`, remove the value at a JSON pointer.
fn change(doc: &mut Value, pointer: &str, value: Option<Value>) {
    let (parent, last) = pointer.rsplit_once('/').unwrap();
    let mut at = doc;
    for key in parent.split('/').skip(1) {
        at = match at {
            Value::Array(items) => &mut items[key.parse::<usize>().unwrap()],
            other => other
                .as_object_mut()
                .unwrap()
                .entry(key.to_string())
                .or_insert_with(|| json!({})),
        };
    }
    match (at, value) {
        (Value::Array(items), Some(v)) => items[last.parse::<usize>().unwrap()] = v,
        (Value::Object(map), Some(v)) => {
            map.insert(last.to_string(), v);
        }
        (Value::Object(map), None) => {
            map.remove(last).expect("the field to remove is there");
        }
        (other, _) => panic!("cannot change {pointer} in {other}"),
    }
}

/// Compile `case` with one change in document `doc` (0: the pipeline, 1: the platform section).
fn compile_changed(
    case: &str,
    doc: usize,
    pointer: &str,
    value: Option<Value>,
) -> Result<Value, Error> {
    let mut docs = documents(case);
    change(&mut docs[doc], pointer, value);
    let text = docs
        .iter()
        .map(|d| serde_saphyr::to_string(d).unwrap())
        .collect::<Vec<_>>()
        .join("---\n");
    let p = pipeline::parse("changed.yaml", &text)?;
    pipeline::compile(&p).map(|wf| serde_json::to_value(wf).unwrap())
}

/// A table row: base case, document, JSON pointer, value, path in the error, what it names.
type Row<V> = (
    &'static str,
    usize,
    &'static str,
    V,
    &'static str,
    &'static str,
);

#[test]
fn features_outside_the_subset_are_refused_by_their_json_path() {
    // (base case, document, JSON pointer to set, value, path in the error, what the error names)
    let table: Vec<Row<Value>> = vec![
        (
            "parameters",
            0,
            "/root/dag/tasks/produce/iteratorPolicy",
            json!({"parallelismLimit": 2}),
            "root.dag.tasks.produce.iteratorPolicy",
            "loop parallelism",
        ),
        (
            "parameters",
            0,
            "/root/dag/tasks/produce/parameterIterator",
            json!({"itemInput": "x", "items": {"raw": "[1,2]"}}),
            "root.dag.tasks.produce.parameterIterator",
            "loops over parameters",
        ),
        (
            "parameters",
            0,
            "/root/dag/tasks/produce/artifactIterator",
            json!({"itemInput": "x"}),
            "root.dag.tasks.produce.artifactIterator",
            "loops over artifacts",
        ),
        (
            "parameters",
            0,
            "/root/dag/tasks/consume/triggerPolicy",
            json!({"condition": "inputs.parameter_values['x'] == 'y'"}),
            "root.dag.tasks.consume.triggerPolicy",
            "conditions",
        ),
        (
            "parameters",
            0,
            "/root/dag/tasks/produce/cachingOptions/enableCache",
            json!(true),
            "root.dag.tasks.produce.cachingOptions.enableCache",
            "execution caching",
        ),
        (
            "parameters",
            0,
            "/root/dag/tasks/produce/cachingOptions/cacheKey",
            json!("k1"),
            "root.dag.tasks.produce.cachingOptions.cacheKey",
            "cache keys",
        ),
        (
            "parameters",
            0,
            "/root/dag/tasks/produce/retryPolicy",
            json!({"maxRetryCount": 3}),
            "root.dag.tasks.produce.retryPolicy",
            "retries",
        ),
        (
            "parameters",
            0,
            "/root/dag/tasks/consume/inputs/parameters/text/taskFinalStatus",
            json!({"producerTask": "produce"}),
            "root.dag.tasks.consume.inputs.parameters.text.taskFinalStatus",
            "exit handler",
        ),
        (
            "parameters",
            0,
            "/root/dag/tasks/consume/inputs/parameters/text/parameterExpressionSelector",
            json!("parseJson(string_value)"),
            "root.dag.tasks.consume.inputs.parameters.text.parameterExpressionSelector",
            "parameter expressions",
        ),
        (
            "parameters",
            0,
            "/deploymentSpec/executors/exec-produce/importer",
            json!({"artifactUri": {"constant": "s3://b/k"}}),
            "deploymentSpec.executors.exec-produce.importer",
            "importers",
        ),
        (
            "parameters",
            0,
            "/deploymentSpec/executors/exec-produce/container/resources",
            json!({"cpuLimit": 1.0}),
            "deploymentSpec.executors.exec-produce.container.resources",
            "resource requests and limits",
        ),
        (
            "parameters",
            0,
            "/components/comp-produce/dag",
            json!({"tasks": {}}),
            "components.comp-produce.dag",
            "a DAG of their own",
        ),
        (
            "parameters",
            0,
            "/defaultPipelineRoot",
            json!("s3://bucket/root"),
            "defaultPipelineRoot",
            "a pipeline root",
        ),
        (
            "parameters",
            0,
            "/root/outputDefinitions/parameters/out",
            json!({"parameterType": "STRING"}),
            "root.outputDefinitions.parameters.out",
            "pipeline outputs",
        ),
        (
            "parameters",
            0,
            "/root/dag/outputs",
            json!({"parameters": {"out": {"valueFromParameter": {}}}}),
            "root.dag.outputs",
            "pipeline outputs",
        ),
        (
            "parameters",
            0,
            "/root/inputDefinitions/artifacts/data",
            json!({"artifactType": {"schemaTitle": "system.Dataset"}}),
            "root.inputDefinitions.artifacts.data",
            "pipeline artifact inputs",
        ),
        (
            "parameters",
            0,
            "/components/comp-produce/outputDefinitions/artifacts/many",
            json!({"artifactType": {"schemaTitle": "system.Artifact"}, "isArtifactList": true}),
            "components.comp-produce.outputDefinitions.artifacts.many.isArtifactList",
            "lists of artifacts",
        ),
        (
            "parameters",
            0,
            "/deploymentSpec/executors/exec-consume/container/args/0",
            json!("{{$}}"),
            "deploymentSpec.executors.exec-consume.container.args[0]",
            "the placeholder `{{$}}`",
        ),
        (
            "parameters",
            0,
            "/deploymentSpec/executors/exec-consume/container/args/1",
            json!("{{$.pipeline_job_name}}"),
            "deploymentSpec.executors.exec-consume.container.args[1]",
            "{{$.pipeline_job_name}}",
        ),
        (
            "parameters",
            0,
            "/deploymentSpec/executors/exec-consume/container/args/2",
            json!("{\"IfPresent\": {\"InputName\": \"text\", \"Then\": [\"x\"]}}"),
            "deploymentSpec.executors.exec-consume.container.args[2]",
            "IfPresent",
        ),
        (
            "parameters",
            0,
            "/root/dag/tasks/consume/inputs/parameters/flag/runtimeValue/constant",
            json!(true),
            "",
            "",
        ), // unchanged: control row, compiles
        (
            "pvc-mounts",
            1,
            "/platforms/kubernetes/deploymentSpec/executors/exec-step/secretAsEnv",
            json!([{"secretName": "s", "keyToEnv": [{"secretKey": "k", "envVar": "K"}]}]),
            "platforms.kubernetes.deploymentSpec.executors.exec-step.secretAsEnv",
            "kubernetes.use_secret_as_env",
        ),
        (
            "pvc-mounts",
            1,
            "/platforms/kubernetes/deploymentSpec/executors/exec-step/nodeSelector",
            json!({"labels": {"gpu": "yes"}}),
            "platforms.kubernetes.deploymentSpec.executors.exec-step.nodeSelector",
            "kubernetes.add_node_selector",
        ),
        (
            "pvc-mounts",
            1,
            "/platforms/kubernetes/deploymentSpec/executors/exec-step/pvcMount/0/taskOutputParameter",
            json!({"producerTask": "createpvc", "outputParameterKey": "name"}),
            "platforms.kubernetes.deploymentSpec.executors.exec-step.pvcMount[0].taskOutputParameter",
            "kubernetes.CreatePVC",
        ),
        (
            "pvc-mounts",
            1,
            "/platforms/kubernetes/pipelineConfig",
            json!({"semaphoreKey": "k"}),
            "platforms.kubernetes.pipelineConfig",
            "pipeline-wide",
        ),
    ];
    for (case, doc, pointer, value, path, named) in table {
        let result = compile_changed(case, doc, pointer, Some(value));
        if path.is_empty() {
            assert!(
                result.is_ok(),
                "{pointer}: the control row must compile: {result:?}"
            );
            continue;
        }
        let err = result.expect_err(pointer);
        let message = err.to_string();
        assert!(
            matches!(err, Error::Unsupported { .. }),
            "{pointer}: expected Unsupported, got {message}"
        );
        assert_eq!(err.path(), Some(path), "{message}");
        assert!(
            message.contains(named),
            "{pointer}: `{message}` should name {named}"
        );
        assert!(
            message.contains("not supported by `wharf pipeline compile`"),
            "{message}"
        );
        let document = if doc == 0 {
            "changed.yaml: "
        } else {
            "changed.yaml (document 2): "
        };
        assert!(
            message.starts_with(document),
            "{message} should name the document"
        );
    }
}

#[test]
fn unknown_fields_and_broken_references_are_refused_by_their_json_path() {
    // (base case, document, JSON pointer, value (None: remove it), path in the error, fragment)
    let table: Vec<Row<Option<Value>>> = vec![
        (
            "parameters",
            0,
            "/root/dag/tasks/produce/frobnicate",
            Some(json!(1)),
            "root.dag.tasks.produce.frobnicate",
            "not a field of the KFP IR subset",
        ),
        (
            "parameters",
            0,
            "/frobnicate",
            Some(json!(1)),
            "frobnicate",
            "not a field",
        ),
        (
            "parameters",
            0,
            "/root/dag/tasks/produce/componentRef",
            None,
            "root.dag.tasks.produce.componentRef",
            "missing",
        ),
        (
            "parameters",
            0,
            "/root/dag/tasks/produce/componentRef/name",
            Some(json!("comp-ghost")),
            "root.dag.tasks.produce.componentRef.name",
            "`comp-ghost`",
        ),
        (
            "parameters",
            0,
            "/root/dag/tasks/consume/inputs/parameters/text/taskOutputParameter/producerTask",
            Some(json!("ghost")),
            "root.dag.tasks.consume.inputs.parameters.text.taskOutputParameter.producerTask",
            "`ghost`",
        ),
        (
            "parameters",
            0,
            "/root/dag/tasks/consume/inputs/parameters/text/taskOutputParameter/outputParameterKey",
            Some(json!("nope")),
            "root.dag.tasks.consume.inputs.parameters.text.taskOutputParameter.outputParameterKey",
            "no output parameter `nope`",
        ),
        (
            "parameters",
            0,
            "/root/dag/tasks/consume/dependentTasks",
            Some(json!(["ghost"])),
            "root.dag.tasks.consume.dependentTasks[0]",
            "`ghost`",
        ),
        (
            "parameters",
            0,
            "/root/dag/tasks/produce/dependentTasks",
            Some(json!(["consume"])),
            "root.dag.tasks",
            "cycle",
        ),
        (
            "parameters",
            0,
            "/root/dag/tasks/consume/inputs/parameters/flag",
            None,
            "root.dag.tasks.consume.inputs.parameters",
            "no value for `flag`",
        ),
        (
            "parameters",
            0,
            "/root/dag/tasks/consume/inputs/parameters/nope",
            Some(json!({"runtimeValue": {"constant": "x"}})),
            "root.dag.tasks.consume.inputs.parameters.nope",
            "no input parameter `nope`",
        ),
        (
            "parameters",
            0,
            "/root/dag/tasks/produce/inputs/parameters/greeting/componentInputParameter",
            Some(json!("ghost")),
            "root.dag.tasks.produce.inputs.parameters.greeting.componentInputParameter",
            "pipeline parameter `ghost`",
        ),
        (
            "parameters",
            0,
            "/root/dag/tasks/produce/inputs/parameters/times/runtimeValue/constant",
            Some(json!("two")),
            "root.dag.tasks.produce.inputs.parameters.times.runtimeValue.constant",
            "not a NUMBER_INTEGER",
        ),
        (
            "parameters",
            0,
            "/root/dag/tasks/produce/inputs/parameters/times/runtimeValue/constant",
            Some(json!(2.5)),
            "root.dag.tasks.produce.inputs.parameters.times.runtimeValue.constant",
            "not a NUMBER_INTEGER",
        ),
        (
            "parameters",
            0,
            "/components/comp-produce/executorLabel",
            Some(json!("exec-ghost")),
            "components.comp-produce.executorLabel",
            "`exec-ghost`",
        ),
        (
            "parameters",
            0,
            "/deploymentSpec/executors/exec-consume/container/args/0",
            Some(json!("{{$.inputs.parameters['nope']}}")),
            "deploymentSpec.executors.exec-consume.container.args[0]",
            "`nope`",
        ),
        (
            "parameters",
            0,
            "/root/inputDefinitions/parameters/message/parameterType",
            Some(json!("TEXT")),
            "root.inputDefinitions.parameters.message.parameterType",
            "unknown variant",
        ),
        (
            "pvc-mounts",
            1,
            "/platforms/kubernetes/deploymentSpec/executors/exec-ghost/pvcMount",
            Some(json!([{"mountPath": "/x", "constant": "c"}])),
            "platforms.kubernetes.deploymentSpec.executors.exec-ghost",
            "names no executor",
        ),
        (
            "pvc-mounts",
            1,
            "/platforms/kubernetes/deploymentSpec/executors/exec-step/pvcMount/0/mountPath",
            Some(json!("relative")),
            "platforms.kubernetes.deploymentSpec.executors.exec-step.pvcMount[0]",
            "absolute",
        ),
        (
            "pvc-mounts",
            1,
            "/platforms/kubernetes/deploymentSpec/executors/exec-other/pvcMount/1/componentInputParameter",
            Some(json!("ghost")),
            "platforms.kubernetes.deploymentSpec.executors.exec-other.pvcMount[1].componentInputParameter",
            "pipeline parameter `ghost`",
        ),
    ];
    for (case, doc, pointer, value, path, named) in table {
        let err = compile_changed(case, doc, pointer, value).expect_err(pointer);
        let message = err.to_string();
        assert_eq!(err.path(), Some(path), "{pointer}: {message}");
        assert!(
            message.contains(named),
            "{pointer}: `{message}` should say {named}"
        );
        let document = if doc == 0 {
            "changed.yaml: "
        } else {
            "changed.yaml (document 2): "
        };
        assert!(
            message.starts_with(document),
            "{message} should name the document"
        );
    }
}

#[test]
fn a_file_that_is_not_a_pipeline_says_so() {
    let table = [
        ("", "holds no YAML document"),
        ("a: [unclosed", "not valid YAML"),
        (
            "pipelineInfo: {name: x}\nroot: {dag: {tasks: {}}}\n---\n{}\n---\n{}\n",
            "holds 3 YAML documents",
        ),
        (
            "pipelineInfo: {name: x}\nroot: {dag: {tasks: {}}}\n",
            "the pipeline has no tasks",
        ),
    ];
    for (text, want) in table {
        let err = pipeline::parse("f.yaml", text)
            .and_then(|p| pipeline::compile(&p))
            .expect_err(text);
        assert!(err.to_string().contains(want), "{text:?}: {err}");
    }
}

#[test]
fn params_override_defaults_fill_the_missing_ones_and_are_checked() {
    let p = pipeline::load(&fixtures().join("cases/parameters.kfp.yaml")).unwrap();
    let values = |given: &[&str]| {
        let mut wf = pipeline::compile(&p).unwrap();
        let given: Vec<String> = given.iter().map(|s| s.to_string()).collect();
        pipeline::set_parameters(&p, &mut wf, &given).map(|()| {
            wf.spec
                .arguments
                .parameters
                .iter()
                .map(|a| (a.name.clone(), a.value.clone().unwrap()))
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(
        values(&["count=3"]).unwrap(),
        [
            ("count".into(), "3".into()),
            ("message".into(), "hello".into())
        ]
    );
    assert_eq!(
        values(&["count=3", "message=hi=there"]).unwrap()[1],
        ("message".into(), "hi=there".into())
    );
    for (given, want) in [
        (vec![], "`count` has no default; pass --param count=VALUE"),
        (vec!["count=three"], "not an integer"),
        (
            vec!["count=1", "colour=red"],
            "no parameter `colour` (it has: count, message)",
        ),
        (vec!["count"], "expected NAME=VALUE"),
    ] {
        let err = values(&given).expect_err(&format!("{given:?}"));
        assert!(err.to_string().contains(want), "{given:?}: {err}");
    }
}

// ---------------------------------------------------------------------------------------------
// Against kube-sim with Argo's Workflow CRD.

async fn client(env: &Env) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(&env.kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// A simulator with the namespace `team-a` and, when asked, the Workflow CRD (served).
async fn cluster(with_crd: bool) -> Env {
    let env = start(fast()).await;
    env.sim
        .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}))
        .unwrap();
    if with_crd {
        let crd: Value = yaml_file(&fixtures().join("workflow-crd.yaml"));
        env.sim.put(crd).unwrap();
        let established = || {
            env.sim
                .get(
                    "apiextensions.k8s.io/v1",
                    "CustomResourceDefinition",
                    "",
                    "workflows.argoproj.io",
                )
                .is_some_and(|c| {
                    c["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Established" && c["status"] == "True")
                    })
                })
        };
        until(10, "the Workflow CRD to be Established", established).await;
    }
    env
}

fn workflows(env: &Env) -> Vec<Value> {
    env.sim.list("argoproj.io/v1alpha1", "Workflow", Some(NS))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compiled_workflow_passes_argos_crd_schema_and_is_stored_unpruned() {
    use kube::api::{Api, DynamicObject, PostParams};
    use kube::discovery::ApiResource;
    let env = cluster(true).await;
    let client = client(&env).await;
    let ar = ApiResource {
        group: "argoproj.io".into(),
        version: "v1alpha1".into(),
        api_version: "argoproj.io/v1alpha1".into(),
        kind: "Workflow".into(),
        plural: "workflows".into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client, NS, &ar);
    let create = |wf: Value| {
        let api = api.clone();
        async move {
            let obj: DynamicObject = serde_json::from_value(wf).unwrap();
            api.create(&PostParams::default(), &obj).await
        }
    };
    for (kfp, _) in goldens() {
        let wf = compiled(&kfp);
        let created = create(wf.clone())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", kfp.display()));
        let name = created.metadata.name.unwrap();
        let stored = env
            .sim
            .get("argoproj.io/v1alpha1", "Workflow", NS, &name)
            .unwrap();
        // Pruning would drop any emitted field the schema does not declare.
        assert_same(
            &format!("{} as stored", kfp.display()),
            &stored["spec"],
            &wf["spec"],
        );
        assert_eq!(stored["metadata"]["labels"], wf["metadata"]["labels"]);
    }
    // The schema has teeth: a template without its container's image is refused (422), and a
    // field outside it is pruned, which the comparison above would catch.
    let mut broken = compiled(&example());
    broken["spec"]["templates"][1]["container"]
        .as_object_mut()
        .unwrap()
        .remove("image");
    let err = create(broken)
        .await
        .expect_err("a container without an image");
    assert!(err.to_string().contains("image"), "{err}");
    let mut extra = compiled(&example());
    extra["spec"]["templates"][1]["container"]["notAField"] = json!("x");
    let name = create(extra).await.unwrap().metadata.name.unwrap();
    let stored = env
        .sim
        .get("argoproj.io/v1alpha1", "Workflow", NS, &name)
        .unwrap();
    assert!(
        stored["spec"]["templates"][1]["container"]
            .get("notAField")
            .is_none()
    );
    env.sim.shutdown().await;
}

fn run_args<'a>(example: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["pipeline", "run", example, "-n", NS];
    args.extend_from_slice(extra);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_without_argo_says_pipelines_need_the_full_bundle_and_writes_nothing() {
    let env = cluster(false).await;
    env.sim.reset_writes();
    let example = example().display().to_string();
    let out = env.wharf(&run_args(&example, &[])).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("serves no Argo Workflows") && err.contains("full bundle"),
        "{err}"
    );
    assert_eq!(env.sim.writes(), 0);
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_refuses_a_bad_param_before_asking_the_cluster() {
    let env = cluster(true).await;
    env.sim.reset_writes();
    let example = example().display().to_string();
    let out = env
        .wharf(&run_args(&example, &["--param", "epochs=many"]))
        .await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--param epochs=many: `many` is not an integer"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(env.sim.writes(), 0);
    assert!(workflows(&env).is_empty());
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_submits_the_compiled_workflow_with_the_params_given() {
    let env = cluster(true).await;
    let example = example().display().to_string();
    let out = env
        .wharf(&run_args(
            &example,
            &["--param", "epochs=7", "--param", "pvc_name=scratch"],
        ))
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let submitted = workflows(&env);
    assert_eq!(submitted.len(), 1);
    let wf = &submitted[0];
    let name = wf["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("fashion-mnist-train-predict-"), "{name}");
    assert!(text(&out.stdout).contains(&format!("workflow {name} submitted to namespace {NS}")));
    let mut want = compiled(&crate::example());
    for p in want["spec"]["arguments"]["parameters"]
        .as_array_mut()
        .unwrap()
    {
        match p["name"].as_str().unwrap() {
            "epochs" => p["value"] = json!("7"),
            "pvc_name" => p["value"] = json!("scratch"),
            _ => {}
        }
    }
    assert_same("the submitted Workflow", &wf["spec"], &want["spec"]);
    // team-a is not a profile: the account Argo runs the steps as is missing, and `run` says so.
    assert!(
        text(&out.stderr).contains("namespace team-a has no ServiceAccount `workflow`"),
        "{}",
        text(&out.stderr)
    );
    env.sim.shutdown().await;
}

/// In a namespace with the `workflow` account (a profile's, the model namespace) there is no
/// warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_in_a_namespace_with_the_step_account_does_not_warn() {
    let env = cluster(true).await;
    env.sim
        .put(json!({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": "workflow", "namespace": NS}}))
        .unwrap();
    let example = example().display().to_string();
    let out = env.wharf(&run_args(&example, &[])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(workflows(&env).len(), 1);
    env.sim.shutdown().await;
}

/// Play Argo's controller: write `phase` and the step nodes into the Workflow's status.
fn set_status(env: &Env, name: &str, phase: &str, steps: &[(&str, &str)], message: &str) {
    let mut wf = env
        .sim
        .get("argoproj.io/v1alpha1", "Workflow", NS, name)
        .unwrap();
    let mut nodes = serde_json::Map::new();
    nodes.insert(
        name.into(),
        json!({"id": name, "type": "DAG", "displayName": name, "phase": phase}),
    );
    for (i, (step, p)) in steps.iter().enumerate() {
        nodes.insert(
            format!("{name}-{i}"),
            json!({"id": format!("{name}-{i}"), "type": "Pod", "displayName": step, "phase": p}),
        );
    }
    wf["status"] = json!({"phase": phase, "message": message, "nodes": nodes});
    env.sim.put(wf).unwrap();
}

/// One state the test writes, as Argo's controller would, and the lines `--watch` prints for it.
struct Phase<'a> {
    phase: &'a str,
    steps: &'a [(&'a str, &'a str)],
    message: &'a str,
    /// `{wf}` stands for the Workflow's name.
    prints: &'a [&'a str],
}

/// Start `wharf pipeline run --watch`; after each state is written, wait until its lines are
/// printed (so no state is skipped however slow the machine), then for the process to end.
async fn watched_run(env: &Env, phases: &[Phase<'_>]) -> (std::process::ExitStatus, String) {
    use tokio::io::AsyncBufReadExt;
    let example = example().display().to_string();
    let mut child = env
        .command(&run_args(&example, &["--watch", "--interval", "100ms"]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = child.stderr.take().unwrap();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("`run --watch` prints the next line within 30 s")
            .unwrap()
            .expect("`run --watch` still running")
    };
    let first = next().await;
    let name = first
        .strip_prefix("workflow ")
        .and_then(|r| r.split_once(' '))
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| panic!("first line: {first}"));
    assert_eq!(
        first,
        format!("workflow {name} submitted to namespace {NS}")
    );
    for p in phases {
        set_status(env, &name, p.phase, p.steps, p.message);
        for want in p.prints {
            assert_eq!(
                next().await,
                want.replace("{wf}", &name),
                "after writing {}",
                p.phase
            );
        }
    }
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("`run --watch` ends once the Workflow has")
        .unwrap();
    let mut rest = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        rest.push_str(&line);
    }
    assert_eq!(rest, "", "nothing more on stdout");
    let mut err = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut err)
        .await
        .unwrap();
    (status, err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_watch_follows_the_steps_until_the_workflow_succeeds() {
    let env = cluster(true).await;
    let (status, stderr) = watched_run(
        &env,
        &[
            Phase {
                phase: "Running",
                steps: &[("train", "Running")],
                message: "",
                prints: &["step train: Running", "workflow {wf}: Running"],
            },
            Phase {
                phase: "Running",
                steps: &[("train", "Succeeded"), ("predict", "Running")],
                message: "",
                prints: &["step predict: Running", "step train: Succeeded"],
            },
            Phase {
                phase: "Succeeded",
                steps: &[("train", "Succeeded"), ("predict", "Succeeded")],
                message: "",
                prints: &["step predict: Succeeded", "workflow {wf}: Succeeded"],
            },
        ],
    )
    .await;
    assert!(status.success(), "{stderr}");
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_watch_fails_with_the_message_when_the_workflow_fails() {
    let env = cluster(true).await;
    let (status, stderr) = watched_run(
        &env,
        &[
            Phase {
                phase: "Running",
                steps: &[("train", "Running")],
                message: "",
                prints: &["step train: Running", "workflow {wf}: Running"],
            },
            Phase {
                phase: "Failed",
                steps: &[("train", "Failed"), ("predict", "Omitted")],
                message: "child 'train' failed",
                prints: &[
                    "step predict: Omitted",
                    "step train: Failed",
                    "workflow {wf}: Failed (child 'train' failed)",
                ],
            },
        ],
    )
    .await;
    assert!(!status.success());
    assert!(
        stderr.contains("ended Failed: child 'train' failed"),
        "{stderr}"
    );
    env.sim.shutdown().await;
}
