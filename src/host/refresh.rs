//! Planning a Kubernetes upgrade of MicroK8s, without running anything: which minor the snap
//! tracks, the channels to refresh through (one minor at a time: Kubernetes supports no skipped
//! minors), and which of the platform's objects use an API version that one of those minors no
//! longer serves. `action::kubernetes` runs the plan; everything here is pure and table-tested.

use std::fmt;

use crate::kube::ObjectRef;

/// A Kubernetes minor release, `1.34`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Minor {
    pub major: u32,
    pub minor: u32,
}

impl Minor {
    pub const fn new(major: u32, minor: u32) -> Minor {
        Minor { major, minor }
    }

    fn next(self) -> Minor {
        Minor::new(self.major, self.minor + 1)
    }

    /// The minor of a version string such as `v1.34.2` or `1.34` (`/version`, `snap list`).
    pub fn of_version(text: &str) -> Option<Minor> {
        let mut parts = text.trim().trim_start_matches('v').split('.');
        let major = parts.next()?.parse().ok()?;
        let minor: String = parts
            .next()?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        Some(Minor::new(major, minor.parse().ok()?))
    }
}

impl fmt::Display for Minor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Why a target was refused before anything ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "--kubernetes `{0}`: give a Kubernetes minor as MAJOR.MINOR, such as 1.34 (patch releases \
         arrive by themselves within a channel)"
    )]
    BadTarget(String),
    #[error(
        "MicroK8s tracks `{tracking}`, whose track is not a Kubernetes version, so wharf cannot tell \
         which minor it runs nor walk the minors from it. Move it to the track of the version it \
         runs ({version}) first: `sudo snap refresh microk8s --channel={suggested}`, then run \
         `wharf upgrade --kubernetes {target}` again"
    )]
    UnversionedTrack {
        tracking: String,
        version: String,
        suggested: String,
        target: Minor,
    },
    #[error(
        "Kubernetes {target} is older than {current}, which MicroK8s runs (tracking {tracking}): \
         Kubernetes does not support downgrades. To go back, restore a backup onto a fresh install \
         of {target}"
    )]
    Downgrade {
        current: Minor,
        target: Minor,
        tracking: String,
    },
    #[error(
        "Kubernetes {target} is another major version than {current}, which MicroK8s runs: wharf \
         only walks minors within Kubernetes {}", current.major
    )]
    OtherMajor { current: Minor, target: Minor },
}

/// A snap channel, `TRACK/RISK[/BRANCH]`; MicroK8s' versioned tracks are `1.32` or `1.32-strict`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub track: String,
    pub risk: String,
}

impl Channel {
    /// `1.32/stable`, `latest/edge`, `1.32-strict/candidate/hotfix` (the branch is dropped: it
    /// belongs to one revision, not to the next minor), or a bare track (`1.32` = `1.32/stable`).
    pub fn parse(text: &str) -> Channel {
        let mut parts = text.split('/');
        let track = parts.next().unwrap_or_default().to_string();
        let risk = parts.next().unwrap_or("stable").to_string();
        Channel { track, risk }
    }

    /// The Kubernetes minor of a versioned track, and the track's suffix (`-strict`).
    pub fn minor(&self) -> Option<(Minor, String)> {
        let split = self
            .track
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(self.track.len());
        let (version, suffix) = self.track.split_at(split);
        let (major, minor) = version.split_once('.')?;
        Some((
            Minor::new(major.parse().ok()?, minor.parse().ok()?),
            suffix.to_string(),
        ))
    }
}

/// Parse `--kubernetes`: exactly `MAJOR.MINOR` (a leading `v` is tolerated).
pub fn parse_target(text: &str) -> Result<Minor, PlanError> {
    let bad = || PlanError::BadTarget(text.to_string());
    let t = text.trim().trim_start_matches('v');
    let (major, minor) = t.split_once('.').ok_or_else(bad)?;
    let number = |s: &str| -> Result<u32, PlanError> {
        if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    Ok(Minor::new(number(major)?, number(minor)?))
}

/// One thing the upgrade does, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `snap refresh microk8s --channel=CHANNEL`: MicroK8s moves to Kubernetes `to`.
    Refresh { channel: String, to: Minor },
    /// `microk8s status --wait-ready`: the node answers again, now at `at`.
    WaitReady { at: Minor },
    /// `microk8s addons repo update core`: the add-on scripts of the new version.
    UpdateAddons,
}

