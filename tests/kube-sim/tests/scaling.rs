//! Scaling like a real cluster: the `/scale` subresource (and who owns `spec.replicas` after a
//! write through it), the `metrics.k8s.io` API that exists only with metrics-server, and the
//! `autoscaling/v2` HPA controller's algorithm, status, conditions and events.

mod common;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube_sim::{Config, Simulator};
use serde_json::{Value, json};

fn deployment(name: &str, replicas: Option<i32>, cpu_request: Option<&str>) -> Value {
    let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}});
    if let Some(r) = replicas {
        d["spec"]["replicas"] = json!(r);
    }
    if let Some(cpu) = cpu_request {
        d["spec"]["template"]["spec"]["containers"][0]["resources"] =
            json!({"requests": {"cpu": cpu}});
    }
    d
}

fn hpa(name: &str, min: i32, max: i32, percent: i32) -> Value {
    json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": min, "maxReplicas": max,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": percent}}}]}})
}

fn scaling_config(metrics_server: bool) -> Config {
    Config {
        metrics_server,
        hpa_sync_period: Duration::from_millis(50),
        hpa_downscale_stabilization: Duration::ZERO,
        ..common::fast_config()
    }
}

/// Poll for up to 5 s (the HPA takes a few syncs and the workload controller follows).
async fn within_5s<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn replicas_owners(d: &Deployment) -> Vec<(String, Option<String>)> {
    d.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|e| {
            e.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some())
        })
        .map(|e| (e.manager.clone().unwrap_or_default(), e.subresource.clone()))
        .collect()
}

#[tokio::test]
async fn scale_subresource_moves_replicas_to_its_writer() {
    let sim = Simulator::start(scaling_config(false)).await.unwrap();
    let client = common::client(&sim, None).await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let wharf = PatchParams::apply("wharf");
    api.patch(
        "web",
        &wharf,
        &Patch::Apply(deployment("web", Some(2), None)),
    )
    .await
    .unwrap();
    let scale = within_5s("web's two pods counted", || async {
        let s = api.get_scale("web").await.unwrap();
        (s.status.as_ref()?.replicas == 2).then_some(s)
    })
    .await;
    assert_eq!(scale.spec.as_ref().unwrap().replicas, Some(2));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=web"));

    // A write through /scale, as the HPA controller does: its manager now owns spec.replicas.
    let hpa_writer = PatchParams {
        field_manager: Some("kube-controller-manager".into()),
        ..Default::default()
    };
    let scaled = api
        .patch_scale(
            "web",
            &hpa_writer,
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.spec.unwrap().replicas, Some(4));
    let d = api.get("web").await.unwrap();
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(4));
    assert_eq!(
        replicas_owners(&d),
        vec![(
            "kube-controller-manager".to_string(),
            Some("scale".to_string())
        )]
    );

    // wharf applying its old count now conflicts, naming the HPA's manager...
    let err = common::api_err(
        api.patch(
            "web",
            &wharf,
            &Patch::Apply(deployment("web", Some(2), None)),
        )
        .await,
    );
    assert_eq!(err.code, 409);
    assert!(
        err.message.contains("kube-controller-manager") && err.message.contains(".spec.replicas"),
        "{}",
        err.message
    );
    // ...and applying without replicas leaves the HPA's count alone.
    api.patch("web", &wharf, &Patch::Apply(deployment("web", None, None)))
        .await
        .unwrap();
    assert_eq!(
        api.get("web").await.unwrap().spec.unwrap().replicas,
        Some(4)
    );
    within_5s("four pods", || async {
        let s = api.get_scale("web").await.unwrap();
        (s.status?.replicas == 4).then_some(())
    })
    .await;

    // A stale resourceVersion on PUT is a conflict; a kind without /scale is 404.
    let mut stale = api.get_scale("web").await.unwrap();
    stale.metadata.resource_version = Some("1".into());
    stale.spec.as_mut().unwrap().replicas = Some(1);
    let err = common::api_err(
        api.replace_scale("web", &PostParams::default(), &stale)
            .await,
    );
    assert_eq!(err.code, 409);
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let err = common::api_err(configmaps.get_scale("x").await);
    assert_eq!(err.code, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_crd_scale_subresource_uses_its_declared_paths() {
    let sim = Simulator::start(scaling_config(false)).await.unwrap();
    let client = common::client(&sim, None).await;
    sim.put(json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "pools.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "pools", "singular": "pool", "kind": "Pool"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.size",
                    "statusReplicasPath": ".status.size", "labelSelectorPath": ".status.selector"}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}))
    .unwrap();
    sim.put(json!({"apiVersion": "example.com/v1", "kind": "Pool",
        "metadata": {"name": "p", "namespace": "default"}, "spec": {"size": 2}}))
        .unwrap();
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Pool");
    let pools: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::from_gvk_with_plural(&gvk, "pools"),
    );
    let scale = pools.get_scale("p").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(2));
    let scaler = PatchParams {
        field_manager: Some("scaler".into()),
        ..Default::default()
    };
    let patched = pools
        .patch_scale(
            "p",
            &scaler,
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.unwrap().replicas, Some(5));
    let pool = sim.get("example.com/v1", "Pool", "default", "p").unwrap();
    assert_eq!(pool["spec"]["size"], 5);
    sim.shutdown().await;
}

