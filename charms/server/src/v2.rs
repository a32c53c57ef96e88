//! Open Inference Protocol V2 (KServe / Triton / MLServer REST): health, server and model
//! metadata, readiness and `infer`.
//!
//! Inputs: one tensor, FP32 (already scaled) or UINT8 (raw pixels, scaled by the model's
//! `input.scale`), shape `[N, 784]` or `[N, 28, 28]`, data flat or nested. Outputs:
//! `probabilities` (FP32 `[N, classes]`) and `class` (INT64 `[N]`), both unless the request
//! names some in `outputs`.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::ApiError;
use crate::infer::{self, InputType};
use crate::repository::ServedVersion;
use crate::server::AppState;
use crate::tensor::FlatTensor;

pub const OUTPUT_PROBABILITIES: &str = "probabilities";
pub const OUTPUT_CLASS: &str = "class";
/// The input name the metadata declares; requests may name their single input anything.
pub const INPUT_NAME: &str = "input";

#[derive(Deserialize)]
struct InferRequest {
    #[serde(default)]
    id: Option<String>,
    inputs: Vec<RequestInput>,
    #[serde(default)]
    outputs: Option<Vec<RequestOutput>>,
    #[serde(default)]
    #[allow(dead_code)]
    parameters: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct RequestInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    data: FlatTensor,
    #[serde(default)]
    #[allow(dead_code)]
    parameters: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct RequestOutput {
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    parameters: Option<IgnoredAny>,
}

#[derive(Serialize)]
struct InferResponse<'a> {
    model_name: &'a str,
    model_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    outputs: Vec<ResponseOutput<'a>>,
}

#[derive(Serialize)]
struct ResponseOutput<'a> {
    name: &'static str,
    datatype: &'static str,
    shape: Vec<usize>,
    data: OutputData<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum OutputData<'a> {
    Fp32(&'a [f32]),
    Int64(Vec<i64>),
}

pub async fn live() -> Json<serde_json::Value> {
    Json(json!({ "live": true }))
}

pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    if state.is_ready() {
        Json(json!({ "ready": true })).into_response()
    } else {
        let why = if state.is_shutting_down() {
            "the server is shutting down"
        } else {
            "the model repository is not fully loaded yet (see /v2/models/<name>/ready)"
        };
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false, "error": why })),
        )
            .into_response()
    }
}

pub async fn server_metadata() -> Json<serde_json::Value> {
    Json(json!({
        "name": "wharf-server",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": [],
    }))
}

/// `GET /v2/models/{m}`
pub async fn model_metadata(
    State(state): State<Arc<AppState>>,
    Path(model): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let served = state.repo.resolve(&model, None)?;
    Ok(Json(metadata(&state, &served)))
}

/// `GET /v2/models/{m}/versions/{v}`
pub async fn version_metadata(
    State(state): State<Arc<AppState>>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let served = resolve(&state, &model, Some(&version))?;
    Ok(Json(metadata(&state, &served)))
}

/// `GET /v2/models/{m}/ready`
pub async fn model_ready(
    State(state): State<Arc<AppState>>,
    Path(model): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let served = state.repo.resolve(&model, None)?;
    Ok(Json(json!({ "name": served.model, "ready": true })))
}

/// `GET /v2/models/{m}/versions/{v}/ready`
pub async fn version_ready(
    State(state): State<Arc<AppState>>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let served = resolve(&state, &model, Some(&version))?;
    Ok(Json(
        json!({ "name": served.model, "version": served.version.to_string(), "ready": true }),
    ))
}

/// `POST /v2/models/{m}/infer`
pub async fn infer_latest(
    State(state): State<Arc<AppState>>,
    Path(model): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    infer_handler(state, model, None, body).await
}

