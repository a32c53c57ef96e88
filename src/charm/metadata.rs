//! `metadata.yaml`: what a charm is (name, version, images), what it needs (Kubernetes version,
//! trust, required endpoints) and what it offers (provided endpoints and the data it publishes).

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use serde::Deserialize;

/// Architectures every image must be built for: wharf targets PCs and Raspberry Pis alike.
pub const REQUIRED_ARCHES: &[&str] = &["amd64", "arm64"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Metadata {
    pub name: String,
    pub version: semver::Version,
    pub summary: String,
    #[serde(default)]
    pub description: String,
    /// `app.kubernetes.io/component`; the charm name when unset.
    #[serde(default)]
    pub component: Option<String>,
    #[serde(default = "any_version")]
    pub kube_version: semver::VersionReq,
    /// The charm creates cluster-scoped RBAC, so the bundle must grant `trust: true`.
    #[serde(default)]
    pub trust: bool,
    #[serde(default)]
    pub images: BTreeMap<String, Image>,
    #[serde(default)]
    pub provides: BTreeMap<String, Provide>,
    #[serde(default)]
    pub requires: BTreeMap<String, Require>,
    /// Conditions the charm declares for `wharf status`, first match wins.
    #[serde(default)]
    pub status: Vec<StatusRule>,
    /// Volumes that hold the application's data, which `wharf backup` streams with its in-cluster
    /// agent (`wharf backup agent`, in wharf's image): the claim (templated like the manifests'
    /// names) and how to quiesce the application while it is read.
    #[serde(default)]
    pub data: Vec<DataVolume>,
    /// API group versions beyond the built-in ones that the charm's workloads need the cluster
    /// to serve (`metrics.k8s.io/v1beta1`: its operator creates HorizontalPodAutoscalers, which
    /// read pod metrics). `wharf up` enables the MicroK8s add-on that serves each.
    #[serde(default)]
    pub apis: Vec<String>,
}

/// One data volume of a charm.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DataVolume {
    /// The PersistentVolumeClaim, e.g. `"{{ app.name }}-data"`.
    pub claim: String,
    #[serde(default)]
    pub quiesce: Quiesce,
}

/// How the application is made to stop writing while its volume is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Quiesce {
    /// Read while it runs (the application tolerates a crash-consistent copy).
    #[default]
    None,
    /// Scale its workload to zero while the volume is read, then back.
    ScaleDown,
}

fn any_version() -> semver::VersionReq {
    semver::VersionReq::STAR
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Image {
    pub upstream_source: String,
    pub arches: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provide {
    pub interface: String,
    /// What the charm publishes on this endpoint: key → tera template over its own context.
    #[serde(default)]
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Require {
    pub interface: String,
    /// An optional endpoint may stay unrelated; a required one is a render error when unrelated.
    #[serde(default)]
    pub optional: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeclaredStatus {
    Blocked,
    Waiting,
    Maintenance,
    Error,
}

impl std::fmt::Display for DeclaredStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            DeclaredStatus::Blocked => "blocked",
            DeclaredStatus::Waiting => "waiting",
            DeclaredStatus::Maintenance => "maintenance",
            DeclaredStatus::Error => "error",
        };
        f.write_str(name)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusRule {
    /// A tera expression template that renders to `true` when the rule applies.
    pub when: String,
    pub status: DeclaredStatus,
    pub message: String,
}

impl Metadata {
    /// Checks that serde cannot express; `file` is the path shown in errors.
    pub fn validate(&self, folder: &str, file: &str) -> Result<()> {
        if self.name != folder {
            bail!(
                "{file}: name: `{}` differs from the charm's folder `{folder}`; make them equal",
                self.name
            );
        }
        for (name, image) in &self.images {
            check_pinned(&image.upstream_source)
                .map_err(|why| anyhow::anyhow!("{file}: images.{name}.upstream-source: {why}"))?;
            for arch in REQUIRED_ARCHES {
                if !image.arches.iter().any(|a| a == arch) {
                    bail!(
                        "{file}: images.{name}.arches: {arch} is missing; wharf runs on amd64 and arm64, list both \
                         (and use an image that is built for both)"
                    );
                }
            }
        }
        if let Some(endpoint) = self
            .provides
            .keys()
            .find(|e| self.requires.contains_key(*e))
        {
            bail!(
                "{file}: endpoint `{endpoint}` is declared under both provides and requires; an endpoint name must be \
                 unique, rename one of them"
            );
        }
        Ok(())
    }

    pub fn component(&self) -> &str {
        self.component.as_deref().unwrap_or(&self.name)
    }
}

/// An image reference must name an exact version: a digest, or a tag other than `latest`.
fn check_pinned(reference: &str) -> std::result::Result<(), String> {
    if reference.contains("@sha256:") {
        return Ok(());
    }
    let last_segment = reference.rsplit('/').next().unwrap_or(reference);
    match last_segment.split_once(':') {
        Some((_, tag)) if !tag.is_empty() && tag != "latest" => Ok(()),
        Some((_, "latest")) => Err(format!(
            "`{reference}` uses the moving tag `latest`; pin a version tag or a digest so that deploys are repeatable"
        )),
        _ => Err(format!(
            "`{reference}` is not pinned; add a version tag (`{reference}:v1.2.3`) or a digest (`@sha256:…`)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::{DataVolume, Metadata, Quiesce, check_pinned};

    #[test]
    fn data_volumes_name_a_claim_and_how_to_quiesce() {
        let m: Metadata = serde_saphyr::from_str(
            "name: m\nversion: 1.0.0\nsummary: s\ndata:\n  - claim: \"{{ app.name }}-data\"\n    \
             quiesce: scale-down\n  - claim: logs\n",
        )
        .unwrap();
        assert_eq!(
            m.data,
            [
                DataVolume {
                    claim: "{{ app.name }}-data".into(),
                    quiesce: Quiesce::ScaleDown
                },
                DataVolume {
                    claim: "logs".into(),
                    quiesce: Quiesce::None
                }
            ]
        );
        let bad = serde_saphyr::from_str::<Metadata>(
            "name: m\nversion: 1.0.0\nsummary: s\ndata:\n  - claim: x\n    quiesce: freeze\n",
        );
        assert!(bad.is_err());
    }

    #[test]
    fn image_pinning() {
        for ok in [
            "ghcr.io/dexidp/dex:v2.41.1",
            "localhost:5000/x:1",
            "quay.io/a/b@sha256:abc",
        ] {
            assert!(check_pinned(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ghcr.io/dexidp/dex",
            "nginx:latest",
            "localhost:5000/x",
            "nginx:",
        ] {
            assert!(check_pinned(bad).is_err(), "{bad}");
        }
    }
}
