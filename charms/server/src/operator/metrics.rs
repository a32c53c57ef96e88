//! The operator's Prometheus metrics, served on `/metrics` (with `/healthz` for the probes):
//! reconciliations by result, their duration, failures by kind and refusals by reason.

use std::net::SocketAddr;

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct OperatorMetrics {
    registry: Registry,
    pub reconciliations: IntCounterVec,
    pub failures: IntCounterVec,
    pub refusals: IntCounterVec,
    pub duration: Histogram,
    /// 1 while this replica reconciles (it holds the Lease, or there is no leader election).
    pub leader: IntGauge,
}

impl Default for OperatorMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl OperatorMetrics {
    pub fn new() -> OperatorMetrics {
        let registry = Registry::new();
        let reconciliations = IntCounterVec::new(
            Opts::new(
                "wharf_server_operator_reconciliations_total",
                "InferenceService reconciliations by result (ok or error)",
            ),
            &["result"],
        )
        .expect("valid metric");
        let failures = IntCounterVec::new(
            Opts::new(
                "wharf_server_operator_reconcile_errors_total",
                "Failed reconciliations by kind of error (api, client, build)",
            ),
            &["error"],
        )
        .expect("valid metric");
        let refusals = IntCounterVec::new(
            Opts::new(
                "wharf_server_operator_refusals_total",
                "Reconciliations that refused to serve an InferenceService, by condition reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "wharf_server_operator_reconcile_duration_seconds",
                "Time one reconciliation took",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
        )
        .expect("valid metric");
        for c in [&reconciliations, &failures, &refusals] {
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
        }
        registry
            .register(Box::new(duration.clone()))
            .expect("unique metric");
        let leader = IntGauge::new(
            "wharf_server_operator_leader",
            "1 while this replica reconciles (holds the leader Lease, or runs alone)",
        )
        .expect("valid metric");
        registry
            .register(Box::new(leader.clone()))
            .expect("unique metric");
        OperatorMetrics {
            registry,
            reconciliations,
            failures,
            refusals,
            duration,
            leader,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        wharf_leader::metrics::render(&self.registry)
    }
}

/// Bind the metrics listener now (so a bad address fails at start-up) and return its address and
/// the server future.
pub async fn serve(
    addr: SocketAddr,
    metrics: OperatorMetrics,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    wharf_leader::metrics::serve(addr, metrics.registry).await
}
