//! The TrainJob operator, as the `wharf-trainer operator` binary, against the API simulator.
//!
//! The charm is rendered with wharf's own renderer and its objects (CRD, ServiceAccount,
//! ClusterRole, bindings, Deployment) are put into the simulator; the operator runs with the
//! Deployment's own arguments and authenticates as the charm's ServiceAccount, so the simulator
//! checks every request against the charm's RBAC: a permission missing from the templates fails
//! these tests.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_sim::wait::eventually;
use kube_sim::{Outcome, Simulator};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wharf_trainer::crd::TrainJob;

/// The model namespace the charm is deployed into, and a user's namespace for TrainJobs.
const MODEL: &str = "wharf";
const USER: &str = "team-a";
const IMAGE: &str = "wharf.local/wharf-trainer:0.1.0";

/// The trainer charm rendered by wharf, as a one-application bundle at `scale`.
fn render_charm(scale: u32) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle.yaml");
    std::fs::write(
        &bundle,
        format!(
            "bundle: kubernetes\nname: trainer-test\napplications:\n  trainer:\n    charm: trainer\n    \
             scale: {scale}\n    trust: true\n"
        ),
    )
    .unwrap();
    let charms = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bundle = wharf::bundle::Bundle::load(bundle.to_str().unwrap(), &[], &[]).unwrap();
    let resolved =
        wharf::render::Resolved::new(bundle, &wharf::charm::Source::new(Some(&charms))).unwrap();
    let target = wharf::render::Target {
        namespace: MODEL.into(),
        ..wharf::render::Target::default()
    };
    let rendered = resolved
        .render(&target, &wharf::render::Generated::new())
        .unwrap();
    rendered.apps.into_iter().flat_map(|a| a.objects).collect()
}

struct Harness {
    sim: Simulator,
    admin: kube::Client,
    operators: Vec<tokio::process::Child>,
    metrics_ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn client(path: &Path) -> kube::Client {
    let kc = Kubeconfig::read_from(path).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

/// GET `path` from 127.0.0.1:`port`; the status code and body.
async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((code, body))
}

impl Harness {
    /// The simulator with the charm deployed at `scale` and `scale` operator processes running.
    async fn start(scale: u32) -> Harness {
        Harness::start_with(scale, None).await
    }

    /// ... where pods of images matching `never_ready_image` never start (ImagePullBackOff).
    async fn start_with(scale: u32, never_ready_image: Option<&str>) -> Harness {
        let sim = Simulator::start(kube_sim::Config {
            readiness_delay: Duration::from_millis(300),
            crd_established_delay: Duration::from_millis(50),
            never_ready_image: never_ready_image.map(|r| regex::Regex::new(r).unwrap()),
            ..kube_sim::Config::default()
        })
        .await
        .unwrap();
        for ns in [MODEL, USER] {
            sim.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
                .unwrap();
        }
        let objects = render_charm(scale);
        let mut args = None;
        for object in &objects {
            sim.put(object.clone()).unwrap_or_else(|e| {
                panic!(
                    "putting {} {}: {e}",
                    object["kind"], object["metadata"]["name"]
                )
            });
            if object["kind"] == "Deployment" {
                let container = &object["spec"]["template"]["spec"]["containers"][0];
                assert_eq!(container["image"], IMAGE);
                args =
                    Some(serde_json::from_value::<Vec<String>>(container["args"].clone()).unwrap());
            }
        }
        let args = args.expect("the charm renders the operator Deployment");

        let dir = tempfile::tempdir().unwrap();
        let admin_path = dir.path().join("admin.kubeconfig");
        sim.write_kubeconfig(&admin_path, None).unwrap();
        let operator_path = dir.path().join("operator.kubeconfig");
        let token = sim.token_for_service_account(MODEL, "trainer");
        sim.write_kubeconfig(&operator_path, Some(&token)).unwrap();

        let mut operators = Vec::new();
        let mut metrics_ports = Vec::new();
        for replica in 0..scale {
            let port = free_port();
            let args: Vec<String> = args
                .iter()
                .map(|a| {
                    if a.starts_with("--metrics-addr=") {
                        format!("--metrics-addr=127.0.0.1:{port}")
                    } else {
                        a.clone()
                    }
                })
                .collect();
            let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wharf-trainer"))
                .args(&args)
                .env("KUBECONFIG", &operator_path)
                .env("POD_NAMESPACE", MODEL)
                .env("POD_NAME", format!("trainer-{replica}"))
                .env("RUST_LOG", "warn")
                // Progress is read every 10 s by default; the tests append epochs and wait.
                .env("WHARF_TRAINER_PROGRESS_INTERVAL", "200ms")
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            operators.push(child);
            metrics_ports.push(port);
        }
        for &port in &metrics_ports {
            eventually("the operator's /healthz", || http_get(port, "/healthz")).await;
        }
        Harness {
            admin: client(&admin_path).await,
            sim,
            operators,
            metrics_ports,
            _dir: dir,
        }
    }

    fn trainjobs(&self) -> Api<TrainJob> {
        Api::namespaced(self.admin.clone(), USER)
    }

    fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.admin.clone(), USER)
    }

    async fn create(&self, name: &str, spec: Value) -> Result<TrainJob, kube::Error> {
        let tj: TrainJob = serde_json::from_value(json!({
            "apiVersion": "wharf.dev/v1alpha1", "kind": "TrainJob",
            "metadata": {"name": name}, "spec": spec
        }))
        .unwrap();
        self.trainjobs().create(&PostParams::default(), &tj).await
    }

    /// Waits until the TrainJob's status.state is `state`.
    async fn wait_state(&self, name: &str, state: &str) -> TrainJob {
        let api = self.trainjobs();
        eventually(&format!("TrainJob {name} in state {state}"), || {
            let api = api.clone();
            async move {
                let tj = api.get(name).await.ok()?;
                (tj.status.as_ref()?.state.as_deref() == Some(state)).then_some(tj)
            }
        })
        .await
    }

    /// Waits until events.k8s.io Events about `name` include every reason in `want` (they are
    /// published just after the status write that the caller may already have seen).
    async fn wait_events(&self, name: &str, want: &[&str]) {
        eventually(&format!("Events {want:?} about {name}"), || async {
            let reasons: Vec<String> = self
                .sim
                .list("events.k8s.io/v1", "Event", Some(USER))
                .iter()
                .filter(|e| e["regarding"]["name"] == name)
                .map(|e| e["reason"].as_str().unwrap_or_default().to_owned())
                .collect();
            want.iter()
                .all(|w| reasons.iter().any(|r| r == w))
                .then_some(())
        })
        .await;
    }

    async fn stop(mut self) {
        for child in &mut self.operators {
            let _ = child.kill().await;
        }
        self.sim.shutdown().await;
    }
}

fn spec(dataset: &str, output: &str) -> Value {
    json!({"model": "mlp", "epochs": 2, "dataset": {"uri": dataset}, "output": {"uri": output}})
}

const BAKED: &str = "file:///usr/share/datasets/fashion-mnist";

fn condition<'a>(
    tj: &'a TrainJob,
    type_: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    let status = tj.status.as_ref().unwrap();
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {:?}", status.conditions))
}

#[tokio::test]
async fn a_trainjob_becomes_a_job_and_succeeds_with_the_trainers_accuracy() {
    let h = Harness::start(1).await;
    h.sim.set_job_outcome(USER, "fashion", Outcome::Succeed {
        message: r#"{"model_uri":"/mnt/claims/models/fashion/1","metrics":{"test_accuracy":0.8731,"train_accuracy":0.91,"loss":0.27,"epochs":2,"train_seconds":30.0}}"#.into(),
    });
    let created = h
        .create("fashion", spec(BAKED, "pvc://models/fashion"))
        .await
        .unwrap();

    let job = eventually("the Job", || async {
        h.jobs().get_opt("fashion").await.unwrap()
    })
    .await;
    let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("TrainJob", created.metadata.uid.as_deref().unwrap())
    );
    assert_eq!(owner.controller, Some(true));
    let container = &job
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some(IMAGE),
        "the image from the charm's metadata"
    );
    let args = container.args.clone().unwrap();
    assert_eq!(args[0], "train");
    assert!(
        args.contains(&"--out=/mnt/claims/models/fashion".to_owned()),
        "{args:?}"
    );

    h.wait_state("fashion", "Succeeded").await;
    // A later spec change is reported, not silently ignored: a Job cannot change.
    h.trainjobs()
        .patch(
            "fashion",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"epochs": 3}})),
        )
        .await
        .unwrap();
    h.wait_events("fashion", &["SpecChangeIgnored"]).await;
    let tj = h.trainjobs().get("fashion").await.unwrap();
    assert_eq!(tj.metadata.generation, Some(2));
    let status = tj.status.as_ref().unwrap();
    assert_eq!(status.metrics.as_ref().unwrap().test_accuracy, 0.8731);
    assert_eq!(status.model_uri.as_deref(), Some("pvc://models/fashion/1"));
    assert!(status.start_time.is_some() && status.completion_time.is_some());
    for (type_, want) in [
        ("Created", "True"),
        ("Running", "False"),
        ("Succeeded", "True"),
        ("Failed", "False"),
    ] {
        let c = condition(&tj, type_);
        assert_eq!(c.status, want, "{type_}: {c:?}");
        assert_eq!(c.observed_generation, tj.metadata.generation, "{type_}");
    }
    assert!(condition(&tj, "Succeeded").message.contains("0.8731"));
    h.wait_events("fashion", &["JobCreated", "Succeeded"]).await;

    let (code, metrics) = http_get(h.metrics_ports[0], "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(
        metrics.contains("wharf_trainer_trainjobs_finished_total{outcome=\"Succeeded\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("wharf_trainer_reconcile_duration_seconds_count"),
        "{metrics}"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_failing_pod_fails_the_trainjob_with_the_reason() {
    let h = Harness::start(1).await;
    h.sim.set_job_outcome(
        USER,
        "broken",
        Outcome::Fail {
            message:
                "error: /data: neither train-images-idx3-ubyte nor train-images-idx3-ubyte.gz found"
                    .into(),
            reason: "BackoffLimitExceeded".into(),
        },
    );
    h.create("broken", spec("pvc://data/fashion", "pvc://models/fashion"))
        .await
        .unwrap();
    let tj = h.wait_state("broken", "Failed").await;
    let failed = condition(&tj, "Failed");
    assert_eq!(failed.status, "True");
    assert_eq!(failed.reason, "BackoffLimitExceeded");
    assert!(
        failed.message.contains("train-images-idx3-ubyte"),
        "{failed:?}"
    );
    assert_eq!(condition(&tj, "Succeeded").status, "False");
    assert!(tj.status.as_ref().unwrap().metrics.is_none());
    h.wait_events("broken", &["JobCreated", "Failed"]).await;
    // Counted once, by outcome: the monitoring charm's TrainJobFailing alert reads this counter.
    let (code, metrics) = http_get(h.metrics_ports[0], "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(
        metrics.contains("wharf_trainer_trainjobs_finished_total{outcome=\"Failed\"} 1")
            && metrics.contains("wharf_trainer_trainjobs_finished_total{outcome=\"Succeeded\"} 0"),
        "{metrics}"
    );
    h.stop().await;
}

#[tokio::test]
async fn deleting_the_trainjob_removes_its_job() {
    let h = Harness::start(1).await;
    h.create("short-lived", spec(BAKED, "pvc://models/x"))
        .await
        .unwrap();
    eventually("the Job", || async {
        h.jobs().get_opt("short-lived").await.unwrap()
    })
    .await;
    h.trainjobs()
        .delete("short-lived", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the Job gone", || async {
        h.jobs()
            .get_opt("short-lived")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        h.sim.list("v1", "Pod", Some(USER)).is_empty(),
        "its pod went with it"
    );
    h.stop().await;
}

#[tokio::test]
async fn an_invalid_spec_is_refused() {
    let h = Harness::start(1).await;
    // What the CRD schema refuses never reaches the operator.
    for (name, bad) in [
        (
            "zero-epochs",
            json!({"model": "mlp", "epochs": 0, "dataset": {"uri": BAKED}, "output": {"uri": "pvc://m"}}),
        ),
        (
            "bad-model",
            json!({"model": "gpt", "epochs": 1, "dataset": {"uri": BAKED}, "output": {"uri": "pvc://m"}}),
        ),
        ("bad-uri", spec("http://example.com/data", "pvc://m")),
        (
            "bad-lr",
            json!({"model": "mlp", "epochs": 1, "learningRate": 0.0, "dataset": {"uri": BAKED}, "output": {"uri": "pvc://m"}}),
        ),
    ] {
        let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
            h.admin.clone(),
            USER,
            &kube::api::ApiResource::erase::<TrainJob>(&()),
        );
        let obj = serde_json::from_value(
            json!({"apiVersion": "wharf.dev/v1alpha1", "kind": "TrainJob",
            "metadata": {"name": name}, "spec": bad}),
        )
        .unwrap();
        match raw.create(&PostParams::default(), &obj).await {
            Err(kube::Error::Api(s)) => assert_eq!(s.code, 422, "{name}: {s:?}"),
            other => panic!("{name}: expected 422 Invalid, got {other:?}"),
        }
    }
    // What only the operator can judge: Failed with InvalidSpec, an Event, and no Job.
    h.create("to-s3", spec(BAKED, "s3://Models_1/fashion"))
        .await
        .unwrap();
    let tj = h.wait_state("to-s3", "Failed").await;
    let failed = condition(&tj, "Failed");
    assert_eq!(failed.reason, "InvalidSpec");
    assert!(
        failed.message.contains("output.uri") && failed.message.contains("not an S3 bucket name"),
        "{failed:?}"
    );
    assert_eq!(condition(&tj, "Created").status, "False");
    assert!(h.jobs().get_opt("to-s3").await.unwrap().is_none());
    h.wait_events("to-s3", &["InvalidSpec"]).await;

    // Fixed, it runs: the refusal did not end it for good.
    h.trainjobs()
        .patch(
            "to-s3",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"output": {"uri": "pvc://models/fashion"}}})),
        )
        .await
        .unwrap();
    let tj = h.wait_state("to-s3", "Succeeded").await;
    assert_eq!(condition(&tj, "Failed").status, "False");
    assert_eq!(condition(&tj, "Created").status, "True");
    h.stop().await;
}

