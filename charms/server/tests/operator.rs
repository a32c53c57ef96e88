//! The InferenceService operator against the API simulator, as the charm's service account with
//! only the charm's own RBAC (templates/00-rbac.yaml): a missing permission makes reconciles fail
//! and these tests time out or see the error counted in /metrics.

use std::time::Duration;

use clap::Parser;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_sim::wait::eventually;
use kube_sim::{Config, Simulator};
use serde_json::{Value, json};
use wharf_server::cli::{Cli, Command};
use wharf_server::crd::InferenceService;
use wharf_server::operator::{Operator, OperatorConfig};

const NS: &str = "kubeflow";
const APP: &str = "server";
const IMAGE: &str = "wharf.local/wharf-server:0.1.0";

struct Env {
    sim: Simulator,
    admin: kube::Client,
    metrics: String,
    operator: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn client(sim: &Simulator, token: Option<&str>) -> kube::Client {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&path, token).unwrap();
    let kc = Kubeconfig::read_from(&path).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

/// The server charm rendered by wharf as a one-application bundle (app `server` in `kubeflow`).
fn render_charm(scale: u32) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle.yaml");
    std::fs::write(
        &bundle,
        format!(
            "bundle: kubernetes\nname: server-test\napplications:\n  {APP}:\n    charm: server\n    \
             scale: {scale}\n    trust: true\n"
        ),
    )
    .unwrap();
    let charms = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bundle = wharf::bundle::Bundle::load(bundle.to_str().unwrap(), &[], &[]).unwrap();
    let resolved =
        wharf::render::Resolved::new(bundle, &wharf::charm::Source::new(Some(&charms))).unwrap();
    let target = wharf::render::Target {
        namespace: NS.into(),
        ..wharf::render::Target::default()
    };
    let rendered = resolved
        .render(&target, &wharf::render::Generated::new())
        .unwrap();
    rendered.apps.into_iter().flat_map(|a| a.objects).collect()
}

/// The operator's settings exactly as the charm's Deployment passes them, through the CLI.
fn charm_operator_config(objects: &[Value]) -> OperatorConfig {
    let deployment = objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("the charm renders the operator Deployment");
    let args: Vec<String> = serde_json::from_value(
        deployment["spec"]["template"]["spec"]["containers"][0]["args"].clone(),
    )
    .unwrap();
    let cli = Cli::try_parse_from(std::iter::once("wharf-server".to_string()).chain(args))
        .unwrap_or_else(|e| panic!("the charm's operator args do not parse: {e}"));
    let Command::Operator(args) = cli.command else {
        panic!("the charm runs something other than `wharf-server operator`")
    };
    let mut config = args.config();
    config.metrics_addr = "127.0.0.1:0".parse().unwrap();
    config
}

/// The simulator with the CRD, the namespace, the charm's RBAC at `scale` and a model claim;
/// returns it with an admin client and the rendered charm.
async fn simulator(
    never_ready_image: Option<&str>,
    scale: u32,
) -> (Simulator, kube::Client, Vec<Value>) {
    simulator_with(
        Config {
            never_ready_image: never_ready_image.map(|r| regex::Regex::new(r).unwrap()),
            ..quick()
        },
        scale,
    )
    .await
}

fn quick() -> Config {
    Config {
        readiness_delay: Duration::from_millis(100),
        crd_established_delay: Duration::from_millis(20),
        ..Config::default()
    }
}

async fn simulator_with(config: Config, scale: u32) -> (Simulator, kube::Client, Vec<Value>) {
    let sim = Simulator::start(config).await.unwrap();
    let crd: Value = serde_saphyr::from_str(&wharf_server::crd::crd_yaml().unwrap()).unwrap();
    sim.put(crd).unwrap();
    sim.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}))
        .unwrap();
    let objects = render_charm(scale);
    for obj in &objects {
        if ["Role", "RoleBinding"].contains(&obj["kind"].as_str().unwrap()) {
            sim.put(obj.clone()).unwrap();
        }
    }
    sim.put(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "models", "namespace": NS},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}))
        .unwrap();
    let admin = client(&sim, None).await;
    (sim, admin, objects)
}

