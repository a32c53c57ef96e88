//! `wharf upgrade --kubernetes 1.34`: moves MicroK8s to a newer Kubernetes minor, one minor at a
//! time as Kubernetes requires, after checking that the platform uses no API version any of those
//! minors removed. In the steps a user would list:
//!
//! 1 what MicroK8s tracks · 2 the plan (`host::refresh`) · 3 the platform's APIs, read from its
//! release records through the kubeconfig · 4 consent (it restarts the API server) ·
//! 5 `snap refresh` and wait ready, minor by minor · 6 the add-ons repository · 7 the hold kept ·
//! 8 the API server answers the target minor · 9 a summary.
//!
//! Nothing changes before step 5. A run that stops says which minor the cluster is at; running
//! the same command again resumes from there, because the plan always starts from what the snap
//! tracks.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

use super::Outcome;
use crate::host::facts::MicroK8s;
use crate::host::microk8s::{Access, MicroK8sCli, SnapState};
use crate::host::refresh::{self, Blocker, Minor, Step, Upgrade};
use crate::host::runner::{Cmd, Runner};
use crate::store::Releases;

/// The add-ons repository MicroK8s ships, updated after the last refresh.
const CORE_REPOSITORY: &str = "core";

/// What `wharf upgrade --kubernetes` was asked to do; built from the command line by the caller.
#[derive(Debug, Clone)]
pub struct Options {
    /// The kubeconfig (`--kubeconfig`/`$KUBECONFIG`); else the one `wharf up` wrote
    /// (`~/.config/wharf/kubeconfig`), else `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// The model (namespace) whose release records list what the platform deployed.
    pub model: String,
    /// `MAJOR.MINOR`, as given.
    pub target: String,
    /// Agree to the refreshes without a terminal.
    pub yes: bool,
    /// Print every command in order and run none (the read-only checks still run).
    pub dry_run: bool,
    /// The host root of `wharf up`/`check` (`WHARF_HOST_ROOT`); nothing is read from it yet.
    pub host_root: PathBuf,
    /// How long each `microk8s status --wait-ready`, and the final `/version` check, may take.
    pub wait_ready_timeout: Duration,
}

/// The host side: MicroK8s through the runner, and whether snap needs `sudo`.
struct Host<'a> {
    microk8s: MicroK8sCli<'a>,
    is_root: bool,
}

impl Host<'_> {
    fn privileged(&self, cmd: Cmd) -> Cmd {
        if self.is_root { cmd } else { cmd.with_sudo() }
    }

    /// Version, channel and hold of the installed snap; an error when it is not installed.
    fn installed(&self) -> anyhow::Result<Installed> {
        let SnapState { microk8s, held } = self.microk8s.snap_state()?;
        match microk8s {
            MicroK8s::NotInstalled => bail!(
                "MicroK8s is not installed on this host, so there is nothing to upgrade: \
                 `wharf up` installs it (`wharf up --channel 1.34/stable` for a given version)"
            ),
            MicroK8s::Installed {
                version, tracking, ..
            } => Ok(Installed {
                version,
                tracking,
                held,
            }),
        }
    }

    /// The command of one step.
    fn command(&self, step: &Step, timeout: Duration) -> Cmd {
        match step {
            Step::Refresh { channel, .. } => self.privileged(MicroK8sCli::refresh_cmd(channel)),
            Step::WaitReady { .. } => self.microk8s.wait_ready_cmd(timeout),
            Step::UpdateAddons => self.microk8s.addons_repo_update_cmd(CORE_REPOSITORY),
        }
    }
}

/// `snap list microk8s`, as far as the upgrade cares.
struct Installed {
    version: String,
    tracking: String,
    held: bool,
}

/// What step 3 found.
struct Platform {
    applications: usize,
    objects: usize,
}

