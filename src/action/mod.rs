//! One module per verb. A verb reads like the steps a user would list; the mechanics live in
//! `bundle`, `charm`, `render`, `engine`, `kube`, `store` and `host`.
//!
//! The command line (`cli.rs`) turns flags into each verb's options once; actions never read argv
//! and never import the CLI. Every verb that talks to the cluster opens one [`Session`].

pub mod backup;
pub mod check;
pub mod cluster;
pub mod completions;
pub mod config;
pub mod converge;
pub mod dashboard;
pub mod deploy;
pub mod history;
pub mod images;
pub mod kubernetes;
pub mod notebook;
pub mod pipeline;
pub mod profile;
pub mod remove;
pub mod render;
pub mod restore;
pub mod rollback;
pub mod status;
pub mod tuning;
pub mod up;
pub mod upgrade;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::anyhow;
use serde::Serialize;

use crate::kube::{Catalog, Cluster, connect, errors};
use crate::store::Releases;

/// What a verb returns: the exit code it wants, or an error to print.
pub type Outcome = anyhow::Result<ExitCode>;

/// How a verb prints its result: text for people, one JSON or YAML document for scripts
/// (progress then goes to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
    Yaml,
}

impl OutputFormat {
    /// Print `value` as the one document of a `--output json|yaml` run (nothing for text).
    pub fn document<T: Serialize>(self, value: &T) -> anyhow::Result<()> {
        let text = match self {
            OutputFormat::Text => return Ok(()),
            OutputFormat::Json => serde_json::to_string_pretty(value)? + "\n",
            OutputFormat::Yaml => serde_saphyr::to_string(value)?,
        };
        print_stdout(&text)
    }

    pub fn is_text(self) -> bool {
        self == OutputFormat::Text
    }
}

/// Write to stdout; a reader that went away (`wharf render lite | head`) ends the output quietly,
/// as ripgrep does, instead of failing with "Broken pipe".
pub fn print_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => Ok(other?),
    }
}

/// What every verb takes from the global flags: which cluster, which model, which output.
#[derive(Debug, Clone)]
pub struct Global {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// The model: the namespace the platform lives in.
    pub model: String,
    pub output: OutputFormat,
}

/// Made once per command that talks to the cluster: the connection, what the cluster serves, the
/// model's release store. Every cluster call of a verb goes through it.
pub struct Session {
    pub cluster: Cluster,
    pub catalog: Catalog,
    pub releases: Releases,
    pub model: String,
    pub output: OutputFormat,
}

impl Session {
    /// Connect, discover and open the model's release store.
    pub async fn open(global: &Global) -> anyhow::Result<Session> {
        let cluster = connect(global.kubeconfig.as_deref(), global.context.as_deref()).await?;
        let catalog = Catalog::load(&cluster.client, &cluster.server).await?;
        let releases = Releases::new(&cluster.client, &global.model, &cluster.server);
        Ok(Session {
            cluster,
            catalog,
            releases,
            model: global.model.clone(),
            output: global.output,
        })
    }

    pub fn client(&self) -> &kube::Client {
        &self.cluster.client
    }

    pub fn server(&self) -> &str {
        &self.cluster.server
    }

    /// Turn an API error into the one-line message a user can act on (401, 403, unreachable…).
    pub fn describe(&self, what: &str) -> impl Fn(kube::Error) -> anyhow::Error + use<> {
        let server = self.cluster.server.clone();
        let what = what.to_owned();
        move |e| anyhow!(errors::describe(&e, &what, &server))
    }
}

/// The async runtime the cluster verbs run on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Parse durations like `20m`, `90s`, `1h30m` (`--timeout` and friends).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 20m or 90s: {e}"))
}

/// Print an error with its causes, one per line, and turn the outcome into the process exit code.
pub fn exit(outcome: Outcome) -> ExitCode {
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
