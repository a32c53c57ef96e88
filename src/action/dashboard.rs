//! `wharf dashboard`: print where the platform's dashboard is (like `juju dashboard`), or, with
//! `--serve`, run the dashboard on this machine against the kubeconfig's cluster with the
//! kubeconfig user's own rights (the web server itself is [`crate::dashboard`]).

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::bail;

use super::{Global, Outcome, status};
use crate::kube::connect;
use crate::store::platform;

/// `--serve` and where to listen; `None` prints the URL.
#[derive(Debug, Clone)]
pub struct Options {
    pub serve: Option<SocketAddr>,
}

pub fn run(global: &Global, args: &Options) -> Outcome {
    super::runtime()?.block_on(async {
        let cluster = connect(global.kubeconfig.as_deref(), global.context.as_deref()).await?;
        match args.serve {
            Some(addr) => {
                crate::dashboard::serve(cluster, &global.model, addr).await?;
            }
            None => {
                let url = gateway_url(&cluster, &global.model).await?;
                super::print_stdout(&format!("{url}\n"))?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The gateway serves the dashboard at `/` of the platform's public URL (kept by `wharf deploy
/// --public-url`); without one, at the gateway's address as `wharf status` shows it.
async fn gateway_url(cluster: &crate::kube::Cluster, model: &str) -> anyhow::Result<String> {
    let settings = platform::load(&cluster.client, model, &cluster.server).await?;
    if !settings.public_url.is_empty() {
        return Ok(format!("{}/", settings.public_url));
    }
    let report = status::collect(cluster, model).await?;
    match report.applications.iter().find(|a| a.app == "gateway") {
        Some(gateway) if !gateway.address.is_empty() => Ok(format!("http://{}/", gateway.address)),
        Some(_) => bail!(
            "the gateway of model `{model}` has no address yet and no public URL is kept; \
             see `wharf status`, deploy with `--public-url URL`, or run `wharf dashboard --serve`"
        ),
        None => bail!(
            "model `{model}` has no gateway (deploy `lite` or `full`); \
             run the dashboard here instead: `wharf dashboard --serve`"
        ),
    }
}