pub fn run(options: &Options) -> Outcome {
    let target = refresh::parse_target(&options.target)?;
    let runner = Runner::new().dry_run(options.dry_run);
    let host = Host {
        microk8s: MicroK8sCli {
            runner: &runner,
            access: Access::Direct,
        },
        is_root: nix::unistd::geteuid().is_root(),
    };

    // 1-2: what MicroK8s tracks, and the way from there to the target.
    let before = host.installed()?;
    let upgrade = refresh::plan(&before.tracking, &before.version, target)?;
    if upgrade.already_at() {
        eprintln!(
            "MicroK8s is already at Kubernetes {target} (tracking {}, {}): nothing to refresh; \
             finishing the upgrade (wait ready, add-ons repository, check)",
            before.tracking, before.version
        );
    } else {
        eprintln!(
            "Kubernetes {} → {target}, one minor at a time: {}",
            upgrade.from,
            upgrade
                .minors()
                .iter()
                .map(Minor::to_string)
                .collect::<Vec<_>>()
                .join(" → ")
        );
    }

    // 3: the platform's APIs against every minor on the way, before anything changes.
    let kubeconfig = kubeconfig(options)?;
    let rt = super::runtime()?;
    let platform = rt.block_on(check_platform(options, kubeconfig.as_deref(), &upgrade))?;

    let commands: Vec<(Step, Cmd)> = upgrade
        .steps
        .iter()
        .map(|s| (s.clone(), host.command(s, options.wait_ready_timeout)))
        .collect();
    if options.dry_run {
        for (_, cmd) in &commands {
            runner.pretend(cmd);
        }
        println!("would check: the API server answers Kubernetes {target} (GET /version)");
        return Ok(ExitCode::SUCCESS);
    }

    // 4: consent, since every refresh restarts the API server.
    if !upgrade.already_at() {
        consent(options, &upgrade)?;
    }

    // 5-6: refresh and wait, minor by minor; then the add-ons repository.
    for (step, cmd) in &commands {
        let started = Instant::now();
        runner
            .run(cmd)
            .map_err(anyhow::Error::from)
            .map_err(|e| stopped(&host, &upgrade, step, e))?;
        eprintln!("{} ({:.1}s)", done(step), started.elapsed().as_secs_f64());
    }

    // 7: snapd keeps a hold across a refresh it was asked for by name; make sure of it.
    let mut after = host.installed()?;
    if before.held && !after.held {
        runner.run(&host.privileged(Cmd::new("snap").args(["refresh", "--hold", "microk8s"])))?;
        after.held = true;
    }

    // 8: the API server answers the target minor, and the platform's records still read.
    let answered = rt.block_on(check_version(options, kubeconfig.as_deref(), target))?;

    // 9
    println!(
        "{}",
        summary(&upgrade, &after, &answered, &platform, &options.model)
    );
    Ok(ExitCode::SUCCESS)
}

/// One line for a finished step.
fn done(step: &Step) -> String {
    match step {
        Step::Refresh { channel, to } => {
            format!("refreshed MicroK8s to {channel} (Kubernetes {to})")
        }
        Step::WaitReady { at } => format!("MicroK8s {at} is ready"),
        Step::UpdateAddons => format!("updated the {CORE_REPOSITORY} add-ons repository"),
    }
}

/// A step failed: say where the cluster is now (asked again: snap undoes a failed refresh) and
/// how to go on.
fn stopped(host: &Host, upgrade: &Upgrade, step: &Step, err: anyhow::Error) -> anyhow::Error {
    let what = match step {
        Step::Refresh { channel, .. } => format!("the refresh to {channel}"),
        Step::WaitReady { at } => format!("waiting for MicroK8s {at} to be ready"),
        Step::UpdateAddons => format!("updating the {CORE_REPOSITORY} add-ons repository"),
    };
    let to = upgrade.to;
    let place = match host.installed() {
        Ok(now) => match refresh::Channel::parse(&now.tracking).minor() {
            Some((minor, _)) => format!(
                "the cluster is at Kubernetes {minor} (MicroK8s {}, tracking {})",
                now.version, now.tracking
            ),
            None => format!("MicroK8s tracks {} ({})", now.tracking, now.version),
        },
        Err(e) => {
            format!("where MicroK8s is now could not be read ({e}); `snap list microk8s` shows it")
        }
    };
    let hint = match step {
        Step::WaitReady { .. } => "; `sudo microk8s inspect` says why it is not ready",
        _ => "",
    };
    err.context(format!(
        "the upgrade to Kubernetes {to} stopped at {what}: {place}{hint}. Fix the cause and run \
         `wharf upgrade --kubernetes {to}` again: it resumes from the minor MicroK8s is at"
    ))
}

/// `--kubeconfig`/`$KUBECONFIG`, else the kubeconfig `wharf up` wrote, else the default.
fn kubeconfig(options: &Options) -> anyhow::Result<Option<PathBuf>> {
    if let Some(path) = &options.kubeconfig {
        return Ok(Some(path.clone()));
    }
    let ours = super::up::config_dir()?.join("kubeconfig");
    Ok(ours.exists().then_some(ours))
}

/// How to point wharf at this host's MicroK8s.
const KUBECONFIG_FIX: &str = "pass --kubeconfig FILE for this host's MicroK8s \
     (`microk8s config > FILE` writes one; `wharf up` keeps it at ~/.config/wharf/kubeconfig)";

