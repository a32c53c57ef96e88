//! Prometheus metrics served on `/metrics`: requests by model and status code, request latency
//! and forward-pass batch sizes by model, and the number of loaded versions per model.
//!
//! Requests for models that do not exist are counted under `model="_unknown"` so that a client
//! probing random names cannot grow the number of series without bound.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Label used for requests whose model is not in the repository.
pub const UNKNOWN_MODEL: &str = "_unknown";

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    pub batch_size: HistogramVec,
    pub versions_loaded: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "wharf_server_requests_total",
                "Inference and metadata requests by model and HTTP status code",
            ),
            &["model", "code"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "wharf_server_request_duration_seconds",
                "Time from the request reaching the handler to its response, inference requests only",
            )
            .buckets(vec![
                0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                0.5, 1.0,
            ]),
            &["model"],
        )
        .expect("valid metric");
        let batch_size = HistogramVec::new(
            HistogramOpts::new("wharf_server_batch_size", "Rows per forward pass")
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
            &["model"],
        )
        .expect("valid metric");
        let versions_loaded = IntGaugeVec::new(
            Opts::new(
                "wharf_server_model_versions_loaded",
                "Model versions currently served",
            ),
            &["model"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(batch_size.clone()),
            Box::new(versions_loaded.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Metrics {
            registry,
            requests,
            latency,
            batch_size,
            versions_loaded,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encoding into a Vec cannot fail");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_text_holds_each_family_with_its_labels() {
        let m = Metrics::new();
        m.requests.with_label_values(&["fashion", "200"]).inc();
        m.latency.with_label_values(&["fashion"]).observe(0.0001);
        m.batch_size.with_label_values(&["fashion"]).observe(3.0);
        m.versions_loaded.with_label_values(&["fashion"]).set(2);
        let text = m.render();
        for needle in [
            "wharf_server_requests_total{code=\"200\",model=\"fashion\"} 1",
            "wharf_server_request_duration_seconds_count{model=\"fashion\"} 1",
            "wharf_server_batch_size_sum{model=\"fashion\"} 3",
            "wharf_server_model_versions_loaded{model=\"fashion\"} 2",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
