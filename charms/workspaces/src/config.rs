//! What the operator needs to know that is not in a Profile: where it runs (the model namespace:
//! its Lease, the platform's MinIO Secret, the gateway), which ClusterRole owners get (and
//! workflow pods, with pipelines), the
//! LimitRange defaults of every profile namespace, how Notebooks are run and culled, and its
//! metrics and authorization addresses.

use std::net::SocketAddr;
use std::time::Duration;

/// The defaults every container of a profile namespace gets when it says nothing (a LimitRange):
/// with a ResourceQuota on requests, a pod without requests would be refused otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerDefaults {
    pub cpu_request: String,
    pub memory_request: String,
    pub cpu_limit: String,
    pub memory_limit: String,
}

impl Default for ContainerDefaults {
    /// Small enough that a notebook and a TrainJob fit next to the platform on one 8 GB node.
    fn default() -> Self {
        ContainerDefaults {
            cpu_request: "100m".into(),
            memory_request: "256Mi".into(),
            cpu_limit: "1".into(),
            memory_limit: "1Gi".into(),
        }
    }
}

/// The pinned Jupyter images (jupyter/docker-stacks, amd64 + arm64), by choice name: the first is
/// the default. Pinned by tag; digests need a registry lookup (`wharf images` resolves them where
/// it can reach the registry).
pub const DEFAULT_NOTEBOOK_IMAGES: &str = "minimal=quay.io/jupyter/minimal-notebook:2025-11-10,\
     scipy=quay.io/jupyter/scipy-notebook:2025-11-10";

/// How Notebooks are run and culled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotebookConfig {
    /// Image choices (name, reference); a Notebook's empty image is the first one's.
    pub images: Vec<(String, String)>,
    /// Size of a new workspace claim.
    pub workspace_size: String,
    /// Storage class of new workspace claims; None: the cluster's default.
    pub storage_class: Option<String>,
    /// Stop a server whose Jupyter reports no activity for this long; None: never.
    pub cull_idle: Option<Duration>,
    /// How often a running server's activity is read.
    pub cull_check_interval: Duration,
    /// Where Jupyter is reached, instead of `http://<name>.<namespace>.svc.cluster.local`
    /// (tests, and an operator run outside the cluster); `/notebook/<ns>/<name>/api/status` is
    /// appended.
    pub jupyter_url_base: Option<String>,
}

impl Default for NotebookConfig {
    fn default() -> Self {
        NotebookConfig {
            images: parse_images(DEFAULT_NOTEBOOK_IMAGES).expect("valid default images"),
            workspace_size: "5Gi".into(),
            storage_class: None,
            cull_idle: Some(Duration::from_secs(1440 * 60)),
            cull_check_interval: Duration::from_secs(60),
            jupyter_url_base: None,
        }
    }
}

/// `name=reference,name=reference`: the image choices, in order.
pub fn parse_images(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut images = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((name, reference)) = item.split_once('=') else {
            return Err(format!(
                "notebook image `{item}` has no name: write NAME=IMAGE, e.g. \
                 minimal=quay.io/jupyter/minimal-notebook:2025-11-10"
            ));
        };
        let (name, reference) = (name.trim(), reference.trim());
        if name.is_empty() || reference.is_empty() {
            return Err(format!(
                "notebook image `{item}`: both NAME and IMAGE are needed"
            ));
        }
        images.push((name.to_owned(), reference.to_owned()));
    }
    if images.is_empty() {
        return Err("no notebook image is configured: give at least one NAME=IMAGE".into());
    }
    Ok(images)
}

/// Where workflow pods (Argo's, the argo charm's) get their rights in a profile namespace: the
/// ServiceAccount they run as, bound to the executor's ClusterRole there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowExecutor {
    pub cluster_role: String,
    pub service_account: String,
}

/// The operator's settings (`wharf-workspaces operator` flags, set by the charm).
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// The model namespace: the operator's own, where its Lease and the MinIO Secret are.
    pub namespace: String,
    /// Where the gateway runs: its pods may reach every profile namespace (NetworkPolicy).
    pub gateway_namespace: String,
    /// The ClusterRole a profile's owner gets in its namespace (Kubeflow: `kubeflow-edit`; plain
    /// Kubernetes: `edit`).
    pub owner_role: String,
    /// The Secret in `namespace` copied into every profile namespace under the same name (the
    /// minio charm's `minio-credentials`, which TrainJobs and InferenceServices read). None: no
    /// copy.
    pub s3_secret: Option<String>,
    /// Pipelines (the argo charm related): the ServiceAccount and executor binding each profile
    /// namespace gets. None: none.
    pub workflow_executor: Option<WorkflowExecutor>,
    pub container_defaults: ContainerDefaults,
    /// Where `/metrics` and `/healthz` are served (port 0 picks a free one).
    pub metrics_addr: SocketAddr,
    /// The operator's name: field manager, Events' reporting controller, `managed-by` label.
    pub reporter: String,
    /// Pod name, in Events and as the Lease holder.
    pub instance: Option<String>,
    /// Leader election: the Lease in `namespace` a replica must hold to reconcile.
    pub lease_name: Option<String>,
    /// How often a Profile is looked at again without a change (the copied Secret and the
    /// namespace's policies are not watched: drift is repaired this often).
    pub resync: Duration,
    /// How soon a Profile that waits for something (a MinIO Secret, a terminating namespace)
    /// is looked at again.
    pub retry_after: Duration,
    pub notebook: NotebookConfig,
    /// Where the gateway asks whether a user owns a notebook's namespace.
    pub authz_addr: SocketAddr,
}

impl OperatorConfig {
    /// Defaults for everything but the namespace (tests start from this).
    pub fn new(namespace: impl Into<String>) -> OperatorConfig {
        let namespace = namespace.into();
        OperatorConfig {
            gateway_namespace: namespace.clone(),
            namespace,
            owner_role: "edit".into(),
            s3_secret: Some("minio-credentials".into()),
            workflow_executor: None,
            container_defaults: ContainerDefaults::default(),
            metrics_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            reporter: "wharf-workspaces".into(),
            instance: None,
            lease_name: None,
            resync: Duration::from_secs(300),
            retry_after: Duration::from_secs(10),
            notebook: NotebookConfig::default(),
            authz_addr: SocketAddr::from(([0, 0, 0, 0], 8081)),
        }
    }

    /// Who this replica is in the Lease: its pod name, or a name unique to the process.
    pub fn identity(&self) -> String {
        self.instance
            .clone()
            .unwrap_or_else(|| format!("{}-{}", self.reporter, std::process::id()))
    }
}
