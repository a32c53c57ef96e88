//! The operator's one error type: what can fail in a reconcile and is worth retrying.

/// A reconcile that failed; the controller retries it with a back-off.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the InferenceService has no namespace (it is a namespaced resource)")]
    NoNamespace,
    #[error("building {what}: {source}")]
    Build {
        what: &'static str,
        source: serde_json::Error,
    },
}

impl Error {
    /// A short label for the failure metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(_)) => "api",
            Error::Kube(_) => "client",
            Error::NoNamespace => "no_namespace",
            Error::Build { .. } => "build",
        }
    }
}
