//! What the cluster serves (discovery, once per run and again after CRDs are established): maps an
//! object's apiVersion and kind to the API resource and scope to send it to.

use anyhow::anyhow;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::discovery::{Discovery, Scope};
use kube::{Client, core::GroupVersionKind};

use super::{ObjectRef, errors};

/// What the cluster serves (cheap to clone: the discovery is shared).
#[derive(Clone)]
pub struct Catalog {
    discovery: std::sync::Arc<Discovery>,
}

impl Catalog {
    pub async fn load(client: &Client, server: &str) -> anyhow::Result<Self> {
        let discovery = Discovery::new(client.clone())
            .run()
            .await
            .map_err(|e| anyhow!(errors::describe(&e, "discover the cluster's APIs", server)))?;
        Ok(Self {
            discovery: std::sync::Arc::new(discovery),
        })
    }

    /// The resource for an object and whether it is namespaced, or None when the cluster does not
    /// serve the kind (yet: a custom resource whose CRD is in the same plan).
    pub fn resolve(&self, r: &ObjectRef) -> Option<(ApiResource, bool)> {
        let gvk = GroupVersionKind::gvk(r.group(), r.version(), &r.kind);
        self.discovery
            .resolve_gvk(&gvk)
            .map(|(ar, caps)| (ar, caps.scope == Scope::Namespaced))
    }

    /// Like `resolve`, as an error naming the object when the kind is unknown.
    pub fn require(&self, r: &ObjectRef) -> anyhow::Result<(ApiResource, bool)> {
        self.resolve(r).ok_or_else(|| {
            anyhow!(
                "{r}: the cluster does not serve {} {}; install the CRD that defines it \
                 (or the add-on that does) first",
                r.api_version,
                r.kind
            )
        })
    }

    /// An API handle for one object, namespaced or cluster-wide as discovery says.
    pub fn api_for(&self, client: &Client, r: &ObjectRef) -> anyhow::Result<Api<DynamicObject>> {
        let (ar, namespaced) = self.require(r)?;
        Ok(api_in(client, &ar, namespaced, r.namespace.as_deref()))
    }

    /// Whether a kind is cluster-scoped, if the cluster knows it.
    pub fn is_cluster_scoped(&self, r: &ObjectRef) -> Option<bool> {
        self.resolve(r).map(|(_, namespaced)| !namespaced)
    }
}

/// An API handle for a resource in a namespace (or cluster-wide).
pub fn api_in(
    client: &Client,
    ar: &ApiResource,
    namespaced: bool,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match (namespaced, namespace) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, ar),
        (true, None) => Api::default_namespaced_with(client.clone(), ar),
        (false, _) => Api::all_with(client.clone(), ar),
    }
}
