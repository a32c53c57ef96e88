//! TensorFlow Serving REST API (`/v1/models/...`) plus KServe V1's model list.
//!
//! axum path segments cannot hold `:predict`, so one wildcard route takes everything under
//! `/v1/models/` and [`parse_path`] splits it into model, version and verb. Inputs are FP32
//! values already scaled (TF Serving has no datatype field); `instances` (row format) answers
//! `predictions`, `inputs` (columnar) answers `outputs`, each a list of probability rows.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::json;

use crate::error::ApiError;
use crate::infer::{self, InputType};
use crate::repository::{ModelEntry, ServedVersion};
use crate::server::AppState;
use crate::tensor::{Columnar, FlatTensor, Instances};
use crate::v2::{INPUT_NAME, OUTPUT_PROBABILITIES, json_response, resolve};

/// The only signature a wharf model has.
pub const SIGNATURE: &str = "serving_default";

/// What a `/v1/models/{rest}` path asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct TfPath<'a> {
    pub model: &'a str,
    pub version: Option<&'a str>,
    pub metadata: bool,
    pub verb: Option<&'a str>,
}

/// Splits `m`, `m/versions/v`, `m/metadata`, `m/versions/v/metadata`, each optionally with
/// a `:verb` suffix on the last segment.
pub fn parse_path(rest: &str) -> Option<TfPath<'_>> {
    let (path, verb) = match rest.rsplit_once(':') {
        Some((path, verb)) => (path, Some(verb)),
        None => (rest, None),
    };
    let parts: Vec<&str> = path.split('/').collect();
    let (model, version, metadata) = match parts.as_slice() {
        [m] => (*m, None, false),
        [m, "metadata"] => (*m, None, true),
        [m, "versions", v] => (*m, Some(*v), false),
        [m, "versions", v, "metadata"] => (*m, Some(*v), true),
        _ => return None,
    };
    if model.is_empty() || version == Some("") || (metadata && verb.is_some()) {
        return None;
    }
    Some(TfPath {
        model,
        version,
        metadata,
        verb,
    })
}

/// `GET /v1/models`: KServe V1's list of model names.
pub async fn list_models(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let snapshot = state.repo.snapshot();
    let names: Vec<&String> = snapshot.models.keys().collect();
    Json(json!({ "models": names }))
}

/// Everything under `/v1/models/`.
pub async fn dispatch(
    State(state): State<Arc<AppState>>,
    method: Method,
    Path(rest): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(path) = parse_path(&rest) else {
        return ApiError::NotFound(format!(
            "no TF Serving route /v1/models/{rest}; use /v1/models/<model>[/versions/<n>][:predict] \
             or /v1/models/<model>[/versions/<n>]/metadata"
        ))
        .into_response();
    };
    match (method, path.verb) {
        (Method::GET, None) if path.metadata => result(metadata(&state, &path)),
        (Method::GET, None) => result(status(&state, &path)),
        (Method::POST, Some("predict")) => predict_handler(state, &path, body).await,
        (_, Some(verb @ ("classify" | "regress"))) => ApiError::BadRequest(format!(
            ":{verb} is not supported; this model answers :predict with class probabilities"
        ))
        .into_response(),
        (Method::GET, Some("predict")) => {
            ApiError::BadRequest(":predict takes a POST with a JSON body".into()).into_response()
        }
        (_, Some(verb)) => {
            ApiError::NotFound(format!("unknown verb ':{verb}'; use :predict")).into_response()
        }
        (method, None) => ApiError::BadRequest(format!(
            "{method} /v1/models/{rest}: use GET for status and metadata, POST .../{}:predict to predict",
            path.model
        ))
        .into_response(),
    }
}

