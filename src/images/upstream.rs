//! The images a bundle runs that wharf does not build (Dex, oauth2-proxy, MinIO, nginx), read from
//! its charms' `metadata.yaml`, and the command that fetches each on a machine with internet
//! access, for an air-gapped site.

use std::collections::BTreeSet;

use crate::bundle::Bundle;
use crate::charm::{Charm, Source};

use super::REGISTRY;

/// One image a charm names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Upstream {
    pub reference: String,
    pub charm: String,
    pub arches: Vec<String>,
}

impl Upstream {
    /// The digest the charm pins (`name:tag@sha256:…`), if it pins one.
    pub fn pinned_digest(&self) -> Option<&str> {
        self.reference
            .split_once('@')
            .map(|(_, d)| d)
            .filter(|d| d.starts_with("sha256:"))
    }

    /// The one-line way to fetch it elsewhere, into an archive `wharf images import` reads.
    pub fn skopeo_command(&self) -> String {
        let file = self
            .reference
            .rsplit('/')
            .next()
            .unwrap_or(&self.reference)
            .replace([':', '@'], "_");
        format!(
            "skopeo copy --all docker://{r} oci-archive:{file}.tar:{r}",
            r = self.reference
        )
    }
}

/// The upstream images of every charm the bundle deploys, once each, sorted.
pub fn images(bundle_spec: &str, charms: &Source) -> anyhow::Result<Vec<Upstream>> {
    let bundle = Bundle::load(bundle_spec, &[], &[])?;
    let names: BTreeSet<&String> = bundle.applications.values().map(|a| &a.charm).collect();
    let mut out = BTreeSet::new();
    for name in names {
        let charm = Charm::load(charms, name)?;
        for image in charm.meta.images.values() {
            if image.upstream_source.starts_with(&format!("{REGISTRY}/")) {
                continue;
            }
            out.insert(Upstream {
                reference: image.upstream_source.clone(),
                charm: name.clone(),
                arches: image.arches.clone(),
            });
        }
    }
    Ok(out.into_iter().collect())
}

/// The advice for images pinned by tag only: a tag can be moved to other bytes, a digest cannot.
pub fn unpinned_note(unpinned: &[&Upstream]) -> Option<String> {
    if unpinned.is_empty() {
        return None;
    }
    let list: Vec<&str> = unpinned.iter().map(|u| u.reference.as_str()).collect();
    Some(format!(
        "{} upstream image(s) are pinned by tag only: {}. Pin each in its charm's metadata.yaml as \
         `name:tag@sha256:…` with its image index digest, read on a machine with network access \
         (`skopeo inspect --raw docker://REF | sha256sum`, or `wharf images export --upstream`, \
         which prints the digest it pulled); `wharf images export --upstream` then checks the \
         bytes it pulls against the pin.",
        list.len(),
        list.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_is_the_digest_after_the_tag() {
        let u = |r: &str| Upstream {
            reference: r.into(),
            charm: "c".into(),
            arches: vec![],
        };
        assert_eq!(
            u("quay.io/minio/mc:RELEASE.x@sha256:ab").pinned_digest(),
            Some("sha256:ab")
        );
        assert_eq!(u("ghcr.io/dexidp/dex:v2.41.1").pinned_digest(), None);
        let dex = u("ghcr.io/dexidp/dex:v2.41.1");
        let note = unpinned_note(&[&dex]).unwrap();
        assert!(
            note.starts_with(
                "1 upstream image(s) are pinned by tag only: ghcr.io/dexidp/dex:v2.41.1."
            ),
            "{note}"
        );
        assert!(unpinned_note(&[]).is_none());
    }

    #[test]
    fn lite_runs_five_upstream_images_and_wharf_builds_the_rest() {
        let list = images("lite", &Source::new(None)).unwrap();
        let refs: Vec<&str> = list.iter().map(|u| u.reference.as_str()).collect();
        assert_eq!(
            refs,
            vec![
                "docker.io/nginxinc/nginx-unprivileged:1.27.3-alpine",
                "ghcr.io/dexidp/dex:v2.41.1",
                "quay.io/minio/mc:RELEASE.2024-11-21T17-21-54Z",
                "quay.io/minio/minio:RELEASE.2024-12-18T13-15-44Z",
                "quay.io/oauth2-proxy/oauth2-proxy:v7.7.1",
            ]
        );
        assert_eq!(
            list[1].skopeo_command(),
            "skopeo copy --all docker://ghcr.io/dexidp/dex:v2.41.1 oci-archive:dex_v2.41.1.tar:ghcr.io/dexidp/dex:v2.41.1"
        );
    }
}
