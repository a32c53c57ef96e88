//! The Profile operator, as the `wharf-workspaces operator` binary, against the API simulator.
//!
//! The charm is rendered with wharf's own renderer and its objects (CRD, ServiceAccount,
//! ClusterRole, Role, bindings, Deployment) are put into the simulator; the operator runs with the
//! Deployment's own arguments and authenticates as the charm's ServiceAccount, so the simulator
//! checks every request against the charm's RBAC: a permission missing from the templates fails
//! these tests (and one the operator does not need is visible in them).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, LimitRange, Namespace, ResourceQuota, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_sim::Simulator;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wharf_workspaces::profile::crd::Profile;

/// The model namespace the charm is deployed into (the gateway's too).
const MODEL: &str = "wharf";
const IMAGE: &str = "wharf.local/wharf-workspaces:0.1.0";
/// The platform's MinIO Secret, as the minio charm writes it (base64 of "minio" / "s3cret-key").
const ACCESS_KEY: &str = "bWluaW8=";
const SECRET_KEY: &str = "czNjcmV0LWtleQ==";

/// The workspaces charm rendered by wharf, as a one-application bundle.
fn render_charm() -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle.yaml");
    std::fs::write(
        &bundle,
        "bundle: kubernetes\nname: workspaces-test\napplications:\n  workspaces:\n    \
         charm: workspaces\n    scale: 1\n    trust: true\n",
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
    operator: tokio::process::Child,
    metrics_port: u16,
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

/// Polls `f` every 50 ms for up to 20 s.
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Harness {
    /// The simulator with the model namespace, the MinIO Secret, the charm deployed and its
    /// operator running as the charm's ServiceAccount.
    async fn start() -> Harness {
        let sim = Simulator::start(kube_sim::Config {
            crd_established_delay: Duration::from_millis(50),
            ..kube_sim::Config::default()
        })
        .await
        .unwrap();
        sim.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": MODEL}}))
            .unwrap();
        sim.put(
            json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "minio-credentials", "namespace": MODEL},
            "data": {"access-key": ACCESS_KEY, "secret-key": SECRET_KEY}}),
        )
        .unwrap();
        let mut args = None;
        for object in render_charm() {
            if object["kind"] == "Deployment" {
                let container = &object["spec"]["template"]["spec"]["containers"][0];
                assert_eq!(container["image"], IMAGE);
                args =
                    Some(serde_json::from_value::<Vec<String>>(container["args"].clone()).unwrap());
            }
            sim.put(object.clone()).unwrap_or_else(|e| {
                panic!(
                    "putting {} {}: {e}",
                    object["kind"], object["metadata"]["name"]
                )
            });
        }
        let port = free_port();
        let args: Vec<String> = args
            .expect("the charm renders the operator Deployment")
            .into_iter()
            .map(|a| {
                if a.starts_with("--metrics-addr=") {
                    format!("--metrics-addr=127.0.0.1:{port}")
                } else {
                    a
                }
            })
            .collect();

        let dir = tempfile::tempdir().unwrap();
        let admin_path = dir.path().join("admin.kubeconfig");
        sim.write_kubeconfig(&admin_path, None).unwrap();
        let operator_path = dir.path().join("operator.kubeconfig");
        let token = sim.token_for_service_account(MODEL, "workspaces");
        sim.write_kubeconfig(&operator_path, Some(&token)).unwrap();
        let operator = tokio::process::Command::new(env!("CARGO_BIN_EXE_wharf-workspaces"))
            .args(&args)
            .env("KUBECONFIG", &operator_path)
            .env("POD_NAMESPACE", MODEL)
            .env("POD_NAME", "workspaces-0")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        eventually("the operator's /healthz", || http_get(port, "/healthz")).await;
        Harness {
            admin: client(&admin_path).await,
            sim,
            operator,
            metrics_port: port,
            _dir: dir,
        }
    }

    fn profiles(&self) -> Api<Profile> {
        Api::all(self.admin.clone())
    }

    fn in_ns<K>(&self, ns: &str) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.admin.clone(), ns)
    }

    async fn create(&self, name: &str, spec: Value) -> Profile {
        let profile: Profile = serde_json::from_value(json!({
            "apiVersion": "kubeflow.org/v1", "kind": "Profile",
            "metadata": {"name": name}, "spec": spec
        }))
        .unwrap();
        // The CRD is served once the simulator has taken it in.
        eventually("the Profile created", || async {
            self.profiles()
                .create(&PostParams::default(), &profile)
                .await
                .ok()
        })
        .await
    }

    /// Waits until the Profile's condition `type_` has `status` and `reason`.
    async fn wait_condition(&self, name: &str, type_: &str, status: &str, reason: &str) -> Profile {
        eventually(
            &format!("Profile {name}: {type_}={status} ({reason})"),
            || async {
                let p = self.profiles().get(name).await.ok()?;
                let c = p
                    .status
                    .as_ref()?
                    .conditions
                    .iter()
                    .find(|c| c.type_ == type_)?
                    .clone();
                (c.status == status && c.reason == reason).then_some(p)
            },
        )
        .await
    }

    async fn stop(mut self) {
        let _ = self.operator.kill().await;
        self.sim.shutdown().await;
    }
}

