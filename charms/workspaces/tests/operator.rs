//! The Profile and Notebook operator, as the `wharf-workspaces operator` binary, against the API
//! simulator (Notebook culling against a fake Jupyter status endpoint, served by the test).
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
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use kube_sim::Simulator;
use kube_sim::wait::eventually;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wharf_workspaces::notebook::crd::Notebook;
use wharf_workspaces::profile::crd::Profile;

/// The model namespace the charm is deployed into (the gateway's too).
const MODEL: &str = "wharf";
const IMAGE: &str = "wharf.local/wharf-workspaces:0.1.0";
/// The platform's MinIO Secret, as the minio charm writes it (base64 of "minio" / "s3cret-key").
const ACCESS_KEY: &str = "bWluaW8=";
const SECRET_KEY: &str = "czNjcmV0LWtleQ==";

/// The workspaces charm rendered by wharf, as a one-application bundle.
fn render_charm() -> Vec<Value> {
    render_charms(&["workspaces"])
}

/// Charms of this repository rendered by wharf as one bundle of these applications (each named
/// like its charm, in the model namespace).
fn render_charms(charms: &[&str]) -> Vec<Value> {
    let mut text = "bundle: kubernetes\nname: workspaces-test\napplications:\n".to_owned();
    for charm in charms {
        text.push_str(&format!(
            "  {charm}:\n    charm: {charm}\n    scale: 1\n    trust: true\n"
        ));
    }
    render_bundle(&text)
}

/// With pipelines: the argo charm (and the minio charm its artifact store needs) related to
/// workspaces, as in the full bundle.
fn render_with_pipelines() -> Vec<Value> {
    render_bundle(
        "bundle: kubernetes\nname: workspaces-test\napplications:\n  workspaces:\n    \
         charm: workspaces\n    scale: 1\n    trust: true\n  minio:\n    charm: minio\n    \
         scale: 1\n  argo:\n    charm: argo\n    scale: 1\n    trust: true\nrelations:\n  \
         - [argo:object-storage, minio:object-storage]\n  \
         - [argo:workflow-executor, workspaces:pipelines]\n",
    )
}

fn render_bundle(text: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle.yaml");
    std::fs::write(&bundle, text).unwrap();
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
    authz_port: u16,
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
    http_get_with(port, path, &[]).await
}

/// GET with request headers.
async fn http_get_with(port: u16, path: &str, headers: &[(&str, &str)]) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n{extra}\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((code, body))
}

impl Harness {
    /// The simulator with the model namespace, the MinIO Secret, the charm deployed and its
    /// operator running as the charm's ServiceAccount.
    async fn start() -> Harness {
        Harness::start_with(&[]).await
    }

    /// The same, with these operator flags replacing the charm's (or added).
    async fn start_with(overrides: &[String]) -> Harness {
        Harness::start_rendered(render_charm(), overrides).await
    }

