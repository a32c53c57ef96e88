//! The operators' Prometheus endpoint: one listener serving a registry on `/metrics` in the text
//! exposition format and `/healthz` for the probes. Each operator keeps its own metric families;
//! only the serving is shared.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};

/// The registry in the text exposition format.
pub fn render(registry: &Registry) -> String {
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buf)
        .expect("text encoding");
    String::from_utf8(buf).expect("utf-8 metrics")
}

/// Bind the listener now (so a bad address fails at start-up) and return its address and the
/// server future.
pub async fn serve(
    addr: SocketAddr,
    registry: Registry,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(exposition))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(registry);
    Ok((local, async move { axum::serve(listener, app).await }))
}

async fn exposition(State(registry): State<Registry>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render(&registry),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_the_registry_and_a_health_check() {
        let registry = Registry::new();
        let counter = prometheus::IntCounter::new("wharf_test_total", "a test counter").unwrap();
        registry.register(Box::new(counter.clone())).unwrap();
        counter.inc();
        let (addr, server) = serve("127.0.0.1:0".parse().unwrap(), registry)
            .await
            .unwrap();
        tokio::spawn(server);
        let get = |path: &str| {
            let path = path.to_owned();
            async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).await.unwrap();
                out
            }
        };
        let metrics = get("/metrics").await;
        assert!(metrics.contains("wharf_test_total 1"), "{metrics}");
        assert!(metrics.contains("text/plain; version=0.0.4"), "{metrics}");
        assert!(get("/healthz").await.ends_with("ok"));
    }
}
