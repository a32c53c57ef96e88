//! What wharf keeps in the cluster, so that any machine with the kubeconfig can run day-2:
//! release records (one Secret per application revision), generated secrets, the platform
//! settings (the public URL) and the per-model lock (a Lease).

pub mod generated;
pub mod inputs;
pub mod lock;
pub mod platform;
pub mod record;
pub mod releases;

pub use lock::Lock;
pub use record::{Release, ReleaseStatus};
pub use releases::Releases;

/// Label on everything the store writes, so `remove --all` finds it.
pub const OWNER_LABEL: &str = "owner";
pub const OWNER: &str = "wharf";
