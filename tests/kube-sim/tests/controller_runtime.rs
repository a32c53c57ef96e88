//! A real kube-runtime `Controller` (the shape of the TrainJob/InferenceService operators) against
//! the simulator: it reconciles on creation, re-creates an owned object deleted behind its back,
//! and garbage collection removes the owned object with its owner.

mod common;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct Error(#[from] kube::Error);

async fn reconcile(cm: Arc<ConfigMap>, client: Arc<kube::Client>) -> Result<Action, Error> {
    let ns = cm.namespace().unwrap();
    let secrets: Api<Secret> = Api::namespaced((*client).clone(), &ns);
    let owner = cm.controller_owner_ref(&()).unwrap();
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": cm.name_any(), "ownerReferences": [owner]},
        "stringData": {"copy": cm.data.as_ref().and_then(|d| d.get("k")).cloned().unwrap_or_default()}});
    secrets
        .patch(
            &cm.name_any(),
            &PatchParams::apply("test-operator").force(),
            &Patch::Apply(&secret),
        )
        .await?;
    Ok(Action::requeue(Duration::from_secs(300)))
}

fn error_policy(_: Arc<ConfigMap>, _: &Error, _: Arc<kube::Client>) -> Action {
    Action::requeue(Duration::from_millis(50))
}

#[tokio::test]
async fn controller_reconciles_owned_objects_and_gc_cleans_up() {
    let sim = common::start().await;
    let client = common::client(&sim, None).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let controller = Controller::new(cms.clone(), watcher::Config::default())
        .owns(secrets.clone(), watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(client.clone()))
        .for_each(|_| async {});
    let task = tokio::spawn(controller);

    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "src"}, "data": {"k": "v1"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    common::eventually("owned secret", || async {
        secrets.get_opt("src").await.unwrap()
    })
    .await;

    // Deleted behind the operator's back: the owns() watch triggers a reconcile that restores it.
    secrets
        .delete("src", &DeleteParams::default())
        .await
        .unwrap();
    common::eventually("secret restored", || async {
        secrets.get_opt("src").await.unwrap()
    })
    .await;

    cms.delete("src", &DeleteParams::default()).await.unwrap();
    assert!(
        secrets.get_opt("src").await.unwrap().is_none(),
        "GC removed the owned secret"
    );
    task.abort();
    sim.shutdown().await;
}
