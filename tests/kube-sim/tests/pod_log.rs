//! `pods/log`: what a simulated container printed (`Simulator::append_pod_log`), served as text
//! with the apiserver's parameters and errors, and RBAC on the `pods/log` subresource; and Jobs
//! held running (`Outcome::Hold`) until the test ends them.

mod common;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube_sim::{Config, Outcome, Simulator};
use serde_json::json;

fn job(name: &str, image: &str) -> serde_json::Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "trainer", "image": image}]}}}})
}

async fn pod_of(pods: &Api<Pod>, job: &str) -> String {
    common::eventually("the Job's pod", || async {
        let list = pods
            .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
            .await
            .ok()?;
        list.items.first()?.metadata.name.clone()
    })
    .await
}

#[tokio::test]
async fn a_held_jobs_pod_serves_what_it_printed_until_the_job_is_ended() {
    let sim = Simulator::start(Config {
        never_ready_image: Some(regex::Regex::new("missing").unwrap()),
        ..common::fast_config()
    })
    .await
    .unwrap();
    sim.set_job_outcome("default", "train", Outcome::Hold);
    let admin = common::client(&sim, None).await;
    let jobs: Api<Job> = Api::namespaced(admin.clone(), "default");
    jobs.patch(
        "train",
        &PatchParams::apply("t"),
        &Patch::Apply(job("train", "trainer:1")),
    )
    .await
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    let pod = pod_of(&pods, "train").await;
    assert_eq!(pods.logs(&pod, &LogParams::default()).await.unwrap(), "");
    assert_eq!(
        sim.append_pod_log("default", "train-*", "trainer", "epoch 1\nepoch 2\n"),
        1
    );
    sim.append_pod_log("default", "train-*", "trainer", "epoch 3\n");
    assert_eq!(
        pods.logs(&pod, &LogParams::default()).await.unwrap(),
        "epoch 1\nepoch 2\nepoch 3\n"
    );
    let tail = LogParams {
        container: Some("trainer".into()),
        tail_lines: Some(2),
        ..LogParams::default()
    };
    assert_eq!(pods.logs(&pod, &tail).await.unwrap(), "epoch 2\nepoch 3\n");
    let limited = LogParams {
        limit_bytes: Some(4),
        ..LogParams::default()
    };
    assert_eq!(pods.logs(&pod, &limited).await.unwrap(), "epoc");
    let err = common::api_err(
        pods.logs(
            &pod,
            &LogParams {
                container: Some("sidecar".into()),
                ..LogParams::default()
            },
        )
        .await,
    );
    assert_eq!(
        (err.code, err.message.as_str()),
        (
            400,
            format!("container sidecar is not valid for pod {pod}").as_str()
        )
    );
    let err = common::api_err(pods.logs("nope", &LogParams::default()).await);
    assert_eq!(err.code, 404);

    // Held: still running well after the readiness delay.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        jobs.get("train").await.unwrap().status.unwrap().active,
        Some(1)
    );
    sim.set_job_outcome(
        "default",
        "train",
        Outcome::Succeed {
            message: String::new(),
        },
    );
    common::eventually("the Job complete", || async {
        (jobs.get("train").await.ok()?.status?.succeeded == Some(1)).then_some(())
    })
    .await;
    assert_eq!(
        pods.logs(&pod, &LogParams::default()).await.unwrap(),
        "epoch 1\nepoch 2\nepoch 3\n",
        "a terminated container's log stays readable"
    );

    // A container that never started has no log: the apiserver's 400.
    jobs.patch(
        "stuck",
        &PatchParams::apply("t"),
        &Patch::Apply(job("stuck", "missing:1")),
    )
    .await
    .unwrap();
    let stuck = pod_of(&pods, "stuck").await;
    let err = common::api_err(pods.logs(&stuck, &LogParams::default()).await);
    assert_eq!(err.code, 400);
    assert_eq!(
        err.message,
        format!("container \"trainer\" in pod \"{stuck}\" is waiting to start: ImagePullBackOff")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn reading_a_log_needs_get_on_pods_log() {
    // The pod's image never gets ready: its container stays waiting, whatever the timing (a pod
    // that the simulator had started by the time of the request made this test flaky).
    let sim = Simulator::start(Config {
        never_ready_image: Some(regex::Regex::new("^never-starts$").unwrap()),
        ..common::fast_config()
    })
    .await
    .unwrap();
    let admin = common::client(&sim, None).await;
    for (name, rules) in [
        (
            "pods-only",
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]),
        ),
        (
            "with-log",
            json!([{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}]),
        ),
    ] {
        sim.put(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name, "namespace": "default"}, "rules": rules}),
        )
        .unwrap();
        sim.put(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": "default"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "default"}]}),
        )
        .unwrap();
    }
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "never-starts"}]}}))
    .unwrap();
    Api::<Pod>::namespaced(admin, "default")
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    let as_sa = |sa: &str| {
        let token = sim.token_for_service_account("default", sa);
        let sim = &sim;
        async move { Api::<Pod>::namespaced(common::client(sim, Some(&token)).await, "default") }
    };
    let pods_only = as_sa("pods-only").await;
    pods_only.get("p").await.expect("get pods is granted");
    let err = common::api_err(pods_only.logs("p", &LogParams::default()).await);
    assert_eq!(err.code, 403);
    assert!(
        err.message.contains("cannot get resource \"pods/log\""),
        "{}",
        err.message
    );
    // Granted, the request passes RBAC and meets the pod: not started, so the kubelet's 400.
    let err = common::api_err(
        as_sa("with-log")
            .await
            .logs("p", &LogParams::default())
            .await,
    );
    assert_eq!(err.code, 400, "{}", err.message);
    sim.shutdown().await;
}
