//! The argo charm (Argo Workflows in the `full` bundle) as the shipped bundle renders it: RBAC
//! narrow enough to read (the controller is not cluster-admin, the executor holds exactly what
//! argoexec writes, the UI reads one Secret), the controller's configuration pointing at the
//! platform's own S3 store through the minio relation, the ServiceAccount Workflows run as being
//! the one the charm and the workspaces operator set up, and the charm's own CRDs accepting what
//! `wharf pipeline run` submits (in kube-sim, which cannot run Argo's controller: a Workflow is
//! stored there, never run).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::{Value, json};

/// The model namespace of a default render.
const MODEL_NS: &str = "wharf";
/// A user's namespace for `wharf pipeline run`.
const NS: &str = "team-a";

/// The objects of the shipped `full` bundle, with the charms compiled into wharf.
fn full() -> Vec<Value> {
    let bundle = wharf::bundle::Bundle::load("full", &[], &[]).unwrap();
    let resolved = wharf::render::Resolved::new(bundle, &wharf::charm::Source::new(None)).unwrap();
    let rendered = resolved
        .render(
            &wharf::render::Target::default(),
            &wharf::render::Generated::new(),
        )
        .unwrap();
    rendered.apps.into_iter().flat_map(|a| a.objects).collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("full renders no {kind} {name}"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn args(deployment: &Value) -> Vec<&str> {
    strings(&deployment["spec"]["template"]["spec"]["containers"][0]["args"])
}

/// A key of the controller's ConfigMap, itself YAML.
fn controller_setting(objects: &[Value], key: &str) -> Value {
    let cm = find(objects, "ConfigMap", "argo-controller-configmap");
    let text = cm["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("the controller ConfigMap has no {key}: {cm}"));
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{key}: {e}\n{text}"))
}

/// Whether a rule grants `verb` on `group`/`resource` (names aside).
fn grants(rule: &Value, group: &str, resource: &str, verb: &str) -> bool {
    let any = |field: &str, want: &str| {
        strings(&rule[field])
            .iter()
            .any(|v| *v == want || *v == "*")
    };
    any("apiGroups", group) && any("resources", resource) && any("verbs", verb)
}

#[test]
fn the_controllers_cluster_role_runs_workflows_and_is_not_cluster_admin() {
    let objects = full();
    let role = find(&objects, "ClusterRole", "wharf-argo-controller");
    let rules = role["rules"].as_array().unwrap();
    for rule in rules {
        for field in ["apiGroups", "resources", "verbs"] {
            assert!(
                !strings(&rule[field]).contains(&"*"),
                "a wildcard in {field}: {rule}"
            );
        }
        // Nothing that reads credentials, changes rights or touches the cluster's own objects.
        for resource in strings(&rule["resources"]) {
            assert!(
                ![
                    "secrets",
                    "nodes",
                    "namespaces",
                    "clusterroles",
                    "clusterrolebindings",
                    "roles",
                    "rolebindings",
                    "customresourcedefinitions",
                ]
                .contains(&resource),
                "the controller may touch {resource}: {rule}"
            );
        }
        for verb in strings(&rule["verbs"]) {
            assert!(
                !["escalate", "bind", "impersonate"].contains(&verb),
                "{verb}: {rule}"
            );
        }
    }
    // What running a Workflow takes.
    let needs = [
        ("", "pods", "create"),
        ("", "pods", "delete"),
        ("", "pods", "watch"),
        ("", "pods/exec", "create"),
        ("argoproj.io", "workflows", "update"),
        ("argoproj.io", "workflowtaskresults", "watch"),
        ("argoproj.io", "workflowartifactgctasks", "watch"),
        ("argoproj.io", "workflowtasksets", "watch"),
        ("argoproj.io", "cronworkflows", "update"),
        ("", "events", "create"),
    ];
    for (group, resource, verb) in needs {
        assert!(
            rules.iter().any(|r| grants(r, group, resource, verb)),
            "the controller cannot {verb} {resource}"
        );
    }
    // It may not write the results the executors report.
    assert!(
        !rules
            .iter()
            .any(|r| grants(r, "argoproj.io", "workflowtaskresults", "create"))
    );
    let binding = find(&objects, "ClusterRoleBinding", "wharf-argo-controller");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "argo-controller", "namespace": MODEL_NS}])
    );
    let lease_role = find(&objects, "Role", "argo-controller");
    assert_eq!(
        strings(&lease_role["rules"][1]["resourceNames"]),
        ["workflow-controller"],
        "only Argo's own Lease"
    );
}

