//! The operator's Prometheus metrics, served on `/metrics` (with `/healthz` for the probes):
//! reconciliations by result, their duration, failures by kind, refusals by reason, and
//! leadership. One registry for the binary: the Notebook controller will add its own here.

use std::net::SocketAddr;

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct OperatorMetrics {
    registry: Registry,
    /// Profile reconciliations by result: ok or error.
    pub reconciliations: IntCounterVec,
    /// Failed Profile reconciliations by kind of error.
    pub failures: IntCounterVec,
    /// Profiles refused (NamespaceConflict, InvalidName, …), by condition reason.
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
        let counter = |name: &str, help: &str, label: &str| {
            IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric")
        };
        let reconciliations = counter(
            "wharf_workspaces_profile_reconciliations_total",
            "Profile reconciliations by result (ok or error)",
            "result",
        );
        let failures = counter(
            "wharf_workspaces_profile_reconcile_errors_total",
            "Failed Profile reconciliations by kind of error (api, client)",
            "error",
        );
        let refusals = counter(
            "wharf_workspaces_profile_refusals_total",
            "Profile reconciliations that refused to make a namespace, by condition reason",
            "reason",
        );
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "wharf_workspaces_profile_reconcile_duration_seconds",
                "Time one Profile reconciliation took",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
        )
        .expect("valid metric");
        let leader = IntGauge::new(
            "wharf_workspaces_leader",
            "1 while this replica reconciles (holds the leader Lease, or runs alone)",
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
        registry
            .register(Box::new(leader.clone()))
            .expect("unique metric");
        for result in ["ok", "error"] {
            reconciliations.with_label_values(&[result]);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_exposed_before_anything_happens() {
        let m = OperatorMetrics::new();
        m.refusals.with_label_values(&["NamespaceConflict"]).inc();
        let text = m.render();
        assert!(
            text.contains("wharf_workspaces_profile_reconciliations_total{result=\"error\"} 0")
        );
        assert!(
            text.contains(
                "wharf_workspaces_profile_refusals_total{reason=\"NamespaceConflict\"} 1"
            )
        );
        assert!(text.contains("wharf_workspaces_leader 0"));
    }
}
