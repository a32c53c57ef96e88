//! `wharf profile create|list|delete` against kube-sim with the workspaces charm's CRD: what
//! each writes and prints, the quota flags, the refusal a create waits for, a delete that needs
//! `--yes` without a terminal and says that the namespace goes with the profile, and the message
//! when Profiles are not served; `wharf notebook create|list|delete` likewise; and the read-only
//! `wharf tuning list|show` over OptimizationJobs. (The operator that
//! acts on Profiles and Notebooks is tested in charms/workspaces/tests/operator.rs; here its
//! status is written by the test.)

mod common;

use std::time::Duration;

use common::*;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use serde_json::{Value, json};

/// The Profile CRD exactly as the workspaces charm ships it.
fn put_crd(env: &Env) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/charms/workspaces/templates/crd.yaml"
    );
    let crd: Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    env.sim.put(crd).unwrap();
}

async fn admin(env: &Env) -> kube::Client {
    let kc = Kubeconfig::read_from(&env.kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

fn profiles(client: &kube::Client) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kubeflow.org", "v1", "Profile"),
        "profiles",
    );
    Api::all_with(client.clone(), &resource)
}

/// What the operator would write: the Ready condition.
async fn set_ready(client: &kube::Client, name: &str, status: &str, reason: &str, message: &str) {
    profiles(client)
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [{
                "type": "Ready", "status": status, "reason": reason, "message": message,
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})),
        )
        .await
        .unwrap();
}

