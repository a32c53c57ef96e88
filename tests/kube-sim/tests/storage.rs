//! PersistentVolumeClaims behave as on a real cluster: WaitForFirstConsumer claims wait for a pod,
//! the spec is immutable but for a bound claim's requests, which grow only on an expandable class
//! and never shrink, and the pvc-protection finalizer keeps a used claim Terminating.

mod common;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn claim(name: &str, class: Option<&str>, size: &str) -> PersistentVolumeClaim {
    let mut spec =
        json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}});
    if let Some(c) = class {
        spec["storageClassName"] = json!(c);
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

fn pod_using(name: &str, claim: &str) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": {
        "containers": [{"name": "c", "image": "busybox"}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}}))
    .unwrap()
}

fn resize(size: &str) -> Patch<serde_json::Value> {
    Patch::Merge(json!({"spec": {"resources": {"requests": {"storage": size}}}}))
}

#[tokio::test]
async fn a_wait_for_first_consumer_claim_binds_only_once_a_pod_uses_it() {
    let sim = common::start().await;
    let client = common::client(&sim, None).await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let created = claims
        .create(&PostParams::default(), &claim("data", None, "1Gi"))
        .await
        .unwrap();
    // Admission: the default class and the protection finalizer.
    let spec = created.spec.clone().unwrap();
    assert_eq!(
        spec.storage_class_name.as_deref(),
        Some("microk8s-hostpath")
    );
    assert_eq!(
        created.metadata.finalizers,
        Some(vec!["kubernetes.io/pvc-protection".to_string()])
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let pending = claims.get("data").await.unwrap();
    assert_ne!(
        pending.status.and_then(|s| s.phase).as_deref(),
        Some("Bound"),
        "no consumer yet"
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod_using("user", "data"))
        .await
        .unwrap();
    common::eventually("Bound", || async {
        let c = claims.get("data").await.unwrap();
        (c.status?.phase.as_deref() == Some("Bound")).then_some(())
    })
    .await;

    // In use: deleting the claim leaves it Terminating until the pod goes.
    claims
        .delete("data", &DeleteParams::default())
        .await
        .unwrap();
    let terminating = claims.get("data").await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    pods.delete("user", &DeleteParams::default()).await.unwrap();
    common::eventually("claim gone", || async {
        claims
            .get_opt("data")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn a_claim_grows_only_on_an_expandable_class_and_never_shrinks() {
    let sim = common::start().await;
    let client = common::client(&sim, None).await;
    let classes: Api<StorageClass> = Api::all(client.clone());
    for (name, expand) in [("fixed", false), ("elastic", true)] {
        let class =
            serde_json::from_value(json!({"metadata": {"name": name}, "provisioner": "sim",
            "volumeBindingMode": "Immediate", "allowVolumeExpansion": expand}))
            .unwrap();
        classes
            .create(&PostParams::default(), &class)
            .await
            .unwrap();
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    for (name, class) in [("a", "fixed"), ("b", "elastic")] {
        claims
            .create(&PostParams::default(), &claim(name, Some(class), "10Gi"))
            .await
            .unwrap();
    }
    for name in ["a", "b"] {
        common::eventually("Bound", || async {
            let c = claims.get(name).await.unwrap();
            (c.status?.phase.as_deref() == Some("Bound")).then_some(())
        })
        .await;
    }
    // Growth on a class without allowVolumeExpansion: the resize admission plugin's 403.
    let err = common::api_err(
        claims
            .patch("a", &PatchParams::default(), &resize("30Gi"))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        err.message,
        "persistentvolumeclaims \"a\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"
    );
    // Server-side apply is refused the same way.
    let applied = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "a"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fixed", "resources": {"requests": {"storage": "30Gi"}}}});
    let err = common::api_err(
        claims
            .patch(
                "a",
                &PatchParams::apply("wharf").force(),
                &Patch::Apply(applied),
            )
            .await,
    );
    assert_eq!(err.code, 403);
    // On an expandable class it grows, and the capacity follows.
    claims
        .patch("b", &PatchParams::default(), &resize("30Gi"))
        .await
        .unwrap();
    common::eventually("resized", || async {
        let c = claims.get("b").await.unwrap();
        let cap = c.status?.capacity?.get("storage")?.0.clone();
        (cap == "30Gi").then_some(())
    })
    .await;
    // Never below the capacity; and the rest of the spec is immutable.
    let err = common::api_err(
        claims
            .patch("b", &PatchParams::default(), &resize("20Gi"))
            .await,
    );
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        "PersistentVolumeClaim \"b\" is invalid: spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"
    );
    let err = common::api_err(
        claims
            .patch(
                "b",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"accessModes": ["ReadWriteMany"]}})),
            )
            .await,
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message.starts_with(
            "PersistentVolumeClaim \"b\" is invalid: spec: Forbidden: spec is immutable after creation except resources.requests"
        ),
        "{}",
        err.message
    );
    sim.shutdown().await;
}