async fn start(never_ready_image: Option<&str>) -> Env {
    start_with(Config {
        never_ready_image: never_ready_image.map(|r| regex::Regex::new(r).unwrap()),
        ..quick()
    })
    .await
}

async fn start_with(config: Config) -> Env {
    let (sim, admin, _) = simulator_with(config, 1).await;
    let token = sim.token_for_service_account(NS, APP);
    let operator_client = client(&sim, Some(&token)).await;
    let mut config = OperatorConfig::new(NS, IMAGE);
    config.public_url = Some("https://ml.example.com".into());
    config.metrics_addr = "127.0.0.1:0".parse().unwrap();
    let operator = Operator::start(operator_client, config).await.unwrap();
    let metrics = format!("http://{}/metrics", operator.metrics_addr());
    let operator = tokio::spawn(operator.run_until(std::future::pending()));
    Env {
        sim,
        admin,
        metrics,
        operator,
    }
}

fn strip_validations(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("x-kubernetes-validations");
            map.values_mut().for_each(strip_validations);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_validations),
        _ => {}
    }
}

fn isvc(name: &str, uri: &str, min: i32, max: i32) -> InferenceService {
    serde_json::from_value(json!({
        "apiVersion": "wharf.dev/v1alpha1", "kind": "InferenceService",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"model": {"name": "fashion", "storageUri": uri, "version": 2},
                 "minReplicas": min, "maxReplicas": max},
    }))
    .unwrap()
}

async fn condition(
    api: &Api<InferenceService>,
    name: &str,
    type_: &str,
) -> Option<(String, String, String)> {
    let isvc = api.get(name).await.ok()?;
    let c = isvc
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == type_)?;
    Some((c.status, c.reason, c.message))
}

async fn metrics(env: &Env) -> String {
    reqwest::get(&env.metrics)
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn stop(env: Env) {
    env.operator.abort();
    env.sim.shutdown().await;
}

/// A user's InferenceService that leaves `minReplicas`/`maxReplicas` to the CRD's defaults (as
/// `kubectl apply` of a minimal YAML does): the apiserver fills both with 1 before the CEL rule
/// `self.minReplicas <= self.maxReplicas` runs, so it is accepted, and the operator serves it
/// with one replica and no HPA.
#[tokio::test]
async fn an_inference_service_relying_on_the_crd_defaults_is_served_with_one_replica() {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let env = start(None).await;
    let gvk = GroupVersionKind::gvk("wharf.dev", "v1alpha1", "InferenceService");
    let raw: Api<DynamicObject> =
        Api::namespaced_with(env.admin.clone(), NS, &ApiResource::from_gvk(&gvk));
    let minimal: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "wharf.dev/v1alpha1", "kind": "InferenceService",
        "metadata": {"name": "minimal", "namespace": NS},
        "spec": {"model": {"name": "fashion", "storageUri": "pvc://models/repo"}},
    }))
    .unwrap();
    let created = raw.create(&PostParams::default(), &minimal).await.unwrap();
    assert_eq!(
        (
            created.data["spec"]["minReplicas"].clone(),
            created.data["spec"]["maxReplicas"].clone()
        ),
        (json!(1), json!(1)),
        "the apiserver fills the CRD's defaults"
    );
    let deployments: Api<Deployment> = Api::namespaced(env.admin.clone(), NS);
    let d = eventually("the Deployment", || async {
        deployments.get_opt("minimal").await.unwrap()
    })
    .await;
    assert_eq!(d.spec.unwrap().replicas, Some(1));
    let api: Api<InferenceService> = Api::namespaced(env.admin.clone(), NS);
    eventually("Ready", || async {
        condition(&api, "minimal", "Ready")
            .await
            .filter(|c| c.0 == "True")
    })
    .await;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(env.admin.clone(), NS);
    assert!(
        hpas.get_opt("minimal").await.unwrap().is_none(),
        "min == max: no HPA"
    );
    stop(env).await;
}