#[tokio::test]
async fn an_s3_trainjob_runs_with_the_uris_and_the_minio_secret_and_reports_the_s3_model_uri() {
    let h = Harness::start(1).await;
    h.sim.set_job_outcome(USER, "s3", Outcome::Succeed {
        message: r#"{"model_uri":"s3://wharf/models/fashion/4","metrics":{"test_accuracy":0.85,"train_accuracy":0.9,"loss":0.3,"epochs":2,"train_seconds":20.0}}"#.into(),
    });
    h.create(
        "s3",
        spec("s3://wharf/datasets/fashion", "s3://wharf/models/fashion"),
    )
    .await
    .unwrap();
    let job = eventually("the Job", || async {
        h.jobs().get_opt("s3").await.unwrap()
    })
    .await;
    let container = &job
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    let args = container.args.clone().unwrap();
    for arg in [
        "--data=s3://wharf/datasets/fashion",
        "--out=s3://wharf/models/fashion",
    ] {
        assert!(args.contains(&arg.to_owned()), "{arg} in {args:?}");
    }
    let env = container.env.clone().unwrap();
    for (name, key) in [
        ("AWS_ACCESS_KEY_ID", "access-key"),
        ("AWS_SECRET_ACCESS_KEY", "secret-key"),
    ] {
        let var = env.iter().find(|e| e.name == name).unwrap();
        let secret = var.value_from.clone().unwrap().secret_key_ref.unwrap();
        assert_eq!(
            (secret.name.as_str(), secret.key.as_str()),
            ("minio-credentials", key),
            "{name}"
        );
    }
    let endpoint = env.iter().find(|e| e.name == "AWS_ENDPOINT_URL").unwrap();
    assert_eq!(
        endpoint.value.as_deref(),
        Some(format!("http://minio.{MODEL}.svc:9000").as_str()),
        "the charm's default: the platform's MinIO"
    );
    let tj = h.wait_state("s3", "Succeeded").await;
    assert_eq!(
        tj.status.unwrap().model_uri.as_deref(),
        Some("s3://wharf/models/fashion/4")
    );
    h.stop().await;
}

#[tokio::test]
async fn a_pod_that_cannot_start_leaves_the_trainjob_created_with_the_kubelets_reason() {
    let h = Harness::start_with(1, Some("wharf-trainer")).await;
    h.create("stuck", spec(BAKED, "pvc://models/stuck"))
        .await
        .unwrap();
    let tj = eventually("the kubelet's reason in the Running condition", || async {
        let tj = h.trainjobs().get("stuck").await.ok()?;
        (tj.status.as_ref()?.conditions.iter())
            .any(|c| c.type_ == "Running" && c.reason == "ImagePullBackOff")
            .then_some(tj)
    })
    .await;
    // The Job counts its pod as active, but nothing runs: not "Running".
    assert_eq!(
        tj.status.as_ref().unwrap().state.as_deref(),
        Some("Created")
    );
    let running = condition(&tj, "Running");
    assert_eq!(running.status, "False");
    assert_eq!(
        running.message,
        format!("the training pod is waiting: Back-off pulling image \"{IMAGE}\"")
    );
    h.wait_events("stuck", &["PodNotStarting"]).await;
    h.stop().await;
}

