//! Deleting objects: what the last release applied and the new render dropped (prune), and
//! everything of an application on `wharf remove`. CRDs and PVCs are kept unless asked, because
//! deleting them deletes every custom resource or the data with them.

use std::collections::BTreeSet;

use anyhow::anyhow;
use kube::Client;
use kube::api::DeleteParams;

use super::plan::{Stage, is_custom, kind_rank, stage_of};
use super::{Catalog, ObjectRef, errors};

/// What may be deleted beyond ordinary objects.
#[derive(Debug, Clone, Copy, Default)]
pub struct Allow {
    pub crds: bool,
    pub data: bool,
}

impl Allow {
    pub fn permits(self, r: &ObjectRef) -> bool {
        (!r.is_crd() || self.crds) && (!r.is_pvc() || self.data)
    }
}

/// Objects recorded before and absent from the new render, that `allow` permits deleting.
pub fn dropped(
    previous: &BTreeSet<ObjectRef>,
    current: &BTreeSet<ObjectRef>,
    allow: Allow,
) -> Vec<ObjectRef> {
    let mut out: Vec<_> = previous
        .difference(current)
        .filter(|r| allow.permits(r))
        .cloned()
        .collect();
    removal_order(&mut out);
    out
}

/// Order for deleting: custom resources first (their controllers and CRDs must still be there),
/// then workloads before what they use (reverse install order), cluster-wide kinds, CRDs last.
pub fn removal_order(refs: &mut [ObjectRef]) {
    refs.sort_by_key(|r| {
        let stage = match stage_of(r) {
            _ if is_custom(r) => 0,
            Stage::Apps => 1,
            Stage::Cluster => 2,
            Stage::Crds => 3,
        };
        (stage, std::cmp::Reverse(kind_rank(r)), r.clone())
    });
}

/// Delete one object; an object already gone (or whose kind is no longer served) counts as
/// deleted. Returns whether a delete request was sent and succeeded.
pub async fn delete(
    client: &Client,
    server: &str,
    catalog: &Catalog,
    r: &ObjectRef,
) -> anyhow::Result<bool> {
    if catalog.resolve(r).is_none() {
        // Not served, so nothing of it exists; unless the API is only unavailable for now.
        if catalog.unavailable(r).is_some() {
            catalog.require(r)?;
        }
        return Ok(false);
    }
    let api = catalog.api_for(client, r)?;
    match api.delete(&r.name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(e) if errors::is_not_found(&e) => Ok(false),
        Err(e) => Err(anyhow!(errors::describe(
            &e,
            &format!("delete {r}"),
            server
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(api: &str, kind: &str, name: &str) -> ObjectRef {
        ObjectRef {
            api_version: api.into(),
            kind: kind.into(),
            namespace: Some("m".into()),
            name: name.into(),
        }
    }

    #[test]
    fn dropped_keeps_crds_and_pvcs_unless_allowed() {
        let cm = r("v1", "ConfigMap", "old");
        let pvc = r("v1", "PersistentVolumeClaim", "data");
        let crd = r(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "x.wharf.dev",
        );
        let kept = r("v1", "Service", "s");
        let prev: BTreeSet<_> = [cm.clone(), pvc.clone(), crd.clone(), kept.clone()].into();
        let cur: BTreeSet<_> = [kept].into();
        assert_eq!(dropped(&prev, &cur, Allow::default()), vec![cm.clone()]);
        let all = dropped(
            &prev,
            &cur,
            Allow {
                crds: true,
                data: true,
            },
        );
        assert_eq!(all.len(), 3);
        assert_eq!(all.last(), Some(&crd), "CRDs go last");
    }

    #[test]
    fn custom_resources_go_before_workloads_and_crds() {
        let mut refs = vec![
            r(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "t.wharf.dev",
            ),
            r("v1", "ServiceAccount", "sa"),
            r("apps/v1", "Deployment", "d"),
            r("wharf.dev/v1alpha1", "TrainJob", "t"),
        ];
        removal_order(&mut refs);
        let kinds: Vec<_> = refs.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "TrainJob",
                "Deployment",
                "ServiceAccount",
                "CustomResourceDefinition"
            ]
        );
    }
}
