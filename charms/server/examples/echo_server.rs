//! The ceiling for scripts/bench-server.sh: a bare axum server of the same build profile that
//! reads a V2 request body and answers a fixed V2 response of the size wharf-server's is, with no
//! parsing and no model. wharf-server's throughput over this one is the share the stack leaves.
//!
//! `echo_server PORT`

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;

/// wharf-server's answer to one image, with typical digits (the size is what matters).
const ANSWER: &str = r#"{"model_name":"fashion","model_version":"1","outputs":[{"name":"probabilities","datatype":"FP32","shape":[1,10],"data":[0.00012345678,0.00012345678,0.00012345678,0.00012345678,0.00012345678,0.00012345678,0.00012345678,0.00012345678,0.00012345678,0.99888885]},{"name":"class","datatype":"INT64","shape":[1],"data":[9]}]}"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "18095".into())
        .parse()?;
    let app = Router::new().route(
        "/v2/models/{model}/infer",
        post(|body: Bytes| async move {
            // Touch the body so it is really read, as a server that parses it would.
            std::hint::black_box(body.len());
            ([(header::CONTENT_TYPE, "application/json")], ANSWER).into_response()
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}
