//! `wharf-workspaces`: argument parsing, logging and signal handling; the operator lives in the
//! library.

use clap::Parser;
use wharf_leader::process::{init_logging, shutdown_signal};
use wharf_workspaces::cli::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd { kind } => {
            let yaml = if kind == "notebook" {
                wharf_workspaces::notebook::crd::crd_yaml()?
            } else {
                wharf_workspaces::profile::crd::crd_yaml()?
            };
            print!("{yaml}");
            Ok(())
        }
        Command::Operator(args) => {
            init_logging(cli.log_format == "json");
            let client = kube::Client::try_default().await.map_err(|e| {
                anyhow::anyhow!(
                    "cannot reach the Kubernetes API: {e} (in a pod the service account is used; \
                     elsewhere set KUBECONFIG)"
                )
            })?;
            let operator =
                wharf_workspaces::operator::Operator::start(client, args.config()?).await?;
            operator.run_until(shutdown_signal("operator")).await
        }
    }
}