/// What `wharf upgrade --kubernetes` will do, decided from what the snap tracks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    pub from: Minor,
    pub to: Minor,
    /// What the snap tracked before, e.g. `1.32/stable`.
    pub tracking: String,
    pub steps: Vec<Step>,
}

impl Upgrade {
    /// Every minor the cluster passes through, the target last; empty when already there.
    pub fn minors(&self) -> Vec<Minor> {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::Refresh { to, .. } => Some(*to),
                _ => None,
            })
            .collect()
    }

    /// The snap already tracks the target: nothing to refresh, only the finishing steps (which
    /// is how a run that stopped after its last refresh is resumed).
    pub fn already_at(&self) -> bool {
        self.from == self.to
    }
}

/// The plan from the channel MicroK8s tracks (and the version it runs, for the advice when the
/// track is not a version) to a target minor: one refresh and one wait per minor, keeping the
/// channel's track suffix and risk, then the add-ons repository. At the target already, only
/// the wait and the add-ons repository remain.
pub fn plan(tracking: &str, version: &str, target: Minor) -> Result<Upgrade, PlanError> {
    let channel = Channel::parse(tracking);
    let Some((current, suffix)) = channel.minor() else {
        let suggested = match Minor::of_version(version) {
            Some(m) => format!("{m}/{}", channel.risk),
            None => format!("{target}/stable"),
        };
        return Err(PlanError::UnversionedTrack {
            tracking: tracking.to_string(),
            version: version.to_string(),
            suggested,
            target,
        });
    };
    if target.major != current.major {
        return Err(PlanError::OtherMajor { current, target });
    }
    if target < current {
        return Err(PlanError::Downgrade {
            current,
            target,
            tracking: tracking.to_string(),
        });
    }
    let mut steps = Vec::new();
    let mut at = current;
    while at < target {
        at = at.next();
        steps.push(Step::Refresh {
            channel: format!("{at}{suffix}/{}", channel.risk),
            to: at,
        });
        steps.push(Step::WaitReady { at });
    }
    if steps.is_empty() {
        steps.push(Step::WaitReady { at });
    }
    steps.push(Step::UpdateAddons);
    Ok(Upgrade {
        from: current,
        to: target,
        tracking: tracking.to_string(),
        steps,
    })
}

/// API versions Kubernetes stopped serving, by release (the official deprecation guide,
/// <https://kubernetes.io/docs/reference/using-api/deprecation-guide/>; no removals in 1.30,
/// 1.31, 1.33 or 1.34).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removal {
    pub removed_in: Minor,
    pub api_version: &'static str,
    pub kinds: &'static [&'static str],
    /// What to use instead.
    pub replacement: &'static str,
}

const fn removed(
    minor: u32,
    api_version: &'static str,
    kinds: &'static [&'static str],
    replacement: &'static str,
) -> Removal {
    Removal {
        removed_in: Minor::new(1, minor),
        api_version,
        kinds,
        replacement,
    }
}

const FLOW_CONTROL: &[&str] = &["FlowSchema", "PriorityLevelConfiguration"];
const WORKLOADS: &[&str] = &["Deployment", "DaemonSet", "ReplicaSet", "StatefulSet"];

