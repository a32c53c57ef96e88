//! Shared by the deploy, status and remove integration tests: a kube-sim per test, the real
//! `wharf` binary run against it through a generated kubeconfig, and the fixture bundle.
#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

pub use kube_sim::{Config, Simulator};

pub const MODEL: &str = "tiny";

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/deploy")
}

pub struct Env {
    pub sim: Simulator,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub charms: PathBuf,
}

/// A simulator with `config` and a kubeconfig for it; the charms are copied so a test may edit them.
pub async fn start(config: Config) -> Env {
    let sim = Simulator::start(config).await.expect("start kube-sim");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig, None).unwrap();
    let charms = dir.path().join("charms");
    copy_dir(&fixtures().join("charms"), &charms);
    Env {
        sim,
        dir,
        kubeconfig,
        charms,
    }
}

pub fn fast() -> Config {
    Config {
        readiness_delay: Duration::from_millis(150),
        crd_established_delay: Duration::from_millis(50),
        ..Config::default()
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

impl Env {
    /// `wharf ARGS --kubeconfig K -m tiny` with the fixture charms.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_wharf"));
        cmd.args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["-m", MODEL])
            .env("WHARF_CHARMS", &self.charms)
            .env_remove("KUBECONFIG")
            // Long enough that no renewal happens in a fast run: the lock then costs exactly two
            // writes (create, delete), which the zero-write assertions subtract.
            .env("WHARF_LOCK_SECONDS", "60")
            // `wharf upgrade` backs the model up first: into the test's directory, with a key.
            .env("HOME", self.dir.path())
            .env_remove("XDG_DATA_HOME")
            .env("WHARF_BACKUP_PASSPHRASE", "integration-test passphrase")
            .kill_on_drop(true);
        cmd
    }

    /// Like `command`, with the charms shipped inside the binary instead of the fixture ones.
    pub fn command_shipped(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = self.command(args);
        cmd.env_remove("WHARF_CHARMS");
        cmd
    }

    pub async fn wharf(&self, args: &[&str]) -> Output {
        self.command(args).output().await.expect("run wharf")
    }

    pub fn bundle(&self) -> String {
        fixtures().join("bundle.yaml").display().to_string()
    }

    /// `wharf deploy <fixture bundle> EXTRA…`
    pub async fn deploy(&self, extra: &[&str]) -> Output {
        let bundle = self.bundle();
        let mut args = vec!["deploy", bundle.as_str()];
        args.extend_from_slice(extra);
        self.wharf(&args).await
    }

    pub async fn status_json(&self) -> Value {
        let out = self.wharf(&["status", "--output", "json"]).await;
        assert!(out.status.success(), "status failed: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("status --output json is JSON")
    }

    /// The release records of an app: (revision, status), oldest first.
    pub fn records(&self, app: &str) -> Vec<(u32, String)> {
        let mut out: Vec<(u32, String)> = self
            .sim
            .list("v1", "Secret", Some(MODEL))
            .into_iter()
            .filter(|s| {
                s["type"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("wharf.dev/release."))
                    && s["metadata"]["labels"]["app"] == app
            })
            .map(|s| {
                let labels = &s["metadata"]["labels"];
                (
                    labels["revision"].as_str().unwrap().parse().unwrap(),
                    labels["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// resourceVersion of every object the fixture deploys (and the records), by "Kind/name".
    pub fn versions(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (api, kind, ns) in KINDS {
            let ns = if *ns { Some(MODEL) } else { None };
            for obj in self.sim.list(api, kind, ns) {
                let labels = &obj["metadata"]["labels"];
                if labels["app.kubernetes.io/managed-by"] == "wharf" || labels["owner"] == "wharf" {
                    let name = obj["metadata"]["name"].as_str().unwrap();
                    let rv = obj["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned();
                    out.insert(format!("{kind}/{name}"), rv);
                }
            }
        }
        out
    }

    /// Everything of wharf's left in the simulator, as "Kind/name".
    pub fn leftovers(&self) -> Vec<String> {
        let mut out: Vec<String> = self.versions().into_keys().collect();
        if self.sim.get("v1", "Namespace", "", MODEL).is_some() {
            out.push(format!("Namespace/{MODEL}"));
        }
        out
    }
}

/// Kinds the fixture touches: (apiVersion, kind, namespaced).
pub const KINDS: &[(&str, &str, bool)] = &[
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition", false),
    ("tiny.wharf.dev/v1alpha1", "Greeting", true),
    ("v1", "Secret", true),
    ("v1", "ConfigMap", true),
    ("v1", "PersistentVolumeClaim", true),
    ("v1", "Service", true),
    ("apps/v1", "Deployment", true),
    ("coordination.k8s.io/v1", "Lease", true),
];

/// Keys whose value differs between two version maps (or that are in only one).
pub fn changed(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    let mut keys: Vec<String> = before.keys().chain(after.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| before.get(k) != after.get(k))
        .collect()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn app<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["applications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["app"] == name)
        .unwrap_or_else(|| panic!("no application {name} in {status}"))
}

/// Poll until `f` is true (or panic after `secs`).
pub async fn until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// These scenarios run wharf as root, as CI does. Elsewhere they fail, unless
/// `WHARF_SKIP_ROOT_TESTS=1` skips them — which `scripts/test.sh` then reports in its summary.
pub fn root_only() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("WHARF_SKIP_ROOT_TESTS").as_deref() == Ok("1") {
        eprintln!("SKIPPED: WHARF_SKIP_ROOT_TESTS=1 (not root: this scenario was NOT exercised)");
        return false;
    }
    panic!(
        "this scenario runs wharf as root (as CI does): run the tests as root, or set \
         WHARF_SKIP_ROOT_TESTS=1 to skip it (scripts/test.sh then says so in its summary)"
    )
}
