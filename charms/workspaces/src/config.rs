//! What the operator needs to know that is not in a Profile: where it runs (the model namespace:
//! its Lease, the platform's MinIO Secret, the gateway), which ClusterRole owners get, the
//! LimitRange defaults of every profile namespace, and its metrics address.

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
            container_defaults: ContainerDefaults::default(),
            metrics_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            reporter: "wharf-workspaces".into(),
            instance: None,
            lease_name: None,
            resync: Duration::from_secs(300),
            retry_after: Duration::from_secs(10),
        }
    }

    /// Who this replica is in the Lease: its pod name, or a name unique to the process.
    pub fn identity(&self) -> String {
        self.instance
            .clone()
            .unwrap_or_else(|| format!("{}-{}", self.reporter, std::process::id()))
    }
}
