//! Command-line interface: `wharf-workspaces crd` and `wharf-workspaces operator` with its flags,
//! turned into an [`OperatorConfig`] once.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};

use crate::config::{ContainerDefaults, OperatorConfig};

#[derive(Debug, Parser)]
#[command(
    name = "wharf-workspaces",
    version,
    about = "The workspaces operator: a namespace per user from Profile resources (kubeflow.org/v1)"
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
    /// Print the Profile CustomResourceDefinition as YAML.
    Crd,
    /// Run the Profile operator (kubeconfig from KUBECONFIG or the pod's service account).
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
}

impl OperatorArgs {
    pub fn config(&self) -> OperatorConfig {
        let mut config = OperatorConfig::new(&self.namespace);
        if !self.gateway_namespace.is_empty() {
            config.gateway_namespace = self.gateway_namespace.clone();
        }
        config.owner_role = self.owner_role.clone();
        config.s3_secret = Some(self.s3_secret.clone()).filter(|s| !s.is_empty());
        config.container_defaults = ContainerDefaults {
            cpu_request: self.default_cpu_request.clone(),
            memory_request: self.default_memory_request.clone(),
            cpu_limit: self.default_cpu_limit.clone(),
            memory_limit: self.default_memory_limit.clone(),
        };
        config.metrics_addr = self.metrics_addr;
        config.instance = self.pod_name.clone();
        config.lease_name = self.leader_elect.then(|| self.lease_name.clone());
        config
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
        args.config()
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
    }
}
