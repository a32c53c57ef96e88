//! What the operator needs to know that is not in an InferenceService: where it runs, which
//! wharf-server image to deploy, and how the platform gateway reaches models.

use std::net::SocketAddr;
use std::time::Duration;

/// The operator's settings (`wharf-server operator` flags, set by the charm).
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// The namespace whose InferenceServices are served: the platform's model namespace, the one
    /// the gateway proxies `/models/<name>/` into.
    pub namespace: String,
    /// The wharf-server image each InferenceService's Deployment runs.
    pub server_image: String,
    /// The port of each model Service (the gateway's `model-port`).
    pub model_port: u16,
    /// The platform's public URL (`https://ml.example.com`), for `status.url`; without it the
    /// status carries the in-cluster URL.
    pub public_url: Option<String>,
    /// The cluster's DNS domain, for in-cluster URLs.
    pub cluster_domain: String,
    /// Where `/metrics` is served (port 0 picks a free one).
    pub metrics_addr: SocketAddr,
    /// The operator's own name, in Events and as the field manager.
    pub reporter: String,
    /// Pod name, in Events (`reportingInstance`).
    pub instance: Option<String>,
    /// How long to wait before looking again at an InferenceService whose claim is missing.
    pub retry_after: Duration,
    /// For `s3://` storage: the Secret (in the InferenceService's namespace) holding the
    /// credentials under `access-key` and `secret-key` (the MinIO charm's `minio-credentials`).
    pub s3_secret: String,
    /// For `s3://` storage: the S3 endpoint the pods use (`http://minio.<namespace>.svc:9000`).
    pub s3_endpoint: String,
    /// For `s3://` storage: the region requests are signed for.
    pub s3_region: String,
    /// Leader election (for more than one operator replica): the name of the Lease in
    /// `namespace` that a replica must hold to reconcile. None: this replica always reconciles.
    pub lease_name: Option<String>,
}

impl OperatorConfig {
    /// Defaults for everything but the namespace and the image (tests start from this).
    pub fn new(namespace: impl Into<String>, server_image: impl Into<String>) -> OperatorConfig {
        let namespace = namespace.into();
        OperatorConfig {
            s3_secret: "minio-credentials".into(),
            s3_endpoint: default_s3_endpoint(&namespace),
            s3_region: "us-east-1".into(),
            namespace,
            server_image: server_image.into(),
            model_port: 8080,
            public_url: None,
            cluster_domain: "cluster.local".into(),
            metrics_addr: SocketAddr::from(([0, 0, 0, 0], 9090)),
            reporter: "wharf-server-operator".into(),
            instance: None,
            retry_after: Duration::from_secs(30),
            lease_name: None,
        }
    }

    /// Who this replica is in the Lease: its pod name, or a name unique to the process.
    pub fn identity(&self) -> String {
        self.instance
            .clone()
            .unwrap_or_else(|| format!("{}-{}", self.reporter, std::process::id()))
    }

    /// The base URL of one model's APIs: behind the gateway when the public URL is known.
    pub fn model_url(&self, name: &str) -> String {
        match &self.public_url {
            Some(public) => format!("{}/models/{name}/", public.trim_end_matches('/')),
            None => format!(
                "http://{name}.{}.svc.{}:{}/",
                self.namespace, self.cluster_domain, self.model_port
            ),
        }
    }
}

impl OperatorConfig {
    /// Where V2 gRPC clients in the cluster reach one model (the gateway routes HTTP only).
    pub fn grpc_address(&self, name: &str) -> String {
        format!(
            "{name}.{}.svc.{}:{}",
            self.namespace,
            self.cluster_domain,
            super::resources::GRPC_PORT
        )
    }
}

/// The platform's MinIO (the `minio` application of the bundle) in the model namespace.
pub fn default_s3_endpoint(namespace: &str) -> String {
    format!("http://minio.{namespace}.svc:9000")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_the_gateway_route_when_the_public_url_is_known() {
        let mut config = OperatorConfig::new("kubeflow", "img");
        assert_eq!(
            config.model_url("fashion"),
            "http://fashion.kubeflow.svc.cluster.local:8080/"
        );
        config.public_url = Some("https://ml.example.com/".into());
        assert_eq!(
            config.model_url("fashion"),
            "https://ml.example.com/models/fashion/"
        );
    }
}
