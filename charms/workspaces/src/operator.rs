//! `wharf-workspaces operator`: starts the metrics listener, waits for the leader Lease when
//! there is more than one replica (`wharf_leader`), and runs the Profile controller until a
//! signal. The Notebook controller will run here too, under the same Lease and metrics.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::FutureExt;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use wharf_leader::Elector;

use crate::config::OperatorConfig;
use crate::metrics::{self, OperatorMetrics};
use crate::profile;
use crate::profile::reconcile::Context;

/// A started operator: its metrics listener is bound; [`Operator::run_until`] runs the controllers.
pub struct Operator {
    ctx: Arc<Context>,
    metrics_addr: SocketAddr,
    metrics_server: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>>,
}

impl Operator {
    /// Bind the metrics listener and prepare the controllers.
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
        Ok(Operator {
            ctx: Arc::new(Context {
                client,
                config,
                metrics,
                recorder,
            }),
            metrics_addr,
            metrics_server: Box::pin(server),
        })
    }

    /// Where `/metrics` answers.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// Reconcile until `shutdown` resolves. With leader election, wait as a standby until this
    /// replica holds the Lease, and fail if it loses it (the kubelet restarts it as a standby).
    /// `/metrics` and `/healthz` answer throughout, so the probes pass while a replica waits.
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
            tracing::info!(namespace = %ctx.config.namespace, metrics = %metrics_addr, "workspaces operator started");
            let controllers = profile::controller(ctx.clone(), shutdown.clone());
            let led = match &elector {
                Some(elector) => elector.while_leading(controllers).await,
                None => {
                    controllers.await;
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
