//! `wharf-server`: argument parsing, logging and signal handling; the server lives in the library.

use std::sync::Arc;

use clap::Parser;
use wharf_leader::process::{init_logging, shutdown_signal};
use wharf_server::artifact::ArtifactLoader;
use wharf_server::cli::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            print!("{}", wharf_server::crd::crd_yaml()?);
            Ok(())
        }
        Command::Serve(args) => {
            init_logging(cli.log_format == "json");
            let server =
                wharf_server::server::start(args.config()?, Arc::new(ArtifactLoader)).await?;
            server.run_until(shutdown_signal("server")).await
        }
        Command::Operator(args) => {
            init_logging(cli.log_format == "json");
            let client = kube::Client::try_default().await.map_err(|e| {
                anyhow::anyhow!(
                    "cannot reach the Kubernetes API: {e} (in a pod the service account is used; \
                     elsewhere set KUBECONFIG)"
                )
            })?;
            let operator = wharf_server::operator::Operator::start(client, args.config()).await?;
            operator.run_until(shutdown_signal("operator")).await
        }
    }
}
