//! kube-sim: a Kubernetes API server simulator over real HTTP, for wharf's and the operators'
//! integration tests (see README.md beside this crate for what it emulates and what it does not).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let sim = kube_sim::Simulator::start(kube_sim::Config::default()).await?;
//! sim.write_kubeconfig(std::path::Path::new("/tmp/kubeconfig"), None)?; // admin token
//! // ... run a kube::Client against it ...
//! assert!(sim.get("v1", "Namespace", "", "default").is_some());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

pub mod catalog;
mod cel_compile;
mod controllers;
mod crd_cleanup;
pub mod defaults;
pub mod discovery;
pub mod error;
pub mod exec;
pub mod generation;
mod hpa;
mod logs;
pub mod managed;
pub mod metrics;
mod node;
pub mod openapi;
pub mod ops;
pub mod proxy;
pub mod rbac;
pub mod scale;
pub mod schema;
pub mod selector;
pub(crate) mod server;
pub mod shape;
pub mod storage;
pub mod store;
pub mod validate;
mod volumes;
pub mod wait;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch as wch};
use tokio::task::JoinHandle;

use crate::ops::{ListQuery, WriteCtx};
use crate::store::{JobRule, State};

/// How simulated Job pods end.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Exit 0; `message` becomes the container's `terminated.message`.
    Succeed { message: String },
    /// Exit 1; the Job gets condition Failed with `reason` (e.g. `BackoffLimitExceeded`).
    Fail { message: String, reason: String },
    /// Keeps running (a long training run): a later `set_job_outcome` for the Job ends it.
    Hold,
}

/// Simulator settings; `Config::default()` suits most tests.
#[derive(Debug, Clone)]
pub struct Config {
    /// Port to bind on 127.0.0.1 (0 = any free port).
    pub port: u16,
    /// How long workloads, Job pods and PVCs take to become ready / finish / bind.
    pub readiness_delay: Duration,
    /// Workloads whose pod template uses a matching image never become ready (pods stay in ImagePullBackOff).
    pub never_ready_image: Option<regex::Regex>,
    /// The node's image store, as the fake `microk8s ctr images import` keeps it (one
    /// `NAME DIGEST` line per image). When set, an image under a registry nobody serves
    /// (`wharf.local/`, see `LOCAL_REGISTRY`) runs only once it is listed there, as on a real node
    /// where the kubelet can pull it from nowhere; otherwise its pods stay in ImagePullBackOff.
    /// `None`: every image is present (the kind default most tests want).
    pub node_images: Option<std::path::PathBuf>,
    /// LoadBalancer address pool, `FIRST-LAST`.
    pub lb_pool: String,
    /// How long a new CRD takes to get the Established condition.
    pub crd_established_delay: Duration,
    /// Reported by `/version` (`1.33.5`).
    pub kube_version: String,
    /// Check service-account tokens against RBAC (the admin token is always cluster-admin).
    pub rbac: bool,
    /// The bearer token of the cluster admin.
    pub admin_token: String,
    /// A request without credentials is the cluster admin. kubectl (client-go) sends no bearer
    /// token over plain HTTP, so this is how kubectl reaches the simulator, e.g. as a benchmark peer.
    pub anonymous_admin: bool,
    /// Aggregated API group versions (`metrics.k8s.io/v1beta1`) registered by an APIService whose
    /// backend does not answer: listed in `/apis`, but their discovery document and resources
    /// answer 503 `service unavailable`, as the kube-aggregator does while metrics-server starts.
    pub unavailable_apis: Vec<String>,
    /// How long the namespace controller takes to start deleting a terminating namespace's
    /// contents; the namespace goes once they are gone (a real one takes seconds).
    pub namespace_termination_delay: Duration,
    /// metrics-server is installed: `metrics.k8s.io/v1beta1` serves PodMetrics/NodeMetrics from
    /// `Simulator::set_pod_usage`. Off (the default), the group is absent, as on a cluster
    /// without the add-on (list it in `unavailable_apis` for one whose metrics-server is down).
    pub metrics_server: bool,
    /// How often the HPA controller syncs (the real `--horizontal-pod-autoscaler-sync-period`
    /// is 15 s; shorter here so tests are quick).
    pub hpa_sync_period: Duration,
    /// How long a scale-down waits for lower recommendations to hold (the real default
    /// `behavior.scaleDown.stabilizationWindowSeconds` is 300 s; an HPA's own `behavior` wins).
    pub hpa_downscale_stabilization: Duration,
    /// The `wharf` binary that `pods/exec` runs in containers on wharf's own image
    /// (`wharf.local/wharf:*`), as a local process; `None`: exec is refused everywhere (exec.rs).
    pub wharf_binary: Option<std::path::PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 0,
            readiness_delay: Duration::from_millis(200),
            never_ready_image: None,
            node_images: None,
            lb_pool: "10.64.140.43-10.64.140.49".into(),
            crd_established_delay: Duration::from_millis(100),
            kube_version: "1.33.5".into(),
            rbac: true,
            admin_token: "admin-token".into(),
            anonymous_admin: false,
            unavailable_apis: Vec::new(),
            namespace_termination_delay: Duration::from_millis(600),
            metrics_server: false,
            hpa_sync_period: Duration::from_millis(500),
            hpa_downscale_stabilization: Duration::from_secs(300),
            wharf_binary: None,
        }
    }
}