#[test]
fn the_executor_holds_exactly_what_argoexec_writes_in_each_namespace_it_is_bound_to() {
    let objects = full();
    let executor = find(&objects, "ClusterRole", "wharf-argo-executor");
    assert_eq!(
        executor["rules"],
        json!([{"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]}]),
        "Argo 3.7's minimum for the emissary executor"
    );
    // Bound per namespace only, never cluster-wide.
    assert!(
        !objects
            .iter()
            .any(|o| o["kind"] == "ClusterRoleBinding"
                && o["roleRef"]["name"] == "wharf-argo-executor"),
        "the executor's rights are never cluster-wide"
    );
    let account = controller_setting(&objects, "workflowDefaults")["spec"]["serviceAccountName"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(account, "workflow");
    find(&objects, "ServiceAccount", &account);
    let binding = find(&objects, "RoleBinding", "workflow-executor");
    assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
    assert_eq!(binding["roleRef"]["name"], "wharf-argo-executor");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": account, "namespace": MODEL_NS}])
    );
    // Profile namespaces: the workspaces operator binds the same account to the same role, and
    // may bind that role only.
    let workspaces = find(&objects, "Deployment", "workspaces");
    let args = args(workspaces);
    assert!(
        args.contains(&"--workflow-executor-role=wharf-argo-executor"),
        "{args:?}"
    );
    assert!(
        args.contains(&format!("--workflow-service-account={account}").as_str()),
        "{args:?}"
    );
    let rules = find(&objects, "ClusterRole", "wharf-workspaces")["rules"]
        .as_array()
        .unwrap()
        .clone();
    let binds: Vec<&Value> = rules
        .iter()
        .filter(|r| strings(&r["verbs"]).contains(&"bind"))
        .collect();
    assert!(
        binds
            .iter()
            .any(|r| strings(&r["resourceNames"]) == ["wharf-argo-executor"]),
        "{binds:?}"
    );
    assert!(
        binds
            .iter()
            .all(|r| !strings(&r["resourceNames"]).is_empty())
    );
}

#[test]
fn the_controller_keeps_artifacts_and_logs_in_the_platforms_minio() {
    let objects = full();
    let repository = controller_setting(&objects, "artifactRepository");
    assert_eq!(repository["archiveLogs"], true, "{repository}");
    let s3 = &repository["s3"];
    // MinIO's own Service, port and bucket, as the minio charm renders them.
    let minio = find(&objects, "Service", "minio");
    let port = minio["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "s3" || p["name"] == "api" || p["port"] == 9000)
        .unwrap_or_else(|| panic!("{minio}"))["port"]
        .clone();
    assert_eq!(
        s3["endpoint"],
        format!("minio.{MODEL_NS}.svc.cluster.local:{port}"),
        "{s3}"
    );
    assert_eq!(
        s3["insecure"], true,
        "MinIO in the cluster speaks plain HTTP"
    );
    assert_eq!(s3["bucket"], "wharf");
    assert_eq!(s3["region"], "us-east-1");
    assert!(
        s3["keyFormat"]
            .as_str()
            .unwrap()
            .starts_with("pipelines/{{workflow.namespace}}/{{workflow.name}}/"),
        "{s3}"
    );
    // The Secret MinIO's keys are in, with its key names; the workspaces operator copies that
    // Secret, under that name, into every profile namespace, where Workflows read it.
    let secret = find(&objects, "Secret", "minio-credentials");
    for (field, key) in [
        ("accessKeySecret", "access-key"),
        ("secretKeySecret", "secret-key"),
    ] {
        assert_eq!(s3[field]["name"], "minio-credentials", "{s3}");
        assert_eq!(s3[field]["key"], key, "{s3}");
        let data = if secret["stringData"].is_object() {
            &secret["stringData"]
        } else {
            &secret["data"]
        };
        assert!(data.get(key).is_some(), "minio-credentials has no {key}");
    }
    let workspaces = find(&objects, "Deployment", "workspaces");
    assert!(args(workspaces).contains(&"--s3-secret=minio-credentials"));
    // No credential in the configuration itself.
    let cm = find(&objects, "ConfigMap", "argo-controller-configmap").to_string();
    assert!(!cm.contains("secretKey:") && !cm.contains("accessKey:"));

    // Metrics where the platform's Prometheus looks: pods labelled app=workflow-controller, port
    // 9090, plain HTTP.
    let metrics = controller_setting(&objects, "metricsConfig");
    assert_eq!(
        metrics,
        json!({"enabled": true, "path": "/metrics", "port": 9090, "secure": false})
    );
    let controller = find(&objects, "Deployment", "argo-controller");
    let pod = &controller["spec"]["template"];
    assert_eq!(pod["metadata"]["labels"]["app"], "workflow-controller");
    let ports = &pod["spec"]["containers"][0]["ports"];
    assert!(
        ports
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "metrics" && p["containerPort"] == 9090),
        "{ports}"
    );
    // The executor image it gives every workflow pod is the charm's pinned one.
    let args = args(controller);
    let at = args.iter().position(|a| *a == "--executor-image").unwrap();
    assert_eq!(args[at + 1], "quay.io/argoproj/argoexec:v3.7.18");
}

#[test]
fn the_ui_runs_as_itself_behind_the_gateways_login_only() {
    let objects = full();
    let server = find(&objects, "Deployment", "argo-server");
    let args = args(server);
    for flag in [
        "server",
        "--auth-mode=server",
        "--secure=false",
        "--basehref=/pipelines/",
    ] {
        assert!(args.contains(&flag), "{flag}: {args:?}");
    }
    // Its rights: the Workflow kinds, pods and their logs, and one Secret (archived logs in S3).
    let rules = find(&objects, "ClusterRole", "wharf-argo-server")["rules"]
        .as_array()
        .unwrap()
        .clone();
    for rule in &rules {
        if strings(&rule["resources"]).contains(&"secrets") {
            assert_eq!(strings(&rule["resourceNames"]), ["minio-credentials"]);
            assert_eq!(strings(&rule["verbs"]), ["get"]);
        }
        assert!(!strings(&rule["verbs"]).contains(&"*"));
        assert!(!strings(&rule["resources"]).contains(&"*"));
    }
    assert!(rules.iter().any(|r| grants(r, "", "pods/log", "get")));
    assert!(
        rules
            .iter()
            .any(|r| grants(r, "argoproj.io", "workflows", "create"))
    );
    // Only the gateway's pods reach it.
    let policy = find(
        &objects,
        "NetworkPolicy",
        "argo-server-only-from-the-gateway",
    );
    assert_eq!(
        policy["spec"]["ingress"],
        json!([{"from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}}],
                "ports": [{"port": "web", "protocol": "TCP"}]}])
    );
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"]["app"],
        "argo-server"
    );
    // The gateway's route is behind the login (the real-nginx test exercises it).
    let nginx = find(&objects, "ConfigMap", "gateway-config")["data"]["nginx.conf"]
        .as_str()
        .unwrap();
    let route = nginx
        .split("location ^~ /pipelines/ {")
        .nth(1)
        .expect("a /pipelines/ route")
        .split('}')
        .next()
        .unwrap();
    assert!(route.contains("auth_request /oauth2/auth;"), "{route}");
    assert!(
        route.contains("argo-server.wharf.svc.cluster.local:2746"),
        "{route}"
    );
}

// ---------------------------------------------------------------------------------------------
// The charm's own CRDs in kube-sim.

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/pipelines/fashion-mnist-train-predict.yaml")
}

fn crd_established(env: &Env, name: &str) -> bool {
    env.sim
        .get(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "",
            name,
        )
        .is_some_and(|c| {
            c["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Established" && c["status"] == "True")
            })
        })
}