async fn started() -> Env {
    let env = start(fast()).await;
    put_crd(&env);
    // The CRD is served at once; Established after the delay.
    tokio::time::sleep(Duration::from_millis(100)).await;
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_writes_a_kubeflow_profile_with_the_quota_and_list_shows_it() {
    let env = started().await;
    let out = env
        .wharf(&[
            "profile",
            "create",
            "alice",
            "--owner",
            "alice@example.com",
            "--cpu",
            "2",
            "--memory",
            "4Gi",
            "--timeout",
            "0s",
        ])
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "profile alice created; not waiting for it: namespace alice, owned by alice@example.com \
         (edit rights there)\n"
    );
    let profile = env
        .sim
        .get("kubeflow.org/v1", "Profile", "", "alice")
        .expect("the Profile");
    assert_eq!(
        profile["spec"],
        json!({"owner": {"kind": "User", "name": "alice@example.com"},
               "resourceQuotaSpec": {"hard": {"requests.cpu": "2", "requests.memory": "4Gi"}}})
    );

    let out = env.wharf(&["profile", "list"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{stdout}");
    assert!(
        lines[1].contains("alice@example.com") && lines[1].contains("Unknown"),
        "not reconciled yet: {stdout}"
    );

    let client = admin(&env).await;
    set_ready(
        &client,
        "alice",
        "True",
        "Ready",
        "namespace alice is ready",
    )
    .await;
    let out = env.wharf(&["profile", "list", "--output", "json"]).await;
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        rows,
        json!([{"name": "alice", "owner": "alice@example.com", "ready": "True",
                "reason": "Ready", "message": "namespace alice is ready"}])
    );

    // A second create of the same name says what to do.
    let out = env
        .wharf(&["profile", "create", "alice", "--owner", "x@example.com"])
        .await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("profile alice already exists"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_waits_for_the_operator_and_reports_its_refusal() {
    let env = started().await;
    let client = admin(&env).await;
    let writer = tokio::spawn(async move {
        let api = profiles(&client);
        for _ in 0..100 {
            if api.get_opt("carol").await.unwrap().is_some() {
                set_ready(
                    &client,
                    "carol",
                    "False",
                    "NamespaceConflict",
                    "namespace carol already exists and does not belong to this profile",
                )
                .await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the profile was never created");
    });
    let out = env
        .wharf(&[
            "profile",
            "create",
            "carol",
            "--owner",
            "carol@example.com",
            "--timeout",
            "20s",
        ])
        .await;
    writer.await.unwrap();
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("refused (NamespaceConflict)")
            && stderr.contains("does not belong to this profile")
            && stderr.contains("wharf profile delete carol"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_says_the_namespace_goes_too_and_needs_yes_without_a_terminal() {
    let env = started().await;
    let out = env
        .wharf(&[
            "profile",
            "create",
            "alice",
            "--owner",
            "alice@example.com",
            "--timeout",
            "0s",
        ])
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let uid = env
        .sim
        .get("kubeflow.org/v1", "Profile", "", "alice")
        .unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    // The namespace as the operator makes it: owned by the profile.
    env.sim
        .put(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "alice",
            "ownerReferences": [{"apiVersion": "kubeflow.org/v1", "kind": "Profile",
                "name": "alice", "uid": uid, "controller": true}]}}),
        )
        .unwrap();

    let out = env.wharf(&["profile", "delete", "alice"]).await;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("its namespace alice, with everything in it")
            && stderr.contains("pass --yes")
            && stderr.contains("Nothing was deleted"),
        "{stderr}"
    );
    assert!(
        env.sim
            .get("kubeflow.org/v1", "Profile", "", "alice")
            .is_some()
    );

    let out = env.wharf(&["profile", "delete", "alice", "--yes"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("deleted profile alice and its namespace alice"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        env.sim
            .get("kubeflow.org/v1", "Profile", "", "alice")
            .is_none()
    );
    // Garbage collection takes the namespace (Terminating, then gone).
    until(10, "namespace alice deleted", || {
        env.sim.get("v1", "Namespace", "", "alice").is_none()
    })
    .await;

    let out = env.wharf(&["profile", "delete", "alice", "--yes"]).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no profile alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_flag_is_refused_before_any_write_and_without_the_crd_the_fix_is_named() {
    let env = start(fast()).await;
    let out = env
        .wharf(&[
            "profile",
            "create",
            "alice",
            "--owner",
            "a@example.com",
            "--memory",
            "4 GB",
        ])
        .await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--memory `4 GB` is not a quantity"),
        "{}",
        text(&out.stderr)
    );
    let out = env
        .wharf(&["profile", "create", "Alice", "--owner", "a@example.com"])
        .await;
    assert!(text(&out.stderr).contains("profile name `Alice`"));

    // No workspaces charm deployed: no Profile API.
    let out = env
        .wharf(&["profile", "create", "alice", "--owner", "a@example.com"])
        .await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("deploy the workspaces charm"),
        "{}",
        text(&out.stderr)
    );
    let out = env.wharf(&["profile", "list"]).await;
    assert!(text(&out.stderr).contains("deploy the workspaces charm"));
}

/// `wharf notebook`: create writes a Kubeflow Notebook and waits for the operator's Running,
/// list shows it with its path, delete says the workspace volume is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notebook_create_waits_for_running_list_shows_the_path_and_delete_keeps_the_workspace() {
    let env = started().await;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/charms/workspaces/templates/notebook-crd.yaml"
    );
    let crd: Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    env.sim.put(crd).unwrap();
    env.sim
        .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "alice"}}))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let bad = env
        .wharf(&["notebook", "create", "Nb", "-n", "alice", "--timeout", "0s"])
        .await;
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("notebook name `Nb`"),
        "{}",
        text(&bad.stderr)
    );

    // What the operator would write once the server runs, while create waits.
    let client = admin(&env).await;
    let notebooks: Api<DynamicObject> = Api::namespaced_with(
        client,
        "alice",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("kubeflow.org", "v1", "Notebook"),
            "notebooks",
        ),
    );
    let operator = tokio::spawn(async move {
        for _ in 0..200 {
            let running = json!({"status": {"readyReplicas": 1, "conditions": [{
                "type": "Ready", "status": "True", "reason": "Running",
                "message": "Jupyter answers at /notebook/alice/nb/",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
            if notebooks
                .patch_status("nb", &PatchParams::default(), &Patch::Merge(running))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the Notebook was never created");
    });
    let out = env
        .wharf(&[
            "notebook",
            "create",
            "nb",
            "-n",
            "alice",
            "--image",
            "minimal",
            "--memory",
            "1Gi",
            "--timeout",
            "20s",
        ])
        .await;
    operator.await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "notebook alice/nb running: open /notebook/alice/nb/ on the platform (its profile's \
         owner only)\n"
    );
    let nb = env
        .sim
        .get("kubeflow.org/v1", "Notebook", "alice", "nb")
        .expect("the Notebook");
    assert_eq!(
        nb["spec"]["template"]["spec"]["containers"],
        json!([{"name": "notebook", "image": "minimal",
                "resources": {"requests": {"memory": "1Gi"}}}])
    );

    let out = env.wharf(&["notebook", "list", "--output", "json"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        rows,
        json!([{"namespace": "alice", "name": "nb", "ready": "True", "reason": "Running",
                "path": "/notebook/alice/nb/"}])
    );

    let out = env
        .wharf(&["notebook", "delete", "nb", "-n", "alice"])
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("its workspace volume nb-workspace (your files) is kept"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        env.sim
            .get("kubeflow.org/v1", "Notebook", "alice", "nb")
            .is_none()
    );
    let out = env
        .wharf(&["notebook", "delete", "nb", "-n", "alice"])
        .await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no notebook nb in alice"),
        "{}",
        text(&out.stderr)
    );
}

// ---- `wharf tuning list|show`: read-only views of OptimizationJobs (the trainer charm's CRD);
// the status is written here as the trainer's operator writes it (charms/trainer/tests/operator.rs
// runs that operator).

fn put_tuning(env: &Env) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/charms/trainer/templates/optimizationjob-crd.yaml"
    );
    let crd: Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    env.sim.put(crd).unwrap();
    env.sim
        .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}))
        .unwrap();
}

