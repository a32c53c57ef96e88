//! What the cluster serves (discovery, once per run and again after CRDs are established): maps an
//! object's apiVersion and kind to the API resource and scope to send it to.
//!
//! Discovery tolerates an API group version that does not answer: a real cluster often has an
//! aggregated APIService that is unavailable for a while (metrics.k8s.io while metrics-server
//! starts answers 503), and kubectl carries on with a warning. So does wharf: the group version is
//! left out with a warning, and only an object of that group version fails, naming why.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::anyhow;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::discovery::{ApiGroup, Scope, pinned_group};
use kube::{Client, core::GroupVersion, core::GroupVersionKind};

use super::{ObjectRef, errors};

/// What the cluster serves (cheap to clone: the discovery is shared).
#[derive(Clone)]
pub struct Catalog {
    inner: Arc<Served>,
}

struct Served {
    /// `group/version` (`v1` for the core group) → its resources.
    versions: BTreeMap<String, ApiGroup>,
    /// `group/version` → why its discovery failed (the cluster lists it but cannot serve it now).
    unavailable: BTreeMap<String, String>,
}

fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

impl Catalog {
    /// Discover every group version the cluster lists. One that fails (an unavailable aggregated
    /// API) is skipped with a warning on stderr; listing the groups themselves must succeed.
    pub async fn load(client: &Client, server: &str) -> anyhow::Result<Self> {
        let describe =
            |e: kube::Error| anyhow!(errors::describe(&e, "discover the cluster's APIs", server));
        let core = client.list_core_api_versions().await.map_err(describe)?;
        let groups = client.list_api_groups().await.map_err(describe)?;
        let mut wanted: Vec<GroupVersion> = core
            .versions
            .iter()
            .map(|v| GroupVersion::gv("", v))
            .collect();
        for g in &groups.groups {
            wanted.extend(
                g.versions
                    .iter()
                    .map(|v| GroupVersion::gv(&g.name, &v.version)),
            );
        }
        let answers =
            futures::future::join_all(wanted.iter().map(|gv| pinned_group(client, gv))).await;
        let mut served = Served {
            versions: BTreeMap::new(),
            unavailable: BTreeMap::new(),
        };
        for (gv, answer) in wanted.iter().zip(answers) {
            let key = api_version(&gv.group, &gv.version);
            match answer {
                Ok(group) => {
                    served.versions.insert(key, group);
                }
                // Credentials that fail here failed on the group list above already; anything
                // else is this one group version's trouble.
                Err(e) => {
                    let why = errors::describe(&e, &format!("discover {key}"), server);
                    eprintln!(
                        "warning: {why}; skipping it (objects of {key} cannot be applied until it answers)"
                    );
                    served.unavailable.insert(key, why);
                }
            }
        }
        Ok(Self {
            inner: Arc::new(served),
        })
    }

    /// The resource for an object and whether it is namespaced, or None when the cluster does not
    /// serve the kind (yet: a custom resource whose CRD is in the same plan).
    pub fn resolve(&self, r: &ObjectRef) -> Option<(ApiResource, bool)> {
        let gvk = GroupVersionKind::gvk(r.group(), r.version(), &r.kind);
        self.inner
            .versions
            .get(&api_version(&gvk.group, &gvk.version))?
            .versioned_resources(&gvk.version)
            .into_iter()
            .find(|(ar, _)| ar.kind == gvk.kind)
            .map(|(ar, caps)| (ar, caps.scope == Scope::Namespaced))
    }

    /// Why the cluster cannot serve this object's group version right now, if discovery of it failed.
    pub fn unavailable(&self, r: &ObjectRef) -> Option<&str> {
        self.inner
            .unavailable
            .get(&api_version(r.group(), r.version()))
            .map(String::as_str)
    }

    /// Like `resolve`, as an error naming the object when the kind is unknown.
    pub fn require(&self, r: &ObjectRef) -> anyhow::Result<(ApiResource, bool)> {
        self.resolve(r).ok_or_else(|| match self.unavailable(r) {
            Some(why) => anyhow!(
                "{r}: the cluster lists {} but cannot serve it now ({why}); check its APIService \
                 (`kubectl get apiservices`) and retry once it is Available",
                r.api_version
            ),
            None => anyhow!(
                "{r}: the cluster does not serve {} {}; install the CRD that defines it \
                 (or the add-on that does) first",
                r.api_version,
                r.kind
            ),
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