/// The kinds Argo 3.7's controller and server watch, all registered by the charm.
const KINDS: [&str; 8] = [
    "clusterworkflowtemplates",
    "cronworkflows",
    "workflowartifactgctasks",
    "workfloweventbindings",
    "workflows",
    "workflowtaskresults",
    "workflowtasksets",
    "workflowtemplates",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compiled_example_is_accepted_by_the_charms_own_crds_and_stored_unpruned() {
    let env = start(fast()).await;
    env.sim
        .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}))
        .unwrap();
    let crds: Vec<Value> = full()
        .into_iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition" && o["spec"]["group"] == "argoproj.io")
        .collect();
    let mut names: Vec<String> = crds
        .iter()
        .map(|c| c["spec"]["names"]["plural"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, KINDS);
    for crd in crds {
        env.sim.put(crd).unwrap();
    }
    for kind in KINDS {
        let name = format!("{kind}.argoproj.io");
        until(10, &format!("{name} Established"), || {
            crd_established(&env, &name)
        })
        .await;
    }

    let example = example().display().to_string();
    let out = env
        .wharf(&["pipeline", "run", &example, "-n", NS, "--param", "epochs=5"])
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stored = env.sim.list("argoproj.io/v1alpha1", "Workflow", Some(NS));
    assert_eq!(stored.len(), 1);
    let p = wharf::pipeline::load(&self::example()).unwrap();
    let mut want = serde_json::to_value(wharf::pipeline::compile(&p).unwrap()).unwrap();
    for param in want["spec"]["arguments"]["parameters"]
        .as_array_mut()
        .unwrap()
    {
        if param["name"] == "epochs" {
            param["value"] = json!("5");
        }
    }
    assert_eq!(
        stored[0]["spec"], want["spec"],
        "stored as submitted, nothing pruned"
    );
    // Argo's controller runs it as the charm's default account: the compiled Workflow names none.
    assert!(stored[0]["spec"].get("serviceAccountName").is_none());

    // A Workflow without its spec is refused, as Argo's CRD requires one.
    let out = env.sim.put(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"name": "no-spec", "namespace": NS},
    }));
    assert!(out.is_err(), "a Workflow without spec was accepted");

    // What argoexec writes (a WorkflowTaskResult with the step's outputs) is kept whole.
    let result = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTaskResult",
        "metadata": {"name": "wf-1-2", "namespace": NS,
                     "labels": {"workflows.argoproj.io/workflow": "wf-1"}},
        "outputs": {
            "parameters": [{"name": "predictions", "value": "[7, 2, 1]",
                            "valueFrom": {"path": "/tmp/outputs/parameters/predictions"}}],
            "artifacts": [{"name": "main-logs", "s3": {"key": "pipelines/team-a/wf-1/wf-1-2/main.log"}}],
            "exitCode": "0",
        },
        "phase": "Succeeded",
        "progress": "1/1",
    });
    env.sim.put(result.clone()).unwrap();
    let kept = env
        .sim
        .get("argoproj.io/v1alpha1", "WorkflowTaskResult", NS, "wf-1-2")
        .unwrap();
    assert_eq!(kept["outputs"], result["outputs"]);
    assert_eq!(kept["phase"], "Succeeded");
    env.sim.shutdown().await;
}
