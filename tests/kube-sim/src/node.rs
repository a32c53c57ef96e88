//! The one simulated node, `sim-node`, and what its kubelet says about images: the `imageID` in a
//! running container's status and the Node's `status.images`, as a kubelet on containerd reports
//! them. Only a simulator with a node image store (`Config::node_images`) lists `status.images`:
//! without one every image counts as present, and a node cannot list "every image".

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::Shared;
use crate::managed::Scope;
use crate::ops::WriteCtx;
use crate::store::{ObjKey, State};

pub const NODE_NAME: &str = "sim-node";

/// The kubelet's `--node-status-max-images` default: the node lists its 50 largest images only.
pub const MAX_IMAGES: usize = 50;

/// How often the simulated kubelet refreshes the node's image list (a real one: every 10 s or so).
const REFRESH: Duration = Duration::from_millis(100);

/// The pod sandbox image: every node that runs pods has it (MicroK8s' containerd pulls it for its
/// own calico and coredns pods before any workload), so a real node never reports an empty list.
const SANDBOX_IMAGE: &str = "registry.k8s.io/pause:3.10";

/// A reference split the way containerd normalises it: `nginx:1` → (`docker.io/library/nginx`,
/// `Some("1")`, `None`).
struct Reference {
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

fn parse(image: &str) -> Reference {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d.to_string())),
        None => (image, None),
    };
    let (name, tag) = match name.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, Some(t.to_string())),
        _ => (name, None),
    };
    let first = name.split('/').next().unwrap_or_default();
    let has_domain =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let repository = if has_domain {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    let tag = tag.or_else(|| digest.is_none().then(|| "latest".to_string()));
    Reference {
        repository,
        tag,
        digest,
    }
}

/// The node's image store (`NAME DIGEST` lines, as the fake `microk8s ctr images import` keeps
/// it), or None when the simulator has none.
pub(crate) fn stored_images(shared: &Shared) -> Option<BTreeMap<String, String>> {
    let path = shared.config.node_images.as_ref()?;
    let text = std::fs::read_to_string(path).unwrap_or_default();
    Some(
        text.lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                Some((words.next()?.to_string(), words.next()?.to_string()))
            })
            .collect(),
    )
}

/// What the kubelet reports as a running container's `imageID`: `REPOSITORY@sha256:…` (the
/// image's repo digest). An imported image has the digest it was imported with; a pulled one
/// the digest its reference names, else a digest derived from the reference (kube-sim has no
/// registry to ask, and the same reference must give the same ID in every run).
pub(crate) fn image_id(shared: &Shared, image: &str) -> String {
    let r = parse(image);
    if let Some(d) = stored_images(shared).and_then(|s| s.get(image).cloned()) {
        return format!("{}@{d}", r.repository);
    }
    let digest = r.digest.clone().unwrap_or_else(|| {
        let sum = Sha256::digest(format!(
            "{}:{}",
            r.repository,
            r.tag.as_deref().unwrap_or("")
        ));
        format!("sha256:{}", hex(&sum))
    });
    format!("{}@{digest}", r.repository)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A made-up but stable size, so the list's order (largest first) is the same in every run.
fn size_of(id: &str) -> u64 {
    let sum = Sha256::digest(id.as_bytes());
    10_000_000 + u64::from(u32::from_be_bytes([sum[0], sum[1], sum[2], sum[3]]) % 90_000_000)
}

/// `status.images` from the store and the containers that ran: one entry per image ID, its names
/// the repo digest and the tag, largest first, at most `MAX_IMAGES` (as the kubelet lists them).
fn image_list(stored: &BTreeMap<String, String>, ran: &BTreeSet<(String, String)>) -> Value {
    let mut names: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let imported = stored.iter().map(|(name, digest)| {
        let r = parse(name);
        (format!("{}@{digest}", r.repository), name.clone())
    });
    for (id, image) in imported.chain(ran.iter().cloned()) {
        let r = parse(&image);
        let entry = names.entry(id.clone()).or_default();
        entry.insert(id);
        if let Some(tag) = r.tag {
            entry.insert(format!("{}:{tag}", r.repository));
        }
    }
    let mut list: Vec<(u64, Vec<String>)> = names
        .into_iter()
        .map(|(id, n)| (size_of(&id), n.into_iter().collect()))
        .collect();
    list.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    list.truncate(MAX_IMAGES);
    list.into_iter()
        .map(|(size, names)| json!({"names": names, "sizeBytes": size}))
        .collect()
}

/// The (imageID, image) of every container that started on the node (pods still stored).
fn images_that_ran(st: &State) -> BTreeSet<(String, String)> {
    st.scan("", "pods", None)
        .flat_map(|(_, p)| {
            p["status"]["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|c| {
            let id = c["imageID"].as_str().filter(|s| !s.is_empty())?;
            Some((id.to_string(), c["image"].as_str()?.to_string()))
        })
        .collect()
}

fn key() -> ObjKey {
    ObjKey {
        group: String::new(),
        plural: "nodes".into(),
        namespace: String::new(),
        name: NODE_NAME.into(),
    }
}

/// Create `sim-node`, Ready, as a MicroK8s node on this machine's architecture.
pub(crate) fn seed(st: &mut State) {
    let ctx = WriteCtx::internal("kubelet");
    let rt = st.catalog.find("", "v1", "nodes").expect("built-in");
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    };
    let node = json!({"metadata": {"name": NODE_NAME, "labels": {
        "kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
        "node.kubernetes.io/microk8s-controlplane": "microk8s-controlplane"}}});
    let created = st.op_create(&rt, "", node, &ctx, false).expect("seed node");
    let t = crate::ops::now();
    let status = json!({
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "kubelet is posting ready status", "lastHeartbeatTime": t, "lastTransitionTime": t}],
        "addresses": [{"type": "InternalIP", "address": "10.0.0.10"}, {"type": "Hostname", "address": NODE_NAME}],
        "nodeInfo": {"architecture": arch, "operatingSystem": "linux", "osImage": "Ubuntu 24.04 LTS",
            "containerRuntimeVersion": "containerd://1.6.28", "kubeletVersion": "v1.33.5"},
    });
    write_status(st, &created, status);
}

