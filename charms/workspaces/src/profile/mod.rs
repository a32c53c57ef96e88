//! Profiles: a namespace per user, in the shape of Kubeflow's `kubeflow.org/v1` Profile.
//!
//! - [`crd`]: the custom resource;
//! - [`resources`]: the objects one Profile becomes, and the checks before them (pure);
//! - [`status`]: conditions from what was observed (pure);
//! - [`reconcile`]: one reconcile, the error policy and the shared context.

pub mod crd;
pub mod reconcile;
pub mod resources;
pub mod status;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::runtime::controller::Controller;
use kube::runtime::watcher;

use crd::Profile;
use reconcile::Context;

/// The Profile controller, until `shutdown` resolves. It watches every Profile and the
/// namespaces it made (by their `managed-by` label); the objects inside a namespace are not
/// watched (that would need list/watch on every Secret of the cluster) but re-applied at each
/// reconcile, at least every `resync`.
pub fn controller(
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> impl Future<Output = ()> {
    let client = ctx.client.clone();
    let owned = watcher::Config::default().labels(&resources::managed_selector());
    Controller::new(
        Api::<Profile>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<Namespace>::all(client), owned)
    .graceful_shutdown_on(shutdown)
    .run(reconcile::reconcile, reconcile::error_policy, ctx)
    .for_each(|result| async move {
        if let Err(error) = result {
            tracing::debug!(%error, "profile controller");
        }
    })
}