#[tokio::test]
async fn two_replicas_elect_one_leader_through_the_lease() {
    let h = Harness::start(2).await;
    let leases: Api<Lease> = Api::namespaced(h.admin.clone(), MODEL);
    let lease = eventually("the Lease", || async {
        leases.get_opt("trainer-operator").await.unwrap()
    })
    .await;
    let holder = lease.spec.unwrap().holder_identity.unwrap();
    assert!(holder == "trainer-0" || holder == "trainer-1", "{holder}");
    // Only the leader reconciles, and it does.
    h.create("led", spec(BAKED, "pvc://models/led"))
        .await
        .unwrap();
    h.wait_state("led", "Succeeded").await;
    let mut leaders = 0;
    for &port in &h.metrics_ports {
        let (_, metrics) = http_get(port, "/metrics").await.unwrap();
        leaders += metrics.lines().any(|l| l == "wharf_trainer_leader 1") as u32;
    }
    assert_eq!(leaders, 1, "exactly one replica leads");
    h.stop().await;
}

#[tokio::test]
async fn a_standby_takes_over_an_expired_lease_and_the_old_holder_steps_down() {
    use wharf_leader::Elector;
    let mut h = Harness::start(2).await;
    for child in h.operators.iter_mut() {
        child.kill().await.unwrap();
    }
    // The charm's Role, as the charm's ServiceAccount: get/update only on this Lease's name.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sa.kubeconfig");
    let token = h.sim.token_for_service_account(MODEL, "trainer");
    h.sim.write_kubeconfig(&path, Some(&token)).unwrap();
    let sa = client(&path).await;
    let a = Elector::new(sa.clone(), MODEL, "trainer-operator", "a");
    let b = Elector::new(sa.clone(), MODEL, "trainer-operator", "b");
    // The killed replicas' Lease is still fresh: nobody else may take it.
    assert!(!a.try_acquire().await.unwrap());
    // It expires (the holder stopped renewing 20 s ago): the first standby to ask wins.
    let leases: Api<Lease> = Api::namespaced(h.admin.clone(), MODEL);
    let mut lease = leases.get("trainer-operator").await.unwrap();
    let old =
        k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(20);
    lease.spec.as_mut().unwrap().renew_time = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(old),
    );
    leases
        .replace("trainer-operator", &PostParams::default(), &lease)
        .await
        .unwrap();
    assert!(a.try_acquire().await.unwrap(), "a takes the expired Lease");
    assert!(!b.try_acquire().await.unwrap(), "b stays a standby");
    assert!(a.try_acquire().await.unwrap(), "a renews");
    let spec = leases.get("trainer-operator").await.unwrap().spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("a"));
    assert_eq!(spec.lease_transitions, Some(1));
    // a stalls past the Lease's duration; b takes over, and a learns it no longer leads (its
    // renewal loop then exits the process).
    let mut lease = leases.get("trainer-operator").await.unwrap();
    lease.spec.as_mut().unwrap().renew_time = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(old),
    );
    leases
        .replace("trainer-operator", &PostParams::default(), &lease)
        .await
        .unwrap();
    assert!(b.try_acquire().await.unwrap(), "b takes over");
    assert!(!a.try_acquire().await.unwrap(), "a sees b holding it");
    let spec = leases.get("trainer-operator").await.unwrap().spec.unwrap();
    assert_eq!(
        (spec.holder_identity.as_deref(), spec.lease_transitions),
        (Some("b"), Some(2))
    );
    // The Role is as narrow as it says: another Lease's name is forbidden.
    let other = Elector::new(sa, MODEL, "someone-else", "a");
    match other.try_acquire().await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403),
        other => panic!("expected 403 for another Lease, got {other:?}"),
    }
    h.stop().await;
}

#[tokio::test]
async fn the_shipped_example_is_accepted_and_trains() {
    let h = Harness::start(1).await;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fashion-mlp.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let tj: TrainJob = serde_saphyr::from_str(&text).unwrap();
    h.trainjobs()
        .create(&PostParams::default(), &tj)
        .await
        .unwrap();
    let job = eventually("the Job", || async {
        h.jobs().get_opt("fashion-mlp").await.unwrap()
    })
    .await;
    let spec = job.spec.unwrap();
    assert_eq!(
        (spec.backoff_limit, spec.active_deadline_seconds),
        (Some(1), Some(3600))
    );
    let container = &spec.template.spec.unwrap().containers[0];
    let limits = container
        .resources
        .as_ref()
        .unwrap()
        .limits
        .as_ref()
        .unwrap();
    assert_eq!(limits["memory"].0, "1Gi");
    h.wait_state("fashion-mlp", "Succeeded").await;
    h.stop().await;
}

/// A user's own training container: its image and command run with the TrainJob's locations.
fn custom_spec() -> Value {
    json!({
        "trainer": {
            "image": "ghcr.io/example/train:1.0",
            "command": ["python", "/app/train.py"],
            "args": ["--epochs", "620"],
            "env": [{"name": "LR", "value": "0.01"}],
            "resources": {"limits": {"memory": "1Gi"}}
        },
        "dataset": {"uri": "pvc://data/fashion"},
        "output": {"uri": "s3://wharf/models/mine"}
    })
}

/// The status's epochs, once `want` of them are there.
async fn wait_epochs(h: &Harness, name: &str, want: usize) -> TrainJob {
    let api = h.trainjobs();
    eventually(&format!("{want} epochs in {name}'s status"), || {
        let api = api.clone();
        async move {
            let tj = api.get(name).await.ok()?;
            (tj.status.as_ref()?.epochs.len() == want).then_some(tj)
        }
    })
    .await
}

