//! The operator's HTTP side: Prometheus metrics on `/metrics` (reconciliations, their duration
//! and failures, TrainJobs finished by outcome, leadership) and `/healthz` for the kubelet.

use std::net::SocketAddr;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Reconciliations by result: ok or error.
    pub reconciles: IntCounterVec,
    pub reconcile_seconds: HistogramVec,
    /// TrainJobs that reached Succeeded or Failed, counted once, by outcome.
    pub finished: IntCounterVec,
    /// 1 while this replica holds the leader Lease (or runs without election).
    pub leader: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new(
                "wharf_trainer_reconciliations_total",
                "TrainJob reconciliations by result (ok, error)",
            ),
            &["result"],
        )
        .expect("valid metric");
        let reconcile_seconds = HistogramVec::new(
            HistogramOpts::new(
                "wharf_trainer_reconcile_duration_seconds",
                "Time one TrainJob reconciliation took",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &[],
        )
        .expect("valid metric");
        let finished = IntCounterVec::new(
            Opts::new(
                "wharf_trainer_trainjobs_finished_total",
                "TrainJobs this operator saw finish, by outcome (Succeeded, Failed)",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let leader = IntGauge::new(
            "wharf_trainer_leader",
            "1 while this replica is the active operator",
        )
        .expect("valid metric");
        registry.register(Box::new(reconciles.clone())).unwrap();
        registry
            .register(Box::new(reconcile_seconds.clone()))
            .unwrap();
        registry.register(Box::new(finished.clone())).unwrap();
        registry.register(Box::new(leader.clone())).unwrap();
        for result in ["ok", "error"] {
            reconciles.with_label_values(&[result]);
        }
        for outcome in ["Succeeded", "Failed"] {
            finished.with_label_values(&[outcome]);
        }
        Metrics {
            registry,
            reconciles,
            reconcile_seconds,
            finished,
            leader,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        wharf_leader::metrics::render(&self.registry)
    }
}

/// Serves `/metrics` and `/healthz` on `addr` until the process ends.
pub async fn serve(addr: SocketAddr, metrics: Metrics) -> anyhow::Result<()> {
    let (local, server) = wharf_leader::metrics::serve(addr, metrics.registry)
        .await
        .map_err(|e| anyhow::anyhow!("binding the metrics address {addr}: {e}"))?;
    tracing::info!(addr = %local, "serving /metrics and /healthz");
    server.await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_exposed_before_anything_happens() {
        let m = Metrics::new();
        m.finished.with_label_values(&["Succeeded"]).inc();
        let text = m.render();
        assert!(text.contains("wharf_trainer_reconciliations_total{result=\"error\"} 0"));
        assert!(text.contains("wharf_trainer_trainjobs_finished_total{outcome=\"Succeeded\"} 1"));
        assert!(text.contains("wharf_trainer_leader 0"));
    }
}
