//! The command line: every verb, its flags and their help text. Parsing only; the work is in `action`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use crate::action::OutputFormat;
use crate::action::{Global, parse_duration};
use crate::engine::{Prune, RunOptions};

use crate::store::inputs::{BundleSource, Changes};

/// wharf installs MicroK8s, deploys an ML platform bundle on it and keeps it running.
///
/// On a fresh Ubuntu host or Raspberry Pi, `wharf up` does it all (`wharf up --dry-run` shows each
/// command first). `wharf check` tells whether this host can carry a bundle, `wharf render lite`
/// what would be deployed, and `wharf status` how the platform is doing. Day 2: `wharf config`
/// changes an option (kept for every later command), `wharf upgrade` brings a newer wharf's
/// charms and rolls back by itself if they fail, `wharf history` and `wharf rollback` undo, and
/// `wharf backup` / `wharf restore` keep the platform safe.
#[derive(Debug, Parser)]
#[command(
    name = "wharf",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Kubeconfig file to use (default: $KUBECONFIG, then ~/.kube/config)
    #[arg(long, global = true, env = "KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (default: the current context)
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Model: the namespace the platform lives in
    #[arg(
        short = 'm',
        long,
        global = true,
        default_value = "wharf",
        value_name = "NAME"
    )]
    pub model: String,
    /// Output format
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides it
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl GlobalArgs {
    pub fn global(&self) -> Global {
        Global {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            model: self.model.clone(),
            output: self.output,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check that this host can run a bundle: CPU, memory, disk, OS, kernel limits, ports
    Check(CheckArgs),
    /// Render a bundle to Kubernetes manifests, without a cluster
    Render(RenderArgs),
    /// Deploy a bundle to the model: apply what changed, prune what was dropped, wait until ready
    Deploy(DeployArgs),
    /// Show the model's applications and units, like `juju status`
    Status(StatusArgs),
    /// Show an application's options (value, source, description), or change some of them
    Config(ConfigArgs),
    /// List an application's revisions, like `helm history`
    History(HistoryArgs),
    /// Plan, check and apply a newer wharf's charms (or a newer Kubernetes); roll back on failure
    Upgrade(UpgradeArgs),
    /// Re-apply an earlier revision of an application as a new revision
    Rollback(RollbackArgs),
    /// Back the model up (encrypted on this machine), list, check, delete or schedule backups
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Put a backup back: state, applications through the engine, custom resources, Dex, data
    Restore(RestoreArgs),
    /// Remove one application, or everything wharf deployed in the model (data kept unless asked)
    Remove(RemoveArgs),
    /// Take this host from bare Ubuntu to MicroK8s, its add-ons and the platform (resumable)
    Up(UpArgs),
    /// Grow an edge cluster: print a join command, join this machine, list the nodes
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// wharf's own images (trainer, server): build them, list them, load them into MicroK8s,
    /// push them to a registry, export them for an air-gapped site
    #[command(subcommand)]
    Images(ImagesCommand),
    /// People's workspaces (Kubeflow Profiles): create one for a user, list them, delete one
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Jupyter servers in a profile's namespace (Kubeflow Notebooks): create, list, delete
    #[command(subcommand)]
    Notebook(NotebookCommand),
    /// Kubeflow Pipelines on Argo: compile a KFP pipeline file to an Argo Workflow, or run it
    #[command(subcommand)]
    Pipeline(PipelineCommand),
    /// Hyperparameter tuning (OptimizationJobs over TrainJobs): list them, show one's trials
    #[command(subcommand)]
    Tuning(TuningCommand),
    /// Print the URL of the platform's dashboard, or serve the dashboard here with --serve
    Dashboard(DashboardArgs),
    /// Print a shell completion script
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// The bundle whose requirements to check against: lite, full or a path
    #[arg(long, default_value = "lite")]
    pub bundle: String,
    /// Apply the safe fixes (kernel limits persisted under /etc/sysctl.d); needs root
    #[arg(long)]
    pub fix: bool,
    /// Answer yes to the --fix prompt (needed without a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Read /proc, /sys, /etc and /boot under this directory instead of / (for tests)
    #[arg(long, hide = true, env = "WHARF_HOST_ROOT", default_value = "/")]
    pub host_root: PathBuf,
}

/// What selects and adjusts a bundle; shared by render and every verb that deploys.
#[derive(Debug, Clone, Args)]
pub struct BundleArgs {
    /// The bundle: lite, full or a path to a bundle file
    pub bundle: String,
    /// An overlay merged on top of the bundle: a file, or a shipped one by name (`ha`: replicas);
    /// repeatable, applied in order
    #[arg(long, value_name = "FILE")]
    pub overlay: Vec<PathBuf>,
    /// Set an option: APP.KEY=VALUE (repeatable; wins over the bundle and overlays)
    #[arg(long = "set", value_name = "APP.KEY=VALUE")]
    pub set: Vec<String>,
    /// The platform's public URL (http://10.64.140.43.nip.io): the login, the gateway and the
    /// model URLs use it unless an application sets its own public-url. Deploy keeps it in the
    /// model for later deploys; "" clears it
    #[arg(long, value_name = "URL", value_parser = crate::store::platform::parse_public_url)]
    pub public_url: Option<String>,
    /// The registry the nodes pull wharf's own images from (where `wharf images push REGISTRY`
    /// sent them), instead of `wharf.local` imported into each node: for clusters that are not
    /// MicroK8s. Deploy keeps it in the model for later deploys; "" goes back to wharf.local
    #[arg(long, value_name = "REGISTRY", value_parser = crate::store::platform::parse_image_registry)]
    pub image_registry: Option<String>,
    /// Directory holding the charms (default: the charms shipped with wharf)
    #[arg(long, env = "WHARF_CHARMS", value_name = "DIR", hide = true)]
    pub charms_dir: Option<PathBuf>,
}

impl BundleArgs {
    pub fn source(&self) -> BundleSource {
        BundleSource {
            spec: self.bundle.clone(),
            overlays: self.overlay.clone(),
            charms_dir: self.charms_dir.clone(),
        }
    }
}

/// How a verb that changes the cluster waits, locks and keeps history.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Wait until every application is ready (the default)
    #[arg(long, overrides_with = "no_wait")]
    pub wait: bool,
    /// Apply and return without waiting for readiness
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting after this long (e.g. 90s, 20m, 1h); the revision is recorded as failed
    #[arg(long, default_value = "20m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// Take over fields another field manager owns (server-side apply conflicts)
    #[arg(long)]
    pub force_conflicts: bool,
    /// Take the model lock even if another run holds it (only when that run is gone)
    #[arg(long)]
    pub force_unlock: bool,
    /// Release records kept per application (the last deployed one is always kept)
    #[arg(long, default_value_t = crate::store::releases::DEFAULT_HISTORY, value_name = "N")]
    pub history: usize,
}

impl RunArgs {
    pub fn options(&self) -> RunOptions {
        RunOptions {
            wait: !self.no_wait,
            timeout: self.timeout,
            force_conflicts: self.force_conflicts,
            force_unlock: self.force_unlock,
            history: self.history,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub bundle: BundleArgs,
    /// Write one file per application into DIR instead of one stream to stdout
    #[arg(short = 'o', long = "out-dir", value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Show Secret data instead of redacting it
    #[arg(long)]
    pub show_secrets: bool,
}

impl CheckArgs {
    pub fn options(&self) -> crate::action::check::Options {
        crate::action::check::Options {
            bundle: self.bundle.clone(),
            fix: self.fix,
            yes: self.yes,
            host_root: self.host_root.clone(),
        }
    }
}

impl RenderArgs {
    pub fn options(&self) -> crate::action::render::Options {
        crate::action::render::Options {
            source: self.bundle.source(),
            set: self.bundle.set.clone(),
            public_url: self.bundle.public_url.clone(),
            image_registry: self.bundle.image_registry.clone().unwrap_or_default(),
            out_dir: self.out_dir.clone(),
            show_secrets: self.show_secrets,
        }
    }
}

impl StatusArgs {
    pub fn options(&self) -> crate::action::status::Options {
        crate::action::status::Options {
            watch: self.watch,
            interval: self.interval,
        }
    }
}

impl ClusterCommand {
    pub fn options(&self) -> crate::action::cluster::Command {
        use crate::action::cluster::Command;
        match self {
            ClusterCommand::AddNode => Command::AddNode,
            ClusterCommand::Join {
                connection,
                worker,
                images,
            } => Command::Join {
                connection: connection.clone(),
                worker: *worker,
                images: images.clone(),
            },
            ClusterCommand::Status => Command::Status,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub bundle: BundleArgs,
    /// Forget an option set earlier (with --set or `wharf config`): APP.KEY goes back to the
    /// bundle's or the charm's default (repeatable)
    #[arg(long, value_name = "APP.KEY")]
    pub reset: Vec<String>,
    /// Forget every option set earlier for APP (repeatable)
    #[arg(long, value_name = "APP")]
    pub reset_config: Vec<String>,
    /// Print the plan (stages, applications, each object's create/update/unchanged/prune) and stop
    #[arg(long)]
    pub dry_run: bool,
    /// Print a unified diff of each object against the live one (Secret data redacted);
    /// with --dry-run, only the diff
    #[arg(long)]
    pub diff: bool,
    /// Also prune CustomResourceDefinitions the bundle dropped (deletes their custom resources)
    #[arg(long)]
    pub prune_crds: bool,
    /// Deploy even though no node reports wharf's own images (they reach the nodes some other
    /// way); without it such a deploy is refused before any change, as its pods could never start
    #[arg(long)]
    pub skip_image_check: bool,
    /// Also prune PersistentVolumeClaims the bundle dropped (deletes their data)
    #[arg(long)]
    pub prune_data: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

impl DeployArgs {
    pub fn options(&self) -> crate::action::deploy::Options {
        crate::action::deploy::Options {
            source: self.bundle.source(),
            changes: Changes {
                set: self.bundle.set.clone(),
                reset: self.reset.clone(),
                reset_apps: self.reset_config.clone(),
                public_url: self.bundle.public_url.clone(),
                image_registry: self.bundle.image_registry.clone(),
            },
            image_check: !self.skip_image_check,
            dry_run: self.dry_run,
            diff: self.diff,
            prune: Prune {
                crds: self.prune_crds,
                data: self.prune_data,
            },
            run: self.run.options(),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// The application
    pub app: String,
    /// Options to set, KEY=VALUE; a secret option given as KEY=- is asked for on the terminal
    #[arg(value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
    /// A secret (or any) option read from a file: KEY=FILE, so the value is in no process list
    /// or shell history (repeatable)
    #[arg(long, value_name = "KEY=FILE")]
    pub from_file: Vec<String>,
    /// Forget a value set earlier: the option goes back to the bundle's or the charm's default
    /// (repeatable)
    #[arg(long, value_name = "KEY")]
    pub reset: Vec<String>,
    /// Print what would change and stop
    #[arg(long)]
    pub dry_run: bool,
    /// Directory holding the charms (default: the charms shipped with wharf)
    #[arg(long, env = "WHARF_CHARMS", value_name = "DIR", hide = true)]
    pub charms_dir: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
}

impl ConfigArgs {
    pub fn options(&self) -> crate::action::config::Options {
        crate::action::config::Options {
            app: self.app.clone(),
            settings: self.settings.clone(),
            from_file: self.from_file.clone(),
            reset: self.reset.clone(),
            dry_run: self.dry_run,
            charms_dir: self.charms_dir.clone(),
            run: self.run.options(),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// Only this application (default: every application of the model)
    pub app: Option<String>,
    /// Show at most the N latest revisions of each application
    #[arg(long, value_name = "N")]
    pub max: Option<usize>,
}

#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    /// The application to roll back
    pub app: String,
    /// The revision to go back to (default: the deployed revision before the current one)
    pub revision: Option<u32>,
    /// Print what would change and stop
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

impl RollbackArgs {
    pub fn options(&self) -> crate::action::rollback::Options {
        crate::action::rollback::Options {
            app: self.app.clone(),
            revision: self.revision,
            dry_run: self.dry_run,
            run: self.run.options(),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct UpgradeArgs {
    /// The bundle to upgrade to: lite, full or a path (default: the one the model was deployed
    /// with, with this wharf's charms)
    pub bundle: Option<String>,
    /// An overlay merged on top of the bundle: a file, or a shipped one by name (`ha`: replicas);
    /// repeatable, applied in order
    #[arg(long, value_name = "FILE")]
    pub overlay: Vec<PathBuf>,
    /// Set an option: APP.KEY=VALUE (repeatable; kept for later deploys)
    #[arg(long = "set", value_name = "APP.KEY=VALUE")]
    pub set: Vec<String>,
    /// Print the plan and the gates' verdicts, and stop
    #[arg(long)]
    pub dry_run: bool,
    /// Leave a failed upgrade as it is instead of rolling every changed application back
    #[arg(long)]
    pub no_rollback_on_failure: bool,
    /// Allow a charm's major version to change (read its release notes first)
    #[arg(long)]
    pub allow_major: bool,
    /// Upgrade even though no node reports the new wharf images (they reach the nodes some
    /// other way); without it such an upgrade is refused before any change
    #[arg(long)]
    pub skip_image_check: bool,
    /// Upgrade without the backup an upgrade makes first
    #[arg(long, conflicts_with_all = ["backup_to", "backup_data"])]
    pub no_backup: bool,
    /// Where the backup before the upgrade goes (default: ~/.local/share/wharf/backups/<model>)
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub backup_to: Option<String>,
    /// Back MinIO's data up too before the upgrade (needs --s3-endpoint)
    #[arg(long, requires = "s3_endpoint")]
    pub backup_data: bool,
    /// MinIO's S3 API as this machine reaches it (for --backup-data)
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Upgrade MicroK8s to this Kubernetes version (e.g. 1.34), one minor at a time, instead of
    /// the platform
    #[arg(long, value_name = "MAJOR.MINOR")]
    pub kubernetes: Option<String>,
    /// Agree to the Kubernetes refreshes without a terminal (each restarts the API server)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// With --kubernetes: how long to wait for MicroK8s to become ready after each refresh
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub wait_ready_timeout: u64,
    /// Read /proc, /sys, /etc and /boot under this directory instead of / (for tests)
    #[arg(long, hide = true, env = "WHARF_HOST_ROOT", default_value = "/")]
    pub host_root: PathBuf,
    /// Directory holding the charms (default: the charms shipped with wharf)
    #[arg(long, env = "WHARF_CHARMS", value_name = "DIR", hide = true)]
    pub charms_dir: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
}

impl UpgradeArgs {
    /// `--kubernetes`: the cluster upgrade's options.
    pub fn kubernetes_options(
        &self,
        global: &GlobalArgs,
        target: &str,
    ) -> crate::action::kubernetes::Options {
        crate::action::kubernetes::Options {
            kubeconfig: global.kubeconfig.clone(),
            context: global.context.clone(),
            model: global.model.clone(),
            target: target.to_owned(),
            yes: self.yes,
            dry_run: self.dry_run,
            host_root: self.host_root.clone(),
            wait_ready_timeout: std::time::Duration::from_secs(self.wait_ready_timeout),
        }
    }

    pub fn options(&self) -> crate::action::upgrade::Options {
        crate::action::upgrade::Options {
            bundle: self.bundle.clone(),
            overlays: self.overlay.clone(),
            charms_dir: self.charms_dir.clone(),
            set: self.set.clone(),
            dry_run: self.dry_run,
            image_check: !self.skip_image_check,
            rollback_on_failure: !self.no_rollback_on_failure,
            allow_major: self.allow_major,
            backup: (!self.no_backup).then(|| crate::action::backup::CreateOptions {
                to: self.backup_to.clone(),
                data: self.backup_data,
                s3_endpoint: self.s3_endpoint.clone(),
                key: self.key.source(),
                charms_dir: self.charms_dir.clone(),
                ..Default::default()
            }),
            run: self.run.options(),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Redraw every few seconds until interrupted
    #[arg(long)]
    pub watch: bool,
    /// Seconds between redraws with --watch
    #[arg(long, default_value_t = 2, value_name = "SECONDS")]
    pub interval: u64,
}

#[derive(Debug, Clone, Args)]
pub struct RemoveArgs {
    /// The application to remove
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub app: Option<String>,
    /// Remove every application of the model; with --destroy-data also its settings, generated
    /// secrets and the namespace wharf created. Never anything in another namespace
    #[arg(long)]
    pub all: bool,
    /// Also delete the PersistentVolumeClaims (the data) and the secrets the data was written
    /// with; asks first on a terminal
    #[arg(long)]
    pub destroy_data: bool,
    /// Also delete CustomResourceDefinitions, and with them every custom resource of their kinds;
    /// asks first on a terminal
    #[arg(long)]
    pub destroy_crds: bool,
    /// Answer yes to the question a destructive removal asks (needed without a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Take the model lock even if another run holds it
    #[arg(long)]
    pub force_unlock: bool,
}

impl RemoveArgs {
    pub fn options(&self) -> crate::action::remove::Options {
        crate::action::remove::Options {
            app: self.app.clone(),
            all: self.all,
            destroy_data: self.destroy_data,
            destroy_crds: self.destroy_crds,
            yes: self.yes,
            force_unlock: self.force_unlock,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// The bundle: lite, full or a path (asked on a terminal; lite with --yes)
    #[arg(long)]
    pub bundle: Option<String>,
    /// The MicroK8s snap channel to install
    #[arg(long, default_value = "1.32/stable", value_name = "CHANNEL")]
    pub channel: String,
    /// Let snap refresh MicroK8s automatically (by default refreshes are held)
    #[arg(long)]
    pub no_hold: bool,
    /// MetalLB address pool: RANGE[,RANGE...], each a.b.c.d-e.f.g.h or a CIDR, IPv4 or IPv6
    /// (asked on a terminal; proposed from this host's network with --yes)
    #[arg(long, value_name = "RANGE")]
    pub metallb: Option<String>,
    /// The platform's public URL (default: http://<gateway address>.nip.io)
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// The platform's admin login (asked on a terminal; `admin` with --yes)
    #[arg(long, value_name = "USER")]
    pub admin_user: Option<String>,
    /// Answer yes to every question and take the proposed defaults
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print every command it would run, in order, and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// How long to wait for MicroK8s to become ready
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub wait_ready_timeout: u64,
    /// Stop once MicroK8s and its add-ons are ready, without deploying the bundle
    #[arg(long)]
    pub skip_deploy: bool,
    /// How long to wait for the gateway's LoadBalancer address (e.g. 90s, 5m)
    #[arg(long, default_value = "5m", value_name = "DURATION",
          value_parser = parse_duration)]
    pub gateway_timeout: std::time::Duration,
    /// How long the HTTP checks of the dashboard and of Dex may retry (Dex takes a while to start)
    #[arg(long, default_value = "60s", value_name = "DURATION",
          value_parser = parse_duration)]
    pub verify_timeout: std::time::Duration,
    /// wharf's images (an archive from `wharf images build`), imported into MicroK8s' containerd
    /// before the deploy (default: wharf-images.tar next to the wharf executable)
    #[arg(long, env = "WHARF_IMAGES", value_name = "FILE")]
    pub images: Option<PathBuf>,
    /// Do not import wharf's images (they are in containerd already, or a registry serves
    /// wharf.local)
    #[arg(long)]
    pub skip_images: bool,
    /// Read /proc, /sys, /etc and /boot under this directory instead of / (for tests)
    #[arg(long, hide = true, env = "WHARF_HOST_ROOT", default_value = "/")]
    pub host_root: PathBuf,
}

impl UpArgs {
    pub fn options(&self) -> crate::action::up::Options {
        crate::action::up::Options {
            bundle: self.bundle.clone(),
            channel: self.channel.clone(),
            no_hold: self.no_hold,
            metallb: self.metallb.clone(),
            public_url: self.public_url.clone(),
            admin_user: self.admin_user.clone(),
            yes: self.yes,
            dry_run: self.dry_run,
            wait_ready_timeout: self.wait_ready_timeout,
            skip_deploy: self.skip_deploy,
            gateway_timeout: self.gateway_timeout,
            verify_timeout: self.verify_timeout,
            images: self.images.clone(),
            skip_images: self.skip_images,
            host_root: self.host_root.clone(),
        }
    }
}

/// `wharf profile …`: a profile is a namespace for one user, who may edit everything in it.
#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Create a profile: the namespace NAME, owned by the user who logs in as --owner
    Create {
        /// The profile's name, which is also its namespace's (a DNS label: lowercase, digits, '-')
        name: String,
        /// The owner's login email (what the platform's login passes to Kubernetes)
        #[arg(long, value_name = "EMAIL")]
        owner: String,
        /// Quota on the CPU all pods of the namespace may request (e.g. 2, 500m)
        #[arg(long, value_name = "QUANTITY")]
        cpu: Option<String>,
        /// Quota on the memory all pods of the namespace may request (e.g. 4Gi)
        #[arg(long, value_name = "QUANTITY")]
        memory: Option<String>,
        /// How long to wait for the profile to be ready (0s: do not wait)
        #[arg(long, default_value = "1m", value_parser = parse_duration)]
        timeout: std::time::Duration,
    },
    /// List the profiles: owner and readiness
    List,
    /// Delete a profile, and with it its namespace and everything in it; asks first on a terminal
    Delete {
        name: String,
        /// Answer yes to the question (needed without a terminal)
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

impl ProfileCommand {
    pub fn options(&self) -> crate::action::profile::Options {
        use crate::action::profile::{CreateOptions, Options};
        match self {
            ProfileCommand::Create {
                name,
                owner,
                cpu,
                memory,
                timeout,
            } => Options::Create(CreateOptions {
                name: name.clone(),
                owner: owner.clone(),
                cpu: cpu.clone(),
                memory: memory.clone(),
                timeout: *timeout,
            }),
            ProfileCommand::List => Options::List,
            ProfileCommand::Delete { name, yes } => Options::Delete {
                name: name.clone(),
                yes: *yes,
            },
        }
    }
}

/// `wharf notebook …`: a Jupyter server in a profile's namespace, for the profile's owner.
#[derive(Debug, Subcommand)]
pub enum NotebookCommand {
    /// Create a notebook server NAME in the profile namespace -n, at /notebook/<namespace>/NAME/
    Create {
        /// The notebook's name (lowercase letters, digits, '-'; starting with a letter)
        name: String,
        /// The profile's namespace
        #[arg(long, short = 'n', value_name = "NAMESPACE")]
        namespace: String,
        /// `minimal` or `scipy` (jupyter/docker-stacks, pinned by the workspaces charm), or an
        /// image serving Jupyter under $NB_PREFIX on port 8888
        #[arg(long, default_value = "scipy")]
        image: String,
        /// CPU the server requests (e.g. 500m)
        #[arg(long, value_name = "QUANTITY")]
        cpu: Option<String>,
        /// Memory the server requests (e.g. 1Gi)
        #[arg(long, value_name = "QUANTITY")]
        memory: Option<String>,
        /// The ServiceAccount the server runs as: the profile's `default-editor` may create
        /// TrainJobs and InferenceServices in the namespace (the `kubernetes` client in the
        /// notebook uses it); name another to give the notebook other rights
        #[arg(long, value_name = "NAME", default_value = "default-editor")]
        service_account: String,
        /// How long to wait for the server to run (0s: do not wait)
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        timeout: std::time::Duration,
    },
    /// List notebooks: readiness and path (all namespaces unless -n)
    List {
        #[arg(long, short = 'n', value_name = "NAMESPACE")]
        namespace: Option<String>,
    },
    /// Delete a notebook server; its workspace volume (your files) is kept
    Delete {
        name: String,
        #[arg(long, short = 'n', value_name = "NAMESPACE")]
        namespace: String,
    },
}

impl NotebookCommand {
    pub fn options(&self) -> crate::action::notebook::Options {
        use crate::action::notebook::{CreateOptions, Options};
        match self {
            NotebookCommand::Create {
                name,
                namespace,
                image,
                cpu,
                memory,
                service_account,
                timeout,
            } => Options::Create(CreateOptions {
                name: name.clone(),
                namespace: namespace.clone(),
                image: image.clone(),
                cpu: cpu.clone(),
                memory: memory.clone(),
                service_account: service_account.clone(),
                timeout: *timeout,
            }),
            NotebookCommand::List { namespace } => Options::List {
                namespace: namespace.clone(),
            },
            NotebookCommand::Delete { name, namespace } => Options::Delete {
                name: name.clone(),
                namespace: namespace.clone(),
            },
        }
    }
}

/// `wharf tuning …`: read-only views of OptimizationJobs (create them with `kubectl apply`).
#[derive(Debug, Subcommand)]
pub enum TuningCommand {
    /// List OptimizationJobs: state, trials finished, objective and best value (all namespaces
    /// unless -n)
    List {
        #[arg(long, short = 'n', value_name = "NAMESPACE")]
        namespace: Option<String>,
    },
    /// Show one OptimizationJob's trials: parameters, objective value, state; the best marked
    Show {
        /// The OptimizationJob's name
        name: String,
        #[arg(long, short = 'n', value_name = "NAMESPACE")]
        namespace: String,
    },
}

impl TuningCommand {
    pub fn options(&self) -> crate::action::tuning::Options {
        use crate::action::tuning::Options;
        match self {
            TuningCommand::List { namespace } => Options::List {
                namespace: namespace.clone(),
            },
            TuningCommand::Show { name, namespace } => Options::Show {
                name: name.clone(),
                namespace: namespace.clone(),
            },
        }
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum ImagesCommand {
    /// Build the OCI images of wharf-trainer, wharf-server, wharf-workspaces and wharf from their
    /// static binaries into one OCI archive (an image index per image, one manifest per
    /// architecture); no Docker
    Build(ImagesBuildArgs),
    /// List wharf's images (with their digests in an archive) and the upstream images a bundle runs
    List(ImagesListArgs),
    /// Import an image archive into MicroK8s' containerd (images already there are skipped)
    Import(ImagesImportArgs),
    /// Push wharf's images to a registry over the OCI distribution API (e.g. localhost:32000)
    Push(ImagesPushArgs),
    /// Write the images a bundle needs into one archive, for an air-gapped site
    Export(ImagesExportArgs),
}

impl ImagesCommand {
    pub fn options(&self) -> crate::action::images::Command {
        use crate::action::images as ops;
        match self {
            ImagesCommand::Build(a) => ops::Command::Build(ops::BuildOptions {
                out: a.out.clone(),
                arch: a.arch.clone(),
                binaries: a.binaries.clone(),
                images: a.images.clone(),
                dataset: a.dataset.clone(),
                ca_bundle: (!a.no_ca_bundle).then(|| a.ca_bundle.clone()),
                source_date_epoch: a.source_date_epoch,
            }),
            ImagesCommand::List(a) => ops::Command::List(ops::ListOptions {
                archive: a.archive.clone(),
                bundle: a.bundle.clone(),
                charms_dir: a.charms_dir.clone(),
            }),
            ImagesCommand::Import(a) => ops::Command::Import(ops::ImportOptions {
                archive: a.archive.clone(),
                dry_run: a.dry_run,
            }),
            ImagesCommand::Push(a) => ops::Command::Push(ops::PushOptions {
                registry: a.registry.clone(),
                archive: a.archive.clone(),
            }),
            ImagesCommand::Export(a) => ops::Command::Export(ops::ExportOptions {
                bundle: a.bundle.clone(),
                out: a.out.clone(),
                archive: a.archive.clone(),
                upstream: a.upstream,
                mirror: a.mirror.clone(),
                charms_dir: a.charms_dir.clone(),
            }),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ImagesBuildArgs {
    /// The archive to write
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: PathBuf,
    /// The architectures to build for (comma-separated)
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "amd64,arm64",
        value_name = "ARCH"
    )]
    pub arch: Vec<String>,
    /// The images to build (comma-separated; default all four, as `wharf up` needs them)
    #[arg(
        long = "image",
        value_delimiter = ',',
        default_value = "wharf-server,wharf-trainer,wharf-workspaces,wharf",
        value_name = "NAME"
    )]
    pub images: Vec<String>,
    /// Where an architecture's binaries are: ARCH=DIR (repeatable; default dist/ARCH, which
    /// scripts/build-release.sh fills)
    #[arg(long, value_name = "ARCH=DIR")]
    pub binaries: Vec<String>,
    /// Fashion-MNIST's IDX files, for the trainer's image
    #[arg(
        long,
        default_value = "/usr/share/datasets/fashion-mnist",
        value_name = "DIR"
    )]
    pub dataset: PathBuf,
    /// The CA bundle the images carry (for S3 over https)
    #[arg(
        long,
        default_value = "/etc/ssl/certs/ca-certificates.crt",
        value_name = "FILE"
    )]
    pub ca_bundle: PathBuf,
    /// Build images without a CA bundle
    #[arg(long)]
    pub no_ca_bundle: bool,
    /// The images' creation time, in seconds since 1970 (reproducible builds)
    #[arg(
        long,
        env = "SOURCE_DATE_EPOCH",
        default_value_t = 0,
        value_name = "SECONDS"
    )]
    pub source_date_epoch: i64,
}

#[derive(Debug, Clone, Args)]
pub struct ImagesListArgs {
    /// An image archive whose images to list with their digests
    #[arg(long, value_name = "FILE")]
    pub archive: Option<PathBuf>,
    /// The bundle whose upstream images to list
    #[arg(long, default_value = "lite")]
    pub bundle: String,
    /// Directory holding the charms (default: the charms shipped with wharf)
    #[arg(long, env = "WHARF_CHARMS", value_name = "DIR", hide = true)]
    pub charms_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ImagesImportArgs {
    /// The image archive (`wharf images build` or `wharf images export`)
    pub archive: PathBuf,
    /// Print the commands and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ImagesPushArgs {
    /// The registry: localhost:32000 (MicroK8s' registry add-on), HOST:PORT or http(s)://HOST:PORT
    pub registry: String,
    /// The image archive to push from
    #[arg(long, value_name = "FILE")]
    pub archive: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct ImagesExportArgs {
    /// The bundle whose images to export
    #[arg(long, default_value = "lite")]
    pub bundle: String,
    /// The archive to write
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: PathBuf,
    /// wharf's images, as `wharf images build` wrote them
    #[arg(long, value_name = "FILE")]
    pub archive: PathBuf,
    /// Also pull the bundle's upstream images (Dex, oauth2-proxy, MinIO, nginx) from their
    /// registries (needs internet access) into the archive
    #[arg(long)]
    pub upstream: bool,
    /// With --upstream: pull them from this registry instead (same repository paths, as a
    /// containerd mirror serves them)
    #[arg(long, value_name = "REGISTRY", requires = "upstream")]
    pub mirror: Option<String>,
    /// Directory holding the charms (default: the charms shipped with wharf)
    #[arg(long, env = "WHARF_CHARMS", value_name = "DIR", hide = true)]
    pub charms_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ClusterCommand {
    /// Print the exact command another machine runs to join this cluster (`microk8s add-node`)
    AddNode,
    /// Join this machine to a cluster, with the connection string `add-node` printed
    Join {
        /// IP:PORT/TOKEN/CHECK, as printed by `wharf cluster add-node`
        connection: String,
        /// Join as a worker only (no control plane, no datastore)
        #[arg(long)]
        worker: bool,
        /// wharf's images, imported into this node's containerd after it joins (default:
        /// wharf-images.tar next to the wharf executable, when there)
        #[arg(long, env = "WHARF_IMAGES", value_name = "FILE")]
        images: Option<PathBuf>,
    },
    /// List the nodes with their roles, and whether the cluster is highly available
    Status,
}

/// The user's key for backups (else WHARF_BACKUP_PASSPHRASE, else a prompt on a terminal).
#[derive(Debug, Clone, Args)]
pub struct KeyArgs {
    /// Read the passphrase from the first line of FILE
    #[arg(long, value_name = "FILE", conflicts_with = "key_file")]
    pub passphrase_file: Option<PathBuf>,
    /// Seal backups to, and open them with, an age identity file (`age-keygen -o FILE`)
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

impl KeyArgs {
    pub fn source(&self) -> crate::backup::key::KeySource {
        crate::backup::key::KeySource {
            key_file: self.key_file.clone(),
            passphrase_file: self.passphrase_file.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Back up the model: wharf's state, custom resources of wharf's kinds, Dex, MinIO's data
    Create(BackupCreateArgs),
    /// List the backups at a location (incomplete ones say so)
    List {
        /// A directory or s3://BUCKET/PREFIX (default: ~/.local/share/wharf/backups/<model>)
        #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
        from: Option<String>,
    },
    /// Show what a backup holds (needs its key)
    Describe(BackupNameArgs),
    /// Decrypt every item and check its checksum, without restoring; name what is wrong
    Verify(BackupNameArgs),
    /// Delete a backup (asks first on a terminal)
    Delete {
        name: String,
        #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
        from: Option<String>,
        /// Do not ask on a terminal
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Delete the model's oldest complete backups, keeping the newest N (asks first on a terminal)
    Prune {
        #[arg(long, value_name = "N")]
        keep: usize,
        #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
        from: Option<String>,
        /// Do not ask on a terminal
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Back up on a schedule from inside the cluster: a CronJob with a read-only ServiceAccount
    Schedule(ScheduleArgs),
    /// What runs in the cluster next to a data volume (wharf's image): stream or restore a directory
    #[command(subcommand, hide = true)]
    Agent(AgentCommand),
}

impl BackupCommand {
    pub fn options(&self) -> crate::action::backup::Command {
        use crate::action::backup::{Command, Named, ScheduleOptions};
        let named = |a: &BackupNameArgs| Named {
            name: a.name.clone(),
            from: a.from.clone(),
            key: a.key.source(),
        };
        match self {
            BackupCommand::Create(args) => Command::Create(args.options()),
            BackupCommand::List { from } => Command::List { from: from.clone() },
            BackupCommand::Describe(a) => Command::Describe(named(a)),
            BackupCommand::Verify(a) => Command::Verify(named(a)),
            BackupCommand::Delete { name, from, yes } => Command::Delete {
                name: name.clone(),
                from: from.clone(),
                yes: *yes,
            },
            BackupCommand::Prune { keep, from, yes } => Command::Prune {
                keep: *keep,
                from: from.clone(),
                yes: *yes,
            },
            BackupCommand::Schedule(a) => Command::Schedule(ScheduleOptions {
                cron: a.cron.clone(),
                keep: a.keep,
                to: a.to.clone(),
                key_secret: a.key_secret.clone(),
                s3_secret: a.s3_secret.clone(),
                s3_endpoint: a.s3_endpoint.clone(),
                image: a.image.clone(),
                dry_run: a.dry_run,
            }),
            BackupCommand::Agent(AgentCommand::Stream { dir }) => Command::AgentStream(dir.clone()),
            BackupCommand::Agent(AgentCommand::Restore { dir }) => {
                Command::AgentRestore(dir.clone())
            }
            BackupCommand::Agent(AgentCommand::Wait { seconds }) => Command::AgentWait(*seconds),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct BackupCreateArgs {
    /// The backup's name (default: <model>-<UTC time>)
    pub name: Option<String>,
    /// Where to keep it: a directory or s3://BUCKET/PREFIX (S3 credentials from AWS_* variables)
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub to: Option<String>,
    /// Leave the data out — MinIO's buckets and the charms' data volumes (state, custom
    /// resources and Dex only; needs no pods or pods/exec rights)
    #[arg(long)]
    pub no_data: bool,
    /// MinIO's S3 API as this machine reaches it (a port-forward or an ingress); its credentials
    /// come from the minio application's stored secret values
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// Another bucket to back up besides the minio application's own (repeatable)
    #[arg(long = "s3-bucket", value_name = "NAME")]
    pub s3_buckets: Vec<String>,
    /// Why it is made (shown by list)
    #[arg(long, hide = true, default_value = "manual")]
    pub reason: String,
    /// After it succeeds, delete the model's oldest complete backups there, keeping N (no
    /// question asked: this is the scheduled backup's retention)
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,
    /// MinIO objects transferred at once
    #[arg(long, value_name = "N", default_value_t = crate::action::backup::DEFAULT_PARALLEL,
          value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u16).range(1..=64), usize::from))]
    pub parallel: usize,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Directory holding the charms, whose `data:` says which volumes hold data (default: the
    /// charms shipped with wharf)
    #[arg(long, env = "WHARF_CHARMS", value_name = "DIR", hide = true)]
    pub charms_dir: Option<PathBuf>,
}

impl BackupCreateArgs {
    pub fn options(&self) -> crate::action::backup::CreateOptions {
        crate::action::backup::CreateOptions {
            name: self.name.clone(),
            to: self.to.clone(),
            data: !self.no_data,
            s3_endpoint: self.s3_endpoint.clone(),
            s3_buckets: self.s3_buckets.clone(),
            key: self.key.source(),
            reason: self.reason.clone(),
            keep: self.keep,
            parallel: self.parallel,
            charms_dir: self.charms_dir.clone(),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct BackupNameArgs {
    pub name: String,
    /// A directory or s3://BUCKET/PREFIX (default: ~/.local/share/wharf/backups/<model>)
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub from: Option<String>,
    #[command(flatten)]
    pub key: KeyArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ScheduleArgs {
    /// When, in cron syntax (e.g. "0 3 * * *")
    #[arg(long)]
    pub cron: String,
    /// Complete backups kept (older ones are pruned after each success)
    #[arg(long, value_name = "N")]
    pub keep: usize,
    /// Where: s3://BUCKET/PREFIX
    #[arg(long, value_name = "s3://BUCKET/PREFIX")]
    pub to: String,
    /// The Secret (you create it) whose key `passphrase` seals the backups
    #[arg(long, default_value = "wharf-backup-key", value_name = "NAME")]
    pub key_secret: String,
    /// The Secret (you create it) with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and optionally
    /// AWS_ENDPOINT_URL and AWS_REGION for the destination
    #[arg(long, default_value = "wharf-backup-s3", value_name = "NAME")]
    pub s3_secret: String,
    /// MinIO's in-cluster S3 endpoint, to back its data up too (default: no data)
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// wharf's image (`wharf images build` makes it; `wharf up` imports it)
    #[arg(long, default_value = concat!("wharf.local/wharf:", env!("CARGO_PKG_VERSION")))]
    pub image: String,
    /// Print the objects and stop
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Write DIR as a tar stream to stdout
    Stream { dir: PathBuf },
    /// Unpack a tar stream from stdin into the empty DIR
    Restore { dir: PathBuf },
    /// Wait (the agent pod's main process) until wharf is done with the pod
    Wait {
        #[arg(long, default_value_t = 21600)]
        seconds: u64,
    },
}

#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// The backup's name (`wharf backup list`)
    pub name: String,
    /// A directory or s3://BUCKET/PREFIX (default: ~/.local/share/wharf/backups/<model>)
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub from: Option<String>,
    /// Put custom resources of namespace OLD into NEW (repeatable)
    #[arg(long = "namespace-mapping", value_name = "OLD=NEW")]
    pub namespace_mapping: Vec<String>,
    /// What to do with objects and data that exist: keep them, or overwrite them
    #[arg(long, value_enum, default_value_t = crate::backup::restore::Existing::Skip)]
    pub existing: crate::backup::restore::Existing,
    /// Leave the data out: MinIO's buckets and the charms' data volumes
    #[arg(long)]
    pub no_data: bool,
    /// MinIO's S3 API as this machine reaches it; credentials from the restored secret values
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// MinIO objects transferred at once
    #[arg(long, value_name = "N", default_value_t = crate::action::backup::DEFAULT_PARALLEL,
          value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u16).range(1..=64), usize::from))]
    pub parallel: usize,
    #[command(flatten)]
    pub key: KeyArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

impl RestoreArgs {
    pub fn options(&self) -> crate::action::restore::Options {
        crate::action::restore::Options {
            name: self.name.clone(),
            from: self.from.clone(),
            mapping: self.namespace_mapping.clone(),
            existing: self.existing,
            data: !self.no_data,
            s3_endpoint: self.s3_endpoint.clone(),
            key: self.key.source(),
            run: self.run.options(),
            parallel: self.parallel,
        }
    }
}

/// `wharf pipeline`: KFP v2 pipelines (the YAML `kfp dsl compile` writes) as Argo Workflows.
#[derive(Debug, Subcommand)]
pub enum PipelineCommand {
    /// Print the Argo Workflow a KFP pipeline file compiles to (no cluster needed). Covered:
    /// container components, parameters, artifacts passed between tasks, task outputs,
    /// dependencies and kfp-kubernetes PVC mounts; anything else is refused by name
    Compile(PipelineCompileArgs),
    /// Compile a KFP pipeline file, submit the Workflow and, with --watch, follow it to the end
    Run(PipelineRunArgs),
}

#[derive(Debug, Clone, Args)]
pub struct PipelineCompileArgs {
    /// The pipeline: the YAML `kfp dsl compile` (or `kfp.compiler.Compiler().compile`) wrote
    pub file: PathBuf,
    /// Write the Workflow to FILE instead of stdout
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct PipelineRunArgs {
    /// The pipeline: the YAML `kfp dsl compile` wrote
    pub file: PathBuf,
    /// A pipeline parameter: NAME=VALUE (repeatable; wins over the pipeline's default)
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// The namespace to run in (default: the kubeconfig context's namespace)
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
    /// Follow the Workflow's steps until it ends; exit non-zero unless it succeeded
    #[arg(long)]
    pub watch: bool,
    /// Time between two looks at the Workflow with --watch (e.g. 2s, 500ms)
    #[arg(long, default_value = "2s", value_parser = parse_duration, hide = true)]
    pub interval: std::time::Duration,
}

impl PipelineCommand {
    pub fn options(&self) -> crate::action::pipeline::Command {
        use crate::action::pipeline::{Command, CompileOptions, RunOptions};
        match self {
            PipelineCommand::Compile(a) => Command::Compile(CompileOptions {
                file: a.file.clone(),
                out: a.out.clone(),
            }),
            PipelineCommand::Run(a) => Command::Run(RunOptions {
                file: a.file.clone(),
                params: a.params.clone(),
                namespace: a.namespace.clone(),
                watch: a.watch,
                interval: a.interval,
            }),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct DashboardArgs {
    /// Serve the dashboard from this machine against the kubeconfig's cluster, acting with the
    /// kubeconfig user's own rights (for clusters without the gateway, and for development)
    #[arg(long)]
    pub serve: bool,
    /// Port to serve on with --serve (0 picks a free one; the URL is printed)
    #[arg(long, default_value_t = 8765, requires = "serve")]
    pub port: u16,
    /// Address to listen on with --serve. Anyone who can reach it acts with your kubeconfig's
    /// rights: keep the loopback default unless you mean it
    #[arg(long, default_value = "127.0.0.1", requires = "serve")]
    pub address: std::net::IpAddr,
    /// Behind the platform's gateway only (the dashboard charm): act as the user the gateway's
    /// login names in X-Auth-Request-Email/-User/-Groups, by impersonation, and refuse requests
    /// without them. Never use it where anything but the gateway can reach the dashboard
    #[arg(long, requires = "serve")]
    pub trust_proxy_headers: bool,
    /// With --trust-proxy-headers: the platform's public URL (https://host[:port]), whose host the
    /// dashboard answers at besides IP addresses
    #[arg(long, requires = "trust_proxy_headers", value_name = "URL")]
    pub public_url: Option<String>,
    /// With --trust-proxy-headers: a signed-in user who owns no Profile gets one at their first
    /// visit (named after their email, owned by it), where the workspaces charm serves Profiles
    #[arg(long, requires = "trust_proxy_headers")]
    pub create_profiles: bool,
    /// Open the URL in a browser ($BROWSER, else xdg-open or open) even when not on a terminal;
    /// on a terminal that is the default
    #[arg(long, conflicts_with_all = ["serve", "no_open"])]
    pub open: bool,
    /// Only print the URL, even on a terminal
    #[arg(long, conflicts_with = "serve")]
    pub no_open: bool,
}

impl DashboardArgs {
    pub fn options(&self) -> crate::action::dashboard::Options {
        crate::action::dashboard::Options {
            serve: self
                .serve
                .then(|| std::net::SocketAddr::new(self.address, self.port)),
            trust_proxy_headers: self.trust_proxy_headers,
            public_url: self
                .public_url
                .as_deref()
                .map(|u| u.trim_end_matches('/').to_owned())
                .filter(|u| !u.is_empty()),
            create_profiles: self.create_profiles,
            open: match (self.open, self.no_open) {
                (true, _) => crate::action::dashboard::Open::Always,
                (_, true) => crate::action::dashboard::Open::Never,
                _ => crate::action::dashboard::Open::OnATerminal,
            },
        }
    }
}
