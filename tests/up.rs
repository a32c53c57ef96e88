//! `wharf up` end to end against fake `snap`, `microk8s`, `usermod` and `sg` (tests/fixtures/bin,
//! output copied from real MicroK8s) on a copy of a fixture host tree. Every scenario asserts the
//! exact commands it ran, in order. Most scenarios skip the deploy (`--skip-deploy`): it is the
//! deploy engine's, tested against the API simulator in its own tests. Steps 7-8 (deploy, gateway
//! address, public URL, HTTP checks) run against the simulator and a local fake of the gateway.

mod common;

use common::root_only;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A scratch host: a copy of a fixture tree, a fake-command state directory, a home.
struct Host {
    root: tempfile::TempDir,
    state: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Host {
    fn new(fixture: &str) -> Host {
        let root = tempfile::tempdir().unwrap();
        let ok = Command::new("cp")
            .arg("-a")
            .arg(format!(
                "{}/.",
                fixtures().join("hosts").join(fixture).display()
            ))
            .arg(root.path())
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let host = Host {
            root,
            state: tempfile::tempdir().unwrap(),
            home: tempfile::tempdir().unwrap(),
        };
        write_images_archive(&host.images(), "1");
        host
    }

    /// The image archive `wharf up` imports (`WHARF_IMAGES`): wharf's two image names, with
    /// stand-in content (the fake `microk8s ctr` reads only the names and digests).
    fn images(&self) -> PathBuf {
        self.state.path().join("wharf-images.tar")
    }

    /// What the fake containerd holds, as `REF DIGEST` lines.
    fn containerd_images(&self) -> String {
        std::fs::read_to_string(self.state.path().join("images")).unwrap_or_default()
    }

    fn state(&self, file: &str, text: &str) {
        std::fs::write(self.state.path().join(file), text).unwrap();
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

    fn kubeconfig(&self) -> PathBuf {
        self.home.path().join(".config/wharf/kubeconfig")
    }

    /// `wharf up` with the lite requirements, without a terminal.
    fn up(&self, extra: &[&str]) -> Output {
        self.command()
            .arg("--bundle")
            .arg(fixtures().join("hosts/requirements-lite.yaml"))
            .args(extra)
            .output()
            .unwrap()
    }

    /// `wharf up --bundle lite` that deploys to a simulator: the fake `microk8s config` prints
    /// the simulator's kubeconfig, which step 6 writes where a real run writes MicroK8s' own.
    fn up_deploying(&self, sim: &Sim, extra: &[&str]) -> Output {
        self.command()
            .args(DEPLOYING)
            .args(extra)
            .env("WHARF_FAKE_KUBECONFIG", &sim.kubeconfig)
            .output()
            .unwrap()
    }

    /// The public URL an earlier run chose, as `wharf up` remembers it.
    fn remembered_url(&self) -> Option<String> {
        std::fs::read_to_string(self.home.path().join(".config/wharf/wharf.public-url")).ok()
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wharf"));
        cmd.arg("up")
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", fixtures().join("bin").display()),
            )
            .env("WHARF_HOST_ROOT", self.root.path())
            .env("WHARF_FAKE_STATE", self.state.path())
            .env("WHARF_FAKE_LOG", self.state.path().join("commands.log"))
            .env("HOME", self.home.path())
            .env("WHARF_IMAGES", self.images())
            .env("SUDO_USER", "alice")
            .env_remove("KUBECONFIG")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("WHARF_FAKE_KUBECONFIG")
            .stdin(Stdio::null());
        cmd
    }
}

/// An OCI archive naming wharf's images, with a blob that depends on `content` (so a test can
/// make "a new build" with other digests). Returns the digests by reference.
fn write_images_archive(path: &Path, content: &str) -> Vec<(String, String)> {
    use wharf::images::oci::{Blob, Layout, MEDIA_CONFIG, MEDIA_MANIFEST, Manifest};
    let mut layout = Layout::default();
    let mut named = Vec::new();
    for workload in wharf::images::Workload::ALL {
        let config = Blob::new(
            MEDIA_CONFIG,
            format!("{{\"x\":\"{content}\"}}").into_bytes(),
        );
        let manifest = Blob::json(
            MEDIA_MANIFEST,
            &Manifest {
                schema_version: 2,
                media_type: Some(MEDIA_MANIFEST.into()),
                config: config.descriptor.clone(),
                layers: Vec::new(),
                annotations: [("title".to_string(), workload.name().to_string())].into(),
            },
        );
        layout.add_blob(&config);
        layout.add_blob(&manifest);
        layout.name(&workload.reference(), &manifest.descriptor);
        named.push((workload.reference(), manifest.descriptor.digest.clone()));
    }
    layout.write_file(path).unwrap();
    named
}

const FULL: &[&str] = &[
    "--metallb",
    "192.0.2.240-192.0.2.250",
    "--admin-user",
    "admin",
    "--yes",
    "--skip-deploy",
];

/// The commands assume root (as on the CI machine): a user's run adds `sudo`/`sg`, unit-tested.
fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const ADDONS_ENABLED: &[&str] = &[
    "microk8s enable dns",
    "microk8s enable hostpath-storage",
    "microk8s enable ingress",
    "microk8s enable metallb:192.0.2.240-192.0.2.250",
    "microk8s enable rbac",
    // No metrics-server: the fixture bundle has only the gateway, whose charm needs no extra
    // API (`up_takes_the_public_url_from_the_gateway_address_and_keeps_it` deploys lite, whose
    // server charm does).
];

#[test]
fn fresh_host_installs_everything_in_order() {
    if !root_only() {
        return;
    }
    let host = Host::new("large-host");
    let out = host.up(FULL);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut want = vec![
        "snap list microk8s",
        "snap list microk8s",
        "snap install microk8s --classic --channel=1.32/stable",
        "snap refresh --hold microk8s",
        "usermod -a -G microk8s alice",
        "microk8s status --wait-ready --timeout 300",
        "microk8s status --format yaml",
    ];
    want.extend(ADDONS_ENABLED);
    want.push("microk8s config");
    assert_eq!(host.log(), want);
    let kubeconfig = std::fs::read_to_string(host.kubeconfig()).unwrap();
    assert!(kubeconfig.contains("server: https://10.0.2.15:16443"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(host.kubeconfig())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the kubeconfig holds admin credentials"
    );
    let err = stderr(&out);
    for step in [
        "[1/10] host check",
        "[5/10] add-ons: enabled dns, hostpath-storage",
        "[8/10] deploy: skipped",
    ] {
        assert!(err.contains(step), "{err}");
    }
    assert!(String::from_utf8_lossy(&out.stdout).contains("export KUBECONFIG="));

    // A second run finds everything in place and changes nothing.
    host.clear_log();
    let again = host.up(FULL);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        host.log(),
        vec![
            "snap list microk8s",
            "snap services microk8s",
            "snap list microk8s",
            "microk8s status --wait-ready --timeout 300",
            "microk8s status --format yaml",
            "microk8s config",
        ]
    );
    assert!(
        stderr(&again).contains("all enabled already"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn existing_microk8s_gets_only_the_missing_addons() {
    if !root_only() {
        return;
    }
    let host = Host::new("large-host");
    host.state("microk8s.channel", "1.32/stable\n");
    host.state("microk8s.held", "");
    host.state("addons", "dns\ningress\n");
    std::fs::create_dir_all(host.root.path().join("etc")).unwrap();
    std::fs::write(host.root.path().join("etc/group"), "microk8s:x:998:alice\n").unwrap();
    let out = host.up(FULL);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        host.log(),
        vec![
            "snap list microk8s",
            "snap services microk8s",
            "snap list microk8s",
            "microk8s status --wait-ready --timeout 300",
            "microk8s status --format yaml",
            "microk8s enable hostpath-storage",
            "microk8s enable metallb:192.0.2.240-192.0.2.250",
            "microk8s enable rbac",
            "microk8s config",
        ]
    );
}

#[test]
fn a_failing_addon_stops_with_a_clear_message_and_a_rerun_resumes() {
    if !root_only() {
        return;
    }
    let host = Host::new("large-host");
    host.state("fail-enable", "ingress");
    let out = host.up(FULL);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for needle in [
        "[5/10] add-ons: FAILED",
        "wharf up stopped at step 5/10 (add-ons)",
        "run `wharf up` again",
        "add-on ingress could not be enabled",
        "`microk8s enable ingress` failed (exit code 1)",
        "timed out waiting for the condition",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert_eq!(host.log().last().unwrap(), "microk8s enable ingress");
    assert!(
        !host.log().contains(&"microk8s enable rbac".to_string()),
        "stopped at the failure"
    );

    std::fs::remove_file(host.state.path().join("fail-enable")).unwrap();
    host.clear_log();
    let out = host.up(FULL);
    assert!(out.status.success(), "{}", stderr(&out));
    let enables: Vec<String> = host
        .log()
        .into_iter()
        .filter(|l| l.contains(" enable "))
        .collect();
    assert_eq!(
        enables,
        ADDONS_ENABLED[2..].to_vec(),
        "only what is still missing"
    );
}

#[test]
fn wait_ready_that_times_out_names_the_step_and_command() {
    if !root_only() {
        return;
    }
    let host = Host::new("large-host");
    host.state("microk8s.channel", "1.32/stable\n");
    host.state("not-ready", "");
    let mut args = FULL.to_vec();
    args.extend(["--wait-ready-timeout", "5"]);
    let out = host.up(&args);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for needle in [
        "wharf up stopped at step 4/10 (wait ready)",
        "MicroK8s is not ready after 5s",
        "`microk8s status --wait-ready --timeout 5` failed (exit code 1)",
        "microk8s is not running. Use microk8s inspect",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

#[test]
fn microk8s_on_another_channel_is_reported_not_switched() {
    if !root_only() {
        return;
    }
    let host = Host::new("large-host");
    host.state("microk8s.channel", "1.31/stable\n");
    let out = host.up(FULL);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("installed tracking 1.31/stable, not 1.32/stable"),
        "{err}"
    );
    assert!(
        err.contains("sudo snap refresh microk8s --channel=1.32/stable"),
        "{err}"
    );
    let log = host.log();
    assert!(
        !log.iter().any(|l| l.starts_with("snap install")),
        "{log:?}"
    );
    assert!(log.contains(&"snap refresh --hold microk8s".to_string()));
    assert_eq!(
        std::fs::read_to_string(host.state.path().join("microk8s.channel")).unwrap(),
        "1.31/stable\n"
    );
}

#[test]
fn raspberry_pi_gets_cgroup_flags_with_a_backup_then_asks_for_a_reboot() {
    if !root_only() {
        return;
    }
    let host = Host::new("rpi4-no-cgroup");
    let out = host.up(FULL);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("now has the cgroup flags"), "{err}");
    assert!(err.contains("sudo reboot"), "{err}");
    let cmdline = host.root.path().join("boot/firmware/cmdline.txt");
    let text = std::fs::read_to_string(&cmdline).unwrap();
    assert!(
        text.ends_with("quiet splash cgroup_enable=memory cgroup_memory=1\n"),
        "{text}"
    );
    let backup = std::fs::read_to_string(
        host.root
            .path()
            .join("boot/firmware/cmdline.txt.wharf-backup"),
    )
    .unwrap();
    assert!(!backup.contains("cgroup"), "the backup is the original");
    assert_eq!(
        host.log(),
        vec!["snap list microk8s"],
        "nothing installed before the reboot"
    );
}

#[test]
fn without_a_terminal_a_missing_value_names_its_flag() {
    let host = Host::new("large-host");
    let cases: &[(&[&str], &str)] = &[
        (&["--admin-user", "admin", "--skip-deploy"], "--metallb"),
        (
            &["--metallb", "192.0.2.240-192.0.2.250", "--skip-deploy"],
            "--admin-user",
        ),
        (
            &["--metallb", "10.1.0.5-10.1.0.9", "--yes"],
            "--metallb: `10.1.0.5-10.1.0.9`: overlaps MicroK8s' pod network",
        ),
        (
            &[
                "--metallb",
                "192.0.2.240-192.0.2.250",
                "--admin-user",
                "admin",
            ],
            "no admin password: run `wharf up` on a terminal to choose one, or pass --yes",
        ),
    ];
    for (args, needle) in cases {
        let out = host.up(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
    assert!(host.log().is_empty(), "nothing ran: {:?}", host.log());
}

#[test]
fn dry_run_prints_every_command_in_order_and_changes_nothing() {
    if !root_only() {
        return;
    }
    let host = Host::new("large-host");
    let mut args = FULL.to_vec();
    args.push("--dry-run");
    let out = host.up(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let printed: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("would run: "))
        .collect();
    let mut want = vec![
        // shell-quoted so it can be pasted; `=` is quoted by shell-words
        "snap install microk8s --classic '--channel=1.32/stable'",
        "snap refresh --hold microk8s",
        "usermod -a -G microk8s alice",
        "microk8s status --wait-ready --timeout 300",
        "microk8s status --format yaml",
    ];
    want.extend(ADDONS_ENABLED);
    want.push("microk8s config");
    assert_eq!(printed, want);
    // Only the read-only query ran; nothing was installed or written.
    assert_eq!(host.log(), vec!["snap list microk8s", "snap list microk8s"]);
    assert!(!host.state.path().join("microk8s.channel").exists());
    assert!(!host.kubeconfig().exists());
    assert!(!host.root.path().join("etc/group").exists());
}

/// `wharf cluster …` with the fake microk8s installed.
fn cluster(host: &Host, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("cluster")
        .args(args)
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", fixtures().join("bin").display()),
        )
        .env("WHARF_FAKE_STATE", host.state.path())
        .env("WHARF_FAKE_LOG", host.state.path().join("commands.log"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn cluster_add_node_prints_the_exact_join_commands() {
    if !root_only() {
        return;
    }
    let host = Host::new("large-host");
    host.state("microk8s.channel", "1.32/stable\n");
    let out = cluster(&host, &["add-node"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let conn = "10.0.2.15:25000/92b2db237428470dc4fcfc4ebbd9dc81/2c0cb3284b05";
    assert!(
        stdout.contains(&format!("wharf cluster join {conn} ")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("wharf cluster join {conn} --worker")),
        "{stdout}"
    );
    assert!(
        stdout.contains("192.168.1.10:25000/"),
        "every address is offered: {stdout}"
    );
    assert_eq!(host.log(), vec!["microk8s add-node --format json"]);
}

#[test]
fn cluster_join_runs_microk8s_join_and_keeps_the_token_out_of_errors() {
    if !root_only() {
        return;
    }
    let host = Host::new("large-host");
    host.state("microk8s.channel", "1.32/stable\n");
    let conn = "10.0.2.15:25000/92b2db237428470dc4fcfc4ebbd9dc81/2c0cb3284b05";
    let out = cluster(&host, &["join", conn, "--worker"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(host.log(), vec![format!("microk8s join {conn} --worker")]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("joined as a worker"));

    let bad = cluster(&host, &["join", "10.0.2.15"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("is not IP:PORT/TOKEN/CHECK"),
        "{}",
        stderr(&bad)
    );

    // A failing join shows the command with the token redacted.
    std::fs::remove_file(host.state.path().join("microk8s.channel")).unwrap();
    let failed = cluster(&host, &["join", conn]);
    let err = stderr(&failed);
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        err.contains("`microk8s join '<redacted>'` failed (exit code 127)"),
        "{err}"
    );
    assert!(!err.contains("92b2db23"), "{err}");
}

/// The joining node gets wharf's images in its own containerd (pods may be scheduled there), once.
#[test]
fn cluster_join_imports_the_images_on_the_joining_node() {
    if !root_only() {
        return;
    }
    let host = Host::new("large-host");
    host.state("microk8s.channel", "1.32/stable\n");
    let conn = "10.0.2.15:25000/92b2db237428470dc4fcfc4ebbd9dc81/2c0cb3284b05";
    let images = host.images().display().to_string();
    let out = cluster(&host, &["join", conn, "--images", &images]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        host.log(),
        vec![
            format!("microk8s join {conn}"),
            IMPORT_LS.to_string(),
            format!("microk8s ctr --namespace k8s.io images import {images}"),
            IMPORT_LS.to_string(),
        ]
    );
    let missing = cluster(&host, &["join", conn, "--images", "/nonexistent.tar"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("--images /nonexistent.tar: no such file"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn cluster_status_lists_nodes_roles_and_high_availability() {
    if !root_only() {
        return;
    }
    let host = Host::new("large-host");
    host.state("microk8s.channel", "1.32/stable\n");
    let out = cluster(&host, &["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("pi-node1                 true     controlplane"),
        "{stdout}"
    );
    assert!(
        stdout.contains("pi-node2                 true     worker"),
        "{stdout}"
    );
    assert!(stdout.contains("high availability: no"), "{stdout}");
    assert_eq!(
        host.log(),
        vec![
            "microk8s status --format yaml",
            "microk8s kubectl get nodes -o json"
        ]
    );
}

#[test]
fn dry_run_shows_the_deploy_command_it_would_hand_to_the_engine() {
    if !root_only() {
        return;
    }
    let host = Host::new("large-host");
    host.state("microk8s.channel", "1.32/stable\n");
    let out = host.up(&[
        "--metallb",
        "192.0.2.240-192.0.2.250",
        "--admin-user",
        "ops",
        "--public-url",
        "http://192.0.2.240.nip.io",
        "--yes",
        "--dry-run",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let bundle = fixtures().join("hosts/requirements-lite.yaml");
    let want = format!(
        "would run: wharf --kubeconfig {} --model wharf deploy {} --set 'dex-auth.static-username=ops' --public-url http://192.0.2.240.nip.io",
        host.kubeconfig().display(),
        bundle.display()
    );
    assert!(stdout.contains(&want), "{stdout}");
    assert!(
        stdout.contains("password:   not set (no deploy in this run)"),
        "{stdout}"
    );
    assert!(!host.kubeconfig().exists());
}

#[test]
fn raspberry_pi_on_ubuntu_22_04_also_gets_the_extra_kernel_modules() {
    if !root_only() {
        return;
    }
    let host = Host::new("rpi4-no-cgroup");
    let os_release = host.root.path().join("etc/os-release");
    let text = std::fs::read_to_string(&os_release)
        .unwrap()
        .replace("24.04", "22.04");
    std::fs::write(&os_release, text).unwrap();
    let out = host.up(FULL);
    assert_eq!(out.status.code(), Some(1), "stops for the reboot");
    assert_eq!(
        host.log(),
        vec![
            "snap list microk8s",
            "apt-get install -y linux-modules-extra-raspi"
        ]
    );
}

#[test]
fn an_existing_different_kubeconfig_is_replaced_only_with_consent() {
    if !root_only() {
        return;
    }
    let host = Host::new("large-host");
    host.state("microk8s.channel", "1.32/stable\n");
    host.state("microk8s.held", "");
    let mine = "apiVersion: v1\nkind: Config\nclusters: []\n";
    std::fs::create_dir_all(host.kubeconfig().parent().unwrap()).unwrap();
    std::fs::write(host.kubeconfig(), mine).unwrap();
    let no_yes = [
        "--metallb",
        "192.0.2.240-192.0.2.250",
        "--admin-user",
        "admin",
        "--skip-deploy",
    ];
    let out = host.up(&no_yes);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("wharf up stopped at step 6/10 (kubeconfig)"),
        "{err}"
    );
    assert!(
        err.contains("pass --yes to agree without a terminal"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(host.kubeconfig()).unwrap(),
        mine,
        "untouched"
    );

    let out = host.up(FULL);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        std::fs::read_to_string(host.kubeconfig())
            .unwrap()
            .contains("microk8s-cluster")
    );
}

#[test]
fn a_user_who_is_not_root_goes_through_sudo_and_sg() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if !root_only() {
        return; // needs root to become another user
    }
    let host = Host::new("large-host");
    for dir in [host.root.path(), host.state.path(), host.home.path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    std::fs::create_dir_all(host.root.path().join("etc")).unwrap();
    std::fs::set_permissions(
        host.root.path().join("etc"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("up")
        .arg("--bundle")
        .arg(fixtures().join("hosts/requirements-lite.yaml"))
        .args(FULL)
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", fixtures().join("bin").display()),
        )
        .env("WHARF_HOST_ROOT", host.root.path())
        .env("WHARF_FAKE_STATE", host.state.path())
        .env("WHARF_FAKE_LOG", host.state.path().join("commands.log"))
        .env("HOME", host.home.path())
        .env("USER", "nobody")
        .env_remove("SUDO_USER")
        .env_remove("KUBECONFIG")
        .env_remove("XDG_CONFIG_HOME")
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let log = host.log();
    let sg = |cmd: &str| format!("sg microk8s -c {cmd}");
    let mut want = vec![
        "snap list microk8s".to_string(),
        "snap list microk8s".into(),
        "sudo snap install microk8s --classic --channel=1.32/stable".into(),
        "snap install microk8s --classic --channel=1.32/stable".into(),
        "sudo snap refresh --hold microk8s".into(),
        "snap refresh --hold microk8s".into(),
        "sudo usermod -a -G microk8s nobody".into(),
        "usermod -a -G microk8s nobody".into(),
    ];
    for cmd in [
        "microk8s status --wait-ready --timeout 300",
        "microk8s status --format yaml",
    ] {
        want.push(sg(cmd));
        want.push(cmd.into());
    }
    for cmd in ADDONS_ENABLED {
        want.push(sg(cmd));
        want.push(cmd.to_string());
    }
    want.push(sg("microk8s config"));
    want.push("microk8s config".into());
    assert_eq!(log, want);
}

// ---- Steps 7-9 against the API simulator: the gateway address, public-url, the HTTP checks ----

/// A kube-sim on its own runtime (the tests here are synchronous), with a kubeconfig for it.
struct Sim {
    sim: kube_sim::Simulator,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    // Last: dropped after the simulator it serves.
    _rt: tokio::runtime::Runtime,
}

impl Sim {
    fn start(config: kube_sim::Config) -> Sim {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let sim = rt.block_on(kube_sim::Simulator::start(config)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        sim.write_kubeconfig(&kubeconfig, None).unwrap();
        Sim {
            sim,
            kubeconfig,
            _dir: dir,
            _rt: rt,
        }
    }

    fn fast() -> kube_sim::Config {
        kube_sim::Config {
            readiness_delay: std::time::Duration::from_millis(100),
            crd_established_delay: std::time::Duration::from_millis(50),
            ..kube_sim::Config::default()
        }
    }

    /// Dex's configuration as deployed (the `config.yaml` of its Secret).
    fn dex_config(&self) -> String {
        use base64::Engine;
        let secret = self
            .sim
            .get("v1", "Secret", "wharf", "dex-auth-config")
            .expect("dex-auth-config Secret");
        let data = secret["data"]["config.yaml"].as_str().unwrap();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap(),
        )
        .unwrap()
    }

    /// oauth2-proxy's arguments as deployed.
    fn gatekeeper_args(&self) -> String {
        let deploy = self
            .sim
            .get("apps/v1", "Deployment", "wharf", "oidc-gatekeeper")
            .expect("oidc-gatekeeper Deployment");
        deploy["spec"]["template"]["spec"]["containers"][0]["args"].to_string()
    }

    /// How many release records an application has (one per deploy that changed it).
    fn revisions(&self, app: &str) -> usize {
        self.sim
            .list("v1", "Secret", Some("wharf"))
            .into_iter()
            .filter(|s| {
                s["type"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("wharf.dev/release."))
                    && s["metadata"]["labels"]["app"] == app
            })
            .count()
    }
}

/// The shipped lite bundle, every answer given, and short HTTP checks: nothing here serves the
/// simulator's load-balancer addresses, so a check that cannot pass should fail quickly.
const DEPLOYING: &[&str] = &[
    "--bundle",
    "lite",
    "--metallb",
    "192.0.2.240-192.0.2.250",
    "--admin-user",
    "admin",
    "--yes",
    "--verify-timeout",
    "2s",
];

/// A stand-in for the gateway on 127.0.0.1: `/` redirects to the login as the real one does,
/// `/dex/.well-known/openid-configuration` names `issuer(base URL)`. Returns the base URL and
/// the paths it was asked for.
fn fake_gateway(
    issuer: impl Fn(&str) -> String,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let discovery = serde_json::json!({
        "issuer": issuer(&base),
        "authorization_endpoint": format!("{base}/dex/auth"),
    })
    .to_string();
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = asked.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                header.clear();
            }
            let path = request.split(' ').nth(1).unwrap_or("").to_string();
            log.lock().unwrap().push(path.clone());
            let response = match path.as_str() {
                "/" => "HTTP/1.1 302 Found\r\nLocation: /oauth2/start?rd=/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
                "/dex/.well-known/openid-configuration" => format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{discovery}",
                    discovery.len()
                ),
                _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
            };
            let _ = stream.write_all(response.as_bytes());
        }
    });
    (base, asked)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (a) No --public-url: the address comes from the gateway Service (the simulator's pool starts at
/// 10.64.140.43), the bundle is deployed again with public-url http://10.64.140.43.nip.io, and
/// the URL is remembered for the next run. That address serves nothing here, so the HTTP check
/// fails, honestly, and must say which URL it tried (no test-only switch skips it).
#[test]
fn up_takes_the_public_url_from_the_gateway_address_and_keeps_it() {
    if !root_only() {
        return;
    }
    let host = Host::new("large-host");
    let sim = Sim::start(Sim::fast());
    let out = host.up_deploying(&sim, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // lite's server charm declares `apis: [metrics.k8s.io/v1beta1]` (its HPAs read CPU usage):
    // the add-on serving it comes after the base ones.
    let enables: Vec<String> = host
        .log()
        .into_iter()
        .filter(|l| l.starts_with("microk8s enable "))
        .collect();
    assert_eq!(
        enables.last().map(String::as_str),
        Some("microk8s enable metrics-server"),
        "{enables:?}"
    );
    for needle in [
        "[8/10] deploy: bundle deployed",
        "[9/10] gateway: FAILED",
        "wharf up stopped at step 9/10 (gateway)",
        "GET http://10.64.140.43.nip.io/ (the dashboard) did not answer within 2s",
        "the public URL is kept",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    let url = "http://10.64.140.43.nip.io";
    assert!(
        sim.dex_config().contains(&format!("issuer: \"{url}/dex\"")),
        "{}",
        sim.dex_config()
    );
    assert!(
        sim.gatekeeper_args()
            .contains(&format!("--redirect-url={url}/oauth2/callback")),
        "{}",
        sim.gatekeeper_args()
    );
    assert_eq!(
        sim.revisions("dex-auth"),
        2,
        "deployed without, then with the URL"
    );
    assert_eq!(
        host.remembered_url().as_deref(),
        Some("http://10.64.140.43.nip.io\n")
    );
    // The generated password was deployed by step 8: this run is the only one that can show it.
    let shown = stdout(&out);
    assert!(
        shown.contains("(generated and deployed; shown only this once)"),
        "{shown}"
    );
    assert!(!err.contains("static-password=") || err.contains("static-password=<redacted>"));

    // A re-run keeps the URL: the deploy carries it from the start, no address is waited for.
    let again = host.up_deploying(&sim, &["--dry-run"]);
    assert!(again.status.success(), "{}", stderr(&again));
    let plan = stdout(&again);
    assert!(plan.contains(&format!("--public-url {url}")), "{plan}");
    assert!(!plan.contains("would wait"), "{plan}");
    assert!(
        plan.contains(&format!("would check: GET {url}/ answers")),
        "{plan}"
    );
}

/// (b) With --public-url the HTTP checks run against it: the dashboard answers (a redirect to the
/// login counts) and Dex's issuer is exactly <url>/dex. A Dex with another issuer fails step 9
/// with what it said and how to fix it.
#[test]
fn up_verifies_the_dashboard_and_the_dex_issuer_over_http() {
    if !root_only() {
        return;
    }
    let host = Host::new("large-host");
    let sim = Sim::start(Sim::fast());
    let (good, asked) = fake_gateway(|base| format!("{base}/dex"));
    let out = host.up_deploying(&sim, &["--public-url", &format!("{good}/")]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "[9/10] gateway: {good} answers and Dex's issuer is {good}/dex (--public-url)"
        )),
        "{err}"
    );
    assert_eq!(
        *asked.lock().unwrap(),
        vec!["/", "/dex/.well-known/openid-configuration"]
    );
    assert!(
        stdout(&out).contains(&format!("dashboard:  {good}/\n")),
        "{}",
        stdout(&out)
    );
    assert!(
        sim.dex_config()
            .contains(&format!("issuer: \"{good}/dex\"")),
        "the trailing slash is not part of the issuer"
    );
    assert_eq!(host.remembered_url(), Some(format!("{good}\n")));
    assert_eq!(
        sim.revisions("dex-auth"),
        1,
        "one deploy: the URL was given"
    );

    let wrong = "http://10.64.140.43.nip.io/dex";
    let (bad, _) = fake_gateway(|_| wrong.to_string());
    let out = host.up_deploying(&sim, &["--public-url", &bad]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for needle in [
        "wharf up stopped at step 9/10 (gateway)",
        &format!("{bad}/dex/.well-known/openid-configuration says issuer `{wrong}`"),
        &format!("so it must be `{bad}/dex`"),
        "issuer did not match",
        &format!("`wharf up --public-url {bad}`"),
        "run `wharf up --public-url http://10.64.140.43.nip.io`",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

/// A re-run of `wharf up` asks for no password (the first run's login marker) and deploys
/// without one: the model keeps the login it was given, so Dex keeps its static user, the hash
/// does not change, and nothing gets a new revision.
#[test]
fn up_rerun_keeps_login() {
    if !root_only() {
        return;
    }
    let host = Host::new("large-host");
    let sim = Sim::start(Sim::fast());
    let (good, _) = fake_gateway(|base| format!("{base}/dex"));
    let out = host.up_deploying(&sim, &["--public-url", &good]);
    assert!(out.status.success(), "{}", stderr(&out));
    let first = sim.dex_config();
    let hash = first
        .lines()
        .find(|l| l.trim_start().starts_with("hash:"))
        .unwrap_or_else(|| panic!("no static password in:\n{first}"))
        .to_owned();
    let revisions = sim.revisions("dex-auth");

    let again = host.up_deploying(&sim, &["--public-url", &good]);
    assert!(again.status.success(), "{}", stderr(&again));
    let second = sim.dex_config();
    assert!(second.contains(&hash), "the login is kept:\n{second}");
    assert_eq!(sim.revisions("dex-auth"), revisions, "nothing changed");
    assert!(
        stdout(&again).contains("the one set at the first `wharf up`"),
        "{}",
        stdout(&again)
    );
}

/// (c) A gateway that never gets an address (the pool's one address is taken): the timeout names
/// the Service, where to look and how to resume; nothing is remembered.
#[test]
fn up_without_a_gateway_address_times_out_naming_the_service() {
    if !root_only() {
        return;
    }
    let host = Host::new("large-host");
    let sim = Sim::start(kube_sim::Config {
        lb_pool: "10.64.140.43".into(),
        ..Sim::fast()
    });
    sim.sim
        .put(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "squatter", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
        }))
        .unwrap();
    // The simulator's load-balancer controller assigns the address asynchronously, as MetalLB does.
    let taken = (0..200).any(|_| {
        let svc = sim.sim.get("v1", "Service", "default", "squatter").unwrap();
        let ip = svc["status"]["loadBalancer"]["ingress"][0]["ip"].clone();
        ip == "10.64.140.43" || {
            std::thread::sleep(std::time::Duration::from_millis(25));
            false
        }
    });
    assert!(taken, "the only address is taken by the squatter");
    let started = std::time::Instant::now();
    let out = host.up_deploying(&sim, &["--gateway-timeout", "2s"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for needle in [
        "wharf up stopped at step 9/10 (gateway)",
        "Service wharf/gateway (type LoadBalancer) got no address within 2s",
        "microk8s kubectl -n wharf describe service gateway",
        "run `wharf up` again",
        "--gateway-timeout",
        "`wharf up --public-url URL`",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert_eq!(host.remembered_url(), None);
    assert_eq!(sim.revisions("dex-auth"), 1, "no second deploy");
}

/// (d) A dry run on a fresh host shows step 9's plan, in order after step 8's deploy, and touches
/// nothing: no cluster (there is none), no kubeconfig, no remembered URL.
#[test]
fn dry_run_prints_the_gateway_plan_without_touching_anything() {
    if !root_only() {
        return;
    }
    let host = Host::new("large-host");
    let out = host
        .command()
        .args(DEPLOYING)
        .arg("--dry-run")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = stdout(&out);
    let kubeconfig = host.kubeconfig().display().to_string();
    let deploy = format!(
        "would run: wharf --kubeconfig {kubeconfig} --model wharf deploy lite --set 'dex-auth.static-username=admin'"
    );
    let lines: Vec<&str> = plan.lines().collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no line starting {needle:?} in:\n{plan}"))
    };
    let first = format!("{deploy} --no-wait");
    let step7 = at(&first);
    assert_eq!(
        lines[step7], first,
        "step 8 deploys without a public URL and leaves the waiting to step 9"
    );
    let wait = at(
        "would wait up to 5m for the LoadBalancer address of the gateway Service in namespace wharf",
    );
    let redeploy = at(&format!(
        "{deploy} --public-url 'http://<gateway address>.nip.io'"
    ));
    let remember = at(&format!(
        "would write {}",
        host.home
            .path()
            .join(".config/wharf/wharf.public-url")
            .display()
    ));
    let check = at(
        "would check: GET http://<gateway address>.nip.io/ answers, and GET http://<gateway address>.nip.io/dex/.well-known/openid-configuration says issuer http://<gateway address>.nip.io/dex",
    );
    assert!(
        step7 < wait && wait < redeploy && redeploy < remember && remember < check,
        "{plan}"
    );
    assert!(
        stderr(&out).contains("[9/10] gateway: dry run"),
        "{}",
        stderr(&out)
    );
    assert_eq!(host.log(), vec!["snap list microk8s", "snap list microk8s"]);
    assert!(!host.kubeconfig().exists());
    assert_eq!(host.remembered_url(), None);
}

const IMPORT_LS: &str = "microk8s ctr --namespace k8s.io images ls";

/// wharf's images go into MicroK8s' containerd before the deploy (step 7 of 10), and the cluster
/// then has them at the archive's digests; a second run finds them and imports nothing; a new
/// build (other digests) is imported again.
#[test]
fn up_imports_the_images_before_the_deploy_and_a_rerun_skips_them() {
    if !root_only() {
        return;
    }
    let host = Host::new("large-host");
    // The simulated node has wharf's images only once the fake `microk8s ctr images import` put
    // them in its store: the deploy waits for the trainer and the server, so it succeeds only
    // because the import came first.
    let sim = Sim::start(kube_sim::Config {
        node_images: Some(host.state.path().join("images")),
        ..Sim::fast()
    });
    let (good, _) = fake_gateway(|base| format!("{base}/dex"));
    let out = host.up_deploying(&sim, &["--public-url", &good]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let import = format!(
        "microk8s ctr --namespace k8s.io images import {}",
        host.images().display()
    );
    let log = host.log();
    let at = |line: &str| log.iter().position(|l| l == line);
    assert!(
        at(IMPORT_LS).unwrap() < at(&import).unwrap(),
        "looked before importing: {log:#?}"
    );
    let imported = err.find(
        "[7/10] images: imported wharf.local/wharf-server:0.1.0, wharf.local/wharf-trainer:0.1.0, \
         wharf.local/wharf-workspaces:0.1.0, wharf.local/wharf:0.1.0",
    );
    let deployed = err.find("[8/10] deploy: bundle deployed");
    assert!(imported.is_some() && imported < deployed, "{err}");
    let want = write_images_archive(&host.state.path().join("same.tar"), "1");
    for (reference, digest) in &want {
        assert!(
            host.containerd_images()
                .contains(&format!("{reference} {digest}")),
            "{}",
            host.containerd_images()
        );
    }

    host.clear_log();
    let again = host.up_deploying(&sim, &["--public-url", &good]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(host.log().contains(&IMPORT_LS.to_string()));
    assert!(!host.log().contains(&import), "{:#?}", host.log());
    assert!(
        stderr(&again).contains("[7/10] images: 4 images present already"),
        "{}",
        stderr(&again)
    );

    write_images_archive(&host.images(), "2");
    host.clear_log();
    let rebuilt = host.up_deploying(&sim, &["--public-url", &good]);
    assert!(rebuilt.status.success(), "{}", stderr(&rebuilt));
    assert!(
        host.log().contains(&import),
        "a new build is imported: {:#?}",
        host.log()
    );
}

/// A failed import stops `wharf up` at step 7 with the command and what it printed; nothing is
/// deployed, and the re-run resumes.
#[test]
fn a_failed_import_stops_up_before_the_deploy_with_the_command_and_its_output() {
    if !root_only() {
        return;
    }
    let host = Host::new("large-host");
    host.state("fail-import", "");
    let sim = Sim::start(Sim::fast());
    let out = host.up_deploying(&sim, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for needle in [
        "[7/10] images: FAILED",
        "wharf up stopped at step 7/10 (images)",
        &format!(
            "microk8s ctr --namespace k8s.io images import {}",
            host.images().display()
        ),
        "no space left on device",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(!err.contains("[8/10] deploy"), "{err}");
    assert_eq!(sim.revisions("dex-auth"), 0, "nothing deployed");
}

/// Without an archive, `wharf up` refuses before it changes anything, and says where images come
/// from; --skip-images goes on without them.
#[test]
fn up_without_images_refuses_before_touching_the_host() {
    if !root_only() {
        return;
    }
    let host = Host::new("large-host");
    let out = host
        .command()
        .env_remove("WHARF_IMAGES")
        .args(DEPLOYING)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--images FILE") && err.contains("wharf images build"),
        "{err}"
    );
    assert!(host.log().is_empty(), "{:#?}", host.log());
    let missing = host
        .command()
        .args(DEPLOYING)
        .args(["--images", "/nonexistent.tar"])
        .output()
        .unwrap();
    assert!(
        stderr(&missing).contains("--images /nonexistent.tar: no such file"),
        "{}",
        stderr(&missing)
    );
}