#[tokio::test]
async fn an_inference_service_becomes_a_deployment_a_routed_service_and_an_hpa_then_ready() {
    let env = start(None).await;
    let api: Api<InferenceService> = Api::namespaced(env.admin.clone(), NS);
    api.create(
        &PostParams::default(),
        &isvc("fashion", "pvc://models/repo", 1, 3),
    )
    .await
    .unwrap();

    let deployments: Api<Deployment> = Api::namespaced(env.admin.clone(), NS);
    let d = eventually("the Deployment", || async {
        deployments.get_opt("fashion").await.unwrap()
    })
    .await;
    let pod = d.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.containers[0].image.as_deref(), Some(IMAGE));
    assert!(
        pod.containers[0]
            .args
            .as_ref()
            .unwrap()
            .contains(&"--version-policy=specific:2".to_string())
    );
    let mount = &pod.containers[0].volume_mounts.as_ref().unwrap()[0];
    assert_eq!(
        (mount.mount_path.as_str(), mount.sub_path.as_deref()),
        ("/models/fashion", Some("repo/fashion"))
    );
    assert_eq!(
        pod.volumes.unwrap()[0]
            .persistent_volume_claim
            .as_ref()
            .unwrap()
            .claim_name,
        "models"
    );

    // The route: the gateway proxies /models/fashion/ to Service fashion on its model-port.
    let services: Api<Service> = Api::namespaced(env.admin.clone(), NS);
    let svc = services.get("fashion").await.unwrap();
    let ports = svc.spec.unwrap().ports.unwrap();
    assert_eq!(
        (ports[0].port, ports[1].port),
        (8080, 8081),
        "http, then grpc"
    );
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(env.admin.clone(), NS);
    let hpa = hpas.get("fashion").await.unwrap().spec.unwrap();
    assert_eq!((hpa.min_replicas, hpa.max_replicas), (Some(1), 3));

    let ready = eventually("Ready=True", || async {
        condition(&api, "fashion", "Ready")
            .await
            .filter(|c| c.0 == "True")
    })
    .await;
    assert_eq!(ready.1, "Ready");
    let status = api.get("fashion").await.unwrap().status.unwrap();
    assert_eq!(
        status.url.as_deref(),
        Some("https://ml.example.com/models/fashion/")
    );
    assert_eq!(
        status.protocols,
        ["v2-rest", "v2-grpc", "tfserving-rest", "tfserving-grpc"]
    );
    assert_eq!(
        status.grpc_address.as_deref(),
        Some(format!("fashion.{NS}.svc.cluster.local:8081").as_str())
    );
    assert_eq!(
        status.model_state,
        Some(wharf_server::crd::ModelState::Loaded)
    );
    for t in ["PredictorReady", "IngressReady"] {
        assert_eq!(
            condition(&api, "fashion", t).await.unwrap().0,
            "True",
            "{t}"
        );
    }

    // An Event recorded the readiness, and nothing failed (a missing permission would count here).
    let events = env.sim.list("events.k8s.io/v1", "Event", Some(NS));
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "Ready" && e["regarding"]["name"] == "fashion"),
        "{events:?}"
    );
    let text = metrics(&env).await;
    assert!(
        text.contains("wharf_server_operator_reconciliations_total{result=\"ok\"}"),
        "{text}"
    );
    assert!(
        !text.contains("wharf_server_operator_reconcile_errors_total{"),
        "{text}"
    );

    // Equal bounds: the HPA goes and the Deployment's replicas are the operator's again.
    merge(
        &api,
        "fashion",
        json!({"spec": {"minReplicas": 2, "maxReplicas": 2}}),
    )
    .await;
    eventually("the HPA removed", || async {
        hpas.get_opt("fashion")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    eventually("replicas 2", || async {
        let d = deployments.get("fashion").await.unwrap();
        (d.spec.unwrap().replicas == Some(2)).then_some(())
    })
    .await;
    stop(env).await;
}

#[tokio::test]
async fn a_pod_that_never_gets_ready_keeps_the_service_not_ready() {
    let env = start(Some("wharf-server")).await;
    let api: Api<InferenceService> = Api::namespaced(env.admin.clone(), NS);
    api.create(&PostParams::default(), &isvc("slow", "pvc://models", 1, 1))
        .await
        .unwrap();
    let (_, reason, message) = eventually("Ready=False ReplicasNotReady", || async {
        condition(&api, "slow", "Ready")
            .await
            .filter(|c| c.1 == "ReplicasNotReady")
    })
    .await;
    assert_eq!(reason, "ReplicasNotReady");
    // The kubelet's reason, read from the pods with the charm's own Role.
    let message = if message.contains("ImagePullBackOff") {
        message
    } else {
        eventually("the kubelet's reason in Ready", || async {
            condition(&api, "slow", "Ready")
                .await
                .map(|c| c.2)
                .filter(|m| m.contains("ImagePullBackOff"))
        })
        .await
    };
    assert_eq!(
        message,
        format!("0/1 replicas ready: ImagePullBackOff: Back-off pulling image \"{IMAGE}\"")
    );
    let (status, reason, _) = condition(&api, "slow", "IngressReady").await.unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "NoReadyEndpoints")
    );
    let state = api.get("slow").await.unwrap().status.unwrap().model_state;
    assert_eq!(state, Some(wharf_server::crd::ModelState::Loading));
    stop(env).await;
}