    /// The same from these rendered objects (the operator's Deployment is `workspaces`).
    async fn start_rendered(objects: Vec<Value>, overrides: &[String]) -> Harness {
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
        for object in objects {
            if object["kind"] == "Deployment" && object["metadata"]["name"] == "workspaces" {
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
        let authz_port = free_port();
        let mut overrides = overrides.to_vec();
        overrides.push(format!("--metrics-addr=127.0.0.1:{port}"));
        overrides.push(format!("--authz-addr=127.0.0.1:{authz_port}"));
        let flag = |a: &str| a.split('=').next().unwrap_or_default().to_owned();
        let mut args: Vec<String> = args
            .expect("the charm renders the operator Deployment")
            .into_iter()
            .filter(|a| !overrides.iter().any(|o| flag(o) == flag(a)))
            .collect();
        args.extend(overrides);

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
            authz_port,
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

// --- Notebooks ---------------------------------------------------------------------------------

fn notebooks(h: &Harness, ns: &str) -> Api<Notebook> {
    Api::namespaced(h.admin.clone(), ns)
}

/// A user's namespace (what a Profile makes; the Notebook operator needs only the namespace).
fn put_namespace(h: &Harness, ns: &str) {
    h.sim
        .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
        .unwrap();
}

async fn create_notebook(h: &Harness, ns: &str, name: &str, pod_spec: Value) -> Notebook {
    let nb: Notebook = serde_json::from_value(json!({
        "apiVersion": "kubeflow.org/v1", "kind": "Notebook",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"template": {"spec": pod_spec}},
    }))
    .unwrap();
    eventually("the Notebook created", || async {
        notebooks(h, ns)
            .create(&PostParams::default(), &nb)
            .await
            .ok()
    })
    .await
}

/// Waits until the Notebook's Ready condition has `status` and `reason`.
async fn wait_notebook(h: &Harness, ns: &str, name: &str, status: &str, reason: &str) -> Notebook {
    eventually(
        &format!("Notebook {ns}/{name}: Ready={status} ({reason})"),
        || async {
            let nb = notebooks(h, ns).get(name).await.ok()?;
            let c = nb.status.as_ref()?.conditions.first()?.clone();
            (c.status == status && c.reason == reason).then_some(nb)
        },
    )
    .await
}

fn statefulset(h: &Harness, ns: &str, name: &str) -> Option<Value> {
    h.sim.get("apps/v1", "StatefulSet", ns, name)
}

#[tokio::test]
async fn a_notebook_runs_with_its_workspace_and_deleting_it_keeps_the_workspace() {
    let h = Harness::start().await;
    put_namespace(&h, "alice");
    let created = create_notebook(
        &h,
        "alice",
        "nb",
        json!({"containers": [{"name": "notebook", "image": "scipy",
            "resources": {"requests": {"memory": "1Gi"}}}]}),
    )
    .await;
    let ready = wait_notebook(&h, "alice", "nb", "True", "Running").await;
    let status = ready.status.unwrap();
    assert_eq!(status.ready_replicas, 1);
    assert_eq!(status.url.as_deref(), Some("/notebook/alice/nb/"));

    let sts = statefulset(&h, "alice", "nb").unwrap();
    assert_eq!(sts["spec"]["replicas"], 1);
    assert_eq!(
        sts["metadata"]["ownerReferences"][0]["uid"],
        created.metadata.uid.clone().unwrap().as_str()
    );
    let container = &sts["spec"]["template"]["spec"]["containers"][0];
    assert!(
        container["image"]
            .as_str()
            .unwrap()
            .starts_with("quay.io/jupyter/scipy-notebook:"),
        "{container}"
    );
    assert_eq!(container["resources"]["requests"]["memory"], "1Gi");
    assert!(
        container["env"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "NB_PREFIX", "value": "/notebook/alice/nb"}))
    );
    assert!(
        container["volumeMounts"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "workspace", "mountPath": "/home/jovyan"}))
    );
    let svc = h.sim.get("v1", "Service", "alice", "nb").unwrap();
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8888);
    assert_eq!(svc["spec"]["selector"]["notebook-name"], "nb");
    let pvc = h
        .sim
        .get("v1", "PersistentVolumeClaim", "alice", "nb-workspace")
        .unwrap();
    assert!(pvc["metadata"].get("ownerReferences").is_none(), "{pvc}");
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "5Gi");
    // The pod the simulator made from the StatefulSet mounts it.
    let pod = h.sim.get("v1", "Pod", "alice", "nb-0").unwrap();
    assert_eq!(
        pod["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "workspace")
            .unwrap()["persistentVolumeClaim"]["claimName"],
        "nb-workspace"
    );

    notebooks(&h, "alice")
        .delete("nb", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "the StatefulSet and Service gone with the Notebook",
        || async {
            (statefulset(&h, "alice", "nb").is_none()
                && h.sim.get("v1", "Service", "alice", "nb").is_none())
            .then_some(())
        },
    )
    .await;
    assert!(
        h.sim
            .get("v1", "PersistentVolumeClaim", "alice", "nb-workspace")
            .is_some(),
        "the workspace (the user's files) survives its notebook"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_notebook_that_cannot_run_says_why() {
    let h = Harness::start().await;
    put_namespace(&h, "alice");
    create_notebook(&h, "alice", "nb", json!({"containers": []})).await;
    let refused = wait_notebook(&h, "alice", "nb", "False", "InvalidSpec").await;
    let message = &refused.status.unwrap().conditions[0].message;
    assert!(message.contains("containers is empty"), "{message}");
    assert!(statefulset(&h, "alice", "nb").is_none());
    h.stop().await;
}

/// Jupyter's `/api/status` for notebook alice/nb, with a last activity the test moves.
async fn fake_jupyter(
    last_activity: std::sync::Arc<std::sync::Mutex<String>>,
    asked: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> u16 {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/notebook/alice/nb/api/status",
        get(move || {
            let last = last_activity.lock().unwrap().clone();
            asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                axum::Json(json!({"started": "2026-01-01T00:00:00.000000Z",
                    "last_activity": last, "connections": 0, "kernels": 0}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

fn minutes_ago(minutes: i64) -> String {
    let t =
        k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_mins(minutes);
    t.to_string()
}

#[tokio::test]
async fn an_idle_notebook_is_stopped_and_starts_again_without_the_annotation() {
    let last = std::sync::Arc::new(std::sync::Mutex::new(minutes_ago(0)));
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let jupyter = fake_jupyter(last.clone(), asked.clone()).await;
    let h = Harness::start_with(&[
        "--cull-idle-minutes=60".into(),
        "--cull-check-seconds=1".into(),
        format!("--jupyter-url-base=http://127.0.0.1:{jupyter}"),
    ])
    .await;
    put_namespace(&h, "alice");
    create_notebook(&h, "alice", "nb", json!({"containers": [{"name": "nb"}]})).await;
    wait_notebook(&h, "alice", "nb", "True", "Running").await;

    // Active: read (the annotation records it) and left running.
    let recorded = eventually("the last activity recorded", || async {
        let nb = notebooks(&h, "alice").get("nb").await.ok()?;
        nb.metadata
            .annotations?
            .get("notebooks.kubeflow.org/last-activity")
            .cloned()
    })
    .await;
    assert!(!recorded.is_empty());
    let before = asked.load(std::sync::atomic::Ordering::SeqCst);
    eventually("a second activity check", || async {
        (asked.load(std::sync::atomic::Ordering::SeqCst) > before).then_some(())
    })
    .await;
    let nb = notebooks(&h, "alice").get("nb").await.unwrap();
    assert!(
        !nb.annotations().contains_key("kubeflow-resource-stopped"),
        "an active server is not culled"
    );
    assert_eq!(
        statefulset(&h, "alice", "nb").unwrap()["spec"]["replicas"],
        1
    );

    // Idle for longer than the hour: stopped, scaled to 0, the workspace kept.
    *last.lock().unwrap() = minutes_ago(61);
    let stopped = wait_notebook(&h, "alice", "nb", "False", "Stopped").await;
    assert!(
        stopped
            .annotations()
            .contains_key("kubeflow-resource-stopped")
    );
    assert_eq!(
        statefulset(&h, "alice", "nb").unwrap()["spec"]["replicas"],
        0
    );
    assert_eq!(stopped.status.unwrap().ready_replicas, 0);
    assert!(
        h.sim
            .get("v1", "PersistentVolumeClaim", "alice", "nb-workspace")
            .is_some()
    );
    let (_, metrics) = http_get(h.metrics_port, "/metrics").await.unwrap();
    // At least one (a reconcile racing the annotation's watch event may count a second stop).
    assert!(
        metrics.contains("wharf_workspaces_notebooks_culled_total ")
            && !metrics.contains("wharf_workspaces_notebooks_culled_total 0"),
        "{metrics}"
    );

    // The user starts it again by removing the annotation.
    *last.lock().unwrap() = minutes_ago(0);
    notebooks(&h, "alice")
        .patch(
            "nb",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(json!([
                    {"op": "remove", "path": "/metadata/annotations/kubeflow-resource-stopped"}
                ]))
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    wait_notebook(&h, "alice", "nb", "True", "Running").await;
    assert_eq!(
        statefulset(&h, "alice", "nb").unwrap()["spec"]["replicas"],
        1
    );
    h.stop().await;
}

#[tokio::test]
async fn the_owner_check_lets_only_the_profiles_owner_through() {
    let h = Harness::start().await;
    h.create("alice", owner("alice@example.com")).await;
    let ask = |email: Option<&'static str>, uri: &'static str| {
        let port = h.authz_port;
        async move {
            let mut headers = vec![("X-Original-URI", uri)];
            if let Some(email) = email {
                headers.push(("X-Auth-Request-Email", email));
            }
            http_get_with(port, "/authorize", &headers)
                .await
                .map(|(code, _)| code)
        }
    };
    // The cache fills from the watch: the owner gets through once it has the Profile.
    eventually("the owner let through", || async {
        (ask(Some("alice@example.com"), "/notebook/alice/nb/lab").await == Some(200)).then_some(())
    })
    .await;
    assert_eq!(
        ask(Some("bob@example.com"), "/notebook/alice/nb/lab").await,
        Some(403)
    );
    assert_eq!(
        ask(Some("alice@example.com"), "/notebook/bob/nb/").await,
        Some(403),
        "no profile, no owner"
    );
    assert_eq!(ask(None, "/notebook/alice/nb/").await, Some(401));

    // A new owner takes over at once; the old one is out.
    h.profiles()
        .patch(
            "alice",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"owner": {"name": "carol@example.com"}}})),
        )
        .await
        .unwrap();
    eventually("the new owner let through", || async {
        (ask(Some("carol@example.com"), "/notebook/alice/nb/").await == Some(200)).then_some(())
    })
    .await;
    assert_eq!(
        ask(Some("alice@example.com"), "/notebook/alice/nb/").await,
        Some(403)
    );
    h.stop().await;
}

// --- The example notebook (examples/notebooks/fashion-mnist.ipynb) -----------------------------

/// The Python with nbclient, ipykernel and kubernetes that scripts/test.sh prepares.
fn notebook_python() -> String {
    let python = std::env::var("WHARF_NOTEBOOK_PYTHON").unwrap_or_else(|_| {
        panic!(
            "WHARF_NOTEBOOK_PYTHON is not set: scripts/test.sh makes target/notebook-venv (pip \
             install nbclient ipykernel kubernetes) and sets it"
        )
    });
    assert!(
        Path::new(&python).exists(),
        "WHARF_NOTEBOOK_PYTHON={python} does not exist (run scripts/test.sh, which makes it)"
    );
    python
}

/// A binary of another package of the workspace, built beside this test's operator binary.
fn sibling_binary(name: &str) -> std::path::PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_wharf-workspaces"))
        .parent()
        .unwrap()
        .join(name);
    assert!(
        path.exists(),
        "{} not found: `cargo test --workspace` builds it",
        path.display()
    );
    path
}

fn custom(client: &kube::Client, ns: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("wharf.dev", "v1alpha1", kind),
        plural,
    );
    Api::namespaced_with(client.clone(), ns, &resource)
}

/// Plays the trainer's operator for TrainJob `name` in `ns`: checks what the notebook asked for,
/// trains it with the real wharf-trainer (on a slice of Fashion-MNIST, into `repository`) and
/// writes the status the operator writes (state, per-epoch metrics, final metrics).
async fn play_the_trainer(client: kube::Client, ns: &str, name: &str, repository: &Path) {
    let api = custom(&client, ns, "TrainJob", "trainjobs");
    let job = eventually("the notebook's TrainJob", || async {
        api.get(name).await.ok()
    })
    .await;
    let spec = &job.data["spec"];
    assert_eq!(spec["model"], "mlp", "{spec}");
    assert_eq!(
        spec["dataset"]["uri"], "file:///usr/share/datasets/fashion-mnist",
        "the notebook trains on the dataset inside the trainer's image"
    );
    assert_eq!(
        spec["output"]["uri"],
        format!("s3://wharf/models/{ns}/{name}"),
        "the notebook writes under its namespace's prefix"
    );
    let epochs = spec["epochs"].as_u64().unwrap().to_string();
    let trained = tokio::process::Command::new(sibling_binary("wharf-trainer"))
        .args(["train", "--epochs", &epochs, "--train-limit", "6000"])
        .args([
            "--test-limit",
            "1000",
            "--data",
            "/usr/share/datasets/fashion-mnist",
        ])
        .arg("--out")
        .arg(repository.join(name))
        .output()
        .await
        .unwrap();
    assert!(
        trained.status.success(),
        "wharf-trainer train (needs `apt-get install dataset-fashion-mnist`): {}",
        String::from_utf8_lossy(&trained.stderr)
    );
    // The progress lines, as the operator reads them from the pod's log.
    let lines: Vec<Value> = String::from_utf8_lossy(&trained.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["epoch"].is_u64())
        .collect();
    let last = lines
        .last()
        .expect("the trainer reports its epochs")
        .clone();
    let epochs: Vec<Value> = lines
        .iter()
        .map(|l| json!({"epoch": l["epoch"], "loss": l["loss"], "accuracy": l["test_accuracy"]}))
        .collect();
    let status = json!({"status": {"state": "Succeeded", "epochs": epochs,
        "metrics": {"testAccuracy": last["test_accuracy"], "loss": last["loss"],
            "epochs": last["epoch"]},
        "modelUri": format!("s3://wharf/models/{ns}/{name}/1"),
        "conditions": [{"type": "Succeeded", "status": "True", "reason": "JobSucceeded",
            "message": "trained", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

/// Plays the server's operator for InferenceService `name`: checks the notebook's spec, runs the
/// real wharf-server on `repository` and writes Ready with its URL.
async fn play_the_server(
    client: kube::Client,
    ns: &str,
    name: &str,
    repository: &Path,
) -> tokio::process::Child {
    use tokio::io::AsyncBufReadExt;
    let api = custom(&client, ns, "InferenceService", "inferenceservices");
    let isvc = eventually("the notebook's InferenceService", || async {
        api.get(name).await.ok()
    })
    .await;
    let model = &isvc.data["spec"]["model"];
    assert_eq!(model["name"], name);
    assert_eq!(model["storageUri"], format!("s3://wharf/models/{ns}"));
    let mut server = tokio::process::Command::new(sibling_binary("wharf-server"))
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--grpc-port",
            "0",
        ])
        .arg("--model-repository")
        .arg(repository)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut log = tokio::io::BufReader::new(server.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = log.next_line().await.unwrap() {
            if let Some(rest) = line.split("addr=").nth(1) {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("wharf-server exited without saying where it listens")
    })
    .await
    .expect("wharf-server logs its address within 20 s");
    tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
    let status = json!({"status": {"url": format!("http://{addr}"), "servedVersion": 1,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
            "message": "serving", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    server
}

/// The shipped example notebook, run top to bottom in a real IPython kernel with the `kubernetes`
/// client, as a notebook server of profile `alice` runs it: with the token of the profile's
/// `default-editor` ServiceAccount, which the operator made and bound to `edit`, which reaches
/// TrainJobs and InferenceServices only through the trainer's and server's charms' aggregated
/// ClusterRoles — so every one of the notebook's requests is authorized by the RBAC the charms and
/// the operator ship. The trainer's and server's operators are played by the test (they have
/// their own tests), with the real wharf-trainer and wharf-server doing the work, so the
/// notebook's predictions come from a model it trained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_notebook_trains_serves_and_predicts_as_the_profiles_editor() {
    let python = notebook_python();
    let h = Harness::start().await;
    for object in render_charms(&["trainer", "server"]) {
        if matches!(
            object["kind"].as_str(),
            Some("CustomResourceDefinition" | "ClusterRole")
        ) {
            h.sim.put(object).unwrap();
        }
    }
    h.create("alice", owner("alice@example.com")).await;
    h.wait_condition("alice", "Ready", "True", "Ready").await;

    // What a notebook server of the profile runs as, and, to show the RBAC is in play, the
    // namespace's `default` account, which may not create TrainJobs.
    let dir = tempfile::tempdir().unwrap();
    let editor = dir.path().join("editor.kubeconfig");
    let token = h.sim.token_for_service_account("alice", "default-editor");
    h.sim.write_kubeconfig(&editor, Some(&token)).unwrap();
    let plain = dir.path().join("default.kubeconfig");
    let token = h.sim.token_for_service_account("alice", "default");
    h.sim.write_kubeconfig(&plain, Some(&token)).unwrap();
    let refused = custom(&client(&plain).await, "alice", "TrainJob", "trainjobs")
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"apiVersion": "wharf.dev/v1alpha1", "kind": "TrainJob",
                "metadata": {"name": "nope"}, "spec": {"model": "mlp",
                "dataset": {"uri": "file:///usr/share/datasets/fashion-mnist"},
                "output": {"uri": "s3://wharf/models/alice/nope"}}}),
            )
            .unwrap(),
        )
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(e)) if e.code == 403),
        "the namespace's default account created a TrainJob: {refused:?}"
    );

    let repository = dir.path().join("models");
    let trainer = tokio::spawn({
        let (client, repository) = (h.admin.clone(), repository.clone());
        async move { play_the_trainer(client, "alice", "fashion", &repository).await }
    });
    let server = tokio::spawn({
        let (client, repository) = (h.admin.clone(), repository.clone());
        async move { play_the_server(client, "alice", "fashion", &repository).await }
    });
    let notebook =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/notebooks/fashion-mnist.ipynb");
    let runner = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/run-notebook.py");
    let run = tokio::process::Command::new(&python)
        .arg(&runner)
        .arg(&notebook)
        .arg("--executed")
        .arg(dir.path().join("executed.ipynb"))
        .env("KUBECONFIG", &editor)
        .env("WHARF_NAMESPACE", "alice")
        .env("WHARF_EXAMPLE_EPOCHS", "2")
        .env("WHARF_EXAMPLE_TEST_IMAGES", "50")
        .env("WHARF_EXAMPLE_POLL_S", "0.2")
        .env("WHARF_EXAMPLE_TIMEOUT_S", "120")
        .env("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
        // The runner's kernel needs no network: the notebook's `%pip install` finds the package.
        .env("PIP_NO_INDEX", "1")
        .kill_on_drop(true)
        .output();
    let run = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the notebook runs within 240 s")
        .expect("run the notebook runner");
    let out = String::from_utf8_lossy(&run.stdout).into_owned();
    eprintln!("{out}{}", String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "the notebook failed (above)");
    trainer.await.unwrap();
    let mut server = server.await.unwrap();
    let _ = server.start_kill();

    assert!(out.contains("working in namespace alice"), "{out}");
    assert!(out.contains("TrainJob fashion created"), "{out}");
    assert!(
        out.contains("epoch 2: loss"),
        "the notebook follows the epochs: {out}"
    );
    assert!(out.contains("InferenceService fashion created"), "{out}");
    let accuracy: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("accuracy on 50 test images: "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the notebook reports its accuracy")
        .parse()
        .unwrap();
    // Two epochs on 6,000 images: the MLP is right about 3 in 4; chance is 1 in 10.
    assert!(accuracy >= 0.6, "accuracy {accuracy}: {out}");
    h.stop().await;
}

/// With the argo charm related (the full bundle), a profile namespace gets the `workflow`
/// ServiceAccount bound to Argo's executor ClusterRole; the operator does it with its charm's
/// RBAC (`bind` on that one role), and the simulator then authorizes the workflow pods' token:
/// what argoexec does (create and patch WorkflowTaskResults) is allowed there, and nothing else,
/// nor anywhere else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_pipelines_a_profile_namespace_gets_the_workflow_account_with_the_executors_rights() {
    let h = Harness::start_rendered(render_with_pipelines(), &[]).await;
    h.create("alice", owner("alice@example.com")).await;
    h.wait_condition("alice", "Ready", "True", "Ready").await;
    let binding: RoleBinding = eventually("the executor RoleBinding", || async {
        h.in_ns::<RoleBinding>("alice")
            .get_opt("workflow-executor")
            .await
            .ok()
            .flatten()
    })
    .await;
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(binding.role_ref.name, format!("{MODEL}-argo-executor"));
    let account: k8s_openapi::api::core::v1::ServiceAccount =
        h.in_ns("alice").get("workflow").await.unwrap();
    assert_eq!(
        account.owner_references()[0].kind,
        "Profile",
        "owned by the Profile, deleted with it"
    );

    // As argoexec: the workflow pods' token in alice.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("workflow.kubeconfig");
    let token = h.sim.token_for_service_account("alice", "workflow");
    h.sim.write_kubeconfig(&path, Some(&token)).unwrap();
    let executor = client(&path).await;
    let gvk = kube::core::GroupVersionKind::gvk("argoproj.io", "v1alpha1", "WorkflowTaskResult");
    let resource = kube::discovery::ApiResource::from_gvk(&gvk);
    let results = |ns: &str| {
        Api::<kube::api::DynamicObject>::namespaced_with(executor.clone(), ns, &resource)
    };
    let result = |name: &str| -> kube::api::DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTaskResult",
            "metadata": {"name": name, "labels": {"workflows.argoproj.io/workflow": "wf-1"}},
            "outputs": {"parameters": [{"name": "predictions", "value": "[1, 2]"}], "exitCode": "0"},
        }))
        .unwrap()
    };
    eventually("a WorkflowTaskResult created as the executor", || async {
        results("alice")
            .create(&PostParams::default(), &result("wf-1-123"))
            .await
            .ok()
    })
    .await;
    results("alice")
        .patch(
            "wf-1-123",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"workflows.argoproj.io/report-outputs-completed": "true"}}})),
        )
        .await
        .expect("the executor patches its result");
    let forbidden = |e: kube::Error| matches!(e, kube::Error::Api(ref r) if r.code == 403);
    let err = results(MODEL)
        .create(&PostParams::default(), &result("wf-2-1"))
        .await
        .unwrap_err();
    assert!(
        forbidden(err),
        "alice's workflow account has no rights in {MODEL}"
    );
    let err = results("alice")
        .delete("wf-1-123", &DeleteParams::default())
        .await
        .unwrap_err();
    assert!(forbidden(err), "no delete");
    let err = Api::<Secret>::namespaced(executor.clone(), "alice")
        .get("minio-credentials")
        .await
        .unwrap_err();
    assert!(forbidden(err), "no Secret: the kubelet mounts the S3 one");
    h.stop().await;
}