/// `POST /v2/models/{m}/versions/{v}/infer`
pub async fn infer_version(
    State(state): State<Arc<AppState>>,
    Path((model, version)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    infer_handler(state, model, Some(version), body).await
}

async fn infer_handler(
    state: Arc<AppState>,
    model: String,
    version: Option<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let served = match resolve(&state, &model, version.as_deref()) {
        Ok(served) => served,
        Err(e) => return state.record_failure(&model, started, e),
    };
    match infer(&state, &served, body).await {
        Ok(json) => {
            served.ok.inc();
            served.latency.observe(started.elapsed().as_secs_f64());
            json_response(json)
        }
        Err(e) => state.record_failure(&model, started, e),
    }
}

async fn infer(
    state: &AppState,
    served: &Arc<ServedVersion>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Vec<u8>, ApiError> {
    let announcement = served.batcher.announce();
    let body = state.body(body)?;
    let request: InferRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid V2 inference request: {e}")))?;
    drop(body);
    let [input] = <[RequestInput; 1]>::try_from(request.inputs).map_err(|inputs| {
        ApiError::BadRequest(format!(
            "the request has {} inputs; this model takes exactly one ('{INPUT_NAME}')",
            inputs.len()
        ))
    })?;
    let datatype = match input.datatype.as_str() {
        "FP32" => InputType::Fp32,
        "UINT8" => InputType::Uint8,
        other => {
            return Err(ApiError::BadRequest(format!(
                "input '{}' has datatype '{other}'; use FP32 (scaled inputs) or UINT8 (raw pixels)",
                input.name
            )));
        }
    };
    let (want_probabilities, want_class) = requested_outputs(request.outputs.as_deref())?;
    let rows = infer::rows_from_shape(served, &input.name, &input.shape)?;
    let inputs = infer::model_inputs(served, &input.name, datatype, input.data, rows)?;
    let probabilities = infer::predict(served, inputs, rows, announcement).await?;

    let mut outputs = Vec::with_capacity(2);
    if want_probabilities {
        outputs.push(ResponseOutput {
            name: OUTPUT_PROBABILITIES,
            datatype: "FP32",
            shape: vec![rows, served.num_classes],
            data: OutputData::Fp32(&probabilities),
        });
    }
    if want_class {
        outputs.push(ResponseOutput {
            name: OUTPUT_CLASS,
            datatype: "INT64",
            shape: vec![rows],
            data: OutputData::Int64(infer::classes(&probabilities, served.num_classes)),
        });
    }
    let response = InferResponse {
        model_name: &served.model,
        model_version: served.version.to_string(),
        id: request.id,
        outputs,
    };
    let mut buf = Vec::with_capacity(64 + probabilities.len() * 14);
    serde_json::to_writer(&mut buf, &response).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(buf)
}

/// Which outputs to return; none named means all.
fn requested_outputs(outputs: Option<&[RequestOutput]>) -> Result<(bool, bool), ApiError> {
    let Some(outputs) = outputs.filter(|o| !o.is_empty()) else {
        return Ok((true, true));
    };
    let (mut probabilities, mut class) = (false, false);
    for output in outputs {
        match output.name.as_str() {
            OUTPUT_PROBABILITIES => probabilities = true,
            OUTPUT_CLASS => class = true,
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown output '{other}'; this model has outputs '{OUTPUT_PROBABILITIES}' and '{OUTPUT_CLASS}'"
                )));
            }
        }
    }
    Ok((probabilities, class))
}

/// Resolves a model and an optional version path segment.
pub fn resolve(
    state: &AppState,
    model: &str,
    version: Option<&str>,
) -> Result<Arc<ServedVersion>, ApiError> {
    let version = match version {
        None => None,
        Some(text) => Some(crate::repository::parse_version(text).ok_or_else(|| {
            ApiError::NotFound(format!(
                "model '{model}' has no version '{text}': versions are positive integers"
            ))
        })?),
    };
    state.repo.resolve(model, version)
}

fn metadata(state: &AppState, served: &ServedVersion) -> serde_json::Value {
    let snapshot = state.repo.snapshot();
    let versions: Vec<String> = snapshot
        .models
        .get(&served.model)
        .map(|m| m.versions.keys().map(|v| v.to_string()).collect())
        .unwrap_or_default();
    let mut input_shape: Vec<i64> = vec![-1];
    input_shape.extend(served.info.input_shape.iter().map(|&d| d as i64));
    json!({
        "name": served.model,
        "versions": versions,
        "platform": format!("wharf_{}", served.info.architecture),
        "inputs": [{ "name": INPUT_NAME, "datatype": "FP32", "shape": input_shape }],
        "outputs": [
            { "name": OUTPUT_PROBABILITIES, "datatype": "FP32", "shape": [-1, served.num_classes] },
            { "name": OUTPUT_CLASS, "datatype": "INT64", "shape": [-1] },
        ],
        "parameters": {
            "version": served.version.to_string(),
            "architecture": served.info.architecture,
            "input_scale": served.info.scale,
            "class_names": served.info.class_names,
        },
    })
}

pub fn json_response(body: Vec<u8>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}
