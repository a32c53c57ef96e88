//! `services/proxy`: the API server's proxy to a Service, at
//! `/api/v1/namespaces/{ns}/services/{name}/proxy/{path}` (`{name}` may be `NAME`, `NAME:PORT`
//! or `SCHEME:NAME:PORT`, the port by name or number), as `kubectl get --raw` and wharf's status
//! use it to reach an in-cluster HTTP API. Only GET, the verb RBAC calls `get` on
//! `services/proxy`.
//!
//! There are no pods to reach: a test names the local HTTP server that stands for the Service's
//! endpoints with `Simulator::set_service_backend`. As on a real cluster, a Service that does not
//! exist is 404, a port it does not have or one without endpoints (no backend set) is 503
//! `no endpoints available for service`, and the backend's status, content type and body come
//! back unchanged.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, RawQuery, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Shared;
use crate::error::{ApiError, ApiResult};
use crate::rbac::Attributes;

/// How long the proxy waits for a backend (the real one's default is longer; tests want speed).
const BACKEND_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn router() -> axum::Router<Arc<Shared>> {
    axum::Router::new().route(
        "/api/v1/namespaces/{ns}/services/{name}/proxy/{*rest}",
        axum::routing::get(handle),
    )
}

/// `NAME`, `NAME:PORT` or `SCHEME:NAME:PORT` → (name, port or "").
pub fn split_service(spec: &str) -> (&str, &str) {
    let parts: Vec<&str> = spec.split(':').collect();
    match parts.as_slice() {
        [name] => (name, ""),
        [name, port] => (name, port),
        [_scheme, name, port] => (name, port),
        _ => (spec, ""),
    }
}

/// Whether the Service has the port (by name or number; "" means its only or first port).
pub fn has_port(service: &Value, port: &str) -> bool {
    let ports = service["spec"]["ports"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if port.is_empty() {
        return !ports.is_empty();
    }
    ports.iter().any(|p| {
        p["name"].as_str() == Some(port)
            || p["port"].as_u64().map(|n| n.to_string()).as_deref() == Some(port)
    })
}

async fn handle(
    AxState(shared): AxState<Arc<Shared>>,
    UrlPath((ns, spec, rest)): UrlPath<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    match proxy(&shared, &ns, &spec, &rest, query.as_deref(), &headers).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn proxy(
    shared: &Arc<Shared>,
    ns: &str,
    spec: &str,
    rest: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let user = crate::server::authenticate(shared, headers)?;
    let (name, port) = split_service(spec);
    if user != crate::server::ADMIN_USER && shared.config.rbac {
        let attrs = Attributes {
            verb: "get".into(),
            group: String::new(),
            resource: "services".into(),
            subresource: Some("proxy".into()),
            namespace: ns.into(),
            name: Some(name.into()),
        };
        shared.lock().authorize(&user, &attrs)?;
    }
    let service = {
        let st = shared.lock();
        let rt = st
            .catalog
            .find("", "v1", "services")
            .ok_or_else(|| ApiError::internal("services are not in the catalog"))?;
        st.op_get(&rt, ns, name)?
    };
    let no_endpoints = || {
        ApiError::new(
            503,
            "ServiceUnavailable",
            format!("no endpoints available for service \"{spec}\""),
        )
    };
    if !has_port(&service, port) {
        return Err(no_endpoints());
    }
    let backend = shared
        .service_backends
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&(ns.to_owned(), name.to_owned()))
        .copied()
        .ok_or_else(no_endpoints)?;
    let target = match query {
        Some(q) if !q.is_empty() => format!("/{rest}?{q}"),
        _ => format!("/{rest}"),
    };
    let (code, content_type, body) = tokio::time::timeout(BACKEND_TIMEOUT, get(backend, &target))
        .await
        .map_err(|_| {
            ApiError::new(
                503,
                "ServiceUnavailable",
                format!("the backend of service \"{spec}\" did not answer in time"),
            )
        })?
        .map_err(|e| {
            ApiError::new(
                503,
                "ServiceUnavailable",
                format!("error trying to reach service: {e}"),
            )
        })?;
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
    Ok((code, [("content-type", content_type)], body).into_response())
}

/// One HTTP/1.0 GET (so the answer is not chunked and ends with the connection): status code,
/// content type and body.
async fn get(addr: SocketAddr, target: &str) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {target} HTTP/1.0\r\nHost: {addr}\r\nAccept: */*\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("the backend's answer has no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {head:.40}")))?;
    let content_type = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "application/octet-stream".into());
    Ok((code, content_type, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_service_part_names_a_port_by_name_or_number() {
        assert_eq!(split_service("monitoring"), ("monitoring", ""));
        assert_eq!(split_service("monitoring:9090"), ("monitoring", "9090"));
        assert_eq!(split_service("http:monitoring:web"), ("monitoring", "web"));
        let svc = json!({"spec": {"ports": [{"name": "web", "port": 9090}]}});
        assert!(has_port(&svc, "web") && has_port(&svc, "9090") && has_port(&svc, ""));
        assert!(!has_port(&svc, "9091") && !has_port(&svc, "grafana"));
    }
}
