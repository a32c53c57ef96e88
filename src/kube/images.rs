//! Which images an application's workloads run, by digest, as the kubelet reports them
//! (`status.containerStatuses[].imageID`): a tag says what was asked for, the image ID what runs.
//! Release records keep them (`wharf history --output yaml`), so a later question "what ran in
//! revision 3?" has an answer even after a tag moved.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams};
use serde::{Deserialize, Serialize};

use super::INSTANCE_LABEL;

/// One container of one workload and the image it runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RunningImage {
    /// `Deployment/dex`, `StatefulSet/minio`, `Job/…`, or `Pod/…` for a pod nothing owns.
    pub workload: String,
    pub container: String,
    /// The reference the pod asked for (`ghcr.io/dexidp/dex:v2.41.1`).
    pub image: String,
    /// What the kubelet runs: `REPOSITORY@sha256:…` (or the image's `sha256:` ID when the
    /// runtime knows no repository digest for it).
    #[serde(rename = "imageID")]
    pub image_id: String,
}

/// The workload that owns `pod`: a Deployment's pods are owned by its ReplicaSet, named
/// `<deployment>-<pod-template-hash>`.
fn workload_of(pod: &Pod) -> String {
    let owner = pod
        .metadata
        .owner_references
        .as_ref()
        .and_then(|o| o.iter().find(|r| r.controller == Some(true)).or(o.first()));
    match owner {
        Some(o) if o.kind == "ReplicaSet" => {
            let deployment = o.name.rsplit_once('-').map_or(o.name.as_str(), |(d, _)| d);
            format!("Deployment/{deployment}")
        }
        Some(o) => format!("{}/{}", o.kind, o.name),
        None => format!("Pod/{}", pod.metadata.name.as_deref().unwrap_or("?")),
    }
}

/// The images the pods of `pods` have started, sorted, each once: a pod on its way out (being
/// deleted) is left out, and a container that has not started yet has no image ID to report.
pub fn from_pods(pods: &[Pod]) -> Vec<RunningImage> {
    let mut found = BTreeSet::new();
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let workload = workload_of(pod);
        let statuses = pod.status.as_ref().into_iter().flat_map(|s| {
            let init = s.init_container_statuses.iter().flatten();
            init.chain(s.container_statuses.iter().flatten())
        });
        for c in statuses.filter(|c| !c.image_id.is_empty()) {
            found.insert(RunningImage {
                workload: workload.clone(),
                container: c.name.clone(),
                image: c.image.clone(),
                image_id: c.image_id.clone(),
            });
        }
    }
    found.into_iter().collect()
}

/// The images `app`'s pods run in `namespaces` (one LIST per namespace).
pub async fn running(
    client: &Client,
    namespaces: &BTreeSet<String>,
    app: &str,
) -> Result<Vec<RunningImage>, kube::Error> {
    let lp = ListParams::default().labels(&format!("{INSTANCE_LABEL}={app}"));
    let mut pods = Vec::new();
    for ns in namespaces {
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        pods.extend(api.list(&lp).await?.items);
    }
    Ok(from_pods(&pods))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, owner: (&str, &str), deleting: bool, statuses: serde_json::Value) -> Pod {
        let mut p = json!({"metadata": {"name": name, "ownerReferences": [{"apiVersion": "apps/v1",
            "kind": owner.0, "name": owner.1, "uid": "u", "controller": true}]},
            "status": {"containerStatuses": statuses}});
        if deleting {
            p["metadata"]["deletionTimestamp"] = json!("2026-12-02T00:00:00Z");
        }
        serde_json::from_value(p).unwrap()
    }

    fn status(name: &str, image: &str, id: &str) -> serde_json::Value {
        json!({"name": name, "image": image, "imageID": id, "ready": !id.is_empty(), "restartCount": 0})
    }

    #[test]
    fn each_workload_container_once_without_leaving_pods_or_unstarted_containers() {
        let new = "ghcr.io/dexidp/dex@sha256:bb";
        let pods = [
            pod(
                "dex-7d9f-a",
                ("ReplicaSet", "dex-7d9f"),
                false,
                json!([status("dex", "ghcr.io/dexidp/dex:v2", new)]),
            ),
            pod(
                "dex-7d9f-b",
                ("ReplicaSet", "dex-7d9f"),
                false,
                json!([status("dex", "ghcr.io/dexidp/dex:v2", new)]),
            ),
            // The previous revision's pod, terminating after the rollout.
            pod(
                "dex-5c4b-a",
                ("ReplicaSet", "dex-5c4b"),
                true,
                json!([status(
                    "dex",
                    "ghcr.io/dexidp/dex:v1",
                    "ghcr.io/dexidp/dex@sha256:aa"
                )]),
            ),
            pod(
                "minio-0",
                ("StatefulSet", "minio"),
                false,
                json!([status("minio", "minio/minio:x", "")]),
            ),
        ];
        assert_eq!(
            from_pods(&pods),
            [RunningImage {
                workload: "Deployment/dex".into(),
                container: "dex".into(),
                image: "ghcr.io/dexidp/dex:v2".into(),
                image_id: new.into(),
            }]
        );
    }
}
