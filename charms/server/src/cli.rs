//! Command-line interface: `wharf-server serve ...` and its flags, turned into a [`ServerConfig`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use wharf_model::location::Location;

use crate::batcher::BatchConfig;
use crate::operator::OperatorConfig;
use crate::repository::VersionPolicy;
use crate::server::ServerConfig;

#[derive(Debug, Parser)]
#[command(
    name = "wharf-server",
    version,
    about = "Serve wharf model artifacts over the Open Inference Protocol V2 and TF Serving REST"
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
    /// Serve every model under the repository directory.
    Serve(ServeArgs),
    /// Print the InferenceService CustomResourceDefinition as YAML.
    Crd,
    /// Run the InferenceService operator (kubeconfig from KUBECONFIG or the pod's service account).
    Operator(OperatorArgs),
}

#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// Namespace whose InferenceServices are served (the platform's model namespace).
    #[arg(long, env = "WHARF_NAMESPACE")]
    pub namespace: String,
    /// wharf-server image of the model Deployments.
    #[arg(long, env = "WHARF_SERVER_IMAGE")]
    pub server_image: String,
    /// Port of each model Service: the gateway's model-port.
    #[arg(long, default_value_t = 8080, env = "WHARF_MODEL_PORT")]
    pub model_port: u16,
    /// The platform's public URL; status.url becomes <public-url>/models/<name>/.
    #[arg(long, env = "WHARF_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,
    /// The cluster's DNS domain, for in-cluster URLs.
    #[arg(long, default_value = "cluster.local", env = "WHARF_CLUSTER_DOMAIN")]
    pub cluster_domain: String,
    /// Address of /metrics and /healthz.
    #[arg(long, default_value = "0.0.0.0:9090", env = "WHARF_METRICS_ADDR")]
    pub metrics_addr: SocketAddr,
    /// This pod's name, in Events.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// Reconcile only while holding the Lease LEASE_NAME in the namespace (for more than one
    /// operator replica; the charm sets it when scale > 1).
    #[arg(long)]
    pub leader_elect: bool,
    #[arg(long, default_value = "wharf-server-operator")]
    pub lease_name: String,
    /// For s3:// storageUris: the Secret in the namespace holding `access-key` and `secret-key`.
    #[arg(long, default_value = "minio-credentials")]
    pub s3_secret: String,
    /// For s3:// storageUris: the S3 endpoint; empty means http://minio.<namespace>.svc:9000.
    #[arg(long, default_value = "")]
    pub s3_endpoint: String,
    /// For s3:// storageUris: the region requests are signed for.
    #[arg(long, default_value = "us-east-1")]
    pub s3_region: String,
}

/// An empty value means unset (the charm passes its config option through as is).
fn parse_public_url(s: &str) -> Result<String, String> {
    if s.is_empty() || s.starts_with("http://") || s.starts_with("https://") {
        Ok(s.trim_end_matches('/').to_string())
    } else {
        Err(format!("'{s}' is not a URL: write https://host[:port]"))
    }
}

