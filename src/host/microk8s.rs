//! MicroK8s and its snap, driven through the command runner: install, hold, wait-ready,
//! add-ons, kubeconfig, and the cluster commands (add-node, join, nodes).
//!
//! When wharf is not root, MicroK8s commands run through `sg microk8s -c '…'` right after the
//! user joins the `microk8s` group, as MicroK8s documents, so no re-login is needed.

use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use super::facts::{MicroK8s, parse_snap_list};
use super::runner::{Cmd, Output, Runner};

/// The add-ons `wharf up` enables, in order; MetalLB gets its range appended.
pub const ADDONS: &[&str] = &["dns", "hostpath-storage", "ingress", "metallb", "rbac"];

/// The add-on that serves an API group a charm declares in `apis:`, by group.
pub const API_ADDONS: &[(&str, &str)] = &[("metrics.k8s.io", "metrics-server")];

/// The add-ons for a bundle whose charms need `apis` (`group/version`): [`ADDONS`], then one per
/// API group that MicroK8s serves through an add-on. An API no add-on serves is an error naming
/// it, since the bundle's workloads would fail without it.
pub fn addons_for(apis: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = ADDONS.iter().map(|a| a.to_string()).collect();
    for api in apis {
        let group = api.split_once('/').map_or(api.as_str(), |(g, _)| g);
        let Some((_, addon)) = API_ADDONS.iter().find(|(g, _)| *g == group) else {
            anyhow::bail!(
                "a charm of the bundle needs the API {api}, and wharf knows no MicroK8s add-on \
                 that serves it (known: {})",
                API_ADDONS
                    .iter()
                    .map(|(g, a)| format!("{g} from {a}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        if !out.iter().any(|a| a == addon) {
            out.push(addon.to_string());
        }
    }
    Ok(out)
}

/// How MicroK8s commands are run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Root, or a user already in the group with a fresh login: run `microk8s` directly.
    Direct,
    /// A user who just joined the group: `sg microk8s -c 'microk8s …'`.
    Sg,
}

/// MicroK8s as seen through its snap and its CLI.
pub struct MicroK8sCli<'a> {
    pub runner: &'a Runner,
    pub access: Access,
}

/// What `snap list microk8s` says, including whether refreshes are held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapState {
    pub microk8s: MicroK8s,
    pub held: bool,
}

impl<'a> MicroK8sCli<'a> {
    /// A `microk8s …` command, wrapped for the access we have.
    pub fn cmd(&self, args: &[&str]) -> Cmd {
        match self.access {
            Access::Direct => Cmd::new("microk8s").args(args.iter().copied()),
            Access::Sg => {
                let line =
                    shell_words::join(std::iter::once("microk8s").chain(args.iter().copied()));
                Cmd::new("sg").args(["microk8s", "-c"]).arg(line)
            }
        }
    }

    /// Installed or not, its version, channel and hold.
    pub fn snap_state(&self) -> anyhow::Result<SnapState> {
        let out = self
            .runner
            .output(&Cmd::new("snap").args(["list", "microk8s"]).read_only())?;
        if !out.success() {
            if out.stderr.contains("no matching snaps") {
                return Ok(SnapState {
                    microk8s: MicroK8s::NotInstalled,
                    held: false,
                });
            }
            anyhow::bail!("`snap list microk8s` failed:\n{}", out.tail());
        }
        let (version, tracking) = parse_snap_list(&out.stdout, "microk8s")
            .with_context(|| format!("cannot read `snap list microk8s` output:\n{}", out.stdout))?;
        let held = out
            .stdout
            .lines()
            .filter(|l| l.starts_with("microk8s "))
            .any(|l| {
                l.split_whitespace()
                    .nth(5)
                    .is_some_and(|n| n.split(',').any(|x| x == "held"))
            });
        Ok(SnapState {
            microk8s: MicroK8s::Installed {
                version,
                tracking,
                running: true,
            },
            held,
        })
    }

    pub fn install(&self, channel: &str) -> anyhow::Result<Output> {
        let cmd = Cmd::new("snap")
            .args(["install", "microk8s", "--classic"])
            .arg(format!("--channel={channel}"))
            .timeout(Duration::from_secs(900));
        Ok(self.runner.run(&cmd)?)
    }

    pub fn hold(&self) -> anyhow::Result<Output> {
        Ok(self
            .runner
            .run(&Cmd::new("snap").args(["refresh", "--hold", "microk8s"]))?)
    }

    /// `microk8s status --wait-ready --timeout N`; MicroK8s waits forever without a timeout.
    pub fn wait_ready(&self, timeout: Duration) -> anyhow::Result<Output> {
        Ok(self.runner.run(&self.wait_ready_cmd(timeout))?)
    }

    /// The command `wait_ready` runs.
    pub fn wait_ready_cmd(&self, timeout: Duration) -> Cmd {
        let secs = timeout.as_secs().to_string();
        self.cmd(&["status", "--wait-ready", "--timeout", &secs])
            .read_only()
            // Our own limit is a little longer than the one MicroK8s is given.
            .timeout(timeout + Duration::from_secs(30))
    }