pub const REMOVALS: &[Removal] = &[
    removed(16, "extensions/v1beta1", WORKLOADS, "apps/v1"),
    removed(16, "apps/v1beta1", WORKLOADS, "apps/v1"),
    removed(16, "apps/v1beta2", WORKLOADS, "apps/v1"),
    removed(
        16,
        "extensions/v1beta1",
        &["NetworkPolicy"],
        "networking.k8s.io/v1",
    ),
    removed(
        16,
        "extensions/v1beta1",
        &["PodSecurityPolicy"],
        "policy/v1beta1 (itself removed in 1.25: Pod Security Admission replaces it)",
    ),
    removed(
        22,
        "admissionregistration.k8s.io/v1beta1",
        &[
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration",
        ],
        "admissionregistration.k8s.io/v1",
    ),
    removed(
        22,
        "apiextensions.k8s.io/v1beta1",
        &["CustomResourceDefinition"],
        "apiextensions.k8s.io/v1",
    ),
    removed(
        22,
        "apiregistration.k8s.io/v1beta1",
        &["APIService"],
        "apiregistration.k8s.io/v1",
    ),
    removed(
        22,
        "authentication.k8s.io/v1beta1",
        &["TokenReview"],
        "authentication.k8s.io/v1",
    ),
    removed(
        22,
        "authorization.k8s.io/v1beta1",
        &[
            "SubjectAccessReview",
            "LocalSubjectAccessReview",
            "SelfSubjectAccessReview",
        ],
        "authorization.k8s.io/v1",
    ),
    removed(
        22,
        "certificates.k8s.io/v1beta1",
        &["CertificateSigningRequest"],
        "certificates.k8s.io/v1",
    ),
    removed(
        22,
        "coordination.k8s.io/v1beta1",
        &["Lease"],
        "coordination.k8s.io/v1",
    ),
    removed(
        22,
        "extensions/v1beta1",
        &["Ingress"],
        "networking.k8s.io/v1",
    ),
    removed(
        22,
        "networking.k8s.io/v1beta1",
        &["Ingress", "IngressClass"],
        "networking.k8s.io/v1",
    ),
    removed(
        22,
        "rbac.authorization.k8s.io/v1beta1",
        &["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"],
        "rbac.authorization.k8s.io/v1",
    ),
    removed(
        22,
        "scheduling.k8s.io/v1beta1",
        &["PriorityClass"],
        "scheduling.k8s.io/v1",
    ),
    removed(
        22,
        "storage.k8s.io/v1beta1",
        &["CSIDriver", "CSINode", "StorageClass", "VolumeAttachment"],
        "storage.k8s.io/v1",
    ),
    removed(25, "batch/v1beta1", &["CronJob"], "batch/v1"),
    removed(
        25,
        "discovery.k8s.io/v1beta1",
        &["EndpointSlice"],
        "discovery.k8s.io/v1",
    ),
    removed(25, "events.k8s.io/v1beta1", &["Event"], "events.k8s.io/v1"),
    removed(
        25,
        "autoscaling/v2beta1",
        &["HorizontalPodAutoscaler"],
        "autoscaling/v2",
    ),
    removed(25, "policy/v1beta1", &["PodDisruptionBudget"], "policy/v1"),
    removed(
        25,
        "policy/v1beta1",
        &["PodSecurityPolicy"],
        "nothing: PodSecurityPolicy is gone; Pod Security Admission replaces it",
    ),
    removed(
        25,
        "node.k8s.io/v1beta1",
        &["RuntimeClass"],
        "node.k8s.io/v1",
    ),
    removed(
        26,
        "flowcontrol.apiserver.k8s.io/v1beta1",
        FLOW_CONTROL,
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    removed(
        26,
        "autoscaling/v2beta2",
        &["HorizontalPodAutoscaler"],
        "autoscaling/v2",
    ),
    removed(
        27,
        "storage.k8s.io/v1beta1",
        &["CSIStorageCapacity"],
        "storage.k8s.io/v1",
    ),
    removed(
        29,
        "flowcontrol.apiserver.k8s.io/v1beta2",
        FLOW_CONTROL,
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    removed(
        32,
        "flowcontrol.apiserver.k8s.io/v1beta3",
        FLOW_CONTROL,
        "flowcontrol.apiserver.k8s.io/v1",
    ),
];

/// The removal that affects an object's API version and kind, if any.
pub fn removal_of(api_version: &str, kind: &str) -> Option<&'static Removal> {
    REMOVALS
        .iter()
        .find(|r| r.api_version == api_version && r.kinds.contains(&kind))
}

/// An object the platform deployed whose API version the target (or a minor on the way to it)
/// does not serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub app: String,
    pub object: ObjectRef,
    pub removal: &'static Removal,
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.object;
        let place = match &o.namespace {
            Some(ns) => format!("namespace {ns}, "),
            None => String::new(),
        };
        write!(
            f,
            "{}/{} ({place}application {}) uses {}, removed in Kubernetes {}: use {}",
            o.kind,
            o.name,
            self.app,
            o.api_version,
            self.removal.removed_in,
            self.removal.replacement
        )
    }
}

