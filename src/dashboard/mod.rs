//! The dashboard: an axum web server of server-rendered pages (Overview, Training, Models,
//! Notebooks, Tuning, Pipelines, Profiles) with a little vanilla JavaScript, reading the cluster through kube-rs with the rights of the client it
//! is given (`wharf dashboard --serve`: the kubeconfig user's). Live updates are server-sent
//! events fed by one watch per kind, shared by every browser ([`live`]).
//!
//! Everything a page needs (script, style, the Fashion-MNIST samples) is served by the dashboard
//! itself from the binary: air-gapped sites have no CDN.
//!
//! Each page module has its own `router()` beside its handlers (STYLE example 4); the state they
//! share is [`State`].

mod assets;
mod chart;
mod deletion;
pub mod first_login;
mod form;
mod guard;
mod html;
mod installed;
mod live;
mod logtail;
mod models;
mod notebooks;
mod overview;
mod profiles;
mod runs;
mod training;
mod tuning;
pub mod viewer;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;

use crate::kube::Cluster;

/// What every handler shares: the cluster connection, the namespace shown, the watches.
pub struct Shared {
    pub cluster: Cluster,
    /// The model: the namespace whose applications, TrainJobs and InferenceServices are shown.
    pub model: String,
    pub live: live::Live,
    /// For the try-it panel's requests to a model's V2 endpoint.
    pub http: reqwest::Client,
    /// In the cluster: act as the user the gateway names ([`viewer`]); `None`: as `cluster`.
    pub trust: Option<viewer::Trust>,
    /// Which pages the navigation lists.
    pub installed: installed::Installed,
}

pub type State = Arc<Shared>;

/// `?namespace=`: the namespace a page of a profile's work shows.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Where {
    pub namespace: Option<String>,
}

/// Every page and endpoint, each module's routes merged.
pub fn router(state: State) -> Router {
    Router::new()
        .merge(overview::router())
        .merge(training::router())
        .merge(logtail::router())
        .merge(models::router())
        .merge(notebooks::router())
        .merge(tuning::router())
        .merge(runs::router())
        .merge(profiles::router())
        .merge(assets::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::same_origin_writes,
        ))
        .with_state(state)
}

/// Serve until Ctrl-C or SIGTERM. Prints the URL once listening (port 0 picks a free one).
pub async fn serve(
    cluster: Cluster,
    model: &str,
    addr: SocketAddr,
    trust: Option<viewer::Trust>,
) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() && trust.is_none() {
        eprintln!(
            "warning: serving on {addr}: anyone who can reach it acts in the cluster with your \
             kubeconfig's rights"
        );
    }
    let live = live::Live::start(&cluster.client, model, &cluster.server);
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let state = Arc::new(Shared {
        cluster,
        model: model.to_owned(),
        live,
        http,
        trust,
        installed: installed::Installed::default(),
    });
    state.installed.refresh(&state.cluster.client).await;
    let fresh = state.clone();
    tokio::spawn(async move {
        fresh
            .installed
            .keep_fresh(fresh.cluster.client.clone())
            .await
    });
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("listen on {addr} (is the port free? pick another with --port)")
    })?;
    let bound = listener.local_addr()?;
    crate::action::print_stdout(&format!(
        "wharf dashboard for model `{model}` at http://{bound}/ (Ctrl-C stops it)\n"
    ))?;
    let app = router(state);
    // No graceful shutdown: event streams stay open as long as a browser does, and a stop must not
    // wait for them.
    tokio::select! {
        served = axum::serve(listener, app) => served.context("serve the dashboard")?,
        _ = shutdown_signal() => {}
    }
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