#[tokio::test]
async fn min_above_max_is_refused_by_the_api_and_by_the_operator() {
    let env = start(None).await;
    let api: Api<InferenceService> = Api::namespaced(env.admin.clone(), NS);
    let err = api
        .create(&PostParams::default(), &isvc("bad", "pvc://models", 3, 1))
        .await
        .unwrap_err();
    assert!(
        format!("{err}").contains("minReplicas must be less than or equal"),
        "{err}"
    );

    // Past the API (a CRD applied without its CEL rules): the operator refuses and creates nothing.
    let mut crd: Value = serde_saphyr::from_str(&wharf_server::crd::crd_yaml().unwrap()).unwrap();
    strip_validations(&mut crd);
    env.sim.put(crd).unwrap();
    let mut raw = serde_json::to_value(isvc("bad", "pvc://models", 3, 1)).unwrap();
    raw["metadata"]["uid"] = json!("uid-bad");
    env.sim.put(raw).unwrap();
    let (status, _, message) = eventually("InvalidSpec", || async {
        condition(&api, "bad", "Ready")
            .await
            .filter(|c| c.1 == "InvalidSpec")
    })
    .await;
    assert_eq!(status, "False");
    assert!(
        message.contains("spec.minReplicas (3) is greater than spec.maxReplicas (1)"),
        "{message}"
    );
    assert!(env.sim.get("apps/v1", "Deployment", NS, "bad").is_none());
    assert!(env.sim.get("v1", "Service", NS, "bad").is_none());
    let events = env.sim.list("events.k8s.io/v1", "Event", Some(NS));
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "InvalidSpec" && e["type"] == "Warning"),
        "{events:?}"
    );
    stop(env).await;
}