/// State shared by the HTTP handlers, watches and controllers.
pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub config: Config,
    /// What `/version` reports: `config.kube_version` until a test upgrades the "cluster".
    pub kube_version: Mutex<String>,
    pub writes: AtomicU64,
    pub shutdown: wch::Receiver<bool>,
    pub addr: SocketAddr,
    /// Pod usage the simulated metrics-server reports.
    pub usage: Mutex<metrics::Usage>,
    /// Where bound claims keep their files: one directory per volume (volumes.rs), removed with
    /// the simulator.
    pub volumes: tempfile::TempDir,
    /// The local HTTP servers that stand for Services' endpoints (`services/proxy`, proxy.rs),
    /// by namespace and Service name.
    pub service_backends: Mutex<std::collections::HashMap<(String, String), SocketAddr>>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in one handler must not take every later test request down with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running simulator. Dropping it without `shutdown` leaves the server task to the runtime.
pub struct Simulator {
    shared: Arc<Shared>,
    shutdown_tx: wch::Sender<bool>,
    server: JoinHandle<()>,
    controllers: JoinHandle<()>,
    autoscaler: JoinHandle<()>,
}

fn seed(st: &mut State) {
    let ctx = WriteCtx::internal("kube-sim");
    let ns = st.catalog.find("", "v1", "namespaces").expect("built-in");
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        st.op_create(&ns, "", json!({"metadata": {"name": name}}), &ctx, false)
            .expect("seed namespace");
    }
    let sc = st
        .catalog
        .find("storage.k8s.io", "v1", "storageclasses")
        .expect("built-in");
    let class = json!({"metadata": {"name": "microk8s-hostpath", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "microk8s.io/hostpath", "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"});
    st.op_create(&sc, "", class, &ctx, false)
        .expect("seed storage class");
    let roles = st
        .catalog
        .find("rbac.authorization.k8s.io", "v1", "clusterroles")
        .expect("built-in");
    for role in rbac::bootstrap_roles() {
        st.op_create(&roles, "", role, &ctx, false)
            .expect("seed the default ClusterRoles");
    }
    node::seed(st);
}

