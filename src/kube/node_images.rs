//! Whether the cluster's nodes have wharf's own images (`wharf.local/…`) before a deploy runs
//! them. No registry serves `wharf.local`: on a node that lacks them the pods wait in
//! ImagePullBackOff until the deploy's timeout (20 minutes by default), so `deploy` asks first.
//!
//! The answer comes from each Node's `status.images`, as its kubelet reports them. That list is
//! evidence, not proof: the kubelet lists only the 50 largest images (`--node-status-max-images`)
//! and refreshes it every few seconds, and reading Nodes needs a cluster-wide permission. So only
//! a clear absence is `Missing`; anything else is `Unknown`, which is a warning, not a refusal.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, ListParams};
use serde_json::Value;

use super::errors;

/// The kubelet's default `--node-status-max-images`: a node listing this many may have more.
pub const KUBELET_MAX_IMAGES: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every image is listed by at least one node (or the bundle runs none of wharf's images).
    Present,
    /// No node lists these, and every node's list is complete.
    Missing(Vec<String>),
    /// Cannot tell; why.
    Unknown(String),
}

/// wharf's own images (`wharf.local/…`) that the pod specs of `objects` run, sorted.
pub fn local_images<'a>(objects: impl IntoIterator<Item = &'a Value>) -> BTreeSet<String> {
    fn walk(v: &Value, found: &mut BTreeSet<String>) {
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    if k == "containers" || k == "initContainers" {
                        let images = child.as_array().into_iter().flatten();
                        found.extend(
                            images
                                .filter_map(|c| c["image"].as_str())
                                .filter(|i| i.starts_with(&format!("{}/", crate::images::REGISTRY)))
                                .map(str::to_owned),
                        );
                    } else {
                        walk(child, found);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, found)),
            _ => {}
        }
    }
    let mut found = BTreeSet::new();
    for o in objects {
        walk(o, &mut found);
    }
    found
}

/// Pure: what `nodes` say about `wanted`.
pub fn verdict(wanted: &BTreeSet<String>, nodes: &[Node]) -> Verdict {
    if wanted.is_empty() {
        return Verdict::Present;
    }
    if nodes.is_empty() {
        return Verdict::Unknown("the cluster lists no nodes".into());
    }
    let lists: Vec<Vec<&str>> = nodes
        .iter()
        .map(|n| {
            let images = n.status.as_ref().and_then(|s| s.images.as_ref());
            images
                .into_iter()
                .flatten()
                .flat_map(|i| i.names.iter().flatten().map(String::as_str))
                .collect()
        })
        .collect();
    if lists.iter().all(Vec::is_empty) {
        return Verdict::Unknown("the nodes do not report their images".into());
    }
    let missing: Vec<String> = wanted
        .iter()
        .filter(|w| !lists.iter().any(|l| l.contains(&w.as_str())))
        .cloned()
        .collect();
    if missing.is_empty() {
        return Verdict::Present;
    }
    let full = nodes.iter().find(|n| {
        let count = n
            .status
            .as_ref()
            .and_then(|s| s.images.as_ref())
            .map_or(0, Vec::len);
        count >= KUBELET_MAX_IMAGES
    });
    match full {
        Some(n) => Verdict::Unknown(format!(
            "node {} lists {KUBELET_MAX_IMAGES} images, the kubelet's limit, so it may have \
             more than it shows",
            n.metadata.name.as_deref().unwrap_or("?")
        )),
        None => Verdict::Missing(missing),
    }
}

/// Ask the cluster: one LIST of Nodes. A refused or failed LIST is `Unknown`, with why.
pub async fn check(client: &Client, server: &str, wanted: &BTreeSet<String>) -> Verdict {
    if wanted.is_empty() {
        return Verdict::Present;
    }
    let api: Api<Node> = Api::all(client.clone());
    match api.list(&ListParams::default()).await {
        Ok(list) => verdict(wanted, &list.items),
        Err(e) => Verdict::Unknown(errors::describe(&e, "list nodes", server)),
    }
}

/// Where the images must come from, for a message that names every way.
pub fn remedy() -> String {
    let archive = format!("wharf-images-{}.tar", crate::images::VERSION);
    format!(
        "give the nodes the images first: on MicroK8s, `sudo wharf images import {archive}` on \
         each node (`wharf up` does it; the archive is built by `wharf images build -o {archive}` \
         and ships beside the wharf binary); on any cluster, `wharf images push REGISTRY` to a \
         registry the nodes pull from, then deploy with `--image-registry REGISTRY` (kept for \
         later deploys)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, names: &[&[&str]]) -> Node {
        let images: Vec<Value> = names
            .iter()
            .map(|n| json!({"names": n, "sizeBytes": 1}))
            .collect();
        serde_json::from_value(json!({"metadata": {"name": name}, "status": {"images": images}}))
            .unwrap()
    }

    #[test]
    fn only_a_complete_list_without_the_image_is_missing() {
        let server = "wharf.local/wharf-server:0.1.0";
        let wanted: BTreeSet<String> = [server.to_string()].into();
        let pause: &[&str] = &["registry.k8s.io/pause:3.7"];
        assert_eq!(verdict(&BTreeSet::new(), &[]), Verdict::Present);
        assert_eq!(
            verdict(
                &wanted,
                &[
                    node("a", &[pause]),
                    node("b", &[&[server, "wharf.local/wharf-server@sha256:1"]])
                ]
            ),
            Verdict::Present
        );
        assert_eq!(
            verdict(&wanted, &[node("a", &[pause])]),
            Verdict::Missing(vec![server.into()])
        );
        assert!(matches!(verdict(&wanted, &[]), Verdict::Unknown(_)));
        assert!(matches!(
            verdict(&wanted, &[node("a", &[])]),
            Verdict::Unknown(_)
        ));
        let full: Vec<&[&str]> = vec![pause; KUBELET_MAX_IMAGES];
        match verdict(&wanted, &[node("big", &full)]) {
            Verdict::Unknown(why) => assert!(why.contains("node big lists 50"), "{why}"),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn finds_wharf_images_in_every_pod_spec() {
        let objects = [
            json!({"kind": "Deployment", "spec": {"template": {"spec": {
                "initContainers": [{"image": "busybox:1"}],
                "containers": [{"image": "wharf.local/wharf-server:0.1.0"}]}}}}),
            json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"image": "wharf.local/wharf:0.1.0"}]}}}}}}),
            json!({"kind": "ConfigMap", "data": {"image": "wharf.local/not-a-container:1"}}),
        ];
        assert_eq!(
            local_images(&objects).into_iter().collect::<Vec<_>>(),
            ["wharf.local/wharf-server:0.1.0", "wharf.local/wharf:0.1.0"]
        );
    }
}
