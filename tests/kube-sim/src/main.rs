//! `kube-sim`: serve the simulator on a port and write a kubeconfig, for manual use and for tests
//! that need a separate process (e.g. to SIGKILL the client). Stops on Ctrl-C / SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(version, about = "A Kubernetes API simulator over plain HTTP")]
struct Args {
    /// Port on 127.0.0.1 (0 = any free port; the URL is printed).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Write a kubeconfig here (context `sim`).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Bearer token of the cluster admin (written into the kubeconfig).
    #[arg(long, default_value = "admin-token")]
    token: String,
    /// Milliseconds before workloads are ready, Job pods finish and PVCs bind.
    #[arg(long, default_value_t = 200)]
    readiness_delay_ms: u64,
    /// Milliseconds before a new CRD is Established.
    #[arg(long, default_value_t = 100)]
    crd_delay_ms: u64,
    /// Regex: workloads using a matching image never become ready.
    #[arg(long)]
    never_ready_image: Option<regex::Regex>,
    /// LoadBalancer address pool, FIRST-LAST.
    #[arg(long, default_value = "10.64.140.43-10.64.140.49")]
    lb_pool: String,
    /// Kubernetes version reported by /version.
    #[arg(long, default_value = "1.33.5")]
    kube_version: String,
    /// Do not check service-account tokens against RBAC.
    #[arg(long)]
    no_rbac: bool,
    /// Treat requests without credentials as the cluster admin (kubectl sends no token over
    /// plain HTTP).
    #[arg(long)]
    anonymous_admin: bool,
    /// An aggregated API group version whose APIService does not answer (503), e.g.
    /// `metrics.k8s.io/v1beta1`; repeatable.
    #[arg(long)]
    unavailable_api: Vec<String>,
    /// Serve `metrics.k8s.io/v1beta1` as metrics-server does (pods without set usage have no
    /// metrics), so HorizontalPodAutoscalers can read CPU and memory.
    #[arg(long)]
    metrics_server: bool,
    /// The `wharf` binary that pods/exec runs in containers on wharf's own image (none: exec is
    /// refused).
    #[arg(long)]
    wharf_binary: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let a = Args::parse();
    let sim = kube_sim::Simulator::start(kube_sim::Config {
        port: a.port,
        readiness_delay: Duration::from_millis(a.readiness_delay_ms),
        never_ready_image: a.never_ready_image,
        node_images: None,
        lb_pool: a.lb_pool,
        crd_established_delay: Duration::from_millis(a.crd_delay_ms),
        kube_version: a.kube_version,
        rbac: !a.no_rbac,
        admin_token: a.token.clone(),
        anonymous_admin: a.anonymous_admin,
        unavailable_apis: a.unavailable_api,
        metrics_server: a.metrics_server,
        wharf_binary: a.wharf_binary,
        ..kube_sim::Config::default()
    })
    .await?;
    if let Some(path) = &a.kubeconfig {
        sim.write_kubeconfig(path, Some(&a.token))?;
        eprintln!("kubeconfig written to {}", path.display());
    }
    println!("{}", sim.url());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    sim.shutdown().await;
    Ok(())
}