/// An OptimizationJob without status (status is written through its subresource).
fn optimization_job(name: &str) -> Value {
    json!({
        "apiVersion": "wharf.dev/v1alpha1", "kind": "OptimizationJob",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": {
            "objectives": [{"metric": "accuracy", "direction": "maximize"}],
            "searchAlgorithm": {"name": "tpe", "seed": 42},
            "parameters": [
                {"name": "learningRate", "distribution": "logUniform", "min": 0.0001, "max": 0.01},
                {"name": "batchSize", "distribution": "categorical", "values": [32, 64, 128]}
            ],
            "numTrials": 3, "parallelTrials": 2,
            "trainJobTemplate": {"model": "mlp", "epochs": 5,
                "dataset": {"uri": "file:///usr/share/datasets/fashion-mnist"},
                "output": {"uri": "pvc://models/fashion-tuning"}}
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tuning_list_and_show_print_the_trials_table_and_json() {
    let env = start(fast()).await;
    // Without the trainer charm there is no OptimizationJob API: the fix is named.
    let out = env.wharf(&["tuning", "list"]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("deploy the trainer charm"),
        "{}",
        text(&out.stderr)
    );

    put_tuning(&env);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let out = env.wharf(&["tuning", "list"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("no OptimizationJobs"),
        "{}",
        text(&out.stdout)
    );

    env.sim.put(optimization_job("fashion-tuning")).unwrap();
    // The status subresource, written as the trainer's operator writes it.
    let jobs: Api<DynamicObject> = Api::namespaced_with(
        admin(&env).await,
        "team-a",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("wharf.dev", "v1alpha1", "OptimizationJob"),
            "optimizationjobs",
        ),
    );
    jobs.patch_status(
        "fashion-tuning",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
                "state": "Succeeded", "progress": "3/3",
                "succeededTrials": 2, "earlyStoppedTrials": 0, "failedTrials": 1, "activeTrials": 0,
                "conditions": [{"type": "Succeeded", "status": "True", "reason": "BestTrialFound",
                    "message": "best accuracy 0.8712 from trial fashion-tuning-trial-1 after 3 trials",
                    "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                "trials": [
                    {"name": "fashion-tuning-trial-0", "index": 0, "state": "Succeeded", "value": 0.8431,
                        "parameters": {"learningRate": 0.0002, "batchSize": 128}},
                    {"name": "fashion-tuning-trial-1", "index": 1, "state": "Succeeded", "value": 0.8712,
                        "parameters": {"learningRate": 0.0031, "batchSize": 64},
                        "modelUri": "pvc://models/fashion-tuning/fashion-tuning-trial-1/1"},
                    {"name": "fashion-tuning-trial-2", "index": 2, "state": "Failed",
                        "parameters": {"learningRate": 0.009, "batchSize": 32},
                        "message": "BackoffLimitExceeded: out of memory"}
                ],
                "result": {"trialName": "fashion-tuning-trial-1", "trainJob": "fashion-tuning-trial-1",
                    "parameters": {"learningRate": 0.0031, "batchSize": 64}, "value": 0.8712,
                    "modelUri": "pvc://models/fashion-tuning/fashion-tuning-trial-1/1"}
            }})),
    )
    .await
    .unwrap();
    env.sim.put(optimization_job("fresh")).unwrap();

    let out = env.wharf(&["tuning", "list"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        [
            vec![
                "NAMESPACE",
                "NAME",
                "STATE",
                "TRIALS",
                "ALGORITHM",
                "OBJECTIVE",
                "BEST",
                "BEST",
                "TRIAL"
            ],
            vec![
                "team-a",
                "fashion-tuning",
                "Succeeded",
                "3/3",
                "tpe",
                "accuracy",
                "(maximize)",
                "0.8712",
                "fashion-tuning-trial-1"
            ],
            vec![
                "team-a",
                "fresh",
                "Pending",
                "0/3",
                "tpe",
                "accuracy",
                "(maximize)",
                "-",
                "-"
            ],
        ],
        "{table}"
    );

    let out = env
        .wharf(&["tuning", "show", "fashion-tuning", "-n", "team-a"])
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.starts_with(
            "OptimizationJob team-a/fashion-tuning: Succeeded, 3/3 trials finished, accuracy \
             (maximize) by tpe\n  best accuracy 0.8712 from trial fashion-tuning-trial-1 after 3 trials\n"
        ),
        "{shown}"
    );
    let rows: Vec<Vec<&str>> = shown
        .lines()
        .skip_while(|l| !l.starts_with("TRIAL"))
        .take(4)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec![
                "TRIAL",
                "STATE",
                "LEARNINGRATE",
                "BATCHSIZE",
                "ACCURACY",
                "BEST",
                "MESSAGE"
            ],
            vec![
                "fashion-tuning-trial-0",
                "Succeeded",
                "2.000e-4",
                "128",
                "0.8431"
            ],
            vec![
                "fashion-tuning-trial-1",
                "Succeeded",
                "0.0031",
                "64",
                "0.8712",
                "*"
            ],
            vec![
                "fashion-tuning-trial-2",
                "Failed",
                "0.009",
                "32",
                "-",
                "BackoffLimitExceeded:",
                "out",
                "of",
                "memory"
            ],
        ],
        "{shown}"
    );
    assert!(
        shown.ends_with(
            "best: fashion-tuning-trial-1 (TrainJob fashion-tuning-trial-1 in team-a), model \
             pvc://models/fashion-tuning/fashion-tuning-trial-1/1\n"
        ),
        "{shown}"
    );

    let out = env
        .wharf(&["tuning", "list", "-n", "team-a", "--output", "json"])
        .await;
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["best"], 0.8712);
    assert_eq!(rows[0]["bestTrial"], "fashion-tuning-trial-1");
    assert_eq!(rows[1]["best"], Value::Null);
    let out = env
        .wharf(&[
            "tuning",
            "show",
            "fashion-tuning",
            "-n",
            "team-a",
            "--output",
            "json",
        ])
        .await;
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["result"]["parameters"]["batchSize"].as_f64(),
        Some(64.0)
    );
    assert_eq!(doc["trialList"].as_array().unwrap().len(), 3);

    let out = env.wharf(&["tuning", "show", "nope", "-n", "team-a"]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr)
            .contains("no OptimizationJob nope in team-a; see `wharf tuning list -n team-a`"),
        "{}",
        text(&out.stderr)
    );
}