fn result(r: Result<serde_json::Value, ApiError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// TF Serving's GetModelStatus, plus KServe V1's `name` and `ready`.
fn status(state: &AppState, path: &TfPath<'_>) -> Result<serde_json::Value, ApiError> {
    let snapshot = state.repo.snapshot();
    let Some(entry) = snapshot.models.get(path.model) else {
        // Not scanned yet (503) or unknown (404, listing the models): resolve words it.
        return Err(state
            .repo
            .resolve(path.model, None)
            .err()
            .unwrap_or_else(|| ApiError::NotFound(format!("unknown model '{}'", path.model))));
    };
    let mut statuses = version_statuses(entry);
    if let Some(text) = path.version {
        let wanted = crate::repository::parse_version(text);
        statuses.retain(|(v, _)| Some(*v) == wanted);
        if statuses.is_empty() {
            return Err(ApiError::NotFound(format!(
                "model '{}' has no version '{text}'",
                path.model
            )));
        }
    }
    let ready = !entry.versions.is_empty();
    Ok(json!({
        "name": path.model,
        "ready": ready,
        "model_version_status": statuses.into_iter().map(|(_, s)| s).collect::<Vec<_>>(),
    }))
}

/// One status per served version (AVAILABLE) or failed version (END with its error), newest first.
fn version_statuses(entry: &ModelEntry) -> Vec<(u64, serde_json::Value)> {
    let mut all: Vec<(u64, serde_json::Value)> = entry
        .versions
        .keys()
        .map(|v| {
            (
                *v,
                json!({
                    "version": v.to_string(),
                    "state": "AVAILABLE",
                    "status": { "error_code": "OK", "error_message": "" },
                }),
            )
        })
        .chain(entry.errors.iter().map(|(v, e)| {
            (
                *v,
                json!({
                    "version": v.to_string(),
                    "state": "END",
                    "status": { "error_code": "UNKNOWN", "error_message": e },
                }),
            )
        }))
        .collect();
    all.sort_by_key(|s| std::cmp::Reverse(s.0));
    all
}

/// TF Serving's GetModelMetadata with the one `serving_default` signature.
fn metadata(state: &AppState, path: &TfPath<'_>) -> Result<serde_json::Value, ApiError> {
    let served = resolve(state, path.model, path.version)?;
    let dim = |d: i64| json!({ "size": d.to_string(), "name": "" });
    let mut input_dims = vec![dim(-1)];
    input_dims.extend(served.info.input_shape.iter().map(|&d| dim(d as i64)));
    Ok(json!({
        "model_spec": { "name": served.model, "signature_name": "", "version": served.version.to_string() },
        "metadata": { "signature_def": { "signature_def": { SIGNATURE: {
            "inputs": { INPUT_NAME: {
                "dtype": "DT_FLOAT", "name": INPUT_NAME,
                "tensor_shape": { "dim": input_dims, "unknown_rank": false },
            }},
            "outputs": { OUTPUT_PROBABILITIES: {
                "dtype": "DT_FLOAT", "name": OUTPUT_PROBABILITIES,
                "tensor_shape": { "dim": [dim(-1), dim(served.num_classes as i64)], "unknown_rank": false },
            }},
            "method_name": "tensorflow/serving/predict",
        }}}},
    }))
}

#[derive(Deserialize)]
struct PredictRequest {
    #[serde(default)]
    signature_name: Option<String>,
    #[serde(default)]
    instances: Option<Instances>,
    #[serde(default)]
    inputs: Option<Columnar>,
}

/// Probabilities as a list of rows, serialised without building nested vectors.
struct Rows<'a>(&'a [f32], usize);

impl Serialize for Rows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len() / self.1))?;
        for row in self.0.chunks_exact(self.1) {
            seq.serialize_element(row)?;
        }
        seq.end()
    }
}

async fn predict_handler(
    state: Arc<AppState>,
    path: &TfPath<'_>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let served = match resolve(&state, path.model, path.version) {
        Ok(served) => served,
        Err(e) => return state.record_failure(path.model, started, e),
    };
    match predict(&state, &served, body).await {
        Ok(json) => {
            served.ok.inc();
            served.latency.observe(started.elapsed().as_secs_f64());
            json_response(json)
        }
        Err(e) => state.record_failure(path.model, started, e),
    }
}

