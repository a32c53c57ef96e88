//! The command line: every verb, its flags and their help text. Parsing only; the work is in `action`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// wharf installs MicroK8s, deploys an ML platform bundle on it and keeps it running.
///
/// On a fresh Ubuntu host or Raspberry Pi, `wharf up` does it all (`wharf up --dry-run` shows each
/// command first). `wharf check` tells whether this host can carry a bundle, `wharf render lite`
/// what would be deployed, and `wharf status` how the platform is doing.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
    Yaml,
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
    /// Remove one application, or everything wharf deployed in the model
    Remove(RemoveArgs),
    /// Take this host from bare Ubuntu to MicroK8s, its add-ons and the platform (resumable)
    Up(UpArgs),
    /// Grow an edge cluster: print a join command, join this machine, list the nodes
    #[command(subcommand)]
    Cluster(ClusterCommand),
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
    /// An overlay file merged on top of the bundle (repeatable, applied in order)
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
    /// Directory holding the charms (default: the charms shipped with wharf)
    #[arg(long, env = "WHARF_CHARMS", value_name = "DIR", hide = true)]
    pub charms_dir: Option<PathBuf>,
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

#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub bundle: BundleArgs,
    /// Print the plan (stages, applications, each object's create/update/unchanged/prune) and stop
    #[arg(long)]
    pub dry_run: bool,
    /// Print a unified diff of each object against the live one (Secret data redacted);
    /// with --dry-run, only the diff
    #[arg(long)]
    pub diff: bool,
    /// Wait until every application is ready (the default)
    #[arg(long, overrides_with = "no_wait")]
    pub wait: bool,
    /// Apply and return without waiting for readiness
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting after this long (e.g. 90s, 20m, 1h); the release is recorded as failed
    #[arg(long, default_value = "20m", value_parser = crate::action::deploy::parse_timeout)]
    pub timeout: std::time::Duration,
    /// Take over fields another field manager owns (server-side apply conflicts)
    #[arg(long)]
    pub force_conflicts: bool,
    /// Take the model lock even if another run holds it (only when that run is gone)
    #[arg(long)]
    pub force_unlock: bool,
    /// Also prune CustomResourceDefinitions the bundle dropped (deletes their custom resources)
    #[arg(long)]
    pub prune_crds: bool,
    /// Also prune PersistentVolumeClaims the bundle dropped (deletes their data)
    #[arg(long)]
    pub prune_data: bool,
    /// Release records kept per application
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub history: usize,
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
    /// Remove every application of the model, the generated secrets, the lock and the namespace
    /// wharf created
    #[arg(long)]
    pub all: bool,
    /// Keep PersistentVolumeClaims (and the generated secrets their data was written with)
    #[arg(long)]
    pub keep_data: bool,
    /// Also delete CustomResourceDefinitions, and with them every custom resource of their kinds
    #[arg(long)]
    pub destroy_crds: bool,
    /// Take the model lock even if another run holds it
    #[arg(long)]
    pub force_unlock: bool,
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
          value_parser = crate::action::deploy::parse_timeout)]
    pub gateway_timeout: std::time::Duration,
    /// How long the HTTP checks of the dashboard and of Dex may retry (Dex takes a while to start)
    #[arg(long, default_value = "60s", value_name = "DURATION",
          value_parser = crate::action::deploy::parse_timeout)]
    pub verify_timeout: std::time::Duration,
    /// Read /proc, /sys, /etc and /boot under this directory instead of / (for tests)
    #[arg(long, hide = true, env = "WHARF_HOST_ROOT", default_value = "/")]
    pub host_root: PathBuf,
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
    },
    /// List the nodes with their roles, and whether the cluster is highly available
    Status,
}