fn write_status(st: &mut State, created: &Value, status: Value) {
    let Some(rt) = st.catalog.find("", "v1", "nodes") else {
        return;
    };
    let mut new = created.clone();
    new["status"] = status;
    let ctx = WriteCtx::internal("kubelet");
    if let Err(e) = st.finish_write(&rt, created, new, Scope::Status, Some("kubelet"), &ctx) {
        tracing::warn!(message = %e.message, "kubelet could not write the node's status");
    }
}

/// The kubelet's status loop: keep `status.images` up to date with the store and what ran
/// (images stay listed once pulled: the simulated node never garbage-collects them).
pub(crate) async fn run(shared: Arc<Shared>) {
    if shared.config.node_images.is_none() {
        return;
    }
    let mut shutdown = shared.shutdown.clone();
    let mut ran: BTreeSet<(String, String)> =
        [(image_id(&shared, SANDBOX_IMAGE), SANDBOX_IMAGE.to_string())].into();
    loop {
        let stored = stored_images(&shared).unwrap_or_default();
        {
            let mut st = shared.lock();
            ran.extend(images_that_ran(&st));
            let images = image_list(&stored, &ran);
            if let Some(node) = st.get(&key()).cloned()
                && node["status"]["images"] != images
            {
                let mut status = node["status"].clone();
                status["images"] = images;
                write_status(&mut st, &node, status);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(REFRESH) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_normalise_like_containerd() {
        for (image, repo, tag) in [
            ("nginx:1", "docker.io/library/nginx", Some("1")),
            ("nginx", "docker.io/library/nginx", Some("latest")),
            (
                "minio/minio:RELEASE",
                "docker.io/minio/minio",
                Some("RELEASE"),
            ),
            (
                "ghcr.io/dexidp/dex:v2.41.1",
                "ghcr.io/dexidp/dex",
                Some("v2.41.1"),
            ),
            ("localhost:32000/x:1", "localhost:32000/x", Some("1")),
            (
                "wharf.local/wharf-server:0.1.0",
                "wharf.local/wharf-server",
                Some("0.1.0"),
            ),
            ("a/b@sha256:00", "docker.io/a/b", None),
        ] {
            let r = parse(image);
            assert_eq!(
                (r.repository.as_str(), r.tag.as_deref()),
                (repo, tag),
                "{image}"
            );
        }
    }

    #[test]
    fn list_names_each_image_by_digest_and_tag_largest_first_capped() {
        let stored: BTreeMap<String, String> =
            [("wharf.local/s:1".to_string(), "sha256:aa".to_string())].into();
        let ran: BTreeSet<(String, String)> = (0..60)
            .map(|i| {
                (
                    format!("docker.io/library/x{i}@sha256:{i}"),
                    format!("x{i}:1"),
                )
            })
            .collect();
        let list = image_list(&stored, &BTreeSet::new());
        assert_eq!(
            list[0]["names"],
            json!(["wharf.local/s:1", "wharf.local/s@sha256:aa"])
        );
        let list = image_list(&stored, &ran);
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), MAX_IMAGES);
        let sizes: Vec<u64> = list
            .iter()
            .map(|i| i["sizeBytes"].as_u64().unwrap())
            .collect();
        assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{sizes:?}");
    }
}