    /// `snap refresh microk8s --channel=CHANNEL`: moves MicroK8s to another channel (and with a
    /// new track, another Kubernetes minor), restarting every service. A hold set with
    /// `snap refresh --hold` does not stop it: holds only apply to general and automatic refreshes.
    pub fn refresh_cmd(channel: &str) -> Cmd {
        Cmd::new("snap")
            .args(["refresh", "microk8s"])
            .arg(format!("--channel={channel}"))
            .timeout(Duration::from_secs(900))
    }

    /// `microk8s addons repo update NAME`: the add-ons repository (`core`, `community`) is a git
    /// clone that a refresh does not update by itself.
    pub fn addons_repo_update_cmd(&self, repository: &str) -> Cmd {
        self.cmd(&["addons", "repo", "update", repository])
            .timeout(Duration::from_secs(300))
    }

    /// `microk8s status --format yaml`, parsed.
    pub fn status(&self) -> anyhow::Result<Status> {
        let out = self
            .runner
            .run(&self.cmd(&["status", "--format", "yaml"]).read_only())?;
        Status::parse(&out.stdout)
    }

    pub fn enable(&self, addon: &str) -> anyhow::Result<Output> {
        let cmd = self
            .cmd(&["enable", addon])
            .timeout(Duration::from_secs(600));
        Ok(self.runner.run(&cmd)?)
    }

    /// `microk8s ctr --namespace k8s.io images ls`: the images Kubernetes' containerd holds.
    pub fn images_ls_cmd(&self) -> Cmd {
        self.cmd(&["ctr", "--namespace", "k8s.io", "images", "ls"])
            .read_only()
    }

    /// Each image reference containerd lists, with the digest of its index or manifest.
    pub fn image_digests(&self) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
        let cmd = self.images_ls_cmd();
        let out = self.runner.run(&cmd)?;
        Ok(parse_images_ls(&out.stdout))
    }

    /// `microk8s ctr --namespace k8s.io images import FILE`: an OCI archive into the containerd
    /// the kubelet uses (MicroK8s' snap is classic, so it reads any path).
    pub fn images_import_cmd(&self, archive: &std::path::Path) -> Cmd {
        let file = archive.display().to_string();
        self.cmd(&["ctr", "--namespace", "k8s.io", "images", "import", &file])
            .timeout(Duration::from_secs(900))
    }

    /// The admin kubeconfig (`microk8s config`).
    pub fn config(&self) -> anyhow::Result<String> {
        Ok(self.runner.run(&self.cmd(&["config"]).read_only())?.stdout)
    }
}

/// `ctr images ls` output (REF TYPE DIGEST SIZE PLATFORMS LABELS) as reference → digest.
pub fn parse_images_ls(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .skip_while(|l| !l.starts_with("REF"))
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.len() >= 3 && cols[2].starts_with("sha256:"))
                .then(|| (cols[0].to_string(), cols[2].to_string()))
        })
        .collect()
}

/// `microk8s status --format yaml`. MicroK8s prints it from Python, so booleans are `True`/`False`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Status {
    pub microk8s: Running,
    #[serde(rename = "high-availability", default)]
    pub high_availability: Option<HighAvailability>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub addons: Vec<Addon>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Running {
    #[serde(deserialize_with = "python_bool")]
    pub running: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HighAvailability {
    #[serde(deserialize_with = "python_bool")]
    pub enabled: bool,
    /// Empty (`nodes:` with nothing under it) when MicroK8s is not running.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub nodes: Vec<HaNode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HaNode {
    pub address: String,
    pub role: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Addon {
    pub name: String,
    #[serde(default)]
    pub repository: String,
    pub status: String,
}

fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// `True`/`False` (Python), `true`/`false` (YAML): whatever the YAML library makes of them.
fn python_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        Bool(bool),
        Text(String),
    }
    match B::deserialize(d)? {
        B::Bool(b) => Ok(b),
        B::Text(t) if t.eq_ignore_ascii_case("true") => Ok(true),
        B::Text(t) if t.eq_ignore_ascii_case("false") => Ok(false),
        B::Text(t) => Err(serde::de::Error::custom(format!(
            "`{t}` is not True or False"
        ))),
    }
}

impl Status {
    pub fn parse(text: &str) -> anyhow::Result<Status> {
        serde_saphyr::from_str(text).map_err(|e| {
            anyhow::anyhow!("cannot read `microk8s status --format yaml`: {e}\n{text}")
        })
    }

    pub fn is_enabled(&self, addon: &str) -> bool {
        self.addons
            .iter()
            .any(|a| a.name == addon && a.status == "enabled")
    }
}

/// `microk8s add-node --format json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AddNode {
    pub token: String,
    pub urls: Vec<String>,
}

