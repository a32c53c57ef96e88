//! The one error type every handler returns, rendered as `{"error": "..."}` with the right status.
//!
//! Bad input is always a 4xx naming the field and the fix; 5xx is kept for the server's own state
//! (not ready, queue full, a model that failed at run time).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ApiError {
    /// Malformed JSON, wrong shape or datatype, unknown output name, bad path segment.
    #[error("{0}")]
    BadRequest(String),
    /// Unknown model, version or route.
    #[error("{0}")]
    NotFound(String),
    /// The request body is above `--max-body-bytes`.
    #[error(
        "request body is larger than the limit of {0} bytes; send fewer rows per request or raise --max-body-bytes"
    )]
    PayloadTooLarge(usize),
    /// Not ready yet, shutting down, no loadable version, or the batch queue is full.
    #[error("{0}")]
    Unavailable(String),
    /// The model failed while computing (never caused by the request's content).
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A JSON error body with the given status; used by [`ApiError`] and the fallbacks.
pub fn json_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_error(self.status(), &self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variant_maps_to_its_status() {
        let cases = [
            (ApiError::BadRequest("x".into()), 400),
            (ApiError::NotFound("x".into()), 404),
            (ApiError::PayloadTooLarge(10), 413),
            (ApiError::Unavailable("x".into()), 503),
            (ApiError::Internal("x".into()), 500),
        ];
        for (err, code) in cases {
            assert_eq!(err.status().as_u16(), code, "{err:?}");
        }
    }

    #[test]
    fn payload_too_large_names_the_limit_and_the_flag() {
        let msg = ApiError::PayloadTooLarge(1024).to_string();
        assert!(
            msg.contains("1024") && msg.contains("--max-body-bytes"),
            "{msg}"
        );
    }
}
