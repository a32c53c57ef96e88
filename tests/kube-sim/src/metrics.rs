//! A simulated metrics-server: the aggregated `metrics.k8s.io/v1beta1` API (PodMetrics,
//! NodeMetrics), served only when `Config::metrics_server` is on — as on a real cluster, where the
//! group exists only once metrics-server is installed (`microk8s enable metrics-server`).
//!
//! Usage is what the test says (`Simulator::set_pod_usage`), per container of the matching
//! running pods. A running pod no rule covers has no metrics yet, like a pod metrics-server has
//! not scraped: it is missing from lists and a GET of it is 404, which is what the HPA controller
//! has to cope with.

use std::sync::Arc;

use regex::Regex;
use serde_json::{Value, json};

use crate::catalog::ResourceType;
use crate::error::{ApiError, ApiResult};
use crate::ops::now;
use crate::store::State;

pub const GROUP: &str = "metrics.k8s.io";
pub const VERSION: &str = "v1beta1";
/// The name the simulated node has in NodeMetrics (MicroK8s names the node after the host).
pub const NODE: &str = "kube-sim";

/// The kinds metrics-server adds to discovery.
pub fn types() -> Vec<ResourceType> {
    [
        ("PodMetrics", "pods", true),
        ("NodeMetrics", "nodes", false),
    ]
    .into_iter()
    .map(|(kind, plural, namespaced)| ResourceType {
        group: GROUP.into(),
        version: VERSION.into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: String::new(),
        namespaced,
        short_names: vec![],
        status: false,
        scale: false,
        crd: None,
    })
    .collect()
}

/// What each container of the matching pods uses.
#[derive(Debug, Clone)]
struct Rule {
    namespace: String,
    pattern: Regex,
    cpu_millis: u64,
    memory_bytes: u64,
}

/// Pod usage set by tests; later rules win.
#[derive(Debug, Default)]
pub struct Usage {
    rules: Vec<Rule>,
}

impl Usage {
    /// Each container of running pods in `namespace` whose name matches `pod` (exact, or a glob
    /// with `*`) uses `cpu_millis` millicores and `memory_bytes`.
    pub fn set(&mut self, namespace: &str, pod: &str, cpu_millis: u64, memory_bytes: u64) {
        let re = format!("^{}$", regex::escape(pod).replace("\\*", ".*"));
        self.rules.push(Rule {
            namespace: namespace.into(),
            pattern: Regex::new(&re).expect("an escaped glob is a valid regex"),
            cpu_millis,
            memory_bytes,
        });
    }

    fn of(&self, namespace: &str, pod: &str) -> Option<(u64, u64)> {
        self.rules
            .iter()
            .rev()
            .find(|r| r.namespace == namespace && r.pattern.is_match(pod))
            .map(|r| (r.cpu_millis, r.memory_bytes))
    }
}

/// A quantity in base units, with the nano and micro suffixes metrics-server uses for CPU
/// (`250000000n`) besides the ones `storage::quantity` reads.
pub fn quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Some(n) = s.strip_suffix('n') {
        return n.parse::<f64>().ok().map(|v| v * 1e-9);
    }
    if let Some(u) = s.strip_suffix('u') {
        return u.parse::<f64>().ok().map(|v| v * 1e-6);
    }
    crate::storage::quantity(s)
}

/// metrics-server's units: CPU in nanocores, memory in KiB.
fn cpu(millis: u64) -> String {
    format!("{}n", millis * 1_000_000)
}
fn memory(bytes: u64) -> String {
    format!("{}Ki", bytes / 1024)
}

/// The PodMetrics of one pod, when it runs and has usage.
pub fn pod_metrics(usage: &Usage, pod: &Value) -> Option<Value> {
    let md = &pod["metadata"];
    let (ns, name) = (md["namespace"].as_str()?, md["name"].as_str()?);
    if pod["status"]["phase"] != "Running" || !md["deletionTimestamp"].is_null() {
        return None;
    }
    let (c, m) = usage.of(ns, name)?;
    let containers: Vec<Value> = pod["spec"]["containers"]
        .as_array()?
        .iter()
        .map(|k| json!({"name": k["name"], "usage": {"cpu": cpu(c), "memory": memory(m)}}))
        .collect();
    Some(json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "PodMetrics",
        "metadata": {"name": name, "namespace": ns, "labels": md["labels"], "creationTimestamp": now()},
        "timestamp": now(),
        "window": "15s",
        "containers": containers,
    }))
}

