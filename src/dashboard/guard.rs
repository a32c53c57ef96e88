//! The dashboard acts with its user's rights, so another web site open in the same browser must
//! not be able to use it: requests must name the dashboard by address (`Host` an IP or
//! `localhost`, which defeats DNS rebinding: a hostile name pointed at 127.0.0.1), and writes must
//! come from the dashboard's own pages (`Origin` equal to `http://<Host>`, which defeats cross-site
//! form posts). Behind the gateway (`--trust-proxy-headers`) the platform's public host name is
//! let through too, and writes may come from its origin.

use axum::extract::{Request, State as Extract};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub async fn same_origin_writes(
    Extract(state): Extract<super::State>,
    req: Request,
    next: Next,
) -> Response {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let public = state.trust.as_ref().and_then(|t| {
        t.public_host()
            .filter(|p| p.eq_ignore_ascii_case(host))
            .and(t.public_url.as_deref())
    });
    if public.is_none() && !host_is_an_address(host) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            format!("the dashboard answers only at an IP address or localhost, not at `{host}`"),
        )
            .into_response();
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let origin = headers
            .get(header::ORIGIN)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if origin != format!("http://{host}") && Some(origin) != public {
            return (
                StatusCode::FORBIDDEN,
                "writes are accepted only from the dashboard's own pages (Origin does not match)",
            )
                .into_response();
        }
    }
    next.run(req).await
}

/// `127.0.0.1:8765`, `[::1]:8765`, `localhost:8765` (with or without the port).
fn host_is_an_address(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => {
            return v6
                .split(']')
                .next()
                .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
        }
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    name == "localhost" || name.parse::<std::net::Ipv4Addr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_addresses_and_localhost_are_accepted_hosts() {
        for ok in [
            "127.0.0.1:8765",
            "127.0.0.1",
            "[::1]:80",
            "localhost:1",
            "10.1.2.3:9",
        ] {
            assert!(host_is_an_address(ok), "{ok}");
        }
        for bad in [
            "evil.example:8765",
            "evil.example",
            "",
            "[nope]:1",
            "127.0.0.1.nip.io:80",
        ] {
            assert!(!host_is_an_address(bad), "{bad}");
        }
    }
}
