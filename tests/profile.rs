//! `wharf profile create|list|delete` against kube-sim with the workspaces charm's CRD: what
//! each writes and prints, the quota flags, the refusal a create waits for, a delete that needs
//! `--yes` without a terminal and says that the namespace goes with the profile, and the message
//! when Profiles are not served. (The operator that acts on Profiles is tested in
//! charms/workspaces/tests/operator.rs; here its status is written by the test.)

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