impl Simulator {
    /// Bind 127.0.0.1 (plain HTTP), seed the default namespaces, a default StorageClass and the
    /// default ClusterRoles (`admin`, `edit`, `view`, aggregated), start serving.
    pub async fn start(config: Config) -> anyhow::Result<Simulator> {
        let pool = defaults::parse_pool(&config.lb_pool).map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port))
            .await
            .with_context(|| {
                format!(
                    "binding 127.0.0.1:{} for kube-sim (choose another port, or 0 for any)",
                    config.port
                )
            })?;
        let addr = listener.local_addr()?;
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let mut state = State::new(ctl_tx, defaults::Allocator::new(pool));
        seed(&mut state);
        if config.metrics_server {
            // Not a CRD: the kinds an APIService adds; the name only keys them in the catalog.
            state
                .catalog
                .set_crd_types("v1beta1.metrics.k8s.io", metrics::types());
        }
        let (shutdown_tx, shutdown_rx) = wch::channel(false);
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            kube_version: Mutex::new(config.kube_version.clone()),
            config,
            writes: AtomicU64::new(0),
            shutdown: shutdown_rx.clone(),
            addr,
            usage: Mutex::default(),
            volumes: tempfile::Builder::new()
                .prefix("kube-sim-volumes-")
                .tempdir()
                .context("creating kube-sim's directory for claims' files")?,
            service_backends: Mutex::default(),
        });
        let controllers = tokio::spawn(controllers::run(shared.clone(), ctl_rx));
        let autoscaler = tokio::spawn(hpa::run(shared.clone()));
        tokio::spawn(node::run(shared.clone()));
        let app = server::router(shared.clone());
        let mut stop = shutdown_rx;
        let server = tokio::spawn(async move {
            let graceful = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(graceful)
                .await
            {
                tracing::error!("kube-sim server stopped: {e}");
            }
        });
        Ok(Simulator {
            shared,
            shutdown_tx,
            server,
            controllers,
            autoscaler,
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// Write a kubeconfig (context `sim`, namespace `default`) using `token`, or the admin token.
    pub fn write_kubeconfig(&self, path: &Path, token: Option<&str>) -> anyhow::Result<()> {
        let token = token.unwrap_or(&self.shared.config.admin_token);
        let cfg = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "sim", "cluster": {"server": self.url()}}],
            "users": [{"name": "sim", "user": {"token": token}}],
            "contexts": [{"name": "sim", "context": {"cluster": "sim", "user": "sim", "namespace": "default"}}],
            "current-context": "sim",
        });
        let yaml = serde_saphyr::to_string(&cfg).context("serialising the kubeconfig")?;
        std::fs::write(path, yaml).with_context(|| format!("writing kubeconfig {}", path.display()))
    }

    /// A bearer token that authenticates as `system:serviceaccount:NS:NAME` (the same on every call).
    pub fn token_for_service_account(&self, namespace: &str, name: &str) -> String {
        let user = format!("system:serviceaccount:{namespace}:{name}");
        let mut st = self.shared.lock();
        if let Some((t, _)) = st.tokens.iter().find(|(_, u)| **u == user) {
            return t.clone();
        }
        let token = format!("sa.{namespace}.{name}.{}", ops::rand_suffix(16));
        st.tokens.insert(token.clone(), user);
        token
    }

    /// Report another version on `/version` from now on (`1.34.1`), as a cluster does after an
    /// upgrade.
    pub fn set_kube_version(&self, version: &str) {
        *self
            .shared
            .kube_version
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = version.to_string();
    }

    /// Write requests (POST/PUT/PATCH/DELETE, not `dryRun=All`) received since start or the last
    /// `reset_writes`.
    pub fn writes(&self) -> u64 {
        self.shared.writes.load(Ordering::SeqCst)
    }

    pub fn reset_writes(&self) {
        self.shared.writes.store(0, Ordering::SeqCst);
    }

    /// The stored object (`api_version` like `apps/v1`, `namespace` "" for cluster-scoped kinds).
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let st = self.shared.lock();
        let rt = st.catalog.find_kind(api_version, kind)?;
        st.op_get(&rt, namespace, name).ok()
    }

    /// All stored objects of a kind, in one namespace or (None) everywhere.
    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let st = self.shared.lock();
        let Some(rt) = st.catalog.find_kind(api_version, kind) else {
            return vec![];
        };
        st.op_list(&rt, namespace, &ListQuery::default())
            .ok()
            .and_then(|l| l["items"].as_array().cloned())
            .unwrap_or_default()
    }

    /// Create (or replace the whole of) an object without HTTP, as the admin; for test setup.
    pub fn put(&self, obj: Value) -> anyhow::Result<Value> {
        let mut st = self.shared.lock();
        let api_version = obj["apiVersion"]
            .as_str()
            .context("the object has no apiVersion")?;
        let kind = obj["kind"].as_str().context("the object has no kind")?;
        let rt = st
            .catalog
            .find_kind(api_version, kind)
            .with_context(|| format!("kube-sim does not serve {api_version} {kind}"))?;
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let ctx = WriteCtx::internal("kube-sim-test");
        let res = if st.op_get(&rt, &ns, &name).is_ok() {
            let mut o = obj.clone();
            o["metadata"]
                .as_object_mut()
                .map(|m| m.remove("resourceVersion"));
            st.op_update(
                &rt,
                &ns,
                &name,
                managed::Scope::Main {
                    status_separate: rt.status,
                },
                o,
                &ctx,
            )
        } else {
            st.op_create(&rt, &ns, obj, &ctx, false)
        };
        res.map_err(|e| anyhow::anyhow!("{} ({})", e.message, e.reason))
    }

    /// Delete an object without HTTP, as the admin (finalizers and namespace termination apply);
    /// for test setup. False when there was nothing to delete.
    pub fn delete(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> bool {
        let mut st = self.shared.lock();
        let Some(rt) = st.catalog.find_kind(api_version, kind) else {
            return false;
        };
        st.op_delete(
            &rt,
            namespace,
            name,
            ops::Propagation::Background,
            &Value::Null,
            &WriteCtx::internal("kube-sim-test"),
        )
        .is_ok()
    }

    /// How Job pods whose Job name matches `job_name_or_pattern` (exact, or a glob with `*`) in
    /// `namespace` end. Later rules win. Default: succeed with an empty message.
    pub fn set_job_outcome(&self, namespace: &str, job_name_or_pattern: &str, outcome: Outcome) {
        let re = format!(
            "^{}$",
            regex::escape(job_name_or_pattern).replace("\\*", ".*")
        );
        let pattern = regex::Regex::new(&re).expect("an escaped glob is a valid regex");
        self.shared.lock().job_rules.push(JobRule {
            namespace: namespace.to_string(),
            pattern,
            outcome,
        });
    }

    /// Appends `text` to what container `container` of the pods in `namespace` whose name matches
    /// `pod` (exact, or a glob with `*`) printed, as `GET .../pods/NAME/log` serves it. Returns how
    /// many pods matched (a pod that does not exist yet gets nothing).
    pub fn append_pod_log(&self, namespace: &str, pod: &str, container: &str, text: &str) -> usize {
        let re = format!("^{}$", regex::escape(pod).replace("\\*", ".*"));
        let pattern = regex::Regex::new(&re).expect("an escaped glob is a valid regex");
        logs::append(
            &mut self.shared.lock(),
            namespace,
            &pattern,
            container,
            text,
        )
    }

    /// What each container of the running pods in `namespace` whose name matches `pod` (exact,
    /// or a glob with `*`) uses, as the simulated metrics-server reports it (`Config::metrics_server`).
    /// Later calls win. A pod no call covers has no metrics yet.
    pub fn set_pod_usage(&self, namespace: &str, pod: &str, cpu_millis: u64, memory_bytes: u64) {
        self.shared
            .usage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set(namespace, pod, cpu_millis, memory_bytes);
    }

    /// The directory holding the files of claim `name` in `namespace` (created when first asked
    /// for), which `pods/exec` maps the claim's mount paths to; `None` while the claim is not
    /// bound. A new claim (even of the same name) is a new, empty volume.
    pub fn claim_dir(&self, namespace: &str, name: &str) -> Option<std::path::PathBuf> {
        volumes::claim_dir(&self.shared, namespace, name)
    }

    /// Let `services/proxy` reach Service `name` in `namespace` at `addr`, a local HTTP server
    /// standing for its endpoints (there are no pods to proxy to). Without it the proxy answers
    /// 503 `no endpoints available`, as for a Service with no ready pod.
    pub fn set_service_backend(&self, namespace: &str, name: &str, addr: SocketAddr) {
        self.shared
            .service_backends
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((namespace.to_owned(), name.to_owned()), addr);
    }

    /// Stop serving: watches end, the server and controllers stop.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.server).await;
        self.controllers.abort();
        self.autoscaler.abort();
    }
}
