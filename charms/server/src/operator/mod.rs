//! `wharf-server operator`: the InferenceService controller. For each InferenceService in its
//! namespace it keeps a wharf-server Deployment (the model mounted from a PVC or a host
//! directory), a Service named like it (the platform gateway routes `/models/<name>/` there), an
//! HPA when `maxReplicas > minReplicas`, and reports readiness in `status` and as Events, with
//! its own metrics on `/metrics`.
//!
//! - [`config`]: the operator's settings (namespace, image, model port, public URL);
//! - [`storage`]: `storageUri` → where the model is mounted from;
//! - [`resources`]: the objects one InferenceService becomes;
//! - [`status`]: conditions from what was observed;
//! - [`reconcile`]: one reconcile, the error policy and the shared context;
//! - [`metrics`]: the operator's Prometheus metrics and their HTTP listener.
//!
//! With more than one replica, only the one holding the Lease reconciles (`wharf_leader`).

pub mod config;
pub mod error;
pub mod metrics;
pub mod reconcile;
pub mod resources;
pub mod status;
pub mod storage;

use std::net::SocketAddr;
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use kube::runtime::controller::Controller;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Api, Client};

pub use config::OperatorConfig;
use metrics::OperatorMetrics;
use reconcile::Context;

use wharf_leader::Elector;

use crate::crd::InferenceService;

/// A started operator: its metrics listener is bound; [`Operator::run_until`] runs the controller.
pub struct Operator {
    ctx: Arc<Context>,
    metrics_addr: SocketAddr,
    metrics_server: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>>,
}

impl Operator {
    /// Bind the metrics listener and prepare the controller.
    pub async fn start(client: Client, config: OperatorConfig) -> anyhow::Result<Operator> {
        let metrics = OperatorMetrics::new();
        let (metrics_addr, server) = metrics::serve(config.metrics_addr, metrics.clone())
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen for metrics on {}: {e} (choose another --metrics-addr)",
                    config.metrics_addr
                )
            })?;
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: config.reporter.clone(),
                instance: config.instance.clone(),
            },
        );
        let ctx = Arc::new(Context {
            client,
            config,
            metrics,
            recorder,
        });
        Ok(Operator {
            ctx,
            metrics_addr,
            metrics_server: Box::pin(server),
        })
    }

    /// Where `/metrics` answers.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// Reconcile until `shutdown` resolves (in-flight reconciles finish first). With leader
    /// election, wait as a standby until this replica holds the Lease, and return an error if
    /// it loses the Lease (the kubelet restarts it as a standby). `/metrics` and `/healthz`
    /// answer throughout, so that the probes pass while a replica waits.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    ) -> anyhow::Result<()> {
        let shutdown = shutdown.shared();
        let Operator {
            ctx,
            metrics_addr,
            metrics_server,
        } = self;
        let elector = ctx.config.lease_name.as_ref().map(|lease| {
            Elector::new(
                ctx.client.clone(),
                &ctx.config.namespace,
                lease,
                &ctx.config.identity(),
            )
        });
        let work = async {
            if let Some(elector) = &elector {
                tokio::select! {
                    () = elector.acquire() => {}
                    () = shutdown.clone() => return Ok(()),
                }
            }
            ctx.metrics.leader.set(1);
            tracing::info!(namespace = %ctx.config.namespace, metrics = %metrics_addr, "InferenceService operator started");
            let controller = controller(ctx.clone(), shutdown.clone());
            let led = match &elector {
                Some(elector) => elector.while_leading(controller).await,
                None => {
                    controller.await;
                    Ok(())
                }
            };
            led.map_err(|lost| {
                ctx.metrics.leader.set(0);
                anyhow::Error::from(lost)
            })
        };
        tokio::select! {
            result = work => result,
            result = metrics_server => {
                result.map_err(|e| anyhow::anyhow!("the metrics server stopped: {e}"))
            }
        }
    }
}

/// The InferenceService controller, until `shutdown` resolves.
fn controller(
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> impl Future<Output = ()> {
    let ns = ctx.config.namespace.clone();
    let client = ctx.client.clone();
    // Only the operator's own objects are watched: fewer events, and nothing else's labels.
    let owned = watcher::Config::default().labels(&resources::managed_selector());
    Controller::new(
        Api::<InferenceService>::namespaced(client.clone(), &ns),
        watcher::Config::default(),
    )
    .owns(
        Api::<Deployment>::namespaced(client.clone(), &ns),
        owned.clone(),
    )
    .owns(
        Api::<Service>::namespaced(client.clone(), &ns),
        owned.clone(),
    )
    .owns(
        Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), &ns),
        owned,
    )
    .graceful_shutdown_on(shutdown)
    .run(reconcile::reconcile, reconcile::error_policy, ctx)
    .for_each(|result| async move {
        if let Err(error) = result {
            tracing::debug!(%error, "controller");
        }
    })
}
