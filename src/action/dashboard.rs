//! `wharf dashboard`: print where the platform's dashboard is and open it in a browser (like
//! `juju dashboard`), or, with
//! `--serve`, run the dashboard on this machine against the kubeconfig's cluster with the
//! kubeconfig user's own rights (the web server itself is [`crate::dashboard`]).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context, bail};

use super::{Global, Outcome, status};
use crate::kube::connect;
use crate::store::platform;

/// `--serve` and where to listen; `None` prints the URL.
#[derive(Debug, Clone)]
pub struct Options {
    pub serve: Option<SocketAddr>,
    /// Act as the user the gateway names (the in-cluster dashboard), see [`crate::dashboard::viewer`].
    pub trust_proxy_headers: bool,
    pub public_url: Option<String>,
    /// Give a user who owns no Profile one at their first visit ([`crate::dashboard::first_login`]).
    pub create_profiles: bool,
    /// Whether the printed URL is also opened in a browser.
    pub open: Open,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// When stdout is a terminal: a person is there to look (a script only wants the URL).
    OnATerminal,
    Always,
    Never,
}

pub fn run(global: &Global, args: &Options) -> Outcome {
    super::runtime()?.block_on(async {
        if let (true, Some(addr)) = (args.trust_proxy_headers, args.serve) {
            let (cluster, base) = trusted(global).await?;
            let profiles = args.create_profiles.then(|| {
                crate::dashboard::first_login::Registrar::new(&cluster.client, &global.model)
            });
            let trust = crate::dashboard::viewer::Trust {
                base,
                public_url: args.public_url.clone(),
                profiles,
            };
            crate::dashboard::serve(cluster, &global.model, addr, Some(trust)).await?;
            return Ok(ExitCode::SUCCESS);
        }
        let cluster = connect(global.kubeconfig.as_deref(), global.context.as_deref()).await?;
        match args.serve {
            Some(addr) => {
                crate::dashboard::serve(cluster, &global.model, addr, None).await?;
            }
            None => {
                let url = gateway_url(&cluster, &global.model).await?;
                super::print_stdout(&format!("{url}\n"))?;
                let wanted = match args.open {
                    Open::Always => true,
                    Open::Never => false,
                    Open::OnATerminal => std::io::stdout().is_terminal(),
                };
                if wanted && let Err(why) = open_in_browser(&url) {
                    // The URL is printed: not being able to open it is no failure.
                    eprintln!("note: {why}; open the URL above yourself");
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Starts the user's browser on `url` without waiting for it: `$BROWSER` (its first entry when it
/// is a `:`-separated list, as `xdg-utils` reads it), else `xdg-open` (Linux) or `open` (macOS).
fn open_in_browser(url: &str) -> anyhow::Result<()> {
    let program = std::env::var("BROWSER")
        .ok()
        .and_then(|list| {
            list.split(':')
                .map(str::trim)
                .find(|b| !b.is_empty())
                .map(str::to_owned)
        })
        .or_else(|| {
            ["xdg-open", "open"]
                .into_iter()
                .find(|p| which::which(p).is_ok())
                .map(str::to_owned)
        })
        .ok_or_else(|| {
            anyhow::anyhow!("no browser found ($BROWSER is not set, no xdg-open or open)")
        })?;
    std::process::Command::new(&program)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start the browser `{program}`"))?;
    Ok(())
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

/// The dashboard's own connection and the configuration its per-user clients are made from: the
/// kubeconfig when one is given, else the pod's ServiceAccount (in the cluster).
async fn trusted(global: &Global) -> anyhow::Result<(crate::kube::Cluster, kube::Config)> {
    let config = match global.kubeconfig.as_deref() {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("read kubeconfig {}", path.display()))?;
            let options = kube::config::KubeConfigOptions {
                context: global.context.clone(),
                ..Default::default()
            };
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .with_context(|| format!("kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig and not in a pod with a ServiceAccount: pass --kubeconfig")?,
    };
    // As `connect` does: a 503 (Prometheus without endpoints behind the service proxy, an
    // aggregated API starting) is reported at once, not retried for a minute. The per-user
    // clients are made from this configuration and inherit it.
    let mut config = config;
    config.default_retry = false;
    let server = config
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_owned();
    let client = kube::Client::try_from(config.clone())
        .with_context(|| format!("cannot build a client for {server}"))?;
    let info = client
        .apiserver_version()
        .await
        .map_err(|e| anyhow::anyhow!(crate::kube::errors::describe(&e, "connect", &server)))?;
    let cluster = crate::kube::Cluster {
        // The dashboard runs no pods/exec streams, so they need no client of their own.
        streams: client.clone(),
        client,
        server,
        context: global.context.clone().unwrap_or_default(),
        kube_version: info.git_version,
    };
    Ok((cluster, config))
}
