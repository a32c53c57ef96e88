//! Notebooks: Jupyter servers in users' namespaces, in the shape of Kubeflow's `kubeflow.org/v1`
//! Notebook.
//!
//! They live in the workspaces operator beside Profiles because they are the same concern and
//! the same API group: a notebook lives in a profile's namespace and is reached only by that
//! profile's owner (the [`crate::authz`] check the gateway asks reads Profiles), the operator
//! already owns `kubeflow.org` and its cluster-wide RBAC (trust), leader election and metrics;
//! a second binary, image and charm would only duplicate that for a few hundred lines.
//!
//! - [`crd`]: the custom resource;
//! - [`resources`]: the workspace claim, StatefulSet and Service one Notebook becomes (pure);
//! - [`culling`]: Jupyter's last activity and the idleness rule;
//! - [`status`]: the Ready condition (pure);
//! - [`reconcile`]: one reconcile and the error policy.

pub mod crd;
pub mod culling;
pub mod reconcile;
pub mod resources;
pub mod status;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::runtime::controller::Controller;
use kube::runtime::watcher;

use crate::profile::reconcile::Context;
use crd::Notebook;

/// The Notebook controller, until `shutdown` resolves. It watches every Notebook and the
/// StatefulSets and Services it made (by their `managed-by` label), so a server becoming ready
/// updates its status at once.
pub fn controller(
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> impl Future<Output = ()> {
    let client = ctx.client.clone();
    let owned =
        || watcher::Config::default().labels(&crate::profile::resources::managed_selector());
    Controller::new(
        Api::<Notebook>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<StatefulSet>::all(client.clone()), owned())
    .owns(Api::<Service>::all(client), owned())
    .graceful_shutdown_on(shutdown)
    .run(reconcile::reconcile, reconcile::error_policy, ctx)
    .for_each(|result| async move {
        if let Err(error) = result {
            tracing::debug!(%error, "notebook controller");
        }
    })
}