fn owner(email: &str) -> Value {
    json!({"owner": {"kind": "User", "name": email}})
}

#[tokio::test]
async fn a_profile_becomes_a_namespace_with_access_quota_limits_credentials_and_policies() {
    let h = Harness::start().await;
    let mut spec = owner("alice@example.com");
    spec["resourceQuotaSpec"] = json!({"hard": {"requests.cpu": "2", "requests.memory": "4Gi"}});
    let created = h.create("alice", spec).await;
    let ready = h.wait_condition("alice", "Ready", "True", "Ready").await;
    let conditions = &ready.status.as_ref().unwrap().conditions;
    assert!(
        conditions
            .iter()
            .all(|c| c.status == "True" && c.observed_generation == Some(1)),
        "{conditions:?}"
    );

    let ns: Namespace = Api::all(h.admin.clone()).get("alice").await.unwrap();
    let owner_ref = &ns.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner_ref.kind.as_str(), owner_ref.uid.as_str()),
        ("Profile", created.metadata.uid.as_deref().unwrap())
    );
    assert_eq!(owner_ref.controller, Some(true));
    let labels = ns.metadata.labels.unwrap();
    assert_eq!(labels["wharf.dev/profile"], "alice");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "wharf-workspaces");
    assert_eq!(
        ns.metadata.annotations.unwrap()["owner"],
        "alice@example.com"
    );

    let binding: RoleBinding = h.in_ns("alice").get("namespace-admin").await.unwrap();
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(binding.role_ref.name, "edit");
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(
        (subject.kind.as_str(), subject.name.as_str()),
        ("User", "alice@example.com"),
        "the identity the gateway passes (X-Auth-Request-Email)"
    );

    let quota: ResourceQuota = h.in_ns("alice").get("kf-resource-quota").await.unwrap();
    let hard = quota.spec.unwrap().hard.unwrap();
    assert_eq!(
        (
            hard["requests.cpu"].0.as_str(),
            hard["requests.memory"].0.as_str()
        ),
        ("2", "4Gi")
    );
    let limits: LimitRange = h
        .in_ns("alice")
        .get("wharf-container-defaults")
        .await
        .unwrap();
    let item = &limits.spec.unwrap().limits[0];
    assert_eq!(item.type_, "Container");
    assert_eq!(item.default_request.as_ref().unwrap()["memory"].0, "256Mi");
    assert_eq!(item.default.as_ref().unwrap()["cpu"].0, "1");

    let copy: Secret = h.in_ns("alice").get("minio-credentials").await.unwrap();
    let data = serde_json::to_value(copy.data.unwrap()).unwrap();
    assert_eq!(
        data,
        json!({"access-key": ACCESS_KEY, "secret-key": SECRET_KEY})
    );

    let policies: Api<NetworkPolicy> = h.in_ns("alice");
    let mut names: Vec<String> = policies
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["wharf-allow-from-gateway", "wharf-allow-same-namespace"]
    );
    let gateway = policies.get("wharf-allow-from-gateway").await.unwrap();
    let from = serde_json::to_value(&gateway.spec.unwrap().ingress.unwrap()[0]).unwrap();
    assert_eq!(
        from["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        MODEL
    );

    // Told through an Event, and counted.
    eventually("the Ready event", || async {
        h.sim
            .list("events.k8s.io/v1", "Event", None)
            .iter()
            .any(|e| e["regarding"]["name"] == "alice" && e["reason"] == "Ready")
            .then_some(())
    })
    .await;
    let (code, body) = http_get(h.metrics_port, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(
        body.contains("wharf_workspaces_profile_reconciliations_total{result=\"ok\"}"),
        "{body}"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_new_owner_gets_the_binding_and_a_dropped_quota_is_removed() {
    let h = Harness::start().await;
    let mut spec = owner("alice@example.com");
    spec["resourceQuotaSpec"] = json!({"hard": {"cpu": "2"}});
    h.create("team", spec).await;
    h.wait_condition("team", "Ready", "True", "Ready").await;
    assert!(
        h.in_ns::<ResourceQuota>("team")
            .get_opt("kf-resource-quota")
            .await
            .unwrap()
            .is_some()
    );

    h.profiles()
        .patch(
            "team",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"owner": {"name": "bob@example.com"},
                "resourceQuotaSpec": null}})),
        )
        .await
        .unwrap();
    eventually("the binding names the new owner", || async {
        let b: RoleBinding = h.in_ns("team").get("namespace-admin").await.ok()?;
        (b.subjects?[0].name == "bob@example.com").then_some(())
    })
    .await;
    eventually("the quota removed", || async {
        h.in_ns::<ResourceQuota>("team")
            .get_opt("kf-resource-quota")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let ns: Namespace = Api::all(h.admin.clone()).get("team").await.unwrap();
    assert_eq!(ns.metadata.annotations.unwrap()["owner"], "bob@example.com");
    h.stop().await;
}

#[tokio::test]
async fn deleting_a_profile_removes_its_namespace_and_nothing_else() {
    let h = Harness::start().await;
    h.create("alice", owner("alice@example.com")).await;
    h.create("bob", owner("bob@example.com")).await;
    // A namespace no profile has anything to do with, with something in it.
    h.sim
        .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-x"}}))
        .unwrap();
    h.sim
        .put(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "team-x"}, "data": {"k": "v"}}))
        .unwrap();
    h.wait_condition("alice", "Ready", "True", "Ready").await;
    h.wait_condition("bob", "Ready", "True", "Ready").await;

    h.profiles()
        .delete("alice", &DeleteParams::default())
        .await
        .unwrap();
    eventually("namespace alice and its contents gone", || async {
        h.sim
            .get("v1", "Namespace", "", "alice")
            .is_none()
            .then_some(())
    })
    .await;
    for kind in [
        "RoleBinding",
        "ResourceQuota",
        "LimitRange",
        "Secret",
        "NetworkPolicy",
    ] {
        let api_version = match kind {
            "RoleBinding" => "rbac.authorization.k8s.io/v1",
            "NetworkPolicy" => "networking.k8s.io/v1",
            _ => "v1",
        };
        assert!(
            h.sim.list(api_version, kind, Some("alice")).is_empty(),
            "{kind} left in alice"
        );
    }

    // bob's workspace, the unrelated namespace and the platform's Secret are untouched.
    let bob = h.wait_condition("bob", "Ready", "True", "Ready").await;
    assert!(bob.metadata.deletion_timestamp.is_none());
    let bob_ns: Namespace = Api::all(h.admin.clone()).get("bob").await.unwrap();
    assert!(bob_ns.metadata.deletion_timestamp.is_none());
    assert!(
        h.in_ns::<Secret>("bob")
            .get_opt("minio-credentials")
            .await
            .unwrap()
            .is_some()
    );
    let settings: ConfigMap = h.in_ns("team-x").get("settings").await.unwrap();
    assert_eq!(settings.data.unwrap()["k"], "v");
    assert!(
        h.in_ns::<Secret>(MODEL)
            .get_opt("minio-credentials")
            .await
            .unwrap()
            .is_some()
    );
    h.stop().await;
}

