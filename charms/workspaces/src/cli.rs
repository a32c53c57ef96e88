//! Command-line interface: `wharf-workspaces crd` and `wharf-workspaces operator` with its flags,
//! turned into an [`OperatorConfig`] once.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};

use std::time::Duration;

use crate::config::{
    ContainerDefaults, DEFAULT_NOTEBOOK_IMAGES, OperatorConfig, WorkflowExecutor, parse_images,
};

#[derive(Debug, Parser)]
#[command(
    name = "wharf-workspaces",
    version,
    about = "The workspaces operator: a namespace per user from Profile resources, and Jupyter \
             servers from Notebook resources (kubeflow.org/v1)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"], env = "WHARF_LOG_FORMAT")]
    pub log_format: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a CustomResourceDefinition as YAML (the Profile's, or the Notebook's).
    Crd {
        #[arg(value_parser = ["profile", "notebook"], default_value = "profile")]
        kind: String,
    },
    /// Run the Profile and Notebook operator (kubeconfig from KUBECONFIG or the pod's service account).
    // Boxed: the flags are large and `crd` carries none (clippy::large_enum_variant).
    Operator(Box<OperatorArgs>),
}

#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// The operator's own namespace (the platform's model namespace): its Lease and the S3
    /// Secret to copy are there.
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: String,
    /// The gateway's namespace, whose pods may reach every profile namespace [default: --namespace].
    #[arg(long, default_value = "")]
    pub gateway_namespace: String,
    /// The ClusterRole each profile's owner is bound to in its namespace.
    #[arg(long, default_value = "edit")]
    pub owner_role: String,
    /// The Secret in --namespace copied into each profile namespace (keys `access-key`,
    /// `secret-key`, as the minio charm writes them); empty: copy nothing.
    #[arg(long, default_value = "minio-credentials")]
    pub s3_secret: String,
    /// Pipelines: the ClusterRole of Argo's executor (the argo charm's), bound in each profile
    /// namespace to the ServiceAccount --workflow-service-account; empty: no pipelines.
    #[arg(long, default_value = "")]
    pub workflow_executor_role: String,
    /// Pipelines: the ServiceAccount workflow pods run as in each profile namespace.
    #[arg(long, default_value = "workflow")]
    pub workflow_service_account: String,
    /// CPU request of a container that sets none (the profile namespace's LimitRange).
    #[arg(long, default_value = "100m")]
    pub default_cpu_request: String,
    /// Memory request of a container that sets none.
    #[arg(long, default_value = "256Mi")]
    pub default_memory_request: String,
    /// CPU limit of a container that sets none.
    #[arg(long, default_value = "1")]
    pub default_cpu_limit: String,
    /// Memory limit of a container that sets none.
    #[arg(long, default_value = "1Gi")]
    pub default_memory_limit: String,
    /// Address of /metrics and /healthz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// This pod's name, in Events and the Lease.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// Reconcile only while holding the Lease LEASE_NAME in --namespace (for more than one
    /// replica; the charm sets it when scale > 1).
    #[arg(long)]
    pub leader_elect: bool,
    #[arg(long, default_value = "wharf-workspaces-operator")]
    pub lease_name: String,
    /// Notebook images to choose from, NAME=IMAGE,...; the first is the default. A Notebook's
    /// container with `image: NAME` runs that image.
    #[arg(long, default_value = DEFAULT_NOTEBOOK_IMAGES)]
    pub notebook_images: String,
    /// Size of the workspace volume a new Notebook gets (mounted at /home/jovyan).
    #[arg(long, default_value = "5Gi")]
    pub notebook_workspace_size: String,
    /// Storage class of new workspace volumes; empty: the cluster's default.
    #[arg(long, default_value = "")]
    pub notebook_storage_class: String,
    /// Stop a notebook server idle (Jupyter's last activity) for this many minutes; 0: never.
    #[arg(long, default_value_t = 1440)]
    pub cull_idle_minutes: u64,
    /// How often a running notebook server's activity is read, in seconds.
    #[arg(long, default_value_t = 60)]
    pub cull_check_seconds: u64,
    /// Reach Jupyter at this base URL instead of the notebook's Service (an operator run outside
    /// the cluster, tests); `/notebook/<namespace>/<name>/api/status` is appended.
    #[arg(long, default_value = "")]
    pub jupyter_url_base: String,
    /// Address the gateway asks whether a user owns a notebook's namespace.
    #[arg(long, default_value = "0.0.0.0:8081")]
    pub authz_addr: SocketAddr,
}

