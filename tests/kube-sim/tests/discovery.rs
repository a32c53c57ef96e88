//! /version, discovery of built-ins, and a CRD: appears in discovery, gets Established, its custom
//! resources are served with the status subresource and validated against the schema.

mod common;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::discovery::{Discovery, Scope};
use serde_json::json;

fn trainjob_crd() -> serde_json::Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "trainjobs.wharf.dev"},
        "spec": {
            "group": "wharf.dev", "scope": "Namespaced",
            "names": {"kind": "TrainJob", "plural": "trainjobs", "singular": "trainjob", "shortNames": ["tj"]},
            "versions": [{
                "name": "v1alpha1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {"type": "object", "required": ["model"],
                            "x-kubernetes-validations": [{"rule": "!has(self.epochs) || self.epochs <= 1000", "message": "epochs must be at most 1000"}],
                            "properties": {
                            "model": {"type": "string", "enum": ["mlp", "cnn"]},
                            "epochs": {"type": "integer", "minimum": 1}
                        }},
                        "status": {"type": "object", "properties": {"phase": {"type": "string"}}}
                    }
                }}
            }]
        }
    })
}

#[tokio::test]
async fn version_and_builtin_discovery() {
    let sim = common::start().await;
    let client = common::client(&sim, None).await;
    let v = client.apiserver_version().await.unwrap();
    assert_eq!((v.major.as_str(), v.minor.as_str()), ("1", "33"));
    let d = Discovery::new(client).run().await.unwrap();
    for (group, kind, namespaced) in [
        ("", "Secret", true),
        ("", "Namespace", false),
        ("apps", "Deployment", true),
        ("batch", "Job", true),
        ("coordination.k8s.io", "Lease", true),
        ("rbac.authorization.k8s.io", "ClusterRole", false),
        ("autoscaling", "HorizontalPodAutoscaler", true),
        ("apiextensions.k8s.io", "CustomResourceDefinition", false),
    ] {
        let found = d
            .groups()
            .flat_map(|g| g.recommended_resources())
            .find(|(ar, _)| ar.group == group && ar.kind == kind);
        let (_, caps) = found.unwrap_or_else(|| panic!("{group}/{kind} missing from discovery"));
        assert_eq!(caps.scope == Scope::Namespaced, namespaced, "{kind} scope");
        if kind == "Deployment" {
            assert!(
                caps.subresources
                    .iter()
                    .any(|(ar, _)| ar.plural == "status"),
                "deployments/status advertised"
            );
        }
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn aggregated_discovery_matches_the_legacy_one() {
    let sim = common::start().await;
    let client = common::client(&sim, None).await;
    let d = Discovery::new(client).run_aggregated().await.unwrap();
    let (ar, caps) = d
        .groups()
        .flat_map(|g| g.recommended_resources())
        .find(|(ar, _)| ar.kind == "Deployment")
        .expect("Deployment");
    assert_eq!(
        (ar.group.as_str(), ar.plural.as_str()),
        ("apps", "deployments")
    );
    assert_eq!(caps.scope, Scope::Namespaced);
    assert!(
        d.groups()
            .flat_map(|g| g.recommended_resources())
            .any(|(ar, caps)| ar.kind == "Namespace" && caps.scope == Scope::Cluster)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn crd_appears_in_discovery_gets_established_and_validates_its_resources() {
    let sim = common::start().await;
    let client = common::client(&sim, None).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        "trainjobs.wharf.dev",
        &PatchParams::apply("wharf"),
        &Patch::Apply(trainjob_crd()),
    )
    .await
    .unwrap();

    let d = Discovery::new(client.clone()).run().await.unwrap();
    let (ar, caps) = d
        .groups()
        .flat_map(|g| g.recommended_resources())
        .find(|(ar, _)| ar.kind == "TrainJob")
        .expect("TrainJob discovered");
    assert_eq!(ar.api_version, "wharf.dev/v1alpha1");
    assert_eq!(caps.scope, Scope::Namespaced);

    common::eventually("Established", || async {
        let crd = crds.get("trainjobs.wharf.dev").await.unwrap();
        crd.status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
            .then_some(())
    })
    .await;

    let gvk = GroupVersionKind::gvk("wharf.dev", "v1alpha1", "TrainJob");
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &ApiResource::from_gvk(&gvk));
    let tj = |spec: serde_json::Value| {
        serde_json::from_value::<DynamicObject>(json!({"apiVersion": "wharf.dev/v1alpha1", "kind": "TrainJob", "metadata": {"name": "t"}, "spec": spec, "status": {"phase": "ignored"}})).unwrap()
    };
    // Schema violations are 422 naming the field.
    for (spec, field) in [
        (json!({"epochs": 3}), "spec.model"),
        (json!({"model": "rnn"}), "spec.model"),
        (json!({"model": "mlp", "epochs": 0}), "spec.epochs"),
    ] {
        let err = common::api_err(api.create(&PostParams::default(), &tj(spec.clone())).await);
        assert_eq!(err.code, 422, "{spec}");
        assert_eq!(err.reason, "Invalid");
        assert!(err.message.contains(field), "{spec}: {}", err.message);
        assert!(
            err.message
                .starts_with("TrainJob.wharf.dev \"t\" is invalid"),
            "{}",
            err.message
        );
    }
    let created = api
        .create(
            &PostParams::default(),
            &tj(json!({"model": "mlp", "epochs": 2, "unknown": 1})),
        )
        .await
        .unwrap();
    assert_eq!(
        created.data.get("status"),
        None,
        "status is dropped on create when the status subresource exists"
    );
    assert_eq!(
        created.data["spec"].get("unknown"),
        None,
        "unknown fields are pruned"
    );
    let with_status = api
        .patch_status("t", &PatchParams::apply("trainer").force(), &Patch::Apply(json!({"apiVersion": "wharf.dev/v1alpha1", "kind": "TrainJob", "status": {"phase": "Running"}})))
        .await
        .unwrap();
    assert_eq!(with_status.data["status"]["phase"], json!("Running"));
    assert_eq!(
        with_status.metadata.generation,
        Some(1),
        "status writes do not bump generation"
    );

    // Deleting the CRD removes its objects, then its kind: the CRD finalizer controller does
    // it in the background, as on a real cluster.
    crds.delete("trainjobs.wharf.dev", &Default::default())
        .await
        .unwrap();
    for _ in 0..250 {
        if crds.get_opt("trainjobs.wharf.dev").await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(sim.list("wharf.dev/v1alpha1", "TrainJob", None).is_empty());
    assert_eq!(common::api_err(api.get("t").await).code, 404);
    sim.shutdown().await;
}

/// A real cluster lists an aggregated APIService's group whether or not its backend answers; its
/// discovery document and resources answer 503 until it does (metrics.k8s.io while
/// metrics-server starts). kube-rs's unfiltered `Discovery::run` then fails as a whole.
#[tokio::test]
async fn an_unavailable_aggregated_api_is_listed_and_answers_503() {
    let sim = kube_sim::Simulator::start(kube_sim::Config {
        unavailable_apis: vec!["metrics.k8s.io/v1beta1".into()],
        ..common::fast_config()
    })
    .await
    .unwrap();
    let client = common::client_without_retry(&sim).await;
    let groups = client.list_api_groups().await.unwrap();
    assert!(
        groups.groups.iter().any(|g| g.name == "metrics.k8s.io"),
        "listed in /apis"
    );
    let err = common::api_err(
        client
            .list_api_group_resources("metrics.k8s.io/v1beta1")
            .await,
    );
    assert_eq!(err.code, 503);
    let pods: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk(&GroupVersionKind::gvk(
            "metrics.k8s.io",
            "v1beta1",
            "PodMetrics",
        )),
    );
    assert_eq!(
        common::api_err(pods.list(&Default::default()).await).code,
        503
    );
    assert!(
        Discovery::new(client.clone()).run().await.is_err(),
        "an unfiltered discovery fails on it"
    );
    // Excluding the group is how a client carries on.
    let d = Discovery::new(client.clone())
        .exclude(&["metrics.k8s.io"])
        .run()
        .await
        .unwrap();
    assert!(d.has_group("apps"));
    // Aggregated discovery lists the version as Stale, without resources.
    let agg = client.list_api_groups_aggregated().await.unwrap();
    let metrics = agg
        .items
        .iter()
        .find(|g| g.metadata.as_ref().and_then(|m| m.name.as_deref()) == Some("metrics.k8s.io"))
        .expect("metrics.k8s.io in aggregated discovery");
    assert_eq!(metrics.versions[0].freshness.as_deref(), Some("Stale"));
    sim.shutdown().await;
}