/// The objects (application, object) that would use an API version no longer served once the
/// cluster is at `target`. Versions removed before the current minor count too: an object
/// recorded with one was deployed on an older cluster, and the next deploy of it fails as surely.
pub fn blockers<'a>(
    objects: impl IntoIterator<Item = (&'a str, &'a ObjectRef)>,
    target: Minor,
) -> Vec<Blocker> {
    objects
        .into_iter()
        .filter_map(|(app, object)| {
            let removal = removal_of(&object.api_version, &object.kind)?;
            (removal.removed_in <= target).then(|| Blocker {
                app: app.to_string(),
                object: object.clone(),
                removal,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(minor: u32) -> Minor {
        Minor::new(1, minor)
    }

    #[test]
    fn targets_must_be_major_dot_minor() {
        for (text, want) in [
            ("1.34", Some(m(34))),
            ("v1.33", Some(m(33))),
            (" 1.40 ", Some(m(40))),
            ("1.34.1", None),
            ("1", None),
            ("1.", None),
            (".34", None),
            ("1.x", None),
            ("latest", None),
            ("1.34/stable", None),
            ("", None),
            ("1.-3", None),
        ] {
            assert_eq!(parse_target(text).ok(), want, "{text:?}");
        }
        let e = parse_target("1.34.1").unwrap_err().to_string();
        assert!(e.contains("MAJOR.MINOR, such as 1.34"), "{e}");
    }

    #[test]
    fn channels_give_their_minor_and_track_suffix() {
        for (text, want) in [
            ("1.32/stable", Some((m(32), ""))),
            ("1.32", Some((m(32), ""))),
            ("1.33-strict/candidate", Some((m(33), "-strict"))),
            ("1.30/edge/hotfix-123", Some((m(30), ""))),
            ("latest/edge", None),
            ("latest/stable", None),
            ("stable", None),
            ("1/stable", None),
        ] {
            let got = Channel::parse(text).minor();
            let got = got.as_ref().map(|(mi, s)| (*mi, s.as_str()));
            assert_eq!(got, want, "{text:?}");
        }
        assert_eq!(Minor::of_version("v1.32.3"), Some(m(32)));
        assert_eq!(Minor::of_version("v1.34.0-rc.1"), Some(m(34)));
        assert_eq!(Minor::of_version("1.31+"), Some(m(31)));
        assert_eq!(Minor::of_version("garbage"), None);
    }

    fn refresh(channel: &str, to: u32) -> Step {
        Step::Refresh {
            channel: channel.into(),
            to: m(to),
        }
    }

    #[test]
    fn walks_one_minor_at_a_time_keeping_risk_and_suffix() {
        let cases: &[(&str, u32, &[Step])] = &[
            (
                "1.32/stable",
                34,
                &[
                    refresh("1.33/stable", 33),
                    Step::WaitReady { at: m(33) },
                    refresh("1.34/stable", 34),
                    Step::WaitReady { at: m(34) },
                    Step::UpdateAddons,
                ],
            ),
            (
                "1.33/stable",
                34,
                &[
                    refresh("1.34/stable", 34),
                    Step::WaitReady { at: m(34) },
                    Step::UpdateAddons,
                ],
            ),
            (
                "1.31-strict/candidate",
                32,
                &[
                    refresh("1.32-strict/candidate", 32),
                    Step::WaitReady { at: m(32) },
                    Step::UpdateAddons,
                ],
            ),
        ];
        for (tracking, target, want) in cases {
            let up = plan(tracking, "v1.0.0", m(*target)).unwrap();
            assert_eq!(up.steps, *want, "{tracking} → 1.{target}");
            assert_eq!(up.to, m(*target));
            assert_eq!(
                up.minors().last(),
                Some(&m(*target)),
                "the target comes last"
            );
        }
        let long = plan("1.28/stable", "v1.28.15", m(34)).unwrap();
        assert_eq!(
            long.minors(),
            (29..=34).map(m).collect::<Vec<_>>(),
            "every minor, none skipped"
        );
    }

    #[test]
    fn refuses_downgrades_other_majors_and_unversioned_tracks() {
        let cases: &[(&str, &str, Minor, &str)] = &[
            (
                "1.32/stable",
                "v1.32.3",
                m(31),
                "Kubernetes 1.31 is older than 1.32",
            ),
            (
                "1.32/stable",
                "v1.32.3",
                Minor::new(2, 0),
                "another major version",
            ),
            (
                "latest/edge",
                "v1.35.0",
                m(36),
                "`sudo snap refresh microk8s --channel=1.35/edge`",
            ),
            (
                "latest/stable",
                "v1.32.3",
                m(34),
                "whose track is not a Kubernetes version",
            ),
        ];
        for (tracking, version, target, needle) in cases {
            let e = plan(tracking, version, *target).unwrap_err().to_string();
            assert!(e.contains(needle), "{tracking} → {target}: {e}");
        }
        // At the target already: nothing to refresh, the finishing steps only (a resume).
        let there = plan("1.34/stable", "v1.34.1", m(34)).unwrap();
        assert!(there.already_at());
        assert_eq!(
            there.steps,
            [Step::WaitReady { at: m(34) }, Step::UpdateAddons]
        );
        assert!(there.minors().is_empty());
    }

    fn obj(api_version: &str, kind: &str, name: &str) -> ObjectRef {
        ObjectRef {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: Some("wharf".into()),
            name: name.into(),
        }
    }

    #[test]
    fn removed_apis_by_target() {
        // (apiVersion, kind, target, removed in, if it blocks)
        let cases: &[(&str, &str, u32, Option<u32>)] = &[
            (
                "autoscaling/v2beta2",
                "HorizontalPodAutoscaler",
                34,
                Some(26),
            ),
            ("autoscaling/v2beta2", "HorizontalPodAutoscaler", 25, None),
            (
                "autoscaling/v2beta1",
                "HorizontalPodAutoscaler",
                25,
                Some(25),
            ),
            ("autoscaling/v2", "HorizontalPodAutoscaler", 34, None),
            ("batch/v1beta1", "CronJob", 33, Some(25)),
            ("policy/v1beta1", "PodDisruptionBudget", 25, Some(25)),
            ("policy/v1beta1", "PodSecurityPolicy", 25, Some(25)),
            ("discovery.k8s.io/v1beta1", "EndpointSlice", 30, Some(25)),
            ("events.k8s.io/v1beta1", "Event", 25, Some(25)),
            ("storage.k8s.io/v1beta1", "CSIStorageCapacity", 27, Some(27)),
            ("storage.k8s.io/v1beta1", "CSIStorageCapacity", 26, None),
            (
                "flowcontrol.apiserver.k8s.io/v1beta1",
                "FlowSchema",
                26,
                Some(26),
            ),
            (
                "flowcontrol.apiserver.k8s.io/v1beta2",
                "FlowSchema",
                29,
                Some(29),
            ),
            (
                "flowcontrol.apiserver.k8s.io/v1beta2",
                "FlowSchema",
                28,
                None,
            ),
            (
                "flowcontrol.apiserver.k8s.io/v1beta3",
                "PriorityLevelConfiguration",
                32,
                Some(32),
            ),
            (
                "flowcontrol.apiserver.k8s.io/v1beta3",
                "FlowSchema",
                31,
                None,
            ),
            ("networking.k8s.io/v1beta1", "Ingress", 34, Some(22)),
            ("apps/v1", "Deployment", 34, None),
            ("v1", "Service", 34, None),
            ("wharf.dev/v1alpha1", "TrainJob", 34, None),
            // The kind matters: storage.k8s.io/v1beta1 went away kind by kind.
            ("storage.k8s.io/v1beta1", "StorageClass", 26, Some(22)),
        ];
        for (api, kind, target, want) in cases {
            let o = obj(api, kind, "x");
            let found = blockers([("app", &o)], m(*target));
            let got = found.first().map(|b| b.removal.removed_in.minor);
            assert_eq!(got, *want, "{api} {kind} → 1.{target}");
        }
    }

    #[test]
    fn a_blocker_names_the_object_the_version_and_the_fix() {
        let o = obj("autoscaling/v2beta2", "HorizontalPodAutoscaler", "server");
        let found = blockers([("server", &o)], m(34));
        assert_eq!(
            found[0].to_string(),
            "HorizontalPodAutoscaler/server (namespace wharf, application server) uses autoscaling/v2beta2, \
             removed in Kubernetes 1.26: use autoscaling/v2"
        );
    }

    #[test]
    fn every_removal_names_a_replacement_and_a_kind() {
        for r in REMOVALS {
            assert!(!r.kinds.is_empty() && !r.replacement.is_empty(), "{r:?}");
            assert_eq!(r.removed_in.major, 1);
        }
    }
}
