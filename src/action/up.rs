//! `wharf up`: from a bare Ubuntu machine (or Raspberry Pi) to MicroK8s with its add-ons and the
//! platform, in the steps a user would list. Every step first looks at what is already there, so
//! re-running `wharf up` after a failure resumes where it stopped and a second run changes nothing.
//!
//! 1 host check · 2 MicroK8s snap · 3 group access · 4 wait ready · 5 add-ons · 6 kubeconfig ·
//! 7 wharf's images into MicroK8s' containerd · 8 deploy the bundle · 9 gateway address and HTTP
//! verification · 10 dashboard URL and login.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};

use super::Global;
use super::Outcome;
use crate::host::checks::{self, Status};
use crate::host::facts::{HostFacts, HostRoot, MicroK8s};
use crate::host::metallb;
use crate::host::microk8s::{self, Access, MicroK8sCli};
use crate::host::requirements;
use crate::host::rpi;
use crate::host::runner::{Cmd, Runner};
use crate::store::platform;

const STEPS: usize = 10;

/// What `wharf up` was asked (cli.rs builds it from the command line; see `UpArgs` there for
/// each flag's meaning).
#[derive(Debug, Clone)]
pub struct Options {
    pub bundle: Option<String>,
    /// The MicroK8s snap channel.
    pub channel: String,
    pub no_hold: bool,
    /// MetalLB's address range.
    pub metallb: Option<String>,
    pub public_url: Option<String>,
    pub admin_user: Option<String>,
    pub yes: bool,
    pub dry_run: bool,
    pub wait_ready_timeout: u64,
    pub skip_deploy: bool,
    pub gateway_timeout: std::time::Duration,
    pub verify_timeout: std::time::Duration,
    /// wharf's image archive (default: next to the executable).
    pub images: Option<PathBuf>,
    pub skip_images: bool,
    /// Where /proc, /sys, /etc and /boot are read (tests).
    pub host_root: PathBuf,
}