/// `metrics.k8s.io/v1beta1` PodMetrics (`pods`) or NodeMetrics (`nodes`), listed.
async fn metrics_list(
    client: &kube::Client,
    plural: &str,
    namespace: Option<&str>,
) -> Result<Vec<Value>, kube::Error> {
    let kind = if plural == "pods" {
        "PodMetrics"
    } else {
        "NodeMetrics"
    };
    let gvk = GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", kind);
    let ar = ApiResource::from_gvk_with_plural(&gvk, plural);
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    let list = api.list(&ListParams::default()).await?;
    Ok(list
        .items
        .into_iter()
        .map(|o| serde_json::to_value(o).unwrap())
        .collect())
}

async fn group_names(client: &kube::Client) -> Vec<String> {
    client
        .list_api_groups()
        .await
        .unwrap()
        .groups
        .into_iter()
        .map(|g| g.name)
        .collect()
}

#[tokio::test]
async fn the_metrics_api_exists_only_with_metrics_server() {
    let without = Simulator::start(scaling_config(false)).await.unwrap();
    let client = common::client(&without, None).await;
    assert!(
        !group_names(&client)
            .await
            .contains(&"metrics.k8s.io".to_string())
    );
    let err = common::api_err(metrics_list(&client, "pods", None).await);
    assert_eq!(err.code, 404);
    without.shutdown().await;

    let sim = Simulator::start(scaling_config(true)).await.unwrap();
    let client = common::client(&sim, None).await;
    assert!(
        group_names(&client)
            .await
            .contains(&"metrics.k8s.io".to_string())
    );
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    api.patch(
        "web",
        &PatchParams::apply("t"),
        &Patch::Apply(deployment("web", Some(2), None)),
    )
    .await
    .unwrap();
    let pods = within_5s("two running pods", || async {
        let l = sim.list("v1", "Pod", Some("default"));
        (l.iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count()
            == 2)
            .then_some(l)
    })
    .await;
    let first = pods[0]["metadata"]["name"].as_str().unwrap().to_string();
    sim.set_pod_usage("default", &first, 250, 64 << 20);
    let items = metrics_list(&client, "pods", Some("default"))
        .await
        .unwrap();
    assert_eq!(
        items.len(),
        1,
        "a pod without usage has no metrics yet: {items:?}"
    );
    assert_eq!(items[0]["metadata"]["name"], first.as_str());
    assert_eq!(items[0]["containers"][0]["usage"]["cpu"], "250000000n");
    assert_eq!(items[0]["containers"][0]["usage"]["memory"], "65536Ki");
    let nodes = metrics_list(&client, "nodes", None).await.unwrap();
    assert_eq!(nodes[0]["usage"]["cpu"], "250000000n");
    sim.set_pod_usage("default", "web-*", 10, 1 << 20);
    let items = metrics_list(&client, "pods", Some("default"))
        .await
        .unwrap();
    assert_eq!(items.len(), 2);
    sim.shutdown().await;
}

