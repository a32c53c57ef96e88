//! `wharf remove` against kube-sim: what one application's removal deletes and keeps, what
//! `--destroy-data` needs (`--yes` without a terminal) and deletes, `--all`, which never leaves
//! the model, and `--output json`.

mod common;

use std::io::{Read, Write};

use base64::Engine;
use common::*;
use serde_json::{Value, json};

/// Keys of `wharf-generated` (each `<app>.<key>`).
fn generated_keys(env: &Env) -> Vec<String> {
    env.sim
        .get("v1", "Secret", MODEL, "wharf-generated")
        .and_then(|s| s["data"].as_object().map(|d| d.keys().cloned().collect()))
        .unwrap_or_default()
}

fn store_volume(env: &Env) -> Option<Value> {
    env.sim
        .get("v1", "PersistentVolumeClaim", MODEL, "store-data")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_app_keeps_volume_by_default() {
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    let out = env.wharf(&["remove", "store"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        env.sim
            .get("apps/v1", "Deployment", MODEL, "store")
            .is_none()
    );
    assert!(env.sim.get("v1", "Secret", MODEL, "store-auth").is_none());
    assert!(env.records("store").is_empty());
    // The data and the password it was written with stay, for the next deploy of store.
    assert!(store_volume(&env).is_some(), "the volume was deleted");
    assert_eq!(generated_keys(&env), ["store.password"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("PersistentVolumeClaim tiny/store-data")
            && stdout.contains("store.password")
            && stdout.contains("`wharf remove store --destroy-data`"),
        "{stdout}"
    );
    assert!(stdout.ends_with('\n'), "{stdout:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_data_without_a_terminal_needs_yes_and_deletes_nothing() {
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    let before = env.versions();
    let out = env.wharf(&["remove", "store", "--destroy-data"]).await;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("--destroy-data would delete")
            && stderr.contains("PersistentVolumeClaim tiny/store-data")
            && stderr.contains("pass --yes"),
        "{stderr}"
    );
    assert_eq!(changed(&before, &env.versions()), Vec::<String>::new());
    assert_eq!(env.records("store"), [(1, "deployed".to_string())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_data_with_yes_deletes_the_volume_and_its_secrets() {
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    let out = env
        .wharf(&["remove", "store", "--destroy-data", "--yes"])
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(store_volume(&env).is_none());
    assert_eq!(generated_keys(&env), Vec::<String>::new());
    // Not a CRD without --destroy-crds, and nothing of web.
    assert!(
        env.sim
            .get(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "",
                "greetings.tiny.wharf.dev"
            )
            .is_some()
    );
    assert!(env.sim.get("apps/v1", "Deployment", MODEL, "web").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_volume_is_found_by_a_later_destroy_data() {
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    assert!(env.wharf(&["remove", "store"]).await.status.success());
    assert!(store_volume(&env).is_some());
    // No record of store is left: its volume is found by its labels.
    let out = env
        .wharf(&["remove", "store", "--destroy-data", "--yes"])
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        store_volume(&env).is_none(),
        "the kept volume was not found"
    );
    assert_eq!(generated_keys(&env), Vec::<String>::new());
    // Once nothing of it is left, store is unknown.
    let out = env.wharf(&["remove", "store"]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("has no application `store`; it has: web"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_all_keeps_volumes_and_namespace_by_default() {
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    let out = env.wharf(&["remove", "--all"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        env.leftovers(),
        [
            "CustomResourceDefinition/greetings.tiny.wharf.dev",
            "PersistentVolumeClaim/store-data",
            "Secret/wharf-generated",
            "Secret/wharf-inputs",
            "Namespace/tiny",
        ]
    );
    assert!(
        text(&out.stdout).contains("`wharf remove --all --destroy-data`"),
        "{}",
        text(&out.stdout)
    );
    // Deploying again reuses the kept data's credentials.
    let before = env
        .sim
        .get("v1", "Secret", MODEL, "wharf-generated")
        .unwrap()["data"]
        .clone();
    assert!(env.deploy(&[]).await.status.success());
    assert_eq!(
        env.sim
            .get("v1", "Secret", MODEL, "wharf-generated")
            .unwrap()["data"],
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_all_destroying_everything_leaves_nothing_of_wharf_behind() {
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    let out = env
        .wharf(&[
            "remove",
            "--all",
            "--destroy-data",
            "--destroy-crds",
            "--yes",
        ])
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(env.leftovers(), Vec::<String>::new());
    assert!(
        env.sim
            .get(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "",
                "greetings.tiny.wharf.dev"
            )
            .is_none()
    );
}

/// Add `id` to the inventory of web's first release record, as someone editing it would.
fn tamper_with_web_record(env: &Env, id: Value) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut secret = env
        .sim
        .get("v1", "Secret", MODEL, "wharf.release.web.v1")
        .expect("web's record");
    let packed = b64
        .decode(secret["data"]["release"].as_str().unwrap())
        .unwrap();
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(&packed[..])
        .read_to_end(&mut json)
        .unwrap();
    let mut record: Value = serde_json::from_slice(&json).unwrap();
    let mut entry = id;
    entry["digest"] = json!("");
    record["inventory"].as_array_mut().unwrap().push(entry);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&serde_json::to_vec(&record).unwrap()).unwrap();
    secret["data"]["release"] = json!(b64.encode(gz.finish().unwrap()));
    env.sim.put(secret).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_all_never_touches_another_namespace() {
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    env.sim
        .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}}))
        .unwrap();
    env.sim
        .put(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "precious", "namespace": "other"}, "data": {"k": "v"}}))
        .unwrap();
    for id in [
        json!({"apiVersion": "v1", "kind": "ConfigMap", "namespace": "other", "name": "precious"}),
        json!({"apiVersion": "v1", "kind": "Namespace", "name": "other"}),
    ] {
        tamper_with_web_record(&env, id);
    }
    let out = env
        .wharf(&[
            "remove",
            "--all",
            "--destroy-data",
            "--destroy-crds",
            "--yes",
        ])
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        env.sim
            .get("v1", "ConfigMap", "other", "precious")
            .is_some()
    );
    assert!(env.sim.get("v1", "Namespace", "", "other").is_some());
    assert!(env.sim.get("apps/v1", "Deployment", MODEL, "web").is_none());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("not deleting ConfigMap other/precious")
            && stderr.contains("outside model `tiny`"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_output_json_is_one_document() {
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    let out = env.wharf(&["remove", "store", "--output", "json"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(report["model"], MODEL);
    assert_eq!(report["apps"], json!(["store"]));
    let removed = report["removed"].as_array().unwrap();
    assert!(
        removed
            .iter()
            .any(|r| r["kind"] == "Deployment" && r["name"] == "store"),
        "{report}"
    );
    let kept = report["kept"].as_array().unwrap();
    assert!(
        kept.iter().any(|k| k["kind"] == "PersistentVolumeClaim"
            && k["name"] == "store-data"
            && k["why"] == "data"
            && k["deleteWith"] == "wharf remove store --destroy-data"),
        "{report}"
    );
    assert!(
        kept.iter()
            .any(|k| k["name"] == "wharf-generated" && k["keys"] == json!(["store.password"])),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_one_application_keeps_the_others_and_crds() {
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    let out = env.wharf(&["remove", "web"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(env.sim.get("apps/v1", "Deployment", MODEL, "web").is_none());
    assert!(
        env.sim
            .get("tiny.wharf.dev/v1alpha1", "Greeting", MODEL, "web")
            .is_none()
    );
    assert!(env.records("web").is_empty());
    assert!(
        env.sim
            .get("apps/v1", "Deployment", MODEL, "store")
            .is_some()
    );
    assert_eq!(env.records("store"), [(1, "deployed".to_string())]);
    let out = env.wharf(&["remove", "nope"]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("has no application `nope`; it has: store"),
        "{}",
        text(&out.stderr)
    );
}

/// A real namespace takes a while to go (the namespace controller deletes its contents first):
/// `remove --all --destroy-data` waits for it, saying so, so that the namespace is gone when it
/// returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_all_waits_for_namespace_termination() {
    let env = start(Config {
        namespace_termination_delay: std::time::Duration::from_millis(1500),
        ..fast()
    })
    .await;
    assert!(env.deploy(&[]).await.status.success());
    let out = env
        .wharf(&["remove", "--all", "--destroy-data", "--yes"])
        .await;
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("namespace tiny is terminating"), "{err}");
    assert!(env.sim.get("v1", "Namespace", "", MODEL).is_none());
}

/// Deploying into a namespace that is terminating says what holds it and waits; past the timeout
/// it fails naming it, and succeeds once the namespace is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_into_a_terminating_namespace_says_what_holds_it() {
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    let held = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "held", "namespace": MODEL, "finalizers": ["example.com/keep"]}});
    env.sim.put(held).unwrap();
    assert!(env.sim.delete("v1", "Namespace", "", MODEL));
    let out = env.deploy(&["--timeout", "3s"]).await;
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("namespace tiny is terminating")
            && err.contains("example.com/keep in 1 resource instances")
            && err.contains("deploy again once it is gone"),
        "{err}"
    );
    // The finalizer's owner lets go: the namespace goes and a deploy recreates it.
    let mut cm = env.sim.get("v1", "ConfigMap", MODEL, "held").unwrap();
    cm["metadata"]["finalizers"] = serde_json::json!([]);
    let _ = env.sim.put(cm);
    let out = env.deploy(&["--timeout", "60s"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(env.sim.get("v1", "Namespace", "", MODEL).is_some());
}

/// A deleted CRD stays Terminating until every custom resource of its kind is gone, and one
/// with a finalizer waits for its operator: `remove --destroy-crds` waits, saying what holds
/// the CRD, and returns once it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_destroy_crds_waits_for_custom_resources_finalizers() {
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    // A Greeting someone else made, with its operator's finalizer (wharf's record does not list it).
    let held = serde_json::json!({"apiVersion": "tiny.wharf.dev/v1alpha1", "kind": "Greeting",
        "metadata": {"name": "held", "namespace": MODEL, "finalizers": ["tiny.wharf.dev/cleanup"]},
        "spec": {"text": "hi"}});
    env.sim.put(held).unwrap();
    let crd = || {
        env.sim.get(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "",
            "greetings.tiny.wharf.dev",
        )
    };
    let remove = env
        .command(&[
            "remove",
            "--all",
            "--destroy-data",
            "--destroy-crds",
            "--yes",
        ])
        .output();
    // The operator: once the Greeting is being deleted, it cleans up and lets go, a while later.
    let operator = async {
        until(30, "the held Greeting is marked for deletion", || {
            env.sim
                .get("tiny.wharf.dev/v1alpha1", "Greeting", MODEL, "held")
                .is_some_and(|g| !g["metadata"]["deletionTimestamp"].is_null())
        })
        .await;
        assert!(crd().is_some(), "the CRD waits for its resources");
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let mut g = env
            .sim
            .get("tiny.wharf.dev/v1alpha1", "Greeting", MODEL, "held")
            .unwrap();
        g["metadata"]["finalizers"] = serde_json::json!([]);
        let _ = env.sim.put(g);
    };
    let (out, ()) = tokio::join!(remove, operator);
    let out = out.unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("CRD greetings.tiny.wharf.dev is terminating")
            && err.contains("tiny.wharf.dev/cleanup"),
        "{err}"
    );
    assert!(crd().is_none());
    assert!(env.sim.get("v1", "Namespace", "", MODEL).is_none());
}
