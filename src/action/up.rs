//! `wharf up`: from a bare Ubuntu machine (or Raspberry Pi) to MicroK8s with its add-ons and the
//! platform, in the steps a user would list. Every step first looks at what is already there, so
//! re-running `wharf up` after a failure resumes where it stopped and a second run changes nothing.
//!
//! 1 host check · 2 MicroK8s snap · 3 group access · 4 wait ready · 5 add-ons · 6 kubeconfig ·
//! 7 deploy the bundle · 8 gateway address and HTTP verification · 9 dashboard URL and login.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};

use super::Outcome;
use crate::cli::{GlobalArgs, UpArgs};
use crate::host::checks::{self, Status};
use crate::host::facts::{HostFacts, HostRoot, MicroK8s};
use crate::host::metallb;
use crate::host::microk8s::{ADDONS, Access, MicroK8sCli};
use crate::host::requirements;
use crate::host::rpi;
use crate::host::runner::{Cmd, Runner};

const STEPS: usize = 9;

/// What the user chose, settled before anything changes: a missing value without a terminal
/// is an error naming its flag, so nothing is half-done for want of an answer.
#[derive(Debug)]
struct Inputs {
    bundle: String,
    metallb: metallb::Ranges,
    admin_user: String,
    /// The admin password to set, when this run sets one.
    password: Option<Password>,
}

/// The admin password, and whether wharf made it up (then it is shown once, at the end).
struct Password {
    value: String,
    generated: bool,
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

pub fn run(global: &GlobalArgs, args: &UpArgs) -> Outcome {
    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let login_marker = login_marker_path(global)?;
    let inputs = resolve_inputs(args, terminal, &login_marker)?;
    let runner = Runner::new().dry_run(args.dry_run);
    let root = HostRoot::new(&args.host_root);
    let is_root = nix::unistd::geteuid().is_root();
    let steps = Steps::new();

    steps.run(1, "host check", || {
        host_check(&root, &runner, &inputs, args, terminal)
    })?;
    let was_installed = steps.run(2, "MicroK8s snap", || snap_step(&runner, args, is_root))?;
    // In a dry run on a fresh host nothing was installed, so MicroK8s cannot be asked anything.
    let pretend = args.dry_run && !was_installed;
    let access = steps.run(3, "group access", || group_step(&root, &runner, is_root))?;
    let cli = MicroK8sCli {
        runner: &runner,
        access,
    };
    steps.run(4, "wait ready", || {
        let timeout = Duration::from_secs(args.wait_ready_timeout);
        if pretend {
            runner.pretend(&cli.cmd(&[
                "status",
                "--wait-ready",
                "--timeout",
                &timeout.as_secs().to_string(),
            ]));
        } else {
            cli.wait_ready(timeout).with_context(|| {
                format!(
                    "MicroK8s is not ready after {}s; `sudo microk8s inspect` says why",
                    timeout.as_secs()
                )
            })?;
        }
        Ok("MicroK8s is running".to_string())
    })?;
    steps.run(5, "add-ons", || addons_step(&cli, &inputs, pretend))?;
    let kubeconfig = steps.run(6, "kubeconfig", || {
        kubeconfig_step(global, &cli, args, terminal, pretend)
    })?;
    steps.run(7, "deploy", || {
        deploy_step(global, args, &inputs, &kubeconfig, &login_marker)
    })?;
    steps.run(8, "gateway", || gateway_step(args))?;
    steps.run(9, "summary", || Ok(summary(args, &inputs, &kubeconfig)))?;
    Ok(ExitCode::SUCCESS)
}

/// Progress lines: a spinner with elapsed time on a terminal, one line per finished step always.
struct Steps;

impl Steps {
    fn new() -> Steps {
        Steps
    }

    fn run<T>(
        &self,
        n: usize,
        title: &str,
        f: impl FnOnce() -> anyhow::Result<T>,
    ) -> anyhow::Result<T>
    where
        T: Describe,
    {
        let started = Instant::now();
        let spinner = ProgressBar::new_spinner();
        spinner.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed}] {msg}").expect("valid template"),
        );
        spinner.set_message(format!("[{n}/{STEPS}] {title}"));
        spinner.enable_steady_tick(Duration::from_millis(120));
        let result = f();
        spinner.finish_and_clear();
        let secs = started.elapsed().as_secs_f64();
        match result {
            Ok(value) => {
                eprintln!("[{n}/{STEPS}] {title}: {} ({secs:.1}s)", value.describe());
                Ok(value)
            }
            Err(err) => {
                eprintln!("[{n}/{STEPS}] {title}: FAILED after {secs:.1}s");
                Err(err.context(format!(
                    "wharf up stopped at step {n}/{STEPS} ({title}); fix the cause and run `wharf up` again: it resumes where it stopped"
                )))
            }
        }
    }
}