#[tokio::test]
async fn an_s3_model_becomes_a_deployment_that_downloads_it_with_the_minio_secret() {
    let env = start(None).await;
    let api: Api<InferenceService> = Api::namespaced(env.admin.clone(), NS);
    api.create(
        &PostParams::default(),
        &isvc("from-s3", "s3://wharf/models", 1, 1),
    )
    .await
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(env.admin.clone(), NS);
    let d = eventually("the Deployment", || async {
        deployments.get_opt("from-s3").await.unwrap()
    })
    .await;
    let pod = d.spec.unwrap().template.spec.unwrap();
    let c = &pod.containers[0];
    let args = c.args.as_ref().unwrap();
    for arg in [
        "--model-repository=s3://wharf/models",
        "--only-model=fashion",
        "--cache-dir=/models",
    ] {
        assert!(args.contains(&arg.to_string()), "{arg} in {args:?}");
    }
    let env_var = |name: &str| {
        c.env
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("{name} is set"))
            .clone()
    };
    for (name, key) in [
        ("AWS_ACCESS_KEY_ID", "access-key"),
        ("AWS_SECRET_ACCESS_KEY", "secret-key"),
    ] {
        let secret = env_var(name).value_from.unwrap().secret_key_ref.unwrap();
        assert_eq!(
            (secret.name.as_str(), secret.key.as_str()),
            ("minio-credentials", key)
        );
    }
    assert_eq!(
        env_var("AWS_ENDPOINT_URL").value.as_deref(),
        Some(format!("http://minio.{NS}.svc:9000").as_str())
    );
    assert!(pod.volumes.unwrap()[0].empty_dir.is_some());
    let ready = eventually("Ready=True", || async {
        condition(&api, "from-s3", "Ready")
            .await
            .filter(|c| c.0 == "True")
    })
    .await;
    assert_eq!(ready.1, "Ready");
    stop(env).await;
}

#[tokio::test]
async fn unusable_storage_is_refused_with_a_condition_that_says_what_to_do() {
    let env = start(None).await;
    let api: Api<InferenceService> = Api::namespaced(env.admin.clone(), NS);
    for (name, uri, reason, says) in [
        (
            "bad-bucket",
            "s3://Not_A_Bucket/models",
            "InvalidStorageUri",
            "not an S3 bucket name",
        ),
        (
            "no-claim",
            "pvc://missing/repo",
            "ClaimNotFound",
            "PersistentVolumeClaim 'missing'",
        ),
    ] {
        api.create(&PostParams::default(), &isvc(name, uri, 1, 1))
            .await
            .unwrap();
        let (_, _, message) = eventually(reason, || async {
            condition(&api, name, "Ready")
                .await
                .filter(|c| c.1 == reason)
        })
        .await;
        assert!(message.contains(says), "{name}: {message}");
        let status = api.get(name).await.unwrap().status.unwrap();
        assert_eq!(
            status.model_state,
            Some(wharf_server::crd::ModelState::FailedToLoad)
        );
        assert!(
            env.sim.get("apps/v1", "Deployment", NS, name).is_none(),
            "{name}"
        );
    }
    let text = metrics(&env).await;
    assert!(
        text.contains("wharf_server_operator_refusals_total{reason=\"InvalidStorageUri\"}"),
        "{text}"
    );
    stop(env).await;
}

