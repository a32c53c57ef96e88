//! `wharf check` end to end: the real binary against the fixture host trees (Raspberry Pi 4
//! without cgroup flags, a small VM, a large host) with fake `snap`/`sysctl` on PATH, and once
//! against this machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fake_path() -> String {
    format!("{}:/usr/bin:/bin", fixtures().join("bin").display())
}

/// `wharf check --output json` on a host root, with the fake commands first on PATH.
fn check(root: &Path, bundle: &str, extra: &[&str]) -> (Output, PathBuf, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let log = state.path().join("commands.log");
    let bundle = fixtures().join(format!("hosts/requirements-{bundle}.yaml"));
    let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["check", "--output", "json", "--bundle"])
        .arg(&bundle)
        .args(extra)
        .env("WHARF_HOST_ROOT", root)
        .env("PATH", fake_path())
        .env("WHARF_FAKE_STATE", state.path())
        .env("WHARF_FAKE_LOG", &log)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (out, log, state)
}

fn statuses(out: &Output) -> (String, BTreeMap<String, String>) {
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let map = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let status = c["status"].as_str().unwrap().to_string();
            if status != "pass" {
                assert!(
                    c["fix"].as_str().is_some_and(|f| !f.is_empty()),
                    "{c} needs a fix"
                );
            }
            (c["name"].as_str().unwrap().to_string(), status)
        })
        .collect();
    (json["verdict"].as_str().unwrap().to_string(), map)
}

fn host(name: &str) -> PathBuf {
    fixtures().join("hosts").join(name)
}

/// Every check not listed must pass.
fn assert_checks(got: &BTreeMap<String, String>, not_passing: &[(&str, &str)]) {
    assert_eq!(got.len(), 21, "{got:?}");
    for (name, status) in got {
        let want = not_passing
            .iter()
            .find(|(n, _)| n == name)
            .map_or("pass", |(_, s)| s);
        assert_eq!(status, want, "check {name}");
    }
}

#[test]
fn raspberry_pi_without_cgroup_flags_fails() {
    let (out, _, _state) = check(&host("rpi4-no-cgroup"), "lite", &[]);
    assert_eq!(out.status.code(), Some(1));
    let (verdict, got) = statuses(&out);
    assert_eq!(verdict, "fail");
    assert_checks(
        &got,
        &[
            ("cgroup-memory", "fail"),
            ("raspberry-pi", "fail"),
            ("inotify-instances", "fail"),
            ("inotify-watches", "fail"),
        ],
    );
}

#[test]
fn small_vm_fails_memory_disk_inotify_hostname_and_port_80() {
    let (out, _, _state) = check(&host("small-vm"), "lite", &[]);
    assert_eq!(out.status.code(), Some(1));
    let (verdict, got) = statuses(&out);
    assert_eq!(verdict, "fail");
    assert_checks(
        &got,
        &[
            ("memory", "fail"),
            ("memory-available", "warn"),
            ("disk", "fail"),
            ("inotify-instances", "fail"),
            ("inotify-watches", "fail"),
            ("hostname", "fail"),
            ("port-80", "fail"),
            ("swap", "warn"),
        ],
    );
}

#[test]
fn large_host_passes_lite_and_full() {
    for bundle in ["lite", "full"] {
        let (out, log, _state) = check(&host("large-host"), bundle, &[]);
        assert_eq!(out.status.code(), Some(0), "{bundle}");
        let (verdict, got) = statuses(&out);
        assert_eq!(verdict, "pass", "{bundle}");
        assert_checks(&got, &[]);
        // The MicroK8s check asked snap, read-only, and nothing else ran.
        assert_eq!(
            std::fs::read_to_string(log).unwrap(),
            "snap list microk8s\n"
        );
    }
}

/// `full` (lite + workspaces, one replica each) is made for one 8 GB machine: a Raspberry Pi
/// with 8 GB passes its memory and CPU checks (the replicas are the `ha` overlay's).
#[test]
fn the_full_bundle_fits_an_8_gb_pi_and_its_ha_overlay_does_not() {
    // The fixtures carry the shipped files' requirements, exactly.
    for (fixture, shipped) in [("full", "full"), ("full-ha", "ha")] {
        let read = |path: PathBuf| -> Value {
            serde_saphyr::from_str::<Value>(&std::fs::read_to_string(&path).unwrap()).unwrap()
                ["requirements"]
                .clone()
        };
        assert_eq!(
            read(fixtures().join(format!("hosts/requirements-{fixture}.yaml"))),
            read(Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("bundles/{shipped}.yaml"))),
            "{fixture}"
        );
    }
    let (out, _, _state) = check(&host("rpi4-no-cgroup"), "full", &[]);
    let (_, got) = statuses(&out);
    assert_eq!(got["memory"], "pass", "8 GB is enough for full");
    assert_eq!(got["cpu"], "pass");
    let (out, _, _state) = check(&host("rpi4-no-cgroup"), "full-ha", &[]);
    let (_, got) = statuses(&out);
    assert_eq!(got["memory"], "fail", "8 GB is not enough for two replicas");
}