/// A step's one-line result.
trait Describe {
    fn describe(&self) -> String;
}
impl Describe for String {
    fn describe(&self) -> String {
        self.clone()
    }
}
impl Describe for bool {
    fn describe(&self) -> String {
        if *self {
            "already installed".into()
        } else {
            "installed".into()
        }
    }
}
impl Describe for Access {
    fn describe(&self) -> String {
        match self {
            Access::Direct => "microk8s runs directly".into(),
            Access::Sg => "microk8s runs through `sg microk8s`".into(),
        }
    }
}
impl Describe for PathBuf {
    fn describe(&self) -> String {
        self.display().to_string()
    }
}

/// Written after the first successful deploy (the login, never the password), so that later runs
/// neither ask for nor generate another password.
fn login_marker_path(global: &GlobalArgs) -> anyhow::Result<PathBuf> {
    Ok(config_dir()?.join(format!("{}.admin-login", global.model)))
}

fn resolve_password(
    args: &UpArgs,
    terminal: bool,
    login_marker: &Path,
) -> anyhow::Result<Option<Password>> {
    if args.skip_deploy || args.dry_run || login_marker.exists() {
        return Ok(None);
    }
    if args.yes {
        use rand::Rng;
        let value: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(20)
            .map(char::from)
            .collect();
        return Ok(Some(Password {
            value,
            generated: true,
        }));
    }
    if !terminal {
        bail!(
            "no admin password: run `wharf up` on a terminal to choose one, or pass --yes to generate one (shown once)"
        );
    }
    let value = dialoguer::Password::new()
        .with_prompt("Admin password")
        .with_confirmation("Repeat it", "The two passwords differ; try again")
        .interact()?;
    Ok(Some(Password {
        value,
        generated: false,
    }))
}

fn resolve_inputs(args: &UpArgs, terminal: bool, login_marker: &Path) -> anyhow::Result<Inputs> {
    let bundle = match &args.bundle {
        Some(b) => b.clone(),
        None if args.yes => "lite".into(),
        None if terminal => {
            let choices = ["lite", "full"];
            let i = dialoguer::Select::new()
                .with_prompt("Bundle")
                .items(choices)
                .default(0)
                .interact()?;
            choices[i].into()
        }
        None => bail!("no bundle chosen: pass --bundle lite|full|PATH (or --yes for lite)"),
    };
    let hosts = metallb::host_addresses();
    let proposed = metallb::primary_ipv4().map(metallb::propose);
    let spec = match (&args.metallb, &proposed) {
        (Some(spec), _) => spec.clone(),
        (None, Some(p)) if args.yes => p.clone(),
        (None, p) if terminal => {
            let mut input = dialoguer::Input::<String>::new()
                .with_prompt("MetalLB address range (addresses no other machine uses)");
            if let Some(p) = p {
                input = input.default(p.clone());
            }
            input.interact_text()?
        }
        (None, _) => bail!(
            "no MetalLB range: pass --metallb RANGE (e.g. --metallb {}){}",
            proposed.as_deref().unwrap_or("192.168.1.240-192.168.1.250"),
            if proposed.is_some() {
                ", or --yes for that proposal"
            } else {
                ""
            }
        ),
    };
    let metallb = metallb::parse(&spec, &hosts)?;
    let admin_user = match &args.admin_user {
        Some(u) => u.clone(),
        None if args.yes => "admin".into(),
        None if terminal => dialoguer::Input::<String>::new()
            .with_prompt("Admin user")
            .default("admin".into())
            .interact_text()?,
        None => bail!("no admin user: pass --admin-user USER (or --yes for `admin`)"),
    };
    if admin_user.is_empty() || admin_user.contains(char::is_whitespace) {
        bail!("--admin-user `{admin_user}`: a login without spaces, such as `admin`");
    }
    let password = resolve_password(args, terminal, login_marker)?;
    Ok(Inputs {
        bundle,
        metallb,
        admin_user,
        password,
    })
}

