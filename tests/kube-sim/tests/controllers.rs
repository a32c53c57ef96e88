//! The simulated controllers: workloads become ready (or never), pods appear with the workload's
//! labels, Jobs end as the test says, PVCs bind, LoadBalancer Services get an address.

mod common;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube_sim::{Config, Outcome, Simulator};
use serde_json::json;

fn deployment(name: &str, image: &str, replicas: i32) -> serde_json::Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": image}]}}}})
}

fn job(name: &str) -> serde_json::Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "train", "image": "trainer:1"}]}}}})
}

#[tokio::test]
async fn deployment_becomes_ready_with_pods_and_never_ready_image_does_not() {
    let sim = Simulator::start(Config {
        never_ready_image: Some(regex::Regex::new("broken").unwrap()),
        ..common::fast_config()
    })
    .await
    .unwrap();
    let client = common::client(&sim, None).await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    api.patch(
        "web",
        &PatchParams::apply("wharf"),
        &Patch::Apply(deployment("web", "nginx:1", 2)),
    )
    .await
    .unwrap();
    api.patch(
        "bad",
        &PatchParams::apply("wharf"),
        &Patch::Apply(deployment("bad", "broken:1", 1)),
    )
    .await
    .unwrap();

    let status = common::eventually("web ready", || async {
        let s = api.get("web").await.unwrap().status?;
        (s.ready_replicas == Some(2)).then_some(s)
    })
    .await;
    assert_eq!(status.observed_generation, Some(1));
    assert!(
        status
            .conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Available" && c.status == "True")
    );
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let web = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(web.items.len(), 2);
    for p in &web.items {
        assert!(p.metadata.name.as_ref().unwrap().starts_with("web-"));
        assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Running"));
        assert!(p.status.as_ref().unwrap().pod_ip.is_some());
    }

    let bad = common::eventually("bad observed", || async {
        let s = api.get("bad").await.unwrap().status?;
        s.observed_generation.map(|_| s)
    })
    .await;
    assert_eq!(bad.ready_replicas.unwrap_or(0), 0);
    assert!(
        bad.conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Available" && c.status == "False")
    );
    let bad_pod = &pods
        .list(&ListParams::default().labels("app=bad"))
        .await
        .unwrap()
        .items[0];
    let waiting = bad_pod
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .state
        .as_ref()
        .unwrap()
        .waiting
        .clone();
    assert_eq!(waiting.unwrap().reason.as_deref(), Some("ImagePullBackOff"));

    // Scaling down removes pods; a template change replaces them.
    api.patch(
        "web",
        &PatchParams::apply("wharf"),
        &Patch::Apply(deployment("web", "nginx:2", 1)),
    )
    .await
    .unwrap();
    common::eventually("web rolled", || async {
        let s = api.get("web").await.unwrap().status?;
        (s.observed_generation == Some(2)).then_some(())
    })
    .await;
    let after = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(after.items.len(), 1);
    assert_eq!(
        after.items[0].spec.as_ref().unwrap().containers[0]
            .image
            .as_deref(),
        Some("nginx:2")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn statefulset_pods_are_ordinal() {
    let sim = common::start().await;
    let api: Api<StatefulSet> = Api::namespaced(common::client(&sim, None).await, "default");
    let mut sts = deployment("db", "postgres:16", 2);
    sts["kind"] = json!("StatefulSet");
    sts["spec"]["serviceName"] = json!("db");
    sts["spec"]["volumeClaimTemplates"] = json!([{"metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]);
    api.patch("db", &PatchParams::apply("wharf"), &Patch::Apply(sts))
        .await
        .unwrap();
    common::eventually("db ready", || async {
        (api.get("db").await.unwrap().status?.ready_replicas == Some(2)).then_some(())
    })
    .await;
    let mut names: Vec<String> = sim
        .list("v1", "Pod", Some("default"))
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, vec!["db-0", "db-1"]);
    common::eventually("claims bound", || async {
        let pvcs = sim.list("v1", "PersistentVolumeClaim", Some("default"));
        let mut bound: Vec<String> = pvcs
            .iter()
            .filter(|p| p["status"]["phase"] == "Bound")
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        bound.sort();
        (bound == ["data-db-0", "data-db-1"]).then_some(())
    })
    .await;

    // A pod deleted from outside is replaced (same ordinal name, new uid).
    let pods: Api<Pod> = Api::namespaced(common::client(&sim, None).await, "default");
    let uid = pods.get("db-0").await.unwrap().metadata.uid;
    pods.delete("db-0", &Default::default()).await.unwrap();
    common::eventually("db-0 replaced", || async {
        let p = pods.get_opt("db-0").await.unwrap()?;
        (p.metadata.uid != uid).then_some(())
    })
    .await;
    api.delete("db", &Default::default()).await.unwrap();
    assert!(
        sim.list("v1", "Pod", Some("default")).is_empty(),
        "pods go with the StatefulSet"
    );
    assert_eq!(
        sim.list("v1", "PersistentVolumeClaim", Some("default"))
            .len(),
        2,
        "claims stay"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn jobs_succeed_or_fail_with_the_termination_message_the_test_set() {
    let sim = common::start().await;
    sim.set_job_outcome(
        "default",
        "train-bad-*",
        Outcome::Fail {
            message: "loss diverged".into(),
            reason: "BackoffLimitExceeded".into(),
        },
    );
    sim.set_job_outcome(
        "default",
        "train-ok",
        Outcome::Succeed {
            message: "{\"accuracy\":0.97}".into(),
        },
    );
    let client = common::client(&sim, None).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    for name in ["train-ok", "train-bad-1"] {
        jobs.patch(name, &PatchParams::apply("op"), &Patch::Apply(job(name)))
            .await
            .unwrap();
    }
    let ok = common::eventually("train-ok done", || async {
        let s = jobs.get("train-ok").await.unwrap().status?;
        (s.succeeded == Some(1)).then_some(s)
    })
    .await;
    assert!(
        ok.conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Complete" && c.status == "True")
    );
    assert!(ok.start_time.is_some() && ok.completion_time.is_some());
    let bad = common::eventually("train-bad-1 done", || async {
        let s = jobs.get("train-bad-1").await.unwrap().status?;
        (s.failed == Some(1)).then_some(s)
    })
    .await;
    let failed = bad
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .unwrap();
    assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));

    let pods: Api<Pod> = Api::namespaced(client, "default");
    for (job, phase, msg) in [
        ("train-ok", "Succeeded", "{\"accuracy\":0.97}"),
        ("train-bad-1", "Failed", "loss diverged"),
    ] {
        let list = pods
            .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
            .await
            .unwrap();
        let pod = &list.items[0];
        assert_eq!(pod.metadata.labels.as_ref().unwrap()["job-name"], job);
        let st = pod.status.as_ref().unwrap();
        assert_eq!(st.phase.as_deref(), Some(phase));
        let term = st.container_statuses.as_ref().unwrap()[0]
            .state
            .as_ref()
            .unwrap()
            .terminated
            .clone()
            .unwrap();
        assert_eq!(term.message.as_deref(), Some(msg));
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn load_balancer_gets_a_pool_address_and_a_used_pvc_binds() {
    let sim = common::start().await;
    let client = common::client(&sim, None).await;
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let lb = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gw"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "gw"}, "ports": [{"port": 80}]}});
    svcs.patch("gw", &PatchParams::apply("wharf"), &Patch::Apply(&lb))
        .await
        .unwrap();
    let ip = common::eventually("LB address", || async {
        svcs.get("gw")
            .await
            .unwrap()
            .status?
            .load_balancer?
            .ingress?
            .first()?
            .ip
            .clone()
    })
    .await;
    assert_eq!(ip, "10.64.140.43");
    let svc = svcs.get("gw").await.unwrap();
    assert!(
        svc.spec.unwrap().ports.unwrap()[0].node_port.is_some(),
        "LoadBalancer services get node ports"
    );

    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    pvcs.patch("data", &PatchParams::apply("wharf"), &Patch::Apply(&pvc))
        .await
        .unwrap();
    // The default class binds on first consumer (storage.rs pins the waiting).
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "user"}, "spec": {
        "containers": [{"name": "c", "image": "busybox"}],
        "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}});
    pods.patch("user", &PatchParams::apply("test"), &Patch::Apply(&pod))
        .await
        .unwrap();
    common::eventually("PVC bound", || async {
        (pvcs.get("data").await.unwrap().status?.phase? == "Bound").then_some(())
    })
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn a_suspended_job_starts_when_resumed() {
    let sim = common::start().await;
    let jobs: Api<Job> = Api::namespaced(common::client(&sim, None).await, "default");
    let mut j = job("later");
    j["spec"]["suspend"] = json!(true);
    jobs.patch("later", &PatchParams::apply("op"), &Patch::Apply(&j))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert!(
        jobs.get("later")
            .await
            .unwrap()
            .status
            .and_then(|s| s.start_time)
            .is_none(),
        "suspended jobs do not start"
    );
    assert!(sim.list("v1", "Pod", Some("default")).is_empty());
    j["spec"]["suspend"] = json!(false);
    jobs.patch("later", &PatchParams::apply("op"), &Patch::Apply(&j))
        .await
        .unwrap();
    common::eventually("resumed job done", || async {
        (jobs.get("later").await.unwrap().status?.succeeded == Some(1)).then_some(())
    })
    .await;
    sim.shutdown().await;
}

/// A node pulls `wharf.local/` images from nowhere: with a node image store, such a pod stays in
/// ImagePullBackOff until the image is imported (listed in the store), while images of real
/// registries pull as before.
#[tokio::test]
async fn a_local_image_runs_only_once_imported_into_the_node() {
    let store = tempfile::NamedTempFile::new().unwrap();
    let sim = Simulator::start(Config {
        node_images: Some(store.path().to_path_buf()),
        ..common::fast_config()
    })
    .await
    .unwrap();
    let client = common::client(&sim, None).await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for (name, image) in [
        ("local", "wharf.local/wharf-server:0.1.0"),
        ("upstream", "nginx:1"),
    ] {
        api.patch(
            name,
            &PatchParams::apply("wharf"),
            &Patch::Apply(deployment(name, image, 1)),
        )
        .await
        .unwrap();
    }
    common::eventually("upstream ready", || async {
        let s = api.get("upstream").await.unwrap().status?;
        (s.ready_replicas == Some(1)).then_some(())
    })
    .await;
    let waiting = common::eventually("the local image's pod", || async {
        let list = pods
            .list(&ListParams::default().labels("app=local"))
            .await
            .unwrap();
        let pod = list.items.into_iter().next()?;
        pod.status?.container_statuses?[0]
            .state
            .as_ref()?
            .waiting
            .clone()
    })
    .await;
    assert_eq!(waiting.reason.as_deref(), Some("ImagePullBackOff"));
    assert!(
        waiting
            .message
            .unwrap_or_default()
            .contains("wharf.local/wharf-server:0.1.0")
    );
    assert_ne!(
        api.get("local")
            .await
            .unwrap()
            .status
            .and_then(|s| s.ready_replicas),
        Some(1)
    );

    // Imported, a new pod of it runs.
    std::fs::write(store.path(), "wharf.local/wharf-server:0.1.0 sha256:00\n").unwrap();
    api.patch(
        "again",
        &PatchParams::apply("wharf"),
        &Patch::Apply(deployment("again", "wharf.local/wharf-server:0.1.0", 1)),
    )
    .await
    .unwrap();
    common::eventually("the imported image runs", || async {
        let s = api.get("again").await.unwrap().status?;
        (s.ready_replicas == Some(1)).then_some(())
    })
    .await;
}

/// Like a kubelet on containerd: a running container's `imageID` is `REPOSITORY@sha256:…` — the
/// digest an imported image came with, a stable made-up one for a pulled image — and the Node's
/// `status.images` lists each image by digest and tag.
#[tokio::test]
async fn the_kubelet_reports_image_ids_and_the_node_lists_its_images() {
    let store = tempfile::NamedTempFile::new().unwrap();
    let imported = format!("sha256:{}", "ab".repeat(32));
    std::fs::write(
        store.path(),
        format!("wharf.local/wharf-server:0.1.0 {imported}\n"),
    )
    .unwrap();
    let sim = Simulator::start(Config {
        node_images: Some(store.path().to_path_buf()),
        ..common::fast_config()
    })
    .await
    .unwrap();
    let client = common::client(&sim, None).await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for (name, image) in [
        ("local", "wharf.local/wharf-server:0.1.0"),
        ("upstream", "nginx:1"),
    ] {
        api.patch(
            name,
            &PatchParams::apply("wharf"),
            &Patch::Apply(deployment(name, image, 1)),
        )
        .await
        .unwrap();
    }
    let id_of = |app: &'static str| {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels(&format!("app={app}")))
                .await
                .unwrap();
            let pod = list.items.into_iter().next()?;
            let id = pod.status?.container_statuses?[0].image_id.clone();
            (!id.is_empty()).then_some(id)
        }
    };
    let local = common::eventually("the local pod's image ID", || id_of("local")).await;
    assert_eq!(local, format!("wharf.local/wharf-server@{imported}"));
    let pulled = common::eventually("the upstream pod's image ID", || id_of("upstream")).await;
    let hex = pulled
        .strip_prefix("docker.io/library/nginx@sha256:")
        .unwrap_or_default();
    assert!(hex.len() == 64, "{pulled}");

    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let names = common::eventually("the node lists both images", || async {
        let node = nodes.get("sim-node").await.unwrap();
        let names: Vec<String> = node
            .status?
            .images?
            .into_iter()
            .flat_map(|i| i.names.unwrap_or_default())
            .collect();
        // Two names (tag and digest) for each of the sandbox image, the imported and the pulled one.
        (names.len() >= 6).then_some(names)
    })
    .await;
    for name in [
        "registry.k8s.io/pause:3.10",
        "wharf.local/wharf-server:0.1.0",
        local.as_str(),
        "docker.io/library/nginx:1",
        pulled.as_str(),
    ] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
}