/// What the user chose, settled before anything changes: a missing value without a terminal
/// is an error naming its flag, so nothing is half-done for want of an answer.
#[derive(Debug)]
struct Inputs {
    bundle: String,
    metallb: metallb::Ranges,
    admin_user: String,
    /// The admin password to set, when this run sets one.
    password: Option<Password>,
    /// wharf's images to import before the deploy; `None` when this run imports none.
    images: Option<PathBuf>,
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

pub fn run(global: &Global, args: &Options) -> Outcome {
    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let login_marker = login_marker_path(global)?;
    let inputs = resolve_inputs(args, terminal, &login_marker)?;
    let url_file = public_url_path(global)?;
    let public_url = resolve_public_url(args, &url_file)?;
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
    let site = Site {
        global,
        args,
        inputs: &inputs,
        kubeconfig: &kubeconfig,
        url_file: &url_file,
    };
    steps.run(7, "images", || images_step(&cli, &inputs, args, pretend))?;
    steps.run(8, "deploy", || {
        deploy_step(&site, &login_marker, public_url.as_ref())
    })?;
    let gateway = steps
        .run(9, "gateway", || gateway_step(&site, public_url))
        .inspect_err(|_| show_generated_password(&inputs))?;
    steps.run(10, "summary", || {
        Ok(summary(args, &inputs, &kubeconfig, gateway.url.as_ref()))
    })?;
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
fn login_marker_path(global: &Global) -> anyhow::Result<PathBuf> {
    Ok(config_dir()?.join(format!("{}.admin-login", global.model)))
}

fn resolve_password(
    args: &Options,
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

fn resolve_inputs(args: &Options, terminal: bool, login_marker: &Path) -> anyhow::Result<Inputs> {
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
    let images = resolve_images(args)?;
    Ok(Inputs {
        bundle,
        metallb,
        admin_user,
        password,
        images,
    })
}

/// The image archive step 7 imports, found before anything changes (a missing one would
/// otherwise stop `wharf up` after MicroK8s is installed).
fn resolve_images(args: &Options) -> anyhow::Result<Option<PathBuf>> {
    if args.skip_deploy || args.skip_images {
        return Ok(None);
    }
    match super::images::default_archive(args.images.as_deref()) {
        Some(path) if path.is_file() => Ok(Some(path)),
        Some(path) => bail!(
            "--images {}: no such file; build it with `wharf images build -o {}`",
            path.display(),
            path.display()
        ),
        None => bail!(
            "wharf's images (wharf.local/wharf-trainer, wharf.local/wharf-server) are not built by any registry: \
             pass --images FILE (the release's wharf-images.tar, or `wharf images build -o FILE`), or put \
             wharf-images.tar next to the wharf executable, or --skip-images when a registry already serves them"
        ),
    }
}

/// Step 7: wharf's images into MicroK8s' containerd, unless it has them at the same digests.
fn images_step(
    cli: &MicroK8sCli,
    inputs: &Inputs,
    args: &Options,
    pretend: bool,
) -> anyhow::Result<String> {
    let Some(archive) = &inputs.images else {
        let why = if args.skip_deploy {
            "--skip-deploy"
        } else {
            "--skip-images"
        };
        return Ok(format!(
            "skipped ({why}); to import them: wharf images import FILE"
        ));
    };
    if pretend {
        runner_pretend(cli, &["ctr", "--namespace", "k8s.io", "images", "ls"]);
        cli.runner.pretend(&cli.images_import_cmd(archive));
        return Ok("dry run".into());
    }
    super::images::import_into(cli, archive)
}

/// Consent for a change to the host: `--yes`, or a yes on a terminal; else an error naming `--yes`.
fn consent(args: &Options, terminal: bool, question: &str) -> anyhow::Result<bool> {
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
    args: &Options,
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
    args: &Options,
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
fn snap_step(runner: &Runner, args: &Options, is_root: bool) -> anyhow::Result<bool> {
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
    let wanted = microk8s::addons_for(&bundle_apis(&inputs.bundle)?)?;
    for name in &wanted {
        let name = name.as_str();
        if status.as_ref().is_some_and(|s| s.is_enabled(name)) {
            skipped.push(name);
            continue;
        }
        let arg = if name == "metallb" {
            inputs.metallb.addon()
        } else {
            name.to_string()
        };
        cli.enable(&arg)
            .with_context(|| format!("add-on {name} could not be enabled"))?;
        enabled.push(name);
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

/// The APIs the bundle's charms declare they need (`apis:` in their metadata), read from the same
/// charms step 8 deploys.
fn bundle_apis(bundle: &str) -> anyhow::Result<Vec<String>> {
    let loaded = crate::bundle::Bundle::load(bundle, &[], &[])
        .with_context(|| format!("--bundle {bundle}"))?;
    let charms_dir = std::env::var_os("WHARF_CHARMS").map(PathBuf::from);
    let source = crate::charm::Source::new(charms_dir.as_deref());
    let mut apis = Vec::new();
    for app in loaded.applications.values() {
        // Only the metadata: relations and options are checked by the deploy of step 8.
        let Some(text) = source.read(&app.charm, "metadata.yaml")? else {
            continue; // an unknown charm: step 8 names it
        };
        let meta: crate::charm::Metadata = serde_saphyr::from_str(&text)
            .with_context(|| format!("charms/{}/metadata.yaml", app.charm))?;
        apis.extend(meta.apis);
    }
    Ok(apis)
}

fn runner_pretend(cli: &MicroK8sCli, args: &[&str]) {
    cli.runner.pretend(&cli.cmd(args).read_only());
}

/// wharf's own directory: `$XDG_CONFIG_HOME/wharf`, else `~/.config/wharf`.
pub(crate) fn config_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .context("neither $XDG_CONFIG_HOME nor $HOME is set: pass --kubeconfig FILE")?;
    Ok(base.join("wharf"))
}

/// Where the kubeconfig goes: `--kubeconfig`/`$KUBECONFIG`, else wharf's own file.
fn kubeconfig_path(global: &Global) -> anyhow::Result<PathBuf> {
    if let Some(path) = &global.kubeconfig {
        return Ok(path.clone());
    }
    Ok(config_dir()?.join("kubeconfig"))
}

/// Step 6: `microk8s config` into the kubeconfig file; an existing different file is replaced
/// only with consent (it may be someone's `~/.kube/config`).
fn kubeconfig_step(
    global: &Global,
    cli: &MicroK8sCli,
    args: &Options,
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

/// What steps 8 and 9 share: the run's choices and where things are.
struct Site<'a> {
    global: &'a Global,
    args: &'a Options,
    inputs: &'a Inputs,
    kubeconfig: &'a Path,
    /// Where the chosen public URL is remembered.
    url_file: &'a Path,
}

/// The deploy steps 8 and 9 run: the engine's options (password included) and the equivalent
/// command line as shown to the user (password redacted).
struct DeployCmd {
    global: Global,
    options: super::deploy::Options,
    shown: String,
}

fn deploy_command(site: &Site, public_url: Option<&str>) -> DeployCmd {
    let global = Global {
        kubeconfig: Some(site.kubeconfig.to_path_buf()),
        ..site.global.clone()
    };
    let mut set = vec![format!(
        "dex-auth.static-username={}",
        site.inputs.admin_user
    )];
    let mut shown: Vec<String> = vec![
        "wharf".into(),
        "--kubeconfig".into(),
        site.kubeconfig.display().to_string(),
        "--model".into(),
        site.global.model.clone(),
        "deploy".into(),
        site.inputs.bundle.clone(),
        "--set".into(),
        set[0].clone(),
    ];
    let mut run = crate::engine::RunOptions::default();
    match public_url {
        // The platform's URL, which every charm falls back to (Dex's issuer, the login callback,
        // the model URLs); the deploy keeps it in the model for later deploys.
        Some(url) => shown.extend(["--public-url".into(), url.to_string()]),
        // Without a public URL the gateway's address is what step 9 waits for (with its own
        // timeout and advice), then it deploys again and waits for every workload; waiting here
        // would block on that address for the deploy's whole timeout.
        None => {
            run.wait = false;
            shown.push("--no-wait".into());
        }
    }
    // What is shown never holds the password; what runs does. A re-run without a new password
    // sets none: the model keeps the one of the first run.
    if let Some(password) = &site.inputs.password {
        set.push(format!("dex-auth.static-password={}", password.value));
        shown.extend(["--set".into(), "dex-auth.static-password=<redacted>".into()]);
    }
    let options = super::deploy::Options {
        source: crate::store::inputs::BundleSource {
            spec: site.inputs.bundle.clone(),
            overlays: Vec::new(),
            charms_dir: std::env::var_os("WHARF_CHARMS").map(PathBuf::from),
        },
        changes: crate::store::inputs::Changes {
            set,
            public_url: public_url.map(str::to_owned),
            ..Default::default()
        },
        dry_run: false,
        diff: false,
        prune: crate::engine::Prune::default(),
        run,
        // Step 7 imported the images and checked their digests in containerd; the node's
        // status lists them only after the kubelet's next report (up to a minute later).
        image_check: false,
    };
    DeployCmd {
        global,
        options,
        shown: shell_words::join(&shown),
    }
}

/// Step 8: deploy the bundle with the deploy engine (`wharf deploy`), on the new kubeconfig, with
/// the public URL when it is known (given, or remembered from an earlier run).
fn deploy_step(
    site: &Site,
    login_marker: &Path,
    public_url: Option<&PublicUrl>,
) -> anyhow::Result<String> {
    let cmd = deploy_command(site, public_url.map(|u| u.url.as_str()));
    if site.args.skip_deploy {
        return Ok(format!("skipped (--skip-deploy); to deploy: {}", cmd.shown));
    }
    if site.args.dry_run {
        println!("would run: {}", cmd.shown);
        return Ok("dry run".into());
    }
    let result = deploy_bundle(&cmd)?;
    if site.inputs.password.is_some() {
        write_private(login_marker, &format!("user={}\n", site.inputs.admin_user))?;
    }
    if let Some(url) = public_url {
        remember_public_url(site.url_file, &url.url)?;
    }
    Ok(result)
}

/// The seam to the deploy engine: the same options `wharf deploy` builds from its flags.
fn deploy_bundle(cmd: &DeployCmd) -> anyhow::Result<String> {
    let shown = &cmd.shown;
    let code = super::deploy::run(&cmd.global, &cmd.options)
        .with_context(|| format!("`{shown}` failed"))?;
    if code != ExitCode::SUCCESS {
        bail!("`{shown}` did not succeed; run it alone to see why");
    }
    Ok(format!("bundle deployed with `{shown}`"))
}

/// The platform's public URL: where it came from matters to what step 9 does with it.
#[derive(Debug, Clone)]
struct PublicUrl {
    /// `scheme://host[:port]`, without a trailing slash.
    url: String,
    /// Given with --public-url (else remembered from an earlier run).
    given: bool,
}

/// Where the public URL of a model is remembered: beside the login marker.
fn public_url_path(global: &Global) -> anyhow::Result<PathBuf> {
    Ok(config_dir()?.join(format!("{}.public-url", global.model)))
}

/// `--public-url`, else the URL an earlier run chose, so that a re-run deploys the same
/// `public-url` instead of dropping it (and Dex's issuer with it).
fn resolve_public_url(args: &Options, url_file: &Path) -> anyhow::Result<Option<PublicUrl>> {
    if let Some(given) = &args.public_url {
        return Ok(Some(PublicUrl {
            url: platform::normalise_public_url(given)?,
            given: true,
        }));
    }
    let Ok(text) = std::fs::read_to_string(url_file) else {
        return Ok(None);
    };
    let remembered = text.trim();
    if remembered.is_empty() {
        return Ok(None);
    }
    let url = platform::normalise_public_url(remembered).with_context(|| {
        format!(
            "{} holds a public URL wharf cannot use; delete it or pass --public-url URL",
            url_file.display()
        )
    })?;
    Ok(Some(PublicUrl { url, given: false }))
}

fn remember_public_url(url_file: &Path, url: &str) -> anyhow::Result<()> {
    if std::fs::read_to_string(url_file).is_ok_and(|t| t.trim() == url) {
        return Ok(());
    }
    write_private(url_file, &format!("{url}\n"))
}

/// The gateway charm: its Service (named after the application) is the platform's front door.
const GATEWAY_SELECTOR: &str = "app.kubernetes.io/managed-by=wharf,app.kubernetes.io/name=gateway";

/// What step 9 found out.
struct Gateway {
    /// The public URL, once known.
    url: Option<String>,
    detail: String,
}

impl Describe for Gateway {
    fn describe(&self) -> String {
        self.detail.clone()
    }
}

/// Step 9: without a public URL, wait for the gateway's LoadBalancer address and deploy again
/// with `public-url` set to `http://<address>.nip.io`; then check over HTTP that the dashboard
/// answers and that Dex's issuer is exactly `<public-url>/dex` (else every login fails with
/// "issuer did not match", long after the install looked fine).
fn gateway_step(site: &Site, known: Option<PublicUrl>) -> anyhow::Result<Gateway> {
    let args = site.args;
    let model = &site.global.model;
    if args.skip_deploy {
        return Ok(Gateway {
            url: known.map(|u| u.url),
            detail: "skipped (--skip-deploy)".into(),
        });
    }
    if args.dry_run {
        let url = match known {
            Some(u) => u.url,
            None => {
                let placeholder = "http://<gateway address>.nip.io";
                println!(
                    "would wait up to {} for the LoadBalancer address of the gateway Service in namespace {model} ({GATEWAY_SELECTOR})",
                    humantime::format_duration(args.gateway_timeout)
                );
                println!(
                    "would run: {}",
                    deploy_command(site, Some(placeholder)).shown
                );
                println!("would write {}", site.url_file.display());
                placeholder.to_string()
            }
        };
        println!(
            "would check: GET {url}/ answers, and GET {url}/dex/.well-known/openid-configuration says issuer {url}/dex"
        );
        return Ok(Gateway {
            url: Some(url),
            detail: "dry run".into(),
        });
    }
    let rt = super::runtime()?;
    let (url, how) = match known {
        Some(u) if u.given => (u.url, "--public-url".to_string()),
        Some(u) => (u.url, format!("kept from {}", site.url_file.display())),
        None => {
            let found = rt.block_on(wait_for_address(
                site.kubeconfig,
                model,
                args.gateway_timeout,
            ))?;
            let (url, note) = found.public_url();
            if let Some(note) = &note {
                eprintln!("note: {note}");
            }
            // The deploy engine is the one path that changes the cluster: the same command as
            // step 8, now with the URL (it runs its own runtime, so not inside `rt`).
            let cmd = deploy_command(site, Some(&url));
            deploy_bundle(&cmd)?;
            remember_public_url(site.url_file, &url)?;
            let how = format!(
                "Service {model}/{} has address {}; deployed again with `{}`",
                found.service, found.address, cmd.shown
            );
            (url, how)
        }
    };
    rt.block_on(verify(&url, model, args.verify_timeout))?;
    Ok(Gateway {
        detail: format!("{url} answers and Dex's issuer is {url}/dex ({how})"),
        url: Some(url),
    })
}

/// The gateway Service's LoadBalancer address, and the port it listens on.
#[derive(Debug)]
struct Found {
    service: String,
    address: String,
    port: i32,
}

impl Found {
    /// `http://<ip>.nip.io` for IPv4 (a name that resolves to the address, so that cookies and
    /// Dex's issuer have a host name); nip.io does not do IPv6, so `http://[addr]` there; a
    /// load balancer that gives a host name gets that name. With a note when it is worth one.
    fn public_url(&self) -> (String, Option<String>) {
        let port = if self.port == 80 {
            String::new()
        } else {
            format!(":{}", self.port)
        };
        match self.address.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(ip)) => (format!("http://{ip}.nip.io{port}"), None),
            Ok(std::net::IpAddr::V6(ip)) => {
                let url = format!("http://[{ip}]{port}");
                let note = format!(
                    "the gateway address {ip} is IPv6 and nip.io only maps IPv4 addresses, so the public URL is {url}; \
                     for a host name, give one that resolves to it with `wharf up --public-url URL`"
                );
                (url, Some(note))
            }
            Err(_) => (format!("http://{}{port}", self.address), None),
        }
    }
}

/// Poll the gateway Service until the load balancer (MetalLB on MicroK8s) gives it an address.
async fn wait_for_address(
    kubeconfig: &Path,
    model: &str,
    timeout: Duration,
) -> anyhow::Result<Found> {
    use k8s_openapi::api::core::v1::Service;
    use kube::api::{Api, ListParams};

    let cluster = crate::kube::connect(Some(kubeconfig), None).await?;
    let api: Api<Service> = Api::namespaced(cluster.client.clone(), model);
    let params = ListParams::default().labels(GATEWAY_SELECTOR);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen: Option<String> = None;
    let mut last_error: Option<String>;
    loop {
        match api.list(&params).await {
            Ok(list) => {
                last_error = None;
                if let Some(svc) = list.items.first() {
                    let name = svc.metadata.name.clone().unwrap_or_default();
                    let spec = svc.spec.clone().unwrap_or_default();
                    let kind = spec.type_.clone().unwrap_or_else(|| "ClusterIP".into());
                    if kind != "LoadBalancer" {
                        bail!(
                            "Service {model}/{name} is of type {kind}, which gets no load-balancer address; \
                             pass the URL it is reached at: `wharf up --public-url URL`"
                        );
                    }
                    let ingress = svc
                        .status
                        .as_ref()
                        .and_then(|s| s.load_balancer.as_ref())
                        .and_then(|lb| lb.ingress.as_ref())
                        .and_then(|i| i.first());
                    let address = ingress.and_then(|i| {
                        i.ip.clone()
                            .filter(|s| !s.is_empty())
                            .or_else(|| i.hostname.clone().filter(|s| !s.is_empty()))
                    });
                    if let Some(address) = address {
                        let ports = spec.ports.unwrap_or_default();
                        let port = ports
                            .iter()
                            .find(|p| p.name.as_deref() == Some("http"))
                            .or(ports.first())
                            .map_or(80, |p| p.port);
                        return Ok(Found {
                            service: name,
                            address,
                            port,
                        });
                    }
                    seen = Some(name);
                }
            }
            // A transient API error is retried until the deadline; the last one is reported.
            Err(e) => {
                last_error = Some(crate::kube::errors::describe(
                    &e,
                    "list Services",
                    &cluster.server,
                ))
            }
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            break;
        }
        tokio::time::sleep((deadline - now).min(Duration::from_secs(1))).await;
    }
    let waited = humantime::format_duration(timeout);
    let resume = "then run `wharf up` again (it waits again; --gateway-timeout 15m waits longer), \
                  or name the URL yourself with `wharf up --public-url URL`";
    Err(match (seen, last_error) {
        (Some(name), _) => anyhow::anyhow!(
            "Service {model}/{name} (type LoadBalancer) got no address within {waited}: the load balancer \
             gives it one (on MicroK8s, MetalLB: is it enabled with a free address in its range? \
             `microk8s kubectl -n {model} describe service {name}` shows the events); {resume}"
        ),
        (None, Some(err)) => anyhow::anyhow!("{err}; {resume}"),
        (None, None) => anyhow::anyhow!(
            "no gateway Service ({GATEWAY_SELECTOR}) in namespace {model} after {waited}: does the bundle \
             deploy the gateway charm? {resume}"
        ),
    })
}

/// How long one HTTP request may take, and the pause between attempts.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
const HTTP_RETRY: Duration = Duration::from_secs(1);
/// An issuer that differs this many times in a row is wrong, not a Dex pod still rolling over.
const MISMATCHES: usize = 3;

/// Step 9's HTTP checks, retried within `window` (Dex and the gateway may still be starting):
/// the dashboard answers (200, or a redirect to the login: both mean the gateway serves it), and
/// Dex's discovery document names exactly `<url>/dex` as issuer.
async fn verify(url: &str, model: &str, window: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(3))
        .timeout(HTTP_TIMEOUT)
        .build()
        .context("cannot build an HTTP client")?;
    let deadline = tokio::time::Instant::now() + window;
    let waited = humantime::format_duration(window);
    let resume = "the public URL is kept: `wharf up` again checks again (--verify-timeout 5m waits longer); \
                  `wharf up --public-url URL` uses another URL";

    let dashboard = format!("{url}/");
    let mut last;
    loop {
        last = match client.get(&dashboard).send().await {
            Ok(r) if r.status().is_success() || r.status().is_redirection() => break,
            Ok(r) => format!("it answered {}", r.status()),
            Err(e) => http_error(&e),
        };
        if !pause(deadline).await {
            bail!(
                "GET {dashboard} (the dashboard) did not answer within {waited}: {last}. Is {url} reachable \
                 from this machine (firewall, a load-balancer range outside this network)? {resume}"
            );
        }
    }

    let discovery = format!("{url}/dex/.well-known/openid-configuration");
    let expected = format!("{url}/dex");
    let mut mismatched = 0;
    loop {
        let got = match client.get(&discovery).send().await {
            Ok(r) if r.status().is_success() => match r.json::<serde_json::Value>().await {
                Ok(doc) => match doc.get("issuer").and_then(|i| i.as_str()) {
                    Some(issuer) => Ok(issuer.to_string()),
                    None => Err("the answer has no `issuer`".to_string()),
                },
                Err(e) => Err(format!("the answer is not JSON ({})", http_error(&e))),
            },
            Ok(r) => Err(format!("it answered {}", r.status())),
            Err(e) => Err(http_error(&e)),
        };
        match got {
            Ok(issuer) if issuer == expected => return Ok(()),
            Ok(issuer) => {
                mismatched += 1;
                if mismatched >= MISMATCHES || !pause(deadline).await {
                    return Err(issuer_mismatch(url, &discovery, &issuer, &expected));
                }
            }
            Err(why) => {
                mismatched = 0;
                if !pause(deadline).await {
                    bail!(
                        "GET {discovery} (Dex's OpenID discovery) did not answer within {waited}: {why}; \
                         `microk8s kubectl -n {model} logs deploy/dex-auth` shows why Dex is not serving. {resume}"
                    );
                }
            }
        }
    }
}

/// The classic "issuer did not match": said at install time, with the fix.
fn issuer_mismatch(url: &str, discovery: &str, issuer: &str, expected: &str) -> anyhow::Error {
    let theirs = issuer.strip_suffix("/dex").unwrap_or(issuer);
    anyhow::anyhow!(
        "Dex's issuer does not match the public URL: {discovery} says issuer `{issuer}`, but the platform \
         is reached at {url}, so it must be `{expected}`; logins would fail with \"issuer did not match\". \
         Fix: if {url} is right, deploy it to Dex with `wharf up --public-url {url}` (or \
         `wharf deploy BUNDLE --public-url {url}`; an `issuer-url` option on dex-auth overrides it: unset it); \
         if the platform is reached at {theirs}, run `wharf up --public-url {theirs}`"
    )
}

/// Sleep before the next attempt; false when the window is over.
async fn pause(deadline: tokio::time::Instant) -> bool {
    let now = tokio::time::Instant::now();
    if now >= deadline {
        return false;
    }
    tokio::time::sleep((deadline - now).min(HTTP_RETRY)).await;
    true
}

/// One line for an HTTP failure: what happened, with the root cause (reqwest's own message only
/// says "error sending request").
fn http_error(e: &reqwest::Error) -> String {
    let cause = crate::kube::errors::root_cause(e);
    if e.is_timeout() {
        format!("no answer within {}s ({cause})", HTTP_TIMEOUT.as_secs())
    } else if e.is_connect() {
        format!("cannot connect ({cause})")
    } else {
        cause
    }
}

/// A password wharf generated is deployed by step 8 and the login marker stops later runs from
/// making another: if a later step fails, this run is the only one that can show it.
fn show_generated_password(inputs: &Inputs) {
    if let Some(p) = inputs.password.as_ref().filter(|p| p.generated) {
        println!(
            "\n  login:      {}\n  password:   {}   (generated and deployed; shown only this once)\n",
            inputs.admin_user, p.value
        );
    }
}

/// Step 10: where the platform is and how to log in. A generated password is shown here, once.
fn summary(args: &Options, inputs: &Inputs, kubeconfig: &Path, url: Option<&String>) -> String {
    let url = match url {
        Some(url) => format!("{url}/"),
        None => "(not known yet: the gateway's address is found after the deploy)".into(),
    };
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
