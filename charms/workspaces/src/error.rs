//! The operator's one error type: what can fail in a reconcile and is worth retrying.

/// A reconcile that failed; the controller retries it with a back-off.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the Profile has no uid yet (it was not read from the API server)")]
    NoUid,
}

impl Error {
    /// A short label for the failure metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(_)) => "api",
            Error::Kube(_) => "client",
            Error::NoUid => "no_uid",
        }
    }
}