impl OperatorArgs {
    pub fn config(&self) -> OperatorConfig {
        let mut config = OperatorConfig::new(&self.namespace, &self.server_image);
        config.model_port = self.model_port;
        config.public_url = self.public_url.clone().filter(|u| !u.is_empty());
        config.cluster_domain = self.cluster_domain.clone();
        config.metrics_addr = self.metrics_addr;
        config.instance = self.pod_name.clone();
        config.s3_secret = self.s3_secret.clone();
        if !self.s3_endpoint.is_empty() {
            config.s3_endpoint = self.s3_endpoint.clone();
        }
        config.s3_region = self.s3_region.clone();
        config.lease_name = self.leader_elect.then(|| self.lease_name.clone());
        config
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory or s3://bucket/prefix holding <model>/<version>/{model.json,model.safetensors}.
    /// S3 credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL and
    /// AWS_REGION.
    #[arg(long, env = "WHARF_MODEL_REPOSITORY")]
    pub model_repository: String,
    /// Where an s3:// repository is downloaded to (default: a directory under $TMPDIR).
    #[arg(long, env = "WHARF_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// With an s3:// repository: download only this model (an InferenceService serves one).
    #[arg(long)]
    pub only_model: Option<String>,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0", env = "WHARF_HOST")]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080, env = "WHARF_PORT")]
    pub port: u16,
    /// Port of the gRPC services on the same host: V2 (inference.GRPCInferenceService) and TF
    /// Serving's PredictionService (point TF Serving clients, default 8500, here); 0 picks a free
    /// one.
    #[arg(long, default_value_t = 8081, env = "WHARF_GRPC_PORT")]
    pub grpc_port: u16,
    /// Most rows in one forward pass.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_batch: u32,
    /// Longest time a batch waits for requests that are already on their way (microseconds).
    /// 0 batches only what is already queued: for wharf's models a forward pass is microseconds,
    /// and waiting for requests still being parsed cost more than batching them saved
    /// (scripts/bench-server.sh). Raise it for a model whose forward pass takes milliseconds.
    #[arg(long, default_value_t = 0)]
    pub batch_delay_us: u64,
    /// Requests queued per model version before new ones get 503.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub queue_capacity: u32,
    /// Which versions to serve: latest, all or specific:N.
    #[arg(long, default_value = "latest")]
    pub version_policy: VersionPolicy,
    /// How often the repository is scanned for new and removed versions (milliseconds).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(10..))]
    pub poll_interval_ms: u64,
    /// Largest accepted request body in bytes; larger ones get 413.
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Longest wait for in-flight requests after SIGTERM / ctrl-c (seconds).
    #[arg(long, default_value_t = 30)]
    pub shutdown_timeout_secs: u64,
}

impl ServeArgs {
    /// The server's configuration; fails on an s3:// repository without credentials.
    pub fn config(&self) -> anyhow::Result<ServerConfig> {
        let location = Location::parse(&self.model_repository)
            .map_err(|e| anyhow::anyhow!("--model-repository {e}"))?;
        let (repository, remote) = match location {
            Location::Local(dir) => (dir, None),
            remote @ Location::S3(_) => {
                let cache = self.cache_dir.clone().unwrap_or_else(|| {
                    std::env::temp_dir().join(format!("wharf-server-models-{}", std::process::id()))
                });
                (cache, Some(remote))
            }
        };
        Ok(ServerConfig {
            repository,
            remote,
            only_model: self.only_model.clone(),
            addr: SocketAddr::new(self.host, self.port),
            grpc_addr: Some(SocketAddr::new(self.host, self.grpc_port)),
            batch: BatchConfig {
                max_batch: self.max_batch as usize,
                delay: Duration::from_micros(self.batch_delay_us),
                queue_capacity: self.queue_capacity as usize,
            },
            policy: self.version_policy,
            poll_interval: Duration::from_millis(self.poll_interval_ms),
            max_body_bytes: self.max_body_bytes,
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout_secs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_flags_become_the_config() {
        let cli = Cli::try_parse_from([
            "wharf-server",
            "serve",
            "--model-repository",
            "/models",
            "--port",
            "9000",
            "--max-batch",
            "8",
            "--batch-delay-us",
            "250",
            "--version-policy",
            "specific:3",
            "--max-body-bytes",
            "1000",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("parsed as serve")
        };
        let config = args.config().unwrap();
        assert_eq!(config.addr.port(), 9000);
        assert_eq!(
            config.grpc_addr.map(|a| a.port()),
            Some(8081),
            "KServe's gRPC port"
        );
        assert_eq!(config.batch.max_batch, 8);
        assert_eq!(config.batch.delay, Duration::from_micros(250));
        assert_eq!(config.policy, VersionPolicy::Specific(3));
        assert_eq!(config.max_body_bytes, 1000);
    }

    #[test]
    fn operator_flags_become_its_config() {
        let cli = Cli::try_parse_from([
            "wharf-server",
            "operator",
            "--namespace",
            "kubeflow",
            "--server-image",
            "img:1",
            "--public-url",
            "https://ml.example.com/",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .unwrap();
        let Command::Operator(args) = cli.command else {
            panic!("parsed as operator")
        };
        let config = args.config();
        assert_eq!(config.namespace, "kubeflow");
        assert_eq!(config.public_url.as_deref(), Some("https://ml.example.com"));
        assert_eq!(config.model_port, 8080);
        let empty = Cli::try_parse_from([
            "wharf-server",
            "operator",
            "--namespace",
            "n",
            "--server-image",
            "i",
            "--public-url",
            "",
        ])
        .unwrap();
        let Command::Operator(args) = empty.command else {
            panic!("parsed as operator")
        };
        assert_eq!(args.config().public_url, None, "empty is unset");
        let err = Cli::try_parse_from([
            "wharf-server",
            "operator",
            "--namespace",
            "n",
            "--server-image",
            "i",
            "--public-url",
            "ml.example.com",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("is not a URL"), "{err}");
    }

    #[test]
    fn a_bad_version_policy_is_refused_with_the_choices() {
        let err = Cli::try_parse_from([
            "wharf-server",
            "serve",
            "--model-repository",
            "/m",
            "--version-policy",
            "newest",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("latest, all or specific:N"), "{err}");
    }
}
