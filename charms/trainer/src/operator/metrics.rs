//! The operator's HTTP side: Prometheus metrics on `/metrics` (reconciliations, their duration
//! and failures, TrainJobs finished by outcome, TrainJobs by state and the running ones' epochs,
//! leadership) and `/healthz` for the kubelet.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use kube::runtime::reflector::Store;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::crd::TrainJob;

/// The states `wharf_trainer_trainjobs` always reports (0 when none), `Pending` for a TrainJob the
/// operator has not reconciled yet.
pub const STATES: [&str; 5] = ["Pending", "Created", "Running", "Succeeded", "Failed"];

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
    /// The controller's cache of TrainJobs, read at each scrape (None until it runs).
    trainjobs: Arc<Mutex<Option<Store<TrainJob>>>>,
}

/// A running TrainJob's namespace and name, and the last epoch it finished.
pub type RunningEpochs = ((String, String), i64);

/// What the TrainJob gauges say: how many TrainJobs are in each state, and the epochs each
/// running one has finished (by namespace and name). Pure, from the cached TrainJobs.
pub fn trainjob_gauges(trainjobs: &[Arc<TrainJob>]) -> (BTreeMap<String, i64>, Vec<RunningEpochs>) {
    let mut states: BTreeMap<String, i64> = STATES.iter().map(|s| (s.to_string(), 0)).collect();
    let mut epochs = Vec::new();
    for tj in trainjobs {
        let status = tj.status.as_ref();
        let state = status
            .and_then(|s| s.state.clone())
            .unwrap_or_else(|| "Pending".into());
        if state == "Running" {
            // The last epoch's number: status.epochs keeps only the most recent ones.
            let done = status
                .and_then(|s| s.epochs.last())
                .map_or(0, |e| i64::from(e.epoch));
            epochs.push(((tj.namespace().unwrap_or_default(), tj.name_any()), done));
        }
        *states.entry(state).or_default() += 1;
    }
    epochs.sort();
    (states, epochs)
}

/// Collects the TrainJob gauges from the cache when Prometheus scrapes, so they are never stale
/// and a finished TrainJob's epochs series ends with it.
struct TrainJobCollector {
    trainjobs: Arc<Mutex<Option<Store<TrainJob>>>>,
    states: IntGaugeVec,
    epochs: IntGaugeVec,
}

impl Collector for TrainJobCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.states
            .desc()
            .into_iter()
            .chain(self.epochs.desc())
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let cached = self
            .trainjobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(Store::state)
            .unwrap_or_default();
        let (states, epochs) = trainjob_gauges(&cached);
        self.states.reset();
        self.epochs.reset();
        for (state, n) in states {
            self.states.with_label_values(&[state.as_str()]).set(n);
        }
        for ((namespace, name), done) in epochs {
            self.epochs
                .with_label_values(&[namespace.as_str(), name.as_str()])
                .set(done);
        }
        self.states
            .collect()
            .into_iter()
            .chain(self.epochs.collect())
            .collect()
    }
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
        let trainjobs = Arc::new(Mutex::new(None));
        let collector = TrainJobCollector {
            trainjobs: trainjobs.clone(),
            states: IntGaugeVec::new(
                Opts::new(
                    "wharf_trainer_trainjobs",
                    "TrainJobs in every namespace by state (the operator's cache; 0 on a standby)",
                ),
                &["state"],
            )
            .expect("valid metric"),
            // Not `namespace`: Prometheus gives that label the operator's own namespace.
            epochs: IntGaugeVec::new(
                Opts::new(
                    "wharf_trainer_trainjob_epochs_completed",
                    "Epochs a running TrainJob has finished (status.epochs)",
                ),
                &["trainjob_namespace", "trainjob"],
            )
            .expect("valid metric"),
        };
        registry.register(Box::new(collector)).unwrap();
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
            trainjobs,
        }
    }

    /// Report the TrainJob gauges from the controller's cache from now on.
    pub fn watch_trainjobs(&self, store: Store<TrainJob>) {
        *self.trainjobs.lock().unwrap_or_else(|p| p.into_inner()) = Some(store);
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
        // Before the controller runs: every state, at 0.
        for state in STATES {
            assert!(
                text.contains(&format!("wharf_trainer_trainjobs{{state=\"{state}\"}} 0")),
                "{text}"
            );
        }
    }

    fn trainjob(namespace: &str, name: &str, state: Option<&str>, epochs: usize) -> Arc<TrainJob> {
        let status = state.map(|s| {
            serde_json::json!({"state": s, "epochs": (1..=epochs).map(|e| serde_json::json!({"epoch": e})).collect::<Vec<_>>()})
        });
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "wharf.dev/v1alpha1", "kind": "TrainJob",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"dataset": {"uri": "file:///data"}, "output": {"uri": "pvc://models/x"}},
                "status": status,
            }))
            .unwrap(),
        )
    }

    #[test]
    fn trainjobs_are_counted_by_state_and_running_ones_report_their_epochs() {
        let (states, epochs) = trainjob_gauges(&[
            trainjob("alice", "cnn", Some("Running"), 3),
            trainjob("bob", "mlp", Some("Running"), 0),
            trainjob("alice", "old", Some("Succeeded"), 10),
            trainjob("alice", "broken", Some("Failed"), 0),
            trainjob("bob", "new", None, 0),
        ]);
        let want: BTreeMap<String, i64> = [
            ("Pending", 1),
            ("Created", 0),
            ("Running", 2),
            ("Succeeded", 1),
            ("Failed", 1),
        ]
        .into_iter()
        .map(|(s, n)| (s.to_owned(), n))
        .collect();
        assert_eq!(states, want);
        assert_eq!(
            epochs,
            [
                (("alice".to_owned(), "cnn".to_owned()), 3),
                (("bob".to_owned(), "mlp".to_owned()), 0)
            ]
        );
    }
}
