//! Asking the platform's Prometheus (the monitoring charm) for numbers, through the API server's
//! service proxy (`/api/v1/namespaces/NS/services/NAME:PORT/proxy/api/v1/query`): no port-forward,
//! no extra address, and the API server authorizes it (`get` on `services/proxy`).
//!
//! Finding the Service and reading Prometheus' answer are pure ([`find`], [`query_path`],
//! [`parse_vector`]); [`query`] is the one request.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde_json::Value;

/// The label the monitoring charm puts on the Service of Prometheus' HTTP API.
pub const SERVES_LABEL: &str = "wharf.dev/serves";
pub const SERVES_PROMETHEUS: &str = "prometheus-api";
/// The name of that Service's port of the HTTP API.
pub const PORT_NAME: &str = "web";

/// Prometheus' Service in the model namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusService {
    pub namespace: String,
    pub name: String,
    pub port: u16,
}

/// The Prometheus Service among Service objects (as listed), if the model runs one.
pub fn find<'a>(services: impl IntoIterator<Item = &'a Value>) -> Option<PrometheusService> {
    services.into_iter().find_map(|svc| {
        let meta = &svc["metadata"];
        if meta["labels"][SERVES_LABEL].as_str() != Some(SERVES_PROMETHEUS) {
            return None;
        }
        let port = svc["spec"]["ports"]
            .as_array()?
            .iter()
            .find(|p| p["name"].as_str() == Some(PORT_NAME))?["port"]
            .as_u64()?;
        Some(PrometheusService {
            namespace: meta["namespace"].as_str()?.to_owned(),
            name: meta["name"].as_str()?.to_owned(),
            port: u16::try_from(port).ok()?,
        })
    })
}

/// The API server path of an instant query.
pub fn query_path(svc: &PrometheusService, promql: &str) -> String {
    let query: String = url_encode(promql);
    format!(
        "/api/v1/namespaces/{}/services/{}:{}/proxy/api/v1/query?query={query}",
        svc.namespace, svc.name, svc.port
    )
}

/// Percent-encoding for a query-string value (RFC 3986 unreserved characters kept).
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One sample of an instant vector: its labels and value (NaN when Prometheus says so, e.g. a
/// quantile of no requests).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The samples of a `/api/v1/query` answer whose result is a vector.
pub fn parse_vector(body: &str) -> anyhow::Result<Vec<Sample>> {
    let doc: Value = serde_json::from_str(body).context("Prometheus' answer is not JSON")?;
    if doc["status"] != "success" {
        bail!(
            "Prometheus refused the query: {}",
            doc["error"].as_str().unwrap_or("no error given")
        );
    }
    if doc["data"]["resultType"] != "vector" {
        bail!(
            "Prometheus answered a {} where a vector was expected",
            doc["data"]["resultType"]
        );
    }
    let results = doc["data"]["result"]
        .as_array()
        .ok_or_else(|| anyhow!("Prometheus' answer has no data.result"))?;
    results
        .iter()
        .map(|r| {
            let labels = r["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            // `[timestamp, "value"]`, the value a string ("NaN", "+Inf" included).
            let value = r["value"][1]
                .as_str()
                .ok_or_else(|| anyhow!("a sample without a value: {r}"))?;
            let value = match value {
                "NaN" => f64::NAN,
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v
                    .parse()
                    .with_context(|| format!("sample value {v:?} is not a number"))?,
            };
            Ok(Sample { labels, value })
        })
        .collect()
}

/// Run an instant query, waiting at most `timeout`.
pub async fn query(
    client: &kube::Client,
    svc: &PrometheusService,
    promql: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<Sample>> {
    let request = http::Request::get(query_path(svc, promql))
        .body(Vec::new())
        .context("building the query request")?;
    let body = tokio::time::timeout(timeout, client.request_text(request))
        .await
        .map_err(|_| anyhow!("Prometheus did not answer within {} s", timeout.as_secs()))?
        .with_context(|| {
            format!(
                "asking Prometheus (Service {}/{} through the API server's proxy)",
                svc.namespace, svc.name
            )
        })?;
    parse_vector(&body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_service_is_found_by_its_label_and_port_name() {
        let other = json!({"metadata": {"name": "minio", "namespace": "wharf", "labels": {}},
            "spec": {"ports": [{"name": "web", "port": 9000}]}});
        let prometheus = json!({"metadata": {"name": "monitoring", "namespace": "wharf",
            "labels": {"wharf.dev/serves": "prometheus-api"}},
            "spec": {"ports": [{"name": "web", "port": 9090}]}});
        assert_eq!(find([&other]), None);
        assert_eq!(
            find([&other, &prometheus]),
            Some(PrometheusService {
                namespace: "wharf".into(),
                name: "monitoring".into(),
                port: 9090
            })
        );
    }

    #[test]
    fn the_query_is_encoded_in_the_proxy_path() {
        let svc = PrometheusService {
            namespace: "wharf".into(),
            name: "monitoring".into(),
            port: 9090,
        };
        assert_eq!(
            query_path(&svc, "sum by (a) (x{b=\"c\"})"),
            "/api/v1/namespaces/wharf/services/monitoring:9090/proxy/api/v1/query?\
             query=sum%20by%20%28a%29%20%28x%7Bb%3D%22c%22%7D%29"
        );
    }

    #[test]
    fn vectors_are_read_with_nan_and_errors_are_said() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"inferenceservice":"fashion","namespace":"wharf"},"value":[1.5,"3"]},
            {"metric":{"inferenceservice":"idle"},"value":[1.5,"NaN"]}]}}"#;
        let samples = parse_vector(body).unwrap();
        assert_eq!(samples[0].labels["inferenceservice"], "fashion");
        assert_eq!(samples[0].value, 3.0);
        assert!(samples[1].value.is_nan());
        let refused = r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert!(
            parse_vector(refused)
                .unwrap_err()
                .to_string()
                .contains("parse error")
        );
        assert!(parse_vector("<html>").is_err());
    }
}