#[tokio::test]
async fn two_operators_elect_one_leader_and_a_standby_takes_over_an_expired_lease() {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use k8s_openapi::jiff::{SignedDuration, Timestamp};

    let (sim, admin, objects) = simulator(None, 2).await;
    let replicas = start_replicas(&sim, &objects).await;
    let leases: Api<Lease> = Api::namespaced(admin.clone(), NS);
    let holder = lease_holder(&leases).await;
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), NS);
    let isvcs: Api<InferenceService> = Api::namespaced(admin.clone(), NS);
    isvcs
        .create(
            &PostParams::default(),
            &isvc("first", "pvc://models/repo", 1, 1),
        )
        .await
        .unwrap();
    eventually("the leader's Deployment", || async {
        deployments.get_opt("first").await.unwrap()
    })
    .await;
    // Exactly one replica reconciles, and /metrics answers on both (the standby's probes pass).
    let mut leading = Vec::new();
    for replica in &replicas {
        if replica.leads().await {
            leading.push(replica.name);
        }
    }
    assert_eq!(leading, [holder.as_str()], "one leader, the Lease's holder");

    // The leader dies without a word; once its Lease has expired, the standby takes over.
    let leader = replicas.iter().find(|r| r.name == holder).unwrap();
    leader.task.abort();
    let mut lease = leases.get("server-operator").await.unwrap();
    lease.spec.as_mut().unwrap().renew_time =
        Some(MicroTime(Timestamp::now() - SignedDuration::from_secs(20)));
    leases
        .replace("server-operator", &PostParams::default(), &lease)
        .await
        .unwrap();
    let standby = replicas.iter().find(|r| r.name != holder).unwrap().name;
    eventually("the standby to take the Lease", || async {
        let spec = leases.get("server-operator").await.unwrap().spec?;
        (spec.holder_identity.as_deref() == Some(standby)).then_some(spec.lease_transitions)
    })
    .await;
    isvcs
        .create(
            &PostParams::default(),
            &isvc("second", "pvc://models/repo", 1, 1),
        )
        .await
        .unwrap();
    eventually("the new leader's Deployment", || async {
        deployments.get_opt("second").await.unwrap()
    })
    .await;
    for replica in replicas {
        replica.task.abort();
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn a_leader_that_shuts_down_cleanly_hands_the_lease_over_at_once() {
    use k8s_openapi::api::coordination::v1::Lease;

    let (sim, admin, objects) = simulator(None, 2).await;
    let mut replicas = start_replicas(&sim, &objects).await;
    let leases: Api<Lease> = Api::namespaced(admin.clone(), NS);
    let holder = lease_holder(&leases).await;
    let leader = replicas.iter_mut().find(|r| r.name == holder).unwrap();
    leader.shutdown.take().unwrap().send(()).unwrap();
    (&mut leader.task)
        .await
        .unwrap()
        .expect("a clean shutdown is not an error");
    // Released, not left to expire (15 s): the standby takes it at its next try (5 s).
    let standby = replicas.iter().find(|r| r.name != holder).unwrap();
    eventually("the standby to hold the Lease", || async {
        let spec = leases.get("server-operator").await.unwrap().spec?;
        (spec.holder_identity.as_deref() == Some(standby.name)).then_some(())
    })
    .await;
    assert!(standby.leads().await);
    let isvcs: Api<InferenceService> = Api::namespaced(admin.clone(), NS);
    isvcs
        .create(
            &PostParams::default(),
            &isvc("after", "pvc://models/repo", 1, 1),
        )
        .await
        .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), NS);
    eventually("the new leader's Deployment", || async {
        deployments.get_opt("after").await.unwrap()
    })
    .await;
    for replica in replicas {
        replica.task.abort();
    }
    sim.shutdown().await;
}