impl AddNode {
    pub fn parse(text: &str) -> anyhow::Result<AddNode> {
        serde_json::from_str(text)
            .with_context(|| format!("cannot read `microk8s add-node --format json`:\n{text}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The columns of `ctr images ls` (containerd 1.6; tests/images.rs reads a real one too).
    #[test]
    fn reads_references_and_digests_from_ctr_images_ls() {
        let text = "REF                                                      TYPE                                                      DIGEST                                                                  SIZE      PLATFORMS                                                                    LABELS
docker.io/coredns/coredns:1.10.1                         application/vnd.docker.distribution.manifest.list.v2+json sha256:a0ead06651cf580044aeb0a0feba63591858fb2e43ade8c9dea45a6a89ae7e5e 15.4 MiB  linux/amd64,linux/arm,linux/arm64,linux/mips64le,linux/ppc64le,linux/s390x io.cri-containerd.image=managed
sha256:ead0a4a53df89fd173874b46093b6e62d8c72967bbf606d672c9e8c9b601a4fc application/vnd.docker.distribution.manifest.list.v2+json sha256:a0ead06651cf580044aeb0a0feba63591858fb2e43ade8c9dea45a6a89ae7e5e 15.4 MiB  linux/amd64 io.cri-containerd.image=managed
wharf.local/wharf-server:0.1.0                           application/vnd.oci.image.index.v1+json                   sha256:1111111111111111111111111111111111111111111111111111111111111111 9.0 MiB   linux/amd64,linux/arm64                                                      -
";
        let images = parse_images_ls(text);
        assert_eq!(
            images
                .get("wharf.local/wharf-server:0.1.0")
                .map(String::as_str),
            Some("sha256:1111111111111111111111111111111111111111111111111111111111111111")
        );
        assert_eq!(images.len(), 3);
        assert!(parse_images_ls("").is_empty());
    }

    /// Copied from `microk8s status --format yaml` on MicroK8s 1.32 (trimmed add-on list).
    const STATUS: &str = "microk8s:
  running: True
high-availability:
  enabled: False
  nodes:
    - address: 10.0.2.15:19001
      role: voter
addons:
  - name: dns
    repository: core
    description: CoreDNS
    version: 1.10.1
    status: enabled

  - name: ha-cluster
    repository: core
    description: Configure high availability on the current node
    version: 1.32.3
    status: enabled

  - name: metallb
    repository: core
    description: Loadbalancer for your Kubernetes cluster
    version: 0.13.3
    status: disabled

";

    #[test]
    fn reads_python_style_status() {
        let s = Status::parse(STATUS).unwrap();
        assert!(s.microk8s.running);
        let ha = s.high_availability.as_ref().unwrap();
        assert!(!ha.enabled);
        assert_eq!(ha.nodes[0].role, "voter");
        assert!(s.is_enabled("dns"));
        assert_eq!(
            addons_for(&[
                "metrics.k8s.io/v1beta1".into(),
                "metrics.k8s.io/v1beta1".into()
            ])
            .unwrap()
            .last()
            .map(String::as_str),
            Some("metrics-server")
        );
        assert_eq!(addons_for(&[]).unwrap(), ADDONS);
        let err = addons_for(&["custom.metrics.k8s.io/v1beta2".into()]).unwrap_err();
        assert!(
            err.to_string().contains("custom.metrics.k8s.io/v1beta2"),
            "{err}"
        );
        assert!(!s.is_enabled("metallb"));
        assert!(!s.is_enabled("ingress"));
    }

    #[test]
    fn reads_not_running_status() {
        let s = Status::parse(
            "microk8s:\n  running: False\nhigh-availability:\n  enabled: False\n  nodes:\n  message: microk8s is not running. Use microk8s inspect for a deeper inspection.\n",
        );
        // `message` sits where MicroK8s prints it; an unknown key must not break parsing.
        let s = s.unwrap();
        assert!(!s.microk8s.running);
        assert!(s.addons.is_empty());
        assert!(Status::parse("microk8s:\n  running: Maybe\n").is_err());
    }

    #[test]
    fn reads_add_node_json() {
        let a = AddNode::parse(r#"{"token": "92b2db237428470dc4fcfc4ebbd9dc81/2c0cb3284b05", "urls": ["10.0.2.15:25000/92b2db237428470dc4fcfc4ebbd9dc81/2c0cb3284b05"]}"#).unwrap();
        assert_eq!(a.urls.len(), 1);
        assert!(AddNode::parse("Join node with: microk8s join ...").is_err());
    }

    #[test]
    fn sg_wraps_the_quoted_command_line() {
        let runner = Runner::new();
        let cli = MicroK8sCli {
            runner: &runner,
            access: Access::Sg,
        };
        assert_eq!(
            cli.cmd(&["enable", "metallb:10.0.0.1-10.0.0.9"]).display(),
            "sg microk8s -c 'microk8s enable metallb:10.0.0.1-10.0.0.9'"
        );
        let direct = MicroK8sCli {
            runner: &runner,
            access: Access::Direct,
        };
        assert_eq!(direct.cmd(&["config"]).display(), "microk8s config");
    }
}