/// Consent for a change to the host: `--yes`, or a yes on a terminal; else an error naming `--yes`.
fn consent(args: &UpArgs, terminal: bool, question: &str) -> anyhow::Result<bool> {
    if args.yes || args.dry_run {
        return Ok(true);
    }
    if !terminal {
        bail!("{question} needs your consent: pass --yes to agree without a terminal");
    }
    Ok(dialoguer::Confirm::new()
        .with_prompt(question)
        .default(true)
        .interact()?)
}

/// Step 1: the same checks as `wharf check`; on a Raspberry Pi, add the cgroup flags first.
fn host_check(
    root: &HostRoot,
    runner: &Runner,
    inputs: &Inputs,
    args: &UpArgs,
    terminal: bool,
) -> anyhow::Result<String> {
    let req = requirements::load_requirements(&inputs.bundle)
        .with_context(|| format!("--bundle {}", inputs.bundle))?;
    let facts = HostFacts::gather(root, runner);
    if let Some(pi) = &facts.raspberry_pi {
        raspberry_pi_step(root, runner, &facts, pi, args, terminal)?;
    }
    let results = checks::run_all(&facts, &req);
    let failed: Vec<String> = results
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| {
            format!(
                "  {}: {}\n    fix: {}",
                c.name,
                c.detail,
                c.fix.as_deref().unwrap_or("-")
            )
        })
        .collect();
    if !failed.is_empty() {
        bail!(
            "the host cannot run bundle {} yet ({} checks failed; `wharf check --bundle {}` shows them all):\n{}",
            inputs.bundle,
            failed.len(),
            inputs.bundle,
            failed.join("\n")
        );
    }
    let warned = results.iter().filter(|c| c.status == Status::Warn).count();
    Ok(format!(
        "{} checks passed, {warned} warned",
        results.len() - warned
    ))
}

/// A Raspberry Pi without the cgroup flags gets them (with consent, keeping a backup), and on
/// Ubuntu 21.10–23.10 the extra kernel modules MicroK8s needs; then it must reboot.
fn raspberry_pi_step(
    root: &HostRoot,
    runner: &Runner,
    facts: &HostFacts,
    pi: &crate::host::facts::RaspberryPi,
    args: &UpArgs,
    terminal: bool,
) -> anyhow::Result<()> {
    let Ok((host_path, text)) = &pi.cmdline else {
        return Ok(()); // the check reports the missing file with its fix
    };
    if checks::cmdline_has_cgroup_flags(text) {
        return Ok(());
    }
    let question =
        format!("Add `cgroup_enable=memory cgroup_memory=1` to {host_path} (a backup is kept)?");
    if !consent(args, terminal, &question)? {
        bail!(
            "{host_path} needs `cgroup_enable=memory cgroup_memory=1` for MicroK8s; add it and reboot"
        );
    }
    let backup = rpi::add_cgroup_flags(&root.path(host_path), runner.is_dry_run())?;
    if let Ok(os) = &facts.os
        && os.id == "ubuntu"
        && ["21.10", "22.04", "22.10", "23.04", "23.10"].contains(&os.version_id.as_str())
    {
        runner.run(&Cmd::new("apt-get").args(["install", "-y", "linux-modules-extra-raspi"]))?;
    }
    if runner.is_dry_run() {
        return Ok(());
    }
    bail!(
        "{host_path} now has the cgroup flags (the old one is at {}); reboot (`sudo reboot`), then run `wharf up` again",
        backup.map(|b| b.display().to_string()).unwrap_or_default()
    )
}

/// Step 2: install MicroK8s unless it is there; never switch the channel of an installed one.
/// Returns whether it was already installed.
fn snap_step(runner: &Runner, args: &UpArgs, is_root: bool) -> anyhow::Result<bool> {
    let cli = MicroK8sCli {
        runner,
        access: Access::Direct,
    };
    let privileged = |cmd: Cmd| if is_root { cmd } else { cmd.with_sudo() };
    let state = cli.snap_state()?;
    let installed = match &state.microk8s {
        MicroK8s::NotInstalled => {
            runner.run(&privileged(
                Cmd::new("snap")
                    .args(["install", "microk8s", "--classic"])
                    .arg(format!("--channel={}", args.channel))
                    .timeout(Duration::from_secs(900)),
            ))?;
            false
        }
        MicroK8s::Installed {
            tracking, version, ..
        } => {
            if tracking != &args.channel {
                eprintln!(
                    "note: MicroK8s {version} is installed tracking {tracking}, not {}; wharf does not switch channels. \
                     To switch: `sudo snap refresh microk8s --channel={}`; to silence this: --channel {tracking}",
                    args.channel, args.channel
                );
            }
            true
        }
    };
    if !args.no_hold && !state.held {
        runner.run(&privileged(
            Cmd::new("snap").args(["refresh", "--hold", "microk8s"]),
        ))?;
    }
    Ok(installed)
}