fn line(epoch: u32) -> String {
    format!(
        "{{\"epoch\": {epoch}, \"loss\": {:.4}, \"accuracy\": {:.4}}}\n",
        1.0 / f64::from(epoch),
        1.0 - 1.0 / f64::from(epoch + 1)
    )
}

#[tokio::test]
async fn a_custom_container_runs_and_its_epochs_reach_the_status_while_it_runs_capped() {
    let h = Harness::start(1).await;
    h.sim.set_job_outcome(USER, "mine", Outcome::Hold);
    h.create("mine", custom_spec()).await.unwrap();
    let job = eventually("the Job", || async {
        h.jobs().get_opt("mine").await.unwrap()
    })
    .await;
    let c = &job
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    assert_eq!(c.image.as_deref(), Some("ghcr.io/example/train:1.0"));
    assert_eq!(c.command.clone().unwrap(), ["python", "/app/train.py"]);
    assert_eq!(c.args.clone().unwrap(), ["--epochs", "620"]);
    let env = c.env.clone().unwrap();
    let value = |name: &str| {
        env.iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("no {name} in {env:?}"))
            .value
            .clone()
    };
    assert_eq!(
        value("WHARF_DATASET_URI").as_deref(),
        Some("pvc://data/fashion")
    );
    assert_eq!(
        value("WHARF_DATASET_DIR").as_deref(),
        Some("/mnt/claims/data/fashion")
    );
    assert_eq!(
        value("WHARF_OUTPUT_URI").as_deref(),
        Some("s3://wharf/models/mine")
    );
    assert_eq!(value("LR").as_deref(), Some("0.01"));
    let key = env
        .iter()
        .find(|e| e.name == "AWS_SECRET_ACCESS_KEY")
        .unwrap();
    assert!(
        key.value.is_none() && key.value_from.is_some(),
        "by secretKeyRef only"
    );

    h.wait_state("mine", "Running").await;
    let pod = |n: usize| assert_eq!(n, 1, "one training pod to write to");
    pod(h.sim.append_pod_log(
        USER,
        "mine-*",
        "trainer",
        &format!("loading pvc://data/fashion\n{}{}", line(1), line(2)),
    ));
    let tj = wait_epochs(&h, "mine", 2).await;
    let status = tj.status.as_ref().unwrap();
    assert_eq!(status.epochs[1].epoch, 2);
    assert_eq!(status.epochs[1].loss, Some(0.5));
    assert_eq!(
        status.state.as_deref(),
        Some("Running"),
        "read while it runs"
    );
    assert!(status.metrics.is_none(), "no final metrics before the end");

    // It grows as the container prints, and keeps the most recent 500.
    pod(h.sim.append_pod_log(
        USER,
        "mine-*",
        "trainer",
        &format!("{}checkpoint saved\n", line(3)),
    ));
    wait_epochs(&h, "mine", 3).await;
    // The dashboard's gauges: one TrainJob running, at epoch 3 (read from the operator's cache).
    let port = h.metrics_ports[0];
    eventually("the running TrainJob's epochs in /metrics", || async move {
        let (_, metrics) = http_get(port, "/metrics").await?;
        (metrics.contains(
            "wharf_trainer_trainjob_epochs_completed{trainjob=\"mine\",trainjob_namespace=\"team-a\"} 3",
        ) && metrics.contains("wharf_trainer_trainjobs{state=\"Running\"} 1"))
        .then_some(())
    })
    .await;
    let many: String = (4..=620).map(line).collect();
    pod(h.sim.append_pod_log(USER, "mine-*", "trainer", &many));
    let tj = eventually("the history capped at 500, up to epoch 620", || async {
        let tj = h.trainjobs().get("mine").await.ok()?;
        let epochs = &tj.status.as_ref()?.epochs;
        (epochs.last()?.epoch == 620).then_some(tj)
    })
    .await;
    let epochs = &tj.status.as_ref().unwrap().epochs;
    assert_eq!(epochs.len(), wharf_trainer::progress::MAX_EPOCHS);
    assert_eq!((epochs[0].epoch, epochs[499].epoch), (121, 620));

    // It ends writing its final metrics to WHARF_METRICS_FILE (the termination message).
    h.sim.set_job_outcome(
        USER,
        "mine",
        Outcome::Succeed {
            message: "{\"epoch\": 620, \"loss\": 0.0016, \"accuracy\": 0.9312}".into(),
        },
    );
    let tj = h.wait_state("mine", "Succeeded").await;
    // Finished: counted as Succeeded, its epochs series gone.
    eventually("the finished TrainJob in /metrics", || async move {
        let (_, metrics) = http_get(port, "/metrics").await?;
        (metrics.contains("wharf_trainer_trainjobs{state=\"Succeeded\"} 1")
            && !metrics.contains("wharf_trainer_trainjob_epochs_completed{"))
        .then_some(())
    })
    .await;
    let status = tj.status.as_ref().unwrap();
    let metrics = status.metrics.as_ref().unwrap();
    assert_eq!(
        (metrics.test_accuracy, metrics.loss, metrics.epochs),
        (0.9312, 0.0016, 620)
    );
    assert!(condition(&tj, "Succeeded").message.contains("0.9312"));
    assert_eq!(status.epochs.len(), 500, "the history stays");
    h.stop().await;
}

#[tokio::test]
async fn a_custom_container_without_a_metrics_file_ends_with_its_last_epoch() {
    let h = Harness::start(1).await;
    h.sim.set_job_outcome(USER, "quiet", Outcome::Hold);
    h.create("quiet", custom_spec()).await.unwrap();
    h.wait_state("quiet", "Running").await;
    // No metrics file: the termination message is empty, the log has the epochs.
    h.sim.append_pod_log(
        USER,
        "quiet-*",
        "trainer",
        &format!("{}{}", line(1), line(2)),
    );
    h.sim.set_job_outcome(
        USER,
        "quiet",
        Outcome::Succeed {
            message: String::new(),
        },
    );
    let tj = h.wait_state("quiet", "Succeeded").await;
    let status = tj.status.as_ref().unwrap();
    let metrics = status.metrics.as_ref().unwrap();
    assert_eq!((metrics.epochs, metrics.loss), (2, 0.5));
    assert_eq!(status.epochs.len(), 2);
    h.stop().await;
}

