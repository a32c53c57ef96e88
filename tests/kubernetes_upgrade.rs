//! `wharf upgrade --kubernetes` end to end: the real binary against the fake `snap` and `microk8s`
//! (tests/fixtures/bin, output copied from real MicroK8s), with a kube-sim standing in for
//! MicroK8s' API server. The simulator follows the fake snap: `/version` answers the minor of the
//! channel the fake tracks, as MicroK8s' API server does after a refresh. Every scenario asserts
//! the exact host commands it ran, in order.

mod common;

use common::root_only;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;

const MODEL: &str = "wharf";

fn fake_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bin")
}

/// The version the fake snap reports for a channel (`snap list`), as `/version` gives it.
fn version_of(channel: &str) -> &'static str {
    match channel.split('/').next().unwrap_or_default() {
        "1.34" => "1.34.1",
        "1.33" => "1.33.5",
        "1.32" => "1.32.3",
        "1.31" => "1.31.9",
        _ => "1.29.15",
    }
}

/// A host with MicroK8s installed (the fake's state directory) and a home for wharf's files.
struct Host {
    state: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Host {
    /// MicroK8s tracking `channel`, refreshes held (as `wharf up` leaves it).
    fn new(channel: &str) -> Host {
        let host = Host {
            state: tempfile::tempdir().unwrap(),
            home: tempfile::tempdir().unwrap(),
        };
        host.state("microk8s.channel", &format!("{channel}\n"));
        host.state("microk8s.held", "");
        host
    }

    fn state(&self, file: &str, text: &str) {
        std::fs::write(self.state.path().join(file), text).unwrap();
    }

    fn channel(&self) -> String {
        std::fs::read_to_string(self.state.path().join("microk8s.channel"))
            .unwrap()
            .trim()
            .to_string()
    }

    fn held(&self) -> bool {
        self.state.path().join("microk8s.held").exists()
    }

    fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.state.path().join("commands.log"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    fn clear_log(&self) {
        let _ = std::fs::remove_file(self.state.path().join("commands.log"));
    }

    /// Where `wharf up` writes MicroK8s' kubeconfig, which the upgrade reads by default.
    fn wharf_kubeconfig(&self) -> PathBuf {
        self.home.path().join(".config/wharf/kubeconfig")
    }

    /// `wharf upgrade --kubernetes TARGET ARGS…`, without a terminal.
    fn upgrade(&self, target: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_wharf"))
            .args([
                "upgrade",
                "--kubernetes",
                target,
                "--wait-ready-timeout",
                "20",
            ])
            .args(args)
            .env("PATH", format!("{}:/usr/bin:/bin", fake_bin().display()))
            .env("WHARF_FAKE_STATE", self.state.path())
            .env("WHARF_FAKE_LOG", self.state.path().join("commands.log"))
            .env("HOME", self.home.path())
            .env_remove("KUBECONFIG")
            .env_remove("XDG_CONFIG_HOME")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

/// MicroK8s' API server: a kube-sim whose `/version` follows the channel the fake snap tracks.
struct ApiServer {
    sim: Arc<kube_sim::Simulator>,
    kubeconfig: PathBuf,
    stop: Arc<AtomicBool>,
    follower: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
    // Last: dropped after the simulator it serves.
    _rt: tokio::runtime::Runtime,
}

impl ApiServer {
    /// Serving the Kubernetes version of the host's channel, and following it.
    fn of(host: &Host) -> ApiServer {
        let mut server = ApiServer::at(version_of(&host.channel()));
        let channel_file = host.state.path().join("microk8s.channel");
        let stop = server.stop.clone();
        let sim = server.sim.clone();
        server.follower = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if let Ok(channel) = std::fs::read_to_string(&channel_file) {
                    sim.set_kube_version(version_of(channel.trim()));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }));
        server
    }

    /// Serving a fixed version: another cluster than this host's MicroK8s.
    fn at(version: &str) -> ApiServer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let sim = rt
            .block_on(kube_sim::Simulator::start(kube_sim::Config {
                kube_version: version.into(),
                ..kube_sim::Config::default()
            }))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        sim.write_kubeconfig(&kubeconfig, None).unwrap();
        sim.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": MODEL}}))
            .unwrap();
        ApiServer {
            sim: Arc::new(sim),
            kubeconfig,
            stop: Arc::new(AtomicBool::new(false)),
            follower: None,
            _dir: dir,
            _rt: rt,
        }
    }

    /// Write the kubeconfig where `wharf up` would have written MicroK8s' own.
    fn install_as_wharf_kubeconfig(&self, host: &Host) {
        let path = host.wharf_kubeconfig();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::copy(&self.kubeconfig, path).unwrap();
    }

    /// A release record of `app`, revision 1, deployed, whose inventory lists `objects`
    /// (apiVersion, kind, name), as `store::record` writes it.
    fn record(&self, app: &str, objects: &[(&str, &str, &str)]) {
        let inventory: Vec<_> = objects
            .iter()
            .map(|(api, kind, name)| {
                json!({"apiVersion": api, "kind": kind, "namespace": MODEL, "name": name, "digest": "sha256:0"})
            })
            .collect();
        let release: wharf::store::Release = serde_json::from_value(json!({
            "app": app, "revision": 1, "status": "deployed", "charm": app, "charmVersion": "1.0.0",
            "config": {}, "inventory": inventory, "started": "2026-01-01T00:00:00Z",
            "finished": "2026-01-01T00:01:00Z", "wharfVersion": "0.1.0",
        }))
        .unwrap();
        self.sim
            .put(release.to_secret(MODEL, &Default::default()).unwrap())
            .unwrap();
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(follower) = self.follower.take() {
            let _ = follower.join();
        }
    }
}

/// The commands assume root (as on the CI machine): a user's run adds `sudo` to `snap refresh`.
fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_contains(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

/// The platform as deployed on 1.32: only APIs that 1.33 and 1.34 serve.
fn current_platform(api: &ApiServer) {
    api.record(
        "server",
        &[
            ("apps/v1", "Deployment", "server"),
            ("v1", "Service", "server"),
            ("autoscaling/v2", "HorizontalPodAutoscaler", "server"),
        ],
    );
    api.record("gateway", &[("networking.k8s.io/v1", "Ingress", "gateway")]);
}

#[test]
fn kubernetes_upgrade_one_minor_at_a_time() {
    if !root_only() {
        return;
    }
    let host = Host::new("1.32/stable");
    let api = ApiServer::of(&host);
    current_platform(&api);
    // No --kubeconfig: the one `wharf up` wrote is used.
    api.install_as_wharf_kubeconfig(&host);

    let out = host.upgrade("1.34", &["--yes"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        host.log(),
        [
            "snap list microk8s",
            "snap refresh microk8s --channel=1.33/stable",
            "microk8s status --wait-ready --timeout 20",
            "snap refresh microk8s --channel=1.34/stable",
            "microk8s status --wait-ready --timeout 20",
            "microk8s addons repo update core",
            "snap list microk8s",
        ]
    );
    assert_eq!(host.channel(), "1.34/stable");
    assert!(host.held(), "refreshes are still held");
    assert_contains(
        &err,
        &[
            "Kubernetes 1.32 → 1.34, one minor at a time: 1.33 → 1.34",
            "refreshed MicroK8s to 1.33/stable (Kubernetes 1.33)",
            "MicroK8s 1.33 is ready",
            "updated the core add-ons repository",
        ],
    );
    assert_contains(
        &stdout(&out),
        &[
            "Kubernetes 1.32 → 1.34, one minor at a time",
            "MicroK8s:   v1.34.1, tracking 1.34/stable, refreshes held",
            &format!("API server: {} answers v1.34.1", api.sim.url()),
            "model wharf: 2 applications (4 objects) checked",
        ],
    );

    // Again: already there, so nothing is refreshed; only the finishing steps run.
    host.clear_log();
    let again = host.upgrade("1.34", &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_contains(
        &stderr(&again),
        &[
            "MicroK8s is already at Kubernetes 1.34 (tracking 1.34/stable, v1.34.1): nothing to refresh",
        ],
    );
    assert_eq!(
        host.log(),
        [
            "snap list microk8s",
            "microk8s status --wait-ready --timeout 20",
            "microk8s addons repo update core",
            "snap list microk8s",
        ]
    );
}

#[test]
fn an_api_the_target_removed_is_refused_before_any_snap_command() {
    if !root_only() {
        return;
    }
    let host = Host::new("1.32/stable");
    let api = ApiServer::of(&host);
    current_platform(&api);
    api.record(
        "trainer",
        &[
            ("apps/v1", "Deployment", "trainer"),
            ("autoscaling/v2beta2", "HorizontalPodAutoscaler", "trainer"),
            ("batch/v1beta1", "CronJob", "cleanup"),
        ],
    );
    api.sim.reset_writes();
    let kubeconfig = api.kubeconfig.display().to_string();
    let out = host.upgrade("1.34", &["--yes", "--kubeconfig", &kubeconfig]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_contains(
        &err,
        &[
            "Kubernetes 1.34 does not serve API versions the platform in model wharf uses, so nothing was refreshed",
            "  - HorizontalPodAutoscaler/trainer (namespace wharf, application trainer) uses autoscaling/v2beta2, removed in Kubernetes 1.26: use autoscaling/v2",
            "  - CronJob/cleanup (namespace wharf, application trainer) uses batch/v1beta1, removed in Kubernetes 1.25: use batch/v1",
            "`wharf deploy BUNDLE`",
        ],
    );
    assert!(!err.contains("Deployment/"), "only the blockers: {err}");
    assert_eq!(host.log(), ["snap list microk8s"], "no snap command ran");
    assert_eq!(host.channel(), "1.32/stable");
    assert_eq!(api.sim.writes(), 0, "nothing was written to the cluster");
}

#[test]
fn downgrades_bad_targets_and_unversioned_tracks_are_refused() {
    if !root_only() {
        return;
    }
    // (tracking, target, what the error says, commands run)
    let cases: &[(Option<&str>, &str, &str, &[&str])] = &[
        (
            Some("1.32/stable"),
            "1.31",
            "Kubernetes 1.31 is older than 1.32, which MicroK8s runs (tracking 1.32/stable): Kubernetes does not support downgrades",
            &["snap list microk8s"],
        ),
        (
            Some("1.32/stable"),
            "1.34.1",
            "--kubernetes `1.34.1`: give a Kubernetes minor as MAJOR.MINOR, such as 1.34",
            &[],
        ),
        (Some("1.32/stable"), "latest", "MAJOR.MINOR", &[]),
        (
            Some("latest/edge"),
            "1.34",
            "`sudo snap refresh microk8s --channel=1.32/edge`",
            &["snap list microk8s"],
        ),
        (
            None,
            "1.34",
            "MicroK8s is not installed on this host, so there is nothing to upgrade: `wharf up` installs it",
            &["snap list microk8s"],
        ),
    ];
    for (tracking, target, needle, commands) in cases {
        let host = Host::new(tracking.unwrap_or("1.32/stable"));
        if tracking.is_none() {
            std::fs::remove_file(host.state.path().join("microk8s.channel")).unwrap();
        }
        let out = host.upgrade(target, &["--yes"]);
        assert_eq!(out.status.code(), Some(1), "{target}: {}", stderr(&out));
        assert_contains(&stderr(&out), &[needle]);
        assert_eq!(host.log(), *commands, "{tracking:?} → {target}");
    }
}

#[test]
fn the_cluster_must_be_reachable_and_be_this_hosts_microk8s() {
    if !root_only() {
        return;
    }
    let host = Host::new("1.32/stable");
    // No kubeconfig anywhere.
    let out = host.upgrade("1.34", &["--yes"]);
    assert_eq!(out.status.code(), Some(1));
    assert_contains(
        &stderr(&out),
        &[
            "no kubeconfig at",
            "wharf reads the platform's release records through the kubeconfig",
            "pass --kubeconfig FILE for this host's MicroK8s (`microk8s config > FILE` writes one",
        ],
    );
    // A kubeconfig for another cluster (it runs 1.30).
    let other = ApiServer::at("1.30.12");
    let kubeconfig = other.kubeconfig.display().to_string();
    let out = host.upgrade("1.34", &["--yes", "--kubeconfig", &kubeconfig]);
    assert_eq!(out.status.code(), Some(1));
    assert_contains(
        &stderr(&out),
        &[
            "runs Kubernetes v1.30.12, but this host's MicroK8s runs 1.32 (tracking 1.32/stable): the kubeconfig names another cluster",
        ],
    );
    assert_eq!(host.log(), ["snap list microk8s", "snap list microk8s"]);
    assert_eq!(host.channel(), "1.32/stable");
}

#[test]
fn dry_run_prints_every_command_in_order_and_runs_none() {
    if !root_only() {
        return;
    }
    let host = Host::new("1.32/stable");
    let api = ApiServer::of(&host);
    current_platform(&api);
    api.sim.reset_writes();
    let kubeconfig = api.kubeconfig.display().to_string();
    let out = host.upgrade("1.34", &["--dry-run", "--kubeconfig", &kubeconfig]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    let printed: Vec<&str> = shown
        .lines()
        .filter_map(|l| l.strip_prefix("would run: "))
        .collect();
    assert_eq!(
        printed,
        [
            // shell-quoted so it can be pasted; shell-words quotes `=`
            "snap refresh microk8s '--channel=1.33/stable'",
            "microk8s status --wait-ready --timeout 20",
            "snap refresh microk8s '--channel=1.34/stable'",
            "microk8s status --wait-ready --timeout 20",
            "microk8s addons repo update core",
        ]
    );
    assert_contains(
        &shown,
        &["would check: the API server answers Kubernetes 1.34"],
    );
    assert_eq!(
        host.log(),
        ["snap list microk8s"],
        "only the read-only query ran"
    );
    assert_eq!(host.channel(), "1.32/stable");
    assert_eq!(api.sim.writes(), 0);

    // Without --dry-run and without a terminal, the refreshes need --yes.
    let out = host.upgrade("1.34", &["--kubeconfig", &kubeconfig]);
    assert_eq!(out.status.code(), Some(1));
    assert_contains(
        &stderr(&out),
        &["restarts the API server and needs your consent: pass --yes"],
    );
    assert_eq!(host.channel(), "1.32/stable");
}

#[test]
fn a_failed_refresh_says_where_the_cluster_is_and_a_rerun_resumes() {
    if !root_only() {
        return;
    }
    let host = Host::new("1.32/stable");
    let api = ApiServer::of(&host);
    current_platform(&api);
    api.install_as_wharf_kubeconfig(&host);
    host.state("fail-refresh", "1.34/stable");

    let out = host.upgrade("1.34", &["--yes"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_contains(
        &err,
        &[
            "the upgrade to Kubernetes 1.34 stopped at the refresh to 1.34/stable: the cluster is at Kubernetes 1.33 (MicroK8s v1.33.5, tracking 1.33/stable)",
            "run `wharf upgrade --kubernetes 1.34` again: it resumes from the minor MicroK8s is at",
            "`snap refresh microk8s '--channel=1.34/stable'` failed (exit code 1)",
            "Run post-refresh hook of \"microk8s\" snap",
        ],
    );
    assert_eq!(
        host.log(),
        [
            "snap list microk8s",
            "snap refresh microk8s --channel=1.33/stable",
            "microk8s status --wait-ready --timeout 20",
            "snap refresh microk8s --channel=1.34/stable",
            "snap list microk8s",
        ]
    );
    assert_eq!(host.channel(), "1.33/stable");

    // The cause is fixed: the same command goes on from 1.33.
    std::fs::remove_file(host.state.path().join("fail-refresh")).unwrap();
    host.clear_log();
    let out = host.upgrade("1.34", &["--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_contains(
        &stderr(&out),
        &["Kubernetes 1.33 → 1.34, one minor at a time: 1.34"],
    );
    assert_eq!(
        host.log(),
        [
            "snap list microk8s",
            "snap refresh microk8s --channel=1.34/stable",
            "microk8s status --wait-ready --timeout 20",
            "microk8s addons repo update core",
            "snap list microk8s",
        ]
    );
    assert_eq!(host.channel(), "1.34/stable");
    assert!(host.held());
}