/// One operator replica running in this process, as the charm's ServiceAccount.
struct Replica {
    name: &'static str,
    metrics: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Replica {
    /// Whether its /metrics says it reconciles (and so that /metrics answers).
    async fn leads(&self) -> bool {
        let text = reqwest::get(&self.metrics)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines().any(|l| l == "wharf_server_operator_leader 1")
    }
}

/// Two replicas started with the flags the charm renders at scale 2.
async fn start_replicas(sim: &Simulator, objects: &[Value]) -> Vec<Replica> {
    let token = sim.token_for_service_account(NS, APP);
    let mut replicas = Vec::new();
    for name in ["server-0", "server-1"] {
        let mut config = charm_operator_config(objects);
        assert_eq!(config.lease_name.as_deref(), Some("server-operator"));
        config.instance = Some(name.into());
        let operator = Operator::start(client(sim, Some(&token)).await, config)
            .await
            .unwrap();
        let metrics = format!("http://{}/metrics", operator.metrics_addr());
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(operator.run_until(async {
            let _ = stopped.await;
        }));
        replicas.push(Replica {
            name,
            metrics,
            shutdown: Some(shutdown),
            task,
        });
    }
    replicas
}

async fn lease_holder(leases: &Api<k8s_openapi::api::coordination::v1::Lease>) -> String {
    eventually("the Lease", || async {
        leases
            .get_opt("server-operator")
            .await
            .unwrap()?
            .spec?
            .holder_identity
    })
    .await
}

/// A cluster with metrics-server and a quick HPA controller (15 s sync and a 5 min scale-down
/// window for real; shortened so the test takes seconds).
fn autoscaling() -> Config {
    Config {
        metrics_server: true,
        hpa_sync_period: Duration::from_millis(100),
        hpa_downscale_stabilization: Duration::from_secs(2),
        ..quick()
    }
}

fn ok_reconciles(text: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with("wharf_server_operator_reconciliations_total{result=\"ok\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

#[tokio::test]
async fn busy_model_pods_scale_to_the_maximum_through_the_hpa_and_the_operator_keeps_it() {
    let env = start_with(autoscaling()).await;
    let api: Api<InferenceService> = Api::namespaced(env.admin.clone(), NS);
    api.create(
        &PostParams::default(),
        &isvc("fashion", "pvc://models/repo", 1, 3),
    )
    .await
    .unwrap();
    // The operator requests 100m per pod; 300m used is 300 % against its 80 % target.
    env.sim.set_pod_usage(NS, "fashion-*", 300, 64 << 20);
    let deployments: Api<Deployment> = Api::namespaced(env.admin.clone(), NS);
    eventually("three replicas from the HPA", || async {
        let d = deployments.get_opt("fashion").await.unwrap()?;
        (d.spec?.replicas == Some(3)).then_some(())
    })
    .await;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(env.admin.clone(), NS);
    let h = hpas.get("fashion").await.unwrap();
    let limited = h
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "ScalingLimited")
        .unwrap();
    assert_eq!(
        (limited.status.as_str(), limited.reason.as_deref()),
        ("True", Some("TooManyReplicas"))
    );

    // The operator reconciles again (its Deployment changed, and on any spec change of the
    // InferenceService): the count stays the HPA's.
    let before = ok_reconciles(&metrics(&env).await);
    merge(
        &api,
        "fashion",
        json!({"metadata": {"labels": {"touched": "yes"}}}),
    )
    .await;
    eventually("another reconcile", || async {
        (ok_reconciles(&metrics(&env).await) > before).then_some(())
    })
    .await;
    let ready = eventually("three ready pods", || async {
        let d = deployments.get("fashion").await.unwrap();
        (d.status.as_ref()?.ready_replicas == Some(3)).then_some(d)
    })
    .await;
    assert_eq!(ready.spec.as_ref().unwrap().replicas, Some(3));
    let owners: Vec<String> = ready
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|e| {
            e.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some())
        })
        .filter_map(|e| e.manager.clone())
        .collect();
    assert_eq!(owners, ["kube-controller-manager"]);
    stop(env).await;
}

#[tokio::test]
async fn turning_autoscaling_on_keeps_the_replicas_until_the_hpa_decides() {
    let env = start_with(autoscaling()).await;
    let api: Api<InferenceService> = Api::namespaced(env.admin.clone(), NS);
    api.create(
        &PostParams::default(),
        &isvc("fashion", "pvc://models/repo", 2, 2),
    )
    .await
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(env.admin.clone(), NS);
    eventually("two ready replicas", || async {
        let d = deployments.get_opt("fashion").await.unwrap()?;
        (d.status?.ready_replicas == Some(2)).then_some(())
    })
    .await;
    // 80m of 100m: exactly the HPA's 80 % target, so it keeps whatever count it finds.
    env.sim.set_pod_usage(NS, "fashion-*", 80, 64 << 20);
    merge(
        &api,
        "fashion",
        json!({"spec": {"minReplicas": 1, "maxReplicas": 3}}),
    )
    .await;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(env.admin.clone(), NS);
    eventually("the HPA at work", || async {
        let h = hpas.get_opt("fashion").await.unwrap()?;
        (h.status?.desired_replicas == 2).then_some(())
    })
    .await;
    // Dropping replicas from the operator's apply did not reset them to the default of one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let d = deployments.get("fashion").await.unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(2));
    stop(env).await;
}

/// Changes an InferenceService the way a user's `kubectl patch` does: a merge patch carries no
/// resourceVersion, so it cannot lose a race with the operator's status writes (a get-then-replace
/// can, and did, with a 409).
async fn merge(api: &Api<InferenceService>, name: &str, patch: Value) {
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
}