async fn running_pods(sim: &Simulator, n: usize) {
    within_5s("running pods", || async {
        let l = sim.list("v1", "Pod", Some("default"));
        (l.iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count()
            == n)
            .then_some(())
    })
    .await;
}

fn condition<'a>(
    h: &'a HorizontalPodAutoscaler,
    kind: &str,
) -> Option<(&'a str, &'a str, &'a str)> {
    h.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| {
            (
                c.status.as_str(),
                c.reason.as_deref().unwrap_or_default(),
                c.message.as_deref().unwrap_or_default(),
            )
        })
}

async fn events_of(client: &kube::Client, name: &str) -> Vec<(String, String)> {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn the_hpa_scales_on_cpu_up_to_its_maximum_through_scale() {
    let sim = Simulator::start(scaling_config(true)).await.unwrap();
    let client = common::client(&sim, None).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "default");
    let pp = PatchParams::apply("wharf");
    deployments
        .patch(
            "web",
            &pp,
            &Patch::Apply(deployment("web", None, Some("100m"))),
        )
        .await
        .unwrap();
    // 200m used of 100m requested = 200 % against a 50 % target: ×4, clamped to 3.
    sim.set_pod_usage("default", "web-*", 200, 32 << 20);
    hpas.patch("web", &pp, &Patch::Apply(hpa("web", 1, 3, 50)))
        .await
        .unwrap();
    let h = within_5s("the HPA at its maximum", || async {
        let h = hpas.get("web").await.unwrap();
        (h.status.as_ref()?.desired_replicas == 3
            && condition(&h, "ScalingLimited").is_some_and(|c| c.0 == "True"))
        .then_some(h)
    })
    .await;
    assert_eq!(
        condition(&h, "ScalingLimited").unwrap(),
        (
            "True",
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count"
        )
    );
    let (status, reason, _) = condition(&h, "ScalingActive").unwrap();
    assert_eq!((status, reason), ("True", "ValidMetricFound"));
    let current = &h.status.as_ref().unwrap().current_metrics.as_ref().unwrap()[0];
    let util = current
        .resource
        .as_ref()
        .unwrap()
        .current
        .average_utilization;
    assert_eq!(util, Some(200));
    let d = within_5s("three ready pods", || async {
        let d = deployments.get("web").await.unwrap();
        (d.status.as_ref()?.ready_replicas == Some(3)).then_some(d)
    })
    .await;
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(3));
    assert!(
        replicas_owners(&d).contains(&(
            "kube-controller-manager".to_string(),
            Some("scale".to_string())
        )),
        "{:?}",
        replicas_owners(&d)
    );
    let events = events_of(&client, "web").await;
    assert!(
        events.iter().any(|(r, m)| r == "SuccessfulRescale"
            && m.starts_with("New size: ")
            && m.ends_with(
                "reason: cpu resource utilization (percentage of request) above target"
            )),
        "{events:?}"
    );

    // Idle now: 10 % against 50 % scales down to the minimum (stabilization is 0 in this test).
    sim.set_pod_usage("default", "web-*", 10, 32 << 20);
    within_5s("back to one replica", || async {
        let d = deployments.get("web").await.unwrap();
        (d.spec?.replicas == Some(1)).then_some(())
    })
    .await;
    let events = events_of(&client, "web").await;
    assert!(
        events.iter().any(|(r, m)| r == "SuccessfulRescale"
            && m == "New size: 1; reason: All metrics below target"),
        "{events:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_scale_down_waits_for_the_stabilization_window() {
    let sim = Simulator::start(Config {
        hpa_downscale_stabilization: Duration::from_millis(1500),
        ..scaling_config(true)
    })
    .await
    .unwrap();
    let client = common::client(&sim, None).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "default");
    let pp = PatchParams::apply("wharf");
    deployments
        .patch(
            "web",
            &pp,
            &Patch::Apply(deployment("web", Some(3), Some("100m"))),
        )
        .await
        .unwrap();
    sim.set_pod_usage("default", "web-*", 10, 32 << 20);
    let started = tokio::time::Instant::now();
    hpas.patch("web", &pp, &Patch::Apply(hpa("web", 1, 3, 50)))
        .await
        .unwrap();
    let h = within_5s("a stabilized recommendation", || async {
        let h = hpas.get("web").await.unwrap();
        condition(&h, "AbleToScale")
            .is_some_and(|c| c.1 == "ScaleDownStabilized")
            .then_some(h)
    })
    .await;
    assert_eq!(h.status.unwrap().desired_replicas, 3);
    within_5s("scaled down after the window", || async {
        let d = deployments.get("web").await.unwrap();
        (d.spec?.replicas == Some(1)).then_some(())
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "scaled down after {:?}, inside the window",
        started.elapsed()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn without_metrics_or_requests_the_hpa_says_why_and_leaves_replicas() {
    // No metrics-server: FailedGetResourceMetric, as on a cluster without the add-on.
    let sim = Simulator::start(scaling_config(false)).await.unwrap();
    let client = common::client(&sim, None).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "default");
    let pp = PatchParams::apply("wharf");
    deployments
        .patch(
            "web",
            &pp,
            &Patch::Apply(deployment("web", Some(2), Some("100m"))),
        )
        .await
        .unwrap();
    running_pods(&sim, 2).await;
    hpas.patch("web", &pp, &Patch::Apply(hpa("web", 1, 3, 50)))
        .await
        .unwrap();
    let h = within_5s("ScalingActive False", || async {
        let h = hpas.get("web").await.unwrap();
        condition(&h, "ScalingActive")
            .is_some_and(|c| c.0 == "False")
            .then_some(h)
    })
    .await;
    let (_, reason, message) = condition(&h, "ScalingActive").unwrap();
    assert_eq!(reason, "FailedGetResourceMetric");
    assert!(
        message.starts_with("the HPA was unable to compute the replica count: failed to get cpu utilization: unable to get metrics for resource cpu"),
        "{message}"
    );
    assert!(
        events_of(&client, "web")
            .await
            .iter()
            .any(|(r, _)| r == "FailedGetResourceMetric")
    );
    assert_eq!(
        deployments.get("web").await.unwrap().spec.unwrap().replicas,
        Some(2)
    );
    sim.shutdown().await;

    // metrics-server, but no CPU request: utilization cannot be computed.
    let sim = Simulator::start(scaling_config(true)).await.unwrap();
    let client = common::client(&sim, None).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "default");
    deployments
        .patch("web", &pp, &Patch::Apply(deployment("web", Some(2), None)))
        .await
        .unwrap();
    sim.set_pod_usage("default", "web-*", 500, 32 << 20);
    running_pods(&sim, 2).await;
    hpas.patch("web", &pp, &Patch::Apply(hpa("web", 1, 3, 50)))
        .await
        .unwrap();
    let h = within_5s("ScalingActive False", || async {
        let h = hpas.get("web").await.unwrap();
        condition(&h, "ScalingActive")
            .is_some_and(|c| c.0 == "False")
            .then_some(h)
    })
    .await;
    let (_, reason, message) = condition(&h, "ScalingActive").unwrap();
    assert_eq!(reason, "FailedGetResourceMetric");
    assert!(
        message.contains("missing request for cpu in container c of Pod web-"),
        "{message}"
    );
    assert_eq!(
        deployments.get("web").await.unwrap().spec.unwrap().replicas,
        Some(2)
    );
    sim.shutdown().await;
}
