//! The one code path that talks to the cluster: connecting from a kubeconfig, discovery, the staged
//! plan, server-side apply that skips what is already there, readiness waits, pruning and diffs.
//! `action::deploy`, `action::status` and `action::remove` read as steps over these parts.

pub mod apply;
pub mod autoscaled;
pub mod catalog;
pub mod compare;
pub mod connect;
pub mod diff;
pub mod errors;
pub mod execute;
pub mod images;
pub mod node_images;
pub mod object;
pub mod owned;
pub mod plan;
pub mod pod_exec;
pub mod progress;
pub mod prometheus;
pub mod prune;
pub mod readiness;
pub mod wait;

pub use catalog::Catalog;
pub use connect::{Cluster, connect};
pub use object::ObjectRef;

/// The field manager wharf applies with; `kubectl get -o yaml --show-managed-fields` shows it.
pub const FIELD_MANAGER: &str = "wharf";

/// The label every rendered object carries; status and remove select on it.
pub const MANAGED_BY_SELECTOR: &str = "app.kubernetes.io/managed-by=wharf";

/// The label naming the application an object belongs to.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