#[test]
fn installed_microk8s_is_reported_with_its_version() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join("microk8s.channel"), "1.32/stable\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["check", "--output", "json", "--bundle"])
        .arg(fixtures().join("hosts/requirements-lite.yaml"))
        .env("WHARF_HOST_ROOT", host("large-host"))
        .env("PATH", fake_path())
        .env("WHARF_FAKE_STATE", state.path())
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let microk8s = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "microk8s")
        .unwrap();
    assert_eq!(microk8s["status"], "pass");
    assert_eq!(microk8s["detail"], "v1.32.3 tracking 1.32/stable, running");
}

#[test]
fn without_snap_on_path_the_snap_check_fails() {
    let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["check", "--output", "json", "--bundle"])
        .arg(fixtures().join("hosts/requirements-lite.yaml"))
        .env("WHARF_HOST_ROOT", host("large-host"))
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let (_, got) = statuses(&out);
    assert_eq!(got["snap"], "fail");
}

/// A copy of a fixture tree that `--fix` may write into.
fn scratch_copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", host(name).display()))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

#[test]
fn fix_with_yes_raises_inotify_limits() {
    let root = scratch_copy("small-vm");
    let (out, log, _state) = check(root.path(), "lite", &["--fix", "--yes"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !nix::unistd::geteuid().is_root() {
        assert!(stderr.contains("sudo wharf check --fix"), "{stderr}");
        return;
    }
    let conf =
        std::fs::read_to_string(root.path().join("etc/sysctl.d/60-wharf-inotify.conf")).unwrap();
    assert!(
        conf.contains("fs.inotify.max_user_watches = 1048576"),
        "{conf}"
    );
    assert_eq!(
        std::fs::read_to_string(log).unwrap(),
        "snap list microk8s\nsysctl --system\nsnap list microk8s\n"
    );
    // The report is taken after the fix: the fake sysctl applied the limits to the tree.
    let (_, got) = statuses(&out);
    assert_eq!(got["inotify-instances"], "pass", "{stderr}");
    assert_eq!(got["inotify-watches"], "pass");
    assert_eq!(got["memory"], "fail", "--fix touches only the safe fixes");
}

#[test]
fn fix_without_terminal_or_yes_names_the_flag() {
    let root = scratch_copy("small-vm");
    let (out, _, _state) = check(root.path(), "lite", &["--fix"]);
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = if nix::unistd::geteuid().is_root() {
        "pass --yes"
    } else {
        "sudo wharf check --fix"
    };
    assert!(stderr.contains(want), "{stderr}");
    assert!(
        !root.path().join("etc/sysctl.d").exists(),
        "nothing written"
    );
}

#[test]
fn text_output_is_a_table_with_a_verdict_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["check", "--bundle"])
        .arg(fixtures().join("hosts/requirements-lite.yaml"))
        .env("WHARF_HOST_ROOT", host("rpi4-no-cgroup"))
        .env("PATH", fake_path())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("CHECK "), "{text}");
    assert!(text.contains("raspberry-pi       FAIL"), "{text}");
    assert!(text.contains("fix: `wharf up` adds them"), "{text}");
    assert!(
        text.contains("\nFAIL: 17 passed, 0 warned, 4 failed (bundle "),
        "{text}"
    );
}

#[test]
fn yaml_output_parses() {
    let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["check", "--output", "yaml", "--bundle"])
        .arg(fixtures().join("hosts/requirements-lite.yaml"))
        .env("WHARF_HOST_ROOT", host("large-host"))
        .env("PATH", fake_path())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("verdict: pass"), "{text}");
    assert!(text.contains("- name: cpu"), "{text}");
}

#[test]
fn a_bad_requirements_block_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("b.yaml");
    std::fs::write(
        &bundle,
        "name: b\nrequirements:\n  cpu: 2\n  memory: 4GB\n  disk: 20Gi\napplications:\n  gateway: {charm: gateway}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["check", "--bundle"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("requirements.memory"), "{stderr}");
    assert!(stderr.contains("4GB"), "{stderr}");
}

#[test]
fn this_machine_gives_well_formed_json_with_every_check() {
    let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["check", "--output", "json", "--bundle"])
        .arg(fixtures().join("hosts/requirements-lite.yaml"))
        .env_remove("WHARF_HOST_ROOT")
        .output()
        .unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)), "{out:?}");
    let (verdict, got) = statuses(&out);
    assert!(["pass", "warn", "fail"].contains(&verdict.as_str()));
    for name in [
        "cpu",
        "memory",
        "memory-available",
        "disk",
        "os",
        "arch",
        "inotify-instances",
        "inotify-watches",
        "cgroup-memory",
        "raspberry-pi",
        "hostname",
        "port-16443",
        "port-10250",
        "port-25000",
        "port-19001",
        "port-12379",
        "port-80",
        "port-443",
        "snap",
        "microk8s",
        "swap",
    ] {
        assert!(got.contains_key(name), "missing {name}: {got:?}");
    }
}