/// Step 3: the API server is this host's MicroK8s (same minor), and no object of the platform's
/// last release records uses an API version removed on the way to the target.
async fn check_platform(
    options: &Options,
    kubeconfig: Option<&Path>,
    upgrade: &Upgrade,
) -> anyhow::Result<Platform> {
    let cluster = crate::kube::connect(kubeconfig, options.context.as_deref())
        .await
        .map_err(|e| {
            anyhow!(
                "{e}\nwharf reads the platform's release records through the kubeconfig to check \
                 its APIs against Kubernetes {} before it refreshes anything; {KUBECONFIG_FIX}",
                upgrade.to
            )
        })?;
    let answers = Minor::of_version(&cluster.kube_version);
    if answers != Some(upgrade.from) {
        bail!(
            "the kubeconfig's cluster ({}, context {}) runs Kubernetes {}, but this host's MicroK8s \
             runs {} (tracking {}): the kubeconfig names another cluster, whose platform wharf would \
             check instead of this one's; {KUBECONFIG_FIX}",
            cluster.server,
            cluster.context,
            cluster.kube_version,
            upgrade.from,
            upgrade.tracking
        );
    }
    let records = Releases::new(&cluster.client, &options.model, &cluster.server)
        .list()
        .await
        .map(|h| h.apps)
        .with_context(|| format!("cannot read the release records of model {}", options.model))?;
    // The last record of each application lists what is deployed now; older ones were pruned.
    let objects: Vec<(&str, &crate::kube::ObjectRef)> = records
        .iter()
        .filter_map(|(app, revisions)| revisions.last().map(|r| (app.as_str(), r)))
        .flat_map(|(app, r)| r.inventory.iter().map(move |e| (app, &e.id)))
        .collect();
    if records.is_empty() {
        eprintln!(
            "note: model {} has no release records, so no platform objects to check",
            options.model
        );
    }
    let blockers = refresh::blockers(objects.iter().copied(), upgrade.to);
    if !blockers.is_empty() {
        bail!("{}", refusal(upgrade, &blockers, &options.model));
    }
    Ok(Platform {
        applications: records.len(),
        objects: objects.len(),
    })
}

fn refusal(upgrade: &Upgrade, blockers: &[Blocker], model: &str) -> String {
    let lines: Vec<String> = blockers.iter().map(|b| format!("  - {b}")).collect();
    format!(
        "Kubernetes {to} does not serve API versions the platform in model {model} uses, so nothing \
         was refreshed:\n{}\nDeploy charms whose templates use the replacement APIs first \
         (`wharf deploy BUNDLE`), then run `wharf upgrade --kubernetes {to}` again",
        lines.join("\n"),
        to = upgrade.to
    )
}

/// Step 4: `--yes`, or a yes on a terminal; else an error naming `--yes`.
fn consent(options: &Options, upgrade: &Upgrade) -> anyhow::Result<()> {
    if options.yes {
        return Ok(());
    }
    let what = format!(
        "Refresh MicroK8s from {} to {} ({})? Each refresh restarts the API server and the node's \
         services: the platform is unreachable for a minute or two per minor",
        upgrade.tracking,
        upgrade.to,
        upgrade
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Refresh { channel, .. } => Some(channel.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(", then ")
    );
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        bail!(
            "refreshing MicroK8s to Kubernetes {} restarts the API server and needs your consent: \
             pass --yes to agree without a terminal (--dry-run shows the commands first)",
            upgrade.to
        );
    }
    if dialoguer::Confirm::new()
        .with_prompt(what)
        .default(false)
        .interact()?
    {
        Ok(())
    } else {
        bail!("nothing was refreshed: you said no")
    }
}

/// What step 8 saw.
struct Answered {
    server: String,
    version: String,
    applications: usize,
}

/// Step 8: after the refreshes the API server comes back on the new version; poll `/version`
/// until it answers the target minor (or the wait-ready timeout passes), then read the records.
async fn check_version(
    options: &Options,
    kubeconfig: Option<&Path>,
    target: Minor,
) -> anyhow::Result<Answered> {
    let deadline = tokio::time::Instant::now() + options.wait_ready_timeout;
    let last = loop {
        let seen = match crate::kube::connect(kubeconfig, options.context.as_deref()).await {
            Ok(cluster) if Minor::of_version(&cluster.kube_version) == Some(target) => {
                let records = Releases::new(&cluster.client, &options.model, &cluster.server)
                    .list()
                    .await.map(|h| h.apps)
                    .with_context(|| {
                        format!(
                            "Kubernetes {target} answers, but the release records of model {} do not read",
                            options.model
                        )
                    })?;
                return Ok(Answered {
                    server: cluster.server,
                    version: cluster.kube_version,
                    applications: records.len(),
                });
            }
            Ok(cluster) => format!("{} answers {}", cluster.server, cluster.kube_version),
            Err(e) => e.to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    bail!(
        "MicroK8s was refreshed to Kubernetes {target} and says it is ready, but the API server does \
         not answer {target} within {}: {last}. `sudo microk8s inspect` shows what is still starting; \
         `wharf upgrade --kubernetes {target}` again re-checks",
        humantime::format_duration(options.wait_ready_timeout)
    )
}

fn summary(
    upgrade: &Upgrade,
    after: &Installed,
    answered: &Answered,
    platform: &Platform,
    model: &str,
) -> String {
    let how = if upgrade.already_at() {
        format!("Kubernetes {}: already there, finished", upgrade.to)
    } else {
        format!(
            "Kubernetes {} → {}, one minor at a time",
            upgrade.from, upgrade.to
        )
    };
    format!(
        "\n  {how}\n  MicroK8s:   {}, tracking {}, refreshes {}\n  API server: {} answers {}\n  \
         platform:   model {model}: {} applications ({} objects) checked against the removed APIs, \
         {} with records after the upgrade\n",
        after.version,
        after.tracking,
        if after.held { "held" } else { "not held" },
        answered.server,
        answered.version,
        platform.applications,
        platform.objects,
        answered.applications
    )
}