fn pods(st: &State) -> Vec<Value> {
    let Some(rt) = st.catalog.find("", "v1", "pods") else {
        return vec![];
    };
    st.op_list(&rt, None, &Default::default())
        .ok()
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default()
}

/// Every running pod's metrics in `namespace` (None: all namespaces).
pub fn pod_metrics_in(st: &State, usage: &Usage, namespace: Option<&str>) -> Vec<Value> {
    pods(st)
        .iter()
        .filter(|p| namespace.is_none_or(|ns| p["metadata"]["namespace"] == ns))
        .filter_map(|p| pod_metrics(usage, p))
        .collect()
}

/// The one node's metrics: the sum of every pod's usage.
fn node_metrics(st: &State, usage: &Usage) -> Value {
    let (mut c, mut m) = (0u64, 0u64);
    for pm in pod_metrics_in(st, usage, None) {
        for k in pm["containers"].as_array().into_iter().flatten() {
            let q = |f: &str| quantity(k["usage"][f].as_str().unwrap_or("0")).unwrap_or(0.0);
            c += (q("cpu") * 1000.0).round() as u64;
            m += q("memory") as u64;
        }
    }
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "NodeMetrics",
        "metadata": {"name": NODE, "creationTimestamp": now()},
        "timestamp": now(),
        "window": "20s",
        "usage": {"cpu": cpu(c), "memory": memory(m)},
    })
}

/// GET/LIST on the metrics API; metrics-server serves nothing else.
pub fn serve(
    st: &State,
    usage: &Usage,
    verb: &str,
    rt: &Arc<ResourceType>,
    namespace: Option<&str>,
    name: Option<&str>,
) -> ApiResult<Value> {
    let list = |items: Vec<Value>| {
        json!({"apiVersion": format!("{GROUP}/{VERSION}"), "kind": format!("{}List", rt.kind),
            "metadata": {}, "items": items})
    };
    let not_found = |n: &str| ApiError::not_found(&rt.plural, GROUP, n);
    match (verb, rt.plural.as_str(), name) {
        ("get", "pods", Some(n)) => pod_metrics_in(st, usage, namespace)
            .into_iter()
            .find(|p| p["metadata"]["name"] == n)
            .ok_or_else(|| not_found(n)),
        ("list", "pods", None) => Ok(list(pod_metrics_in(st, usage, namespace))),
        ("get", "nodes", Some(n)) if n == NODE => Ok(node_metrics(st, usage)),
        ("get", "nodes", Some(n)) => Err(not_found(n)),
        ("list", "nodes", None) => Ok(list(vec![node_metrics(st, usage)])),
        _ => Err(ApiError::method_not_allowed(format!(
            "{verb} is not supported by {GROUP} (metrics-server serves get and list)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_rules_win_and_globs_match() {
        let mut u = Usage::default();
        u.set("ns", "web-*", 100, 1 << 20);
        u.set("ns", "web-2", 900, 1 << 20);
        assert_eq!(u.of("ns", "web-1"), Some((100, 1 << 20)));
        assert_eq!(u.of("ns", "web-2"), Some((900, 1 << 20)));
        assert_eq!(u.of("other", "web-1"), None);
        assert_eq!(cpu(250), "250000000n");
        assert_eq!(memory(64 << 20), "65536Ki");
        assert_eq!(quantity("250000000n"), Some(0.25));
        assert_eq!(quantity("1500u"), Some(0.0015));
        assert_eq!(quantity("100m"), Some(0.1));
        assert_eq!(quantity("65536Ki"), Some(64.0 * 1024.0 * 1024.0));
    }
}