/// Users in `<root>/etc/group` for a group.
fn group_members(root: &HostRoot, group: &str) -> Vec<String> {
    std::fs::read_to_string(root.path("/etc/group"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.split(':').next() == Some(group))
        .and_then(|l| l.split(':').nth(3))
        .map(|m| {
            m.split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Step 3: the user who will run MicroK8s joins the `microk8s` group. As root under sudo, that is
/// the invoking user (for later runs without sudo); as a user, it is that user, and this run goes
/// on through `sg microk8s` because group membership only applies to new logins.
fn group_step(root: &HostRoot, runner: &Runner, is_root: bool) -> anyhow::Result<Access> {
    let user = if is_root {
        std::env::var("SUDO_USER")
            .ok()
            .filter(|u| !u.is_empty() && u != "root")
    } else {
        std::env::var("USER").ok()
    };
    let Some(user) = user else {
        return Ok(Access::Direct);
    };
    if !group_members(root, "microk8s").contains(&user) {
        let cmd = Cmd::new("usermod").args(["-a", "-G", "microk8s", &user]);
        runner.run(&if is_root { cmd } else { cmd.with_sudo() })?;
    }
    if is_root {
        return Ok(Access::Direct);
    }
    let in_session = nix::unistd::Group::from_name("microk8s")
        .ok()
        .flatten()
        .is_some_and(|g| {
            nix::unistd::getgroups()
                .unwrap_or_default()
                .contains(&g.gid)
        });
    Ok(if in_session {
        Access::Direct
    } else {
        Access::Sg
    })
}

/// Step 5: each add-on that `microk8s status` does not show enabled, one `enable` per call.
fn addons_step(cli: &MicroK8sCli, inputs: &Inputs, pretend: bool) -> anyhow::Result<String> {
    let status = if pretend {
        runner_pretend(cli, &["status", "--format", "yaml"]);
        None
    } else {
        Some(cli.status()?)
    };
    let mut enabled = Vec::new();
    let mut skipped = Vec::new();
    for name in ADDONS {
        if status.as_ref().is_some_and(|s| s.is_enabled(name)) {
            skipped.push(*name);
            continue;
        }
        let arg = if *name == "metallb" {
            inputs.metallb.addon()
        } else {
            name.to_string()
        };
        cli.enable(&arg)
            .with_context(|| format!("add-on {name} could not be enabled"))?;
        enabled.push(*name);
    }
    Ok(match (enabled.is_empty(), skipped.is_empty()) {
        (true, _) => format!("all enabled already ({})", skipped.join(", ")),
        (false, true) => format!("enabled {}", enabled.join(", ")),
        (false, false) => format!(
            "enabled {}; already enabled {}",
            enabled.join(", "),
            skipped.join(", ")
        ),
    })
}

fn runner_pretend(cli: &MicroK8sCli, args: &[&str]) {
    cli.runner.pretend(&cli.cmd(args).read_only());
}

/// wharf's own directory: `$XDG_CONFIG_HOME/wharf`, else `~/.config/wharf`.
fn config_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .context("neither $XDG_CONFIG_HOME nor $HOME is set: pass --kubeconfig FILE")?;
    Ok(base.join("wharf"))
}

/// Where the kubeconfig goes: `--kubeconfig`/`$KUBECONFIG`, else wharf's own file.
fn kubeconfig_path(global: &GlobalArgs) -> anyhow::Result<PathBuf> {
    if let Some(path) = &global.kubeconfig {
        return Ok(path.clone());
    }
    Ok(config_dir()?.join("kubeconfig"))
}

/// Step 6: `microk8s config` into the kubeconfig file; an existing different file is replaced
/// only with consent (it may be someone's `~/.kube/config`).
fn kubeconfig_step(
    global: &GlobalArgs,
    cli: &MicroK8sCli,
    args: &UpArgs,
    terminal: bool,
    pretend: bool,
) -> anyhow::Result<PathBuf> {
    let path = kubeconfig_path(global)?;
    if pretend {
        runner_pretend(cli, &["config"]);
        println!("would write {}", path.display());
        return Ok(path);
    }
    let config = cli.config()?;
    match std::fs::read_to_string(&path) {
        Ok(existing) if existing == config => return Ok(path),
        Ok(_) => {
            let question = format!("Replace the existing kubeconfig {}?", path.display());
            if !consent(args, terminal, &question)? {
                bail!(
                    "{} exists and differs from MicroK8s' config: pass --kubeconfig with another file, or --yes to replace it",
                    path.display()
                );
            }
        }
        Err(_) => {}
    }
    if args.dry_run {
        println!("would write {}", path.display());
        return Ok(path);
    }
    write_private(&path, &config)?;
    Ok(path)
}

/// Write a file only its owner can read (a kubeconfig holds admin credentials).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Step 7: deploy the bundle with the deploy engine (`wharf deploy`), on the new kubeconfig.
fn deploy_step(
    global: &GlobalArgs,
    args: &UpArgs,
    inputs: &Inputs,
    kubeconfig: &Path,
    login_marker: &Path,
) -> anyhow::Result<String> {
    let mut argv: Vec<String> = vec![
        "wharf".into(),
        "--kubeconfig".into(),
        kubeconfig.display().to_string(),
        "--model".into(),
        global.model.clone(),
        "deploy".into(),
        inputs.bundle.clone(),
        "--set".into(),
        format!("dex-auth.static-username={}", inputs.admin_user),
    ];
    if let Some(url) = &args.public_url {
        for app in ["dex-auth", "oidc-gatekeeper"] {
            argv.extend(["--set".into(), format!("{app}.public-url={url}")]);
        }
    }
    // What is shown never holds the password; what runs does.
    let mut shown = argv.clone();
    if let Some(password) = &inputs.password {
        argv.extend([
            "--set".into(),
            format!("dex-auth.static-password={}", password.value),
        ]);
        shown.extend(["--set".into(), "dex-auth.static-password=<redacted>".into()]);
    }
    let shown = shell_words::join(&shown);
    if args.skip_deploy {
        return Ok(format!("skipped (--skip-deploy); to deploy: {shown}"));
    }
    if args.dry_run {
        println!("would run: {shown}");
        return Ok("dry run".into());
    }
    let result = deploy_bundle(&argv, &shown)?;
    if inputs.password.is_some() {
        write_private(login_marker, &format!("user={}\n", inputs.admin_user))?;
    }
    Ok(result)
}

/// The seam to the deploy engine: `wharf deploy` exactly as a user would type it.
fn deploy_bundle(argv: &[String], shown: &str) -> anyhow::Result<String> {
    use clap::Parser;
    let cli =
        crate::cli::Cli::try_parse_from(argv).map_err(|e| anyhow::anyhow!("`{shown}`: {e}"))?;
    let crate::cli::Command::Deploy(deploy) = &cli.command else {
        unreachable!("argv names the deploy verb");
    };
    let code =
        super::deploy::run(&cli.global, deploy).with_context(|| format!("`{shown}` failed"))?;
    if code != ExitCode::SUCCESS {
        bail!("`{shown}` did not succeed; run it alone to see why");
    }
    Ok(format!("bundle deployed with `{shown}`"))
}

/// Step 8: wait for the gateway's LoadBalancer address, set `public-url`, verify over HTTP.
/// NOT BUILT YET: this needs the gateway charm's Service name and an HTTP client; it says so
/// instead of pretending.
fn gateway_step(args: &UpArgs) -> anyhow::Result<String> {
    Ok(match &args.public_url {
        Some(url) => format!("not verified (not built yet): check that {url} answers"),
        None => "not built yet: find the address with `kubectl -n <model> get svc` (TYPE LoadBalancer), then `wharf up --public-url http://<address>.nip.io`".into(),
    })
}

/// Step 9: where the platform is and how to log in. A generated password is shown here, once.
fn summary(args: &UpArgs, inputs: &Inputs, kubeconfig: &Path) -> String {
    let url = args
        .public_url
        .clone()
        .unwrap_or_else(|| "(unknown until step 8 is built)".into());
    let password = match &inputs.password {
        Some(p) if p.generated => format!("{}   (generated; shown only this once)", p.value),
        Some(_) => "the one you typed".into(),
        None if args.skip_deploy || args.dry_run => "not set (no deploy in this run)".into(),
        None => "the one set at the first `wharf up`".into(),
    };
    let text = format!(
        "\n  dashboard:  {url}\n  login:      {}\n  password:   {password}\n  kubeconfig: export KUBECONFIG={}\n",
        inputs.admin_user,
        kubeconfig.display()
    );
    println!("{text}");
    "done".into()
}