#[tokio::test]
async fn a_spec_with_both_or_neither_trainer_is_refused_and_built_in_fields_with_a_container_fail()
{
    let h = Harness::start(1).await;
    let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
        h.admin.clone(),
        USER,
        &kube::api::ApiResource::erase::<TrainJob>(&()),
    );
    let locations = json!({"dataset": {"uri": "pvc://d"}, "output": {"uri": "pvc://m"}});
    for (name, extra) in [
        (
            "both",
            json!({"model": "mlp", "trainer": {"image": "ghcr.io/example/train:1.0"}}),
        ),
        ("neither", json!({"epochs": 2})),
    ] {
        let mut spec = locations.clone();
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let obj = serde_json::from_value(json!({"apiVersion": "wharf.dev/v1alpha1",
            "kind": "TrainJob", "metadata": {"name": name}, "spec": spec}))
        .unwrap();
        match raw.create(&PostParams::default(), &obj).await {
            Err(kube::Error::Api(s)) => {
                assert_eq!(s.code, 422, "{name}: {s:?}");
                assert!(
                    s.message.contains("set exactly one of spec.model")
                        && s.message.contains("spec.trainer.image"),
                    "{name}: {}",
                    s.message
                );
            }
            other => panic!("{name}: expected 422 Invalid, got {other:?}"),
        }
    }
    // What the rule lets through, the operator refuses with a condition naming the field.
    let mut spec = custom_spec();
    spec["epochs"] = json!(5);
    h.create("epochs-too", spec).await.unwrap();
    let tj = h.wait_state("epochs-too", "Failed").await;
    let failed = condition(&tj, "Failed");
    assert_eq!(failed.reason, "InvalidSpec");
    assert!(
        failed
            .message
            .starts_with("spec.epochs is for wharf's built-in trainer"),
        "{failed:?}"
    );
    assert!(h.jobs().get_opt("epochs-too").await.unwrap().is_none());
    h.wait_events("epochs-too", &["InvalidSpec"]).await;
    h.stop().await;
}

#[tokio::test]
async fn the_shipped_own_container_example_is_accepted_and_runs_its_image() {
    let h = Harness::start(1).await;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/own-container.yaml");
    let tj: TrainJob = serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    h.trainjobs()
        .create(&PostParams::default(), &tj)
        .await
        .unwrap();
    let job = eventually("the Job", || async {
        h.jobs().get_opt("my-model").await.unwrap()
    })
    .await;
    let container = &job.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some("registry.example.com/me/fashion-train:1.0")
    );
    assert_eq!(
        container
            .resources
            .as_ref()
            .unwrap()
            .limits
            .as_ref()
            .unwrap()["memory"]
            .0,
        "2Gi"
    );
    h.wait_state("my-model", "Succeeded").await;
    h.stop().await;
}

// ---- OptimizationJobs: the tuning controller in the same process, against the same RBAC. The
// tests play the trainer through the simulator: each trial's Job ends with the progress line
// the test chose (its termination message), and held Jobs print epoch lines to their pod's log.

mod tuning {
    use super::*;
    use std::collections::BTreeMap;
    use wharf_trainer::optimization::{OptimizationJob, OptimizationJobSpec, TrialState};
    use wharf_trainer::search;

    fn jobs_api(h: &Harness) -> Api<OptimizationJob> {
        Api::namespaced(h.admin.clone(), USER)
    }

    async fn create_job(h: &Harness, name: &str, spec: Value) -> OptimizationJob {
        let oj: OptimizationJob = serde_json::from_value(json!({
            "apiVersion": "wharf.dev/v1alpha1", "kind": "OptimizationJob",
            "metadata": {"name": name}, "spec": spec
        }))
        .unwrap();
        jobs_api(h)
            .create(&PostParams::default(), &oj)
            .await
            .unwrap()
    }

    /// Waits until the OptimizationJob's status passes `check`.
    async fn wait_job(
        h: &Harness,
        name: &str,
        what: &str,
        check: impl Fn(&OptimizationJob) -> bool,
    ) -> OptimizationJob {
        let api = jobs_api(h);
        let check = &check;
        eventually(&format!("OptimizationJob {name}: {what}"), || {
            let api = api.clone();
            async move {
                let oj = api.get(name).await.ok()?;
                check(&oj).then_some(oj)
            }
        })
        .await
    }

    fn state(oj: &OptimizationJob) -> Option<&str> {
        oj.status.as_ref()?.state.as_deref()
    }

    /// The trainer's last line for a trial that reached `accuracy`.
    fn finished(accuracy: f64) -> Outcome {
        Outcome::Succeed {
            message: format!(
                "{{\"epoch\": 3, \"loss\": {:.3}, \"accuracy\": {accuracy}}}",
                1.0 - accuracy
            ),
        }
    }

    fn tuning_spec(algorithm: Value, num: u32, parallel: u32) -> Value {
        json!({
            "objectives": [{"metric": "accuracy", "direction": "maximize"}],
            "searchAlgorithm": algorithm,
            "parameters": [
                {"name": "learningRate", "distribution": "logUniform", "min": 0.0001, "max": 0.01},
                {"name": "batchSize", "distribution": "categorical", "values": [32, 64]}
            ],
            "numTrials": num,
            "parallelTrials": parallel,
            "trainJobTemplate": {"model": "mlp", "epochs": 3, "dataset": {"uri": BAKED},
                "output": {"uri": "pvc://models/tune"}}
        })
    }