impl OperatorArgs {
    /// The settings; an error names the flag and the fix.
    pub fn config(&self) -> anyhow::Result<OperatorConfig> {
        let mut config = OperatorConfig::new(&self.namespace);
        if !self.gateway_namespace.is_empty() {
            config.gateway_namespace = self.gateway_namespace.clone();
        }
        config.owner_role = self.owner_role.clone();
        config.s3_secret = Some(self.s3_secret.clone()).filter(|s| !s.is_empty());
        config.workflow_executor =
            (!self.workflow_executor_role.is_empty()).then(|| WorkflowExecutor {
                cluster_role: self.workflow_executor_role.clone(),
                service_account: self.workflow_service_account.clone(),
            });
        config.container_defaults = ContainerDefaults {
            cpu_request: self.default_cpu_request.clone(),
            memory_request: self.default_memory_request.clone(),
            cpu_limit: self.default_cpu_limit.clone(),
            memory_limit: self.default_memory_limit.clone(),
        };
        config.metrics_addr = self.metrics_addr;
        config.instance = self.pod_name.clone();
        config.lease_name = self.leader_elect.then(|| self.lease_name.clone());
        let notebook = &mut config.notebook;
        notebook.images = parse_images(&self.notebook_images)
            .map_err(|e| anyhow::anyhow!("--notebook-images: {e}"))?;
        notebook.workspace_size = self.notebook_workspace_size.clone();
        notebook.storage_class =
            Some(self.notebook_storage_class.clone()).filter(|s| !s.is_empty());
        notebook.cull_idle = (self.cull_idle_minutes > 0)
            .then(|| Duration::from_secs(self.cull_idle_minutes.saturating_mul(60)));
        notebook.cull_check_interval = Duration::from_secs(self.cull_check_seconds.max(1));
        notebook.jupyter_url_base =
            Some(self.jupyter_url_base.trim_end_matches('/').to_owned()).filter(|s| !s.is_empty());
        config.authz_addr = self.authz_addr;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> OperatorConfig {
        let cli = Cli::try_parse_from(args).unwrap();
        let Command::Operator(args) = cli.command else {
            panic!("parsed as operator")
        };
        args.config().unwrap()
    }

    #[test]
    fn operator_flags_become_its_config() {
        let config = parse(&[
            "wharf-workspaces",
            "operator",
            "--namespace=kubeflow",
            "--gateway-namespace=edge",
            "--owner-role=kubeflow-edit",
            "--s3-secret=",
            "--default-memory-limit=2Gi",
            "--leader-elect",
        ]);
        assert_eq!(config.namespace, "kubeflow");
        assert_eq!(config.gateway_namespace, "edge");
        assert_eq!(config.owner_role, "kubeflow-edit");
        assert_eq!(config.s3_secret, None);
        assert_eq!(config.container_defaults.memory_limit, "2Gi");
        assert_eq!(
            config.lease_name.as_deref(),
            Some("wharf-workspaces-operator")
        );
    }

    #[test]
    fn the_gateway_is_in_the_operators_namespace_unless_told() {
        let config = parse(&["wharf-workspaces", "operator", "--namespace=wharf"]);
        assert_eq!(config.gateway_namespace, "wharf");
        assert_eq!(config.s3_secret.as_deref(), Some("minio-credentials"));
        assert_eq!(config.lease_name, None);
        assert_eq!(config.notebook.cull_idle, Some(Duration::from_secs(86_400)));
        assert_eq!(config.notebook.images[0].0, "minimal");
        assert_eq!(config.notebook.images[1].0, "scipy");
        assert_eq!(config.workflow_executor, None, "no pipelines unless told");
    }

    #[test]
    fn the_workflow_executor_role_turns_pipelines_on() {
        let config = parse(&[
            "wharf-workspaces",
            "operator",
            "--namespace=wharf",
            "--workflow-executor-role=wharf-argo-executor",
        ]);
        assert_eq!(
            config.workflow_executor,
            Some(WorkflowExecutor {
                cluster_role: "wharf-argo-executor".into(),
                service_account: "workflow".into(),
            })
        );
    }

    #[test]
    fn notebook_flags_become_its_config_and_zero_turns_culling_off() {
        let config = parse(&[
            "wharf-workspaces",
            "operator",
            "--namespace=wharf",
            "--cull-idle-minutes=0",
            "--notebook-images=lab=example.com/lab:1",
            "--notebook-storage-class=fast",
            "--jupyter-url-base=http://127.0.0.1:9/",
        ]);
        assert_eq!(config.notebook.cull_idle, None);
        assert_eq!(
            config.notebook.images,
            [("lab".to_owned(), "example.com/lab:1".to_owned())]
        );
        assert_eq!(config.notebook.storage_class.as_deref(), Some("fast"));
        assert_eq!(
            config.notebook.jupyter_url_base.as_deref(),
            Some("http://127.0.0.1:9")
        );
    }

    #[test]
    fn a_notebook_image_without_a_name_is_refused_naming_the_flag() {
        let cli = Cli::try_parse_from([
            "wharf-workspaces",
            "operator",
            "--namespace=wharf",
            "--notebook-images=quay.io/jupyter/minimal-notebook:1",
        ])
        .unwrap();
        let Command::Operator(args) = cli.command else {
            panic!("parsed as operator")
        };
        let error = args.config().unwrap_err().to_string();
        assert!(
            error.starts_with("--notebook-images:") && error.contains("NAME=IMAGE"),
            "{error}"
        );
    }
}
