//! `wharf remove` against kube-sim: one application, everything, with and without --keep-data.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_all_leaves_nothing_of_wharf_behind() {
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    let out = env.wharf(&["remove", "--all", "--destroy-crds"]).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_all_keep_data_leaves_only_the_volumes_and_their_secrets() {
    let env = start(fast()).await;
    assert!(env.deploy(&[]).await.status.success());
    let out = env.wharf(&["remove", "--all", "--keep-data"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        env.leftovers(),
        [
            "CustomResourceDefinition/greetings.tiny.wharf.dev",
            "PersistentVolumeClaim/store-data",
            "Secret/wharf-generated",
            "Namespace/tiny",
        ]
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