#[tokio::test]
async fn a_namespace_that_is_not_the_profiles_is_refused_never_adopted_nor_deleted() {
    let h = Harness::start().await;
    // Someone's namespace, made before any profile of that name.
    h.sim
        .put(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "carol", "labels": {"team": "data"}}}))
        .unwrap();
    h.sim
        .put(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "work", "namespace": "carol"}, "data": {"k": "v"}}))
        .unwrap();
    h.create("carol", owner("mallory@example.com")).await;
    let refused = h
        .wait_condition("carol", "Ready", "False", "NamespaceConflict")
        .await;
    let message = &refused.status.unwrap().conditions[0].message;
    assert!(
        message.contains("already exists and does not belong to this profile"),
        "{message}"
    );

    let ns: Namespace = Api::all(h.admin.clone()).get("carol").await.unwrap();
    assert!(ns.metadata.owner_references.is_none(), "never adopted");
    assert_eq!(
        ns.metadata.labels.unwrap().get("wharf.dev/profile"),
        None,
        "never relabelled"
    );
    assert!(
        h.in_ns::<RoleBinding>("carol")
            .get_opt("namespace-admin")
            .await
            .unwrap()
            .is_none(),
        "the profile's owner got no rights in someone else's namespace"
    );
    assert!(
        h.in_ns::<Secret>("carol")
            .get_opt("minio-credentials")
            .await
            .unwrap()
            .is_none()
    );

    // Deleting the refused profile leaves the namespace and its contents alone.
    h.profiles()
        .delete("carol", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the profile gone", || async {
        h.profiles()
            .get_opt("carol")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    // Longer than the simulator's namespace termination delay (600 ms).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ns: Namespace = Api::all(h.admin.clone()).get("carol").await.unwrap();
    assert!(ns.metadata.deletion_timestamp.is_none());
    let work: ConfigMap = h.in_ns("carol").get("work").await.unwrap();
    assert_eq!(work.data.unwrap()["k"], "v");
    h.stop().await;
}