    /// The trial TrainJobs that exist now, by name, with their state.
    async fn trial_states(h: &Harness, job: &str) -> BTreeMap<String, Option<String>> {
        let list = h
            .trainjobs()
            .list(
                &kube::api::ListParams::default()
                    .labels(&format!("wharf.dev/optimization-job={job}")),
            )
            .await
            .unwrap();
        list.items
            .into_iter()
            .map(|tj| {
                let state = tj.status.and_then(|s| s.state);
                (tj.metadata.name.unwrap(), state)
            })
            .collect()
    }

    #[tokio::test]
    async fn random_search_runs_its_seeded_trials_two_at_a_time_and_reports_the_best() {
        let h = Harness::start(1).await;
        h.sim.set_job_outcome(USER, "rs-trial-*", Outcome::Hold);
        let spec = tuning_spec(json!({"name": "random", "seed": 11}), 4, 2);
        let typed: OptimizationJobSpec = serde_json::from_value(spec.clone()).unwrap();
        create_job(&h, "rs", spec).await;

        // Two start; while both train, no third does.
        eventually("two trials", || async {
            (trial_states(&h, "rs").await.len() == 2).then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            trial_states(&h, "rs").await.keys().collect::<Vec<_>>(),
            ["rs-trial-0", "rs-trial-1"]
        );
        // Play the trainer: end each trial once it exists, checking that no more than two run.
        let accuracies = [0.81, 0.86, 0.84, 0.79];
        for (i, accuracy) in accuracies.iter().enumerate() {
            let name = format!("rs-trial-{i}");
            let states = eventually(&format!("TrainJob {name}"), || async {
                let states = trial_states(&h, "rs").await;
                states.contains_key(&name).then_some(states)
            })
            .await;
            let active = states
                .values()
                .filter(|s| !matches!(s.as_deref(), Some("Succeeded" | "Failed")))
                .count();
            assert!(active <= 2, "{active} trials active at once: {states:?}");
            // The TrainJob has the proposal for its index (a pure function of the seed).
            let tj = h.trainjobs().get(&name).await.unwrap();
            let want = search::random::propose(&typed.parameters, 11, i as u32);
            assert_eq!(tj.spec.learning_rate, Some(want[0]), "{name}");
            assert_eq!(tj.spec.batch_size, Some(want[1] as u32), "{name}");
            assert_eq!(tj.spec.output.uri, format!("pvc://models/tune/{name}"));
            h.sim.set_job_outcome(USER, &name, finished(*accuracy));
            h.wait_state(&name, "Succeeded").await;
        }

        let oj = wait_job(&h, "rs", "Succeeded", |oj| state(oj) == Some("Succeeded")).await;
        let status = oj.status.unwrap();
        assert_eq!(status.progress.as_deref(), Some("4/4"));
        assert_eq!(status.succeeded_trials, 4);
        assert_eq!(status.trials.len(), 4);
        for t in &status.trials {
            let want = search::random::propose(&typed.parameters, 11, t.index);
            assert_eq!(t.parameters["learningRate"], want[0]);
            assert_eq!(t.parameters["batchSize"], want[1]);
            assert_eq!(t.value, Some(accuracies[t.index as usize]));
        }
        let result = status.result.unwrap();
        assert_eq!(
            (result.trial_name.as_str(), result.train_job.as_str()),
            ("rs-trial-1", "rs-trial-1")
        );
        assert_eq!(result.value, 0.86);
        assert_eq!(result.parameters, status.trials[1].parameters);
        h.wait_events("rs", &["TrialCreated", "Succeeded"]).await;
        h.stop().await;
    }

    #[tokio::test]
    async fn grid_search_walks_every_combination_once_and_ends_with_the_grid() {
        let h = Harness::start(1).await;
        for (i, accuracy) in [0.7, 0.9, 0.8, 0.6].iter().enumerate() {
            h.sim
                .set_job_outcome(USER, &format!("grid-trial-{i}"), finished(*accuracy));
        }
        // 2 learning rates x 2 batch sizes: 4 trials although 10 were allowed.
        let spec = tuning_spec(json!({"name": "grid", "gridPoints": 2}), 10, 4);
        create_job(&h, "grid", spec).await;
        let oj = wait_job(&h, "grid", "Succeeded", |oj| state(oj) == Some("Succeeded")).await;
        let status = oj.status.unwrap();
        let got: Vec<(f64, f64)> = status
            .trials
            .iter()
            .map(|t| (t.parameters["learningRate"], t.parameters["batchSize"]))
            .collect();
        let (lo, hi) = (0.0001, 0.01);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert_eq!(got.len(), 4, "{got:?}");
        for ((lr, bs), (want_lr, want_bs)) in
            got.iter()
                .zip([(lo, 32.0), (lo, 64.0), (hi, 32.0), (hi, 64.0)])
        {
            assert!(close(*lr, want_lr) && *bs == want_bs, "{got:?}");
        }
        assert_eq!(status.progress.as_deref(), Some("4/4"));
        let result = status.result.unwrap();
        assert_eq!(
            (result.trial_name.as_str(), result.value),
            ("grid-trial-1", 0.9)
        );
        assert!(
            close(result.parameters["learningRate"], lo) && result.parameters["batchSize"] == 64.0
        );
        h.stop().await;
    }

    #[tokio::test]
    async fn failed_trials_are_counted_and_more_than_allowed_fail_the_job() {
        let h = Harness::start(1).await;
        h.sim.set_job_outcome(
            USER,
            "bad-trial-*",
            Outcome::Fail {
                message: "error: out of memory".into(),
                reason: "BackoffLimitExceeded".into(),
            },
        );
        let mut spec = tuning_spec(json!({"name": "random", "seed": 1}), 6, 1);
        spec["maxFailedTrials"] = json!(1);
        create_job(&h, "bad", spec).await;
        let oj = wait_job(&h, "bad", "Failed", |oj| state(oj) == Some("Failed")).await;
        let status = oj.status.unwrap();
        assert_eq!(status.failed_trials, 2);
        assert_eq!(status.trials.len(), 2, "no trial starts after the limit");
        assert!(status.trials.iter().all(|t| t.state == TrialState::Failed));
        assert!(
            status.trials[0]
                .message
                .as_deref()
                .unwrap_or_default()
                .contains("out of memory"),
            "{:?}",
            status.trials[0]
        );
        let failed = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Failed")
            .unwrap();
        assert_eq!(
            (failed.status.as_str(), failed.reason.as_str()),
            ("True", "TooManyFailedTrials")
        );
        assert!(status.result.is_none());
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(trial_states(&h, "bad").await.len(), 2);
        h.wait_events("bad", &["Failed"]).await;
        h.stop().await;
    }

    #[tokio::test]
    async fn hyperband_stops_a_trial_that_lags_at_its_rung_and_deletes_its_trainjob() {
        let h = Harness::start(1).await;
        h.sim.set_job_outcome(USER, "hb-trial-*", Outcome::Hold);
        // 3 epochs, rungs from 1 by 3: bracket 0 (trials 0 and 2) is judged at epoch 1,
        // bracket 1 (trial 1) runs to the end.
        let spec = tuning_spec(
            json!({"name": "hyperband", "seed": 5, "minEpochs": 1, "eta": 3}),
            3,
            3,
        );
        create_job(&h, "hb", spec).await;
        let log = |pod: &'static str, text: &'static str| {
            let sim = &h.sim;
            async move {
                eventually(&format!("a running pod for {pod}"), || async {
                    (sim.append_pod_log(USER, pod, "trainer", "") > 0).then_some(())
                })
                .await;
                sim.append_pod_log(USER, pod, "trainer", text);
            }
        };
        log(
            "hb-trial-0-*",
            "{\"epoch\": 1, \"loss\": 0.5, \"accuracy\": 0.8}\n",
        )
        .await;
        wait_job(&h, "hb", "trial 0's rung", |oj| {
            oj.status
                .as_ref()
                .is_some_and(|s| s.trials.first().is_some_and(|t| !t.rungs.is_empty()))
        })
        .await;
        // Trial 1 is in the other bracket: a poor first epoch does not stop it.
        log(
            "hb-trial-1-*",
            "{\"epoch\": 1, \"loss\": 2.0, \"accuracy\": 0.1}\n",
        )
        .await;
        log(
            "hb-trial-2-*",
            "{\"epoch\": 1, \"loss\": 1.5, \"accuracy\": 0.3}\n",
        )
        .await;
        let oj = wait_job(&h, "hb", "trial 2 stopped", |oj| {
            oj.status.as_ref().is_some_and(|s| {
                s.trials
                    .get(2)
                    .is_some_and(|t| t.state == TrialState::EarlyStopped)
            })
        })
        .await;
        let trial = &oj.status.as_ref().unwrap().trials[2];
        assert_eq!(trial.value, Some(0.3));
        assert!(
            trial
                .message
                .as_deref()
                .unwrap()
                .contains("stopped at epoch 1"),
            "{trial:?}"
        );
        eventually("trial 2's TrainJob deleted", || async {
            h.trainjobs()
                .get_opt("hb-trial-2")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        })
        .await;
        h.wait_events("hb", &["TrialEarlyStopped"]).await;

        h.sim.set_job_outcome(USER, "hb-trial-0", finished(0.88));
        h.sim.set_job_outcome(USER, "hb-trial-1", finished(0.85));
        let oj = wait_job(&h, "hb", "Succeeded", |oj| state(oj) == Some("Succeeded")).await;
        let status = oj.status.unwrap();
        assert_eq!(
            (
                status.succeeded_trials,
                status.early_stopped_trials,
                status.failed_trials
            ),
            (2, 1, 0)
        );
        assert_eq!(
            status.trials[1].state,
            TrialState::Succeeded,
            "bracket 1 has no rung"
        );
        assert_eq!(status.result.unwrap().trial_name, "hb-trial-0");
        assert_eq!(status.progress.as_deref(), Some("3/3"));
        h.stop().await;
    }

    #[tokio::test]
    async fn an_invalid_search_space_is_refused_with_the_field_named() {
        let h = Harness::start(1).await;
        let mut spec = tuning_spec(json!({"name": "hyperband"}), 3, 1);
        spec["parameters"][0]["min"] = json!(0.0);
        create_job(&h, "wrong", spec).await;
        let oj = wait_job(&h, "wrong", "Failed", |oj| state(oj) == Some("Failed")).await;
        let status = oj.status.unwrap();
        let failed = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Failed")
            .unwrap();
        assert_eq!(failed.reason, "InvalidSpec");
        assert!(
            failed
                .message
                .contains("spec.parameters[0] (learningRate): logUniform needs min > 0"),
            "{}",
            failed.message
        );
        assert!(status.trials.is_empty());
        assert!(trial_states(&h, "wrong").await.is_empty());
        h.stop().await;
    }

    #[tokio::test]
    async fn the_shipped_tuning_example_is_accepted_and_starts_its_first_trials() {
        let h = Harness::start(1).await;
        h.sim
            .set_job_outcome(USER, "fashion-tuning-trial-*", Outcome::Hold);
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/tuning/fashion-mnist-tuning.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let oj: OptimizationJob = serde_saphyr::from_str(&text).unwrap();
        jobs_api(&h)
            .create(&PostParams::default(), &oj)
            .await
            .unwrap();
        let states = eventually("two trials", || async {
            let s = trial_states(&h, "fashion-tuning").await;
            (s.len() == 2).then_some(s)
        })
        .await;
        assert_eq!(
            states.keys().collect::<Vec<_>>(),
            ["fashion-tuning-trial-0", "fashion-tuning-trial-1"]
        );
        h.stop().await;
    }
}
