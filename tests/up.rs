//! `wharf up` end to end against fake `snap`, `microk8s`, `usermod` and `sg` (tests/fixtures/bin,
//! output copied from real MicroK8s) on a copy of a fixture host tree. Every scenario asserts the
//! exact commands it ran, in order. The deploy step is skipped (`--skip-deploy`): it is the deploy
//! engine's, tested against the API simulator in its own tests.

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
        Host {
            root,
            state: tempfile::tempdir().unwrap(),
            home: tempfile::tempdir().unwrap(),
        }
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
        Command::new(env!("CARGO_BIN_EXE_wharf"))
            .arg("up")
            .arg("--bundle")
            .arg(fixtures().join("hosts/requirements-lite.yaml"))
            .args(extra)
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", fixtures().join("bin").display()),
            )
            .env("WHARF_HOST_ROOT", self.root.path())
            .env("WHARF_FAKE_STATE", self.state.path())
            .env("WHARF_FAKE_LOG", self.state.path().join("commands.log"))
            .env("HOME", self.home.path())
            .env("SUDO_USER", "alice")
            .env_remove("KUBECONFIG")
            .env_remove("XDG_CONFIG_HOME")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
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
fn root_only() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("skipped: these scenarios run wharf as root");
    }
    root
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const ADDONS_ENABLED: &[&str] = &[
    "microk8s enable dns",
    "microk8s enable hostpath-storage",
    "microk8s enable ingress",
    "microk8s enable metallb:192.0.2.240-192.0.2.250",
    "microk8s enable rbac",
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
        "[1/9] host check",
        "[5/9] add-ons: enabled dns, hostpath-storage",
        "[7/9] deploy: skipped",
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
        "[5/9] add-ons: FAILED",
        "wharf up stopped at step 5/9 (add-ons)",
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
        "wharf up stopped at step 4/9 (wait ready)",
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
        "would run: wharf --kubeconfig {} --model wharf deploy {} --set 'dex-auth.static-username=ops' --set 'dex-auth.public-url=http://192.0.2.240.nip.io' --set 'oidc-gatekeeper.public-url=http://192.0.2.240.nip.io'",
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
        err.contains("wharf up stopped at step 6/9 (kubeconfig)"),
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