async fn predict(
    state: &AppState,
    served: &Arc<ServedVersion>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Vec<u8>, ApiError> {
    let announcement = served.batcher.announce();
    let body = state.body(body)?;
    let request: PredictRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid TF Serving predict request: {e}")))?;
    drop(body);
    if let Some(name) = request.signature_name.as_deref()
        && name != SIGNATURE
    {
        return Err(ApiError::BadRequest(format!(
            "unknown signature_name '{name}'; this model has one signature, '{SIGNATURE}'"
        )));
    }
    let (tensor, columnar) = match (request.instances, request.inputs) {
        (Some(Instances(t)), None) => (t, false),
        (None, Some(Columnar(t))) => (t, true),
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "send either 'instances' (row format) or 'inputs' (columnar format), not both"
                    .into(),
            ));
        }
        (None, None) => {
            return Err(ApiError::BadRequest(
                "the request needs 'instances' (row format) or 'inputs' (columnar format)".into(),
            ));
        }
    };
    let rows = check_rows(served, &tensor, columnar)?;
    let inputs = infer::model_inputs(served, INPUT_NAME, InputType::Fp32, tensor, rows)?;
    let probabilities = infer::predict(served, inputs, rows, announcement).await?;
    let rows = Rows(&probabilities, served.num_classes);
    let mut buf = Vec::with_capacity(32 + probabilities.len() * 14);
    let written = if columnar {
        serde_json::to_writer(&mut buf, &json_outputs(&rows))
    } else {
        serde_json::to_writer(&mut buf, &json_predictions(&rows))
    };
    written.map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(buf)
}

#[derive(Serialize)]
struct Predictions<'a, 'b> {
    predictions: &'b Rows<'a>,
}
#[derive(Serialize)]
struct Outputs<'a, 'b> {
    outputs: &'b Rows<'a>,
}
fn json_predictions<'a, 'b>(rows: &'b Rows<'a>) -> Predictions<'a, 'b> {
    Predictions { predictions: rows }
}
fn json_outputs<'a, 'b>(rows: &'b Rows<'a>) -> Outputs<'a, 'b> {
    Outputs { outputs: rows }
}

/// Every top-level element must be one whole input (784 values, flat or nested).
fn check_rows(
    served: &ServedVersion,
    tensor: &FlatTensor,
    columnar: bool,
) -> Result<usize, ApiError> {
    let field = if columnar { "inputs" } else { "instances" };
    if tensor.row_lens.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "'{field}' must be a non-empty list with one entry per input"
        )));
    }
    if let Some((i, len)) = tensor
        .row_lens
        .iter()
        .enumerate()
        .find(|(_, l)| **l != served.input_len)
    {
        return Err(ApiError::BadRequest(format!(
            "'{field}' entry {i} holds {len} values; each entry must be one input of {} values ([{}] or [{}])",
            served.input_len,
            served.input_len,
            served
                .info
                .input_shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(tensor.row_lens.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_model_version_metadata_and_verb() {
        let p = |model, version, metadata, verb| {
            Some(TfPath {
                model,
                version,
                metadata,
                verb,
            })
        };
        assert_eq!(parse_path("fashion"), p("fashion", None, false, None));
        assert_eq!(
            parse_path("fashion:predict"),
            p("fashion", None, false, Some("predict"))
        );
        assert_eq!(
            parse_path("fashion/versions/2"),
            p("fashion", Some("2"), false, None)
        );
        assert_eq!(
            parse_path("fashion/versions/2:predict"),
            p("fashion", Some("2"), false, Some("predict"))
        );
        assert_eq!(
            parse_path("fashion/metadata"),
            p("fashion", None, true, None)
        );
        assert_eq!(
            parse_path("fashion/versions/2/metadata"),
            p("fashion", Some("2"), true, None)
        );
        for bad in [
            "",
            ":predict",
            "fashion/versions",
            "fashion/versions/",
            "fashion/x/2",
            "fashion/metadata:predict",
            "a/versions/1/metadata/x",
        ] {
            assert_eq!(parse_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn rows_serialise_as_nested_lists() {
        let text =
            serde_json::to_string(&json_predictions(&Rows(&[0.5, 0.5, 1.0, 0.0], 2))).unwrap();
        assert_eq!(text, r#"{"predictions":[[0.5,0.5],[1.0,0.0]]}"#);
    }
}
