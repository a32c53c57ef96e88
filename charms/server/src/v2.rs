//! Open Inference Protocol V2 (KServe / Triton / MLServer REST): health, server and model
//! metadata, readiness and `infer`, with the binary tensor data extension.
//!
//! Inputs: one tensor, FP32 (already scaled) or UINT8 (raw pixels, scaled by the model's
//! `input.scale`), shape `[N, 784]` or `[N, 28, 28]`, data flat or nested JSON, or binary
//! (`parameters.binary_data_size`, its bytes after a JSON header of
//! `Inference-Header-Content-Length` bytes). Outputs: `probabilities` (FP32 `[N, classes]`) and
//! `class` (INT64 `[N]`) unless the request names some in `outputs`; `label` (BYTES `[N]`, the
//! class names) only when named. An output is binary when it asks (`parameters.binary_data`) or
//! the request does (`parameters.binary_data_output`); the answer is then
//! `application/octet-stream` with the same header layout.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::binary;
use crate::error::ApiError;
use crate::infer::{self, Output, Prediction};
use crate::repository::ServedVersion;
use crate::server::AppState;
use crate::tensor::FlatTensor;

pub const OUTPUT_PROBABILITIES: &str = "probabilities";
/// The input name the metadata declares; requests may name their single input anything.
pub const INPUT_NAME: &str = "input";

/// Protocol extensions this server implements, as V2 server metadata lists them.
pub const EXTENSIONS: [&str; 3] = [
    "binary_tensor_data",
    "model_repository",
    "model_configuration",
];

#[derive(Deserialize)]
struct InferRequest {
    #[serde(default)]
    id: Option<String>,
    inputs: Vec<RequestInput>,
    #[serde(default)]
    outputs: Option<Vec<RequestOutput>>,
    #[serde(default)]
    parameters: Option<RequestParameters>,
}

#[derive(Deserialize, Default)]
struct RequestParameters {
    /// Binary tensor data extension: every output in binary unless it says otherwise.
    #[serde(default)]
    binary_data_output: Option<bool>,
}

#[derive(Deserialize)]
struct RequestInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    data: Option<FlatTensor>,
    #[serde(default)]
    parameters: Option<InputParameters>,
}

#[derive(Deserialize, Default)]
struct InputParameters {
    /// Binary tensor data extension: the tensor's bytes follow the JSON header.
    #[serde(default)]
    binary_data_size: Option<u64>,
}

#[derive(Deserialize)]
struct RequestOutput {
    name: String,
    #[serde(default)]
    parameters: Option<OutputParameters>,
}

#[derive(Deserialize, Default)]
struct OutputParameters {
    #[serde(default)]
    binary_data: Option<bool>,
    /// The classification extension, which this server does not implement.
    #[serde(default)]
    classification: Option<IgnoredAny>,
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
    shape: Vec<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<OutputData<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinaryParameters>,
}

#[derive(Serialize)]
struct BinaryParameters {
    binary_data_size: usize,
}

#[derive(Serialize)]
#[serde(untagged)]
enum OutputData<'a> {
    Fp32(&'a [f32]),
    Int64(&'a [i64]),
    Bytes(Vec<std::borrow::Cow<'a, str>>),
}

/// A finished inference: JSON, or a JSON header of `header_length` bytes followed by tensors.
pub struct Encoded {
    body: Vec<u8>,
    header_length: Option<usize>,
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
        "extensions": EXTENSIONS,
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
    header_length: HeaderLength,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    infer_handler(state, model, None, header_length, body).await
}

/// `POST /v2/models/{m}/versions/{v}/infer`
pub async fn infer_version(
    State(state): State<Arc<AppState>>,
    Path((model, version)): Path<(String, String)>,
    header_length: HeaderLength,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    infer_handler(state, model, Some(version), header_length, body).await
}

/// The `Inference-Header-Content-Length` header alone: extracting the whole `HeaderMap` copied
/// every header of every request (and freed them again) for the one the handler reads.
pub struct HeaderLength(Option<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for HeaderLength {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(HeaderLength(
            parts.headers.get(binary::HEADER_LENGTH).cloned(),
        ))
    }
}

async fn infer_handler(
    state: Arc<AppState>,
    model: String,
    version: Option<String>,
    HeaderLength(header_length): HeaderLength,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let served = match resolve(&state, &model, version.as_deref()) {
        Ok(served) => served,
        Err(e) => return state.record_failure(&model, started, e),
    };
    let header_length = match header_length.as_ref().map(|v| v.to_str()) {
        None => None,
        Some(Ok(text)) => Some(text),
        Some(Err(_)) => {
            let e = ApiError::BadRequest(
                "header Inference-Header-Content-Length is not ASCII digits".to_string(),
            );
            return state.record_failure(&model, started, e);
        }
    };
    match infer(&state, &served, header_length, body).await {
        Ok(encoded) => {
            served.ok.inc();
            served.latency.observe(started.elapsed().as_secs_f64());
            match encoded.header_length {
                None => json_response(encoded.body),
                Some(length) => binary_response(encoded.body, length),
            }
        }
        Err(e) => state.record_failure(&model, started, e),
    }
}

async fn infer(
    state: &AppState,
    served: &Arc<ServedVersion>,
    header_length: Option<&str>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Encoded, ApiError> {
    let announcement = served.batcher.announce();
    let body = state.body(body)?;
    let (json, binary_part) = binary::split_body(&body, header_length)?;
    let request: InferRequest = serde_json::from_slice(json)
        .map_err(|e| ApiError::BadRequest(format!("invalid V2 inference request: {e}")))?;
    let [input] = <[RequestInput; 1]>::try_from(request.inputs).map_err(|inputs| {
        ApiError::BadRequest(format!(
            "the request has {} inputs; this model takes exactly one ('{INPUT_NAME}')",
            inputs.len()
        ))
    })?;
    let datatype = infer::input_type(&input.name, &input.datatype)?;
    let binary_size = input.parameters.unwrap_or_default().binary_data_size;
    let data = match (input.data, binary_size) {
        (Some(data), None) => {
            if !binary_part.is_empty() {
                return Err(ApiError::BadRequest(format!(
                    "the body has {} bytes after the JSON header but no input has parameters.binary_data_size",
                    binary_part.len()
                )));
            }
            data
        }
        (None, Some(size)) => {
            if size != binary_part.len() as u64 {
                return Err(ApiError::BadRequest(format!(
                    "input '{}' has parameters.binary_data_size {size} but the body has {} bytes after the JSON header (Inference-Header-Content-Length {})",
                    input.name,
                    binary_part.len(),
                    header_length.unwrap_or("missing: the whole body was read as JSON")
                )));
            }
            binary::decode_input(
                &input.name,
                datatype,
                &input.shape,
                binary_part,
                "parameters.binary_data_size",
            )?
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(format!(
                "input '{}' has both data and parameters.binary_data_size; send one of them",
                input.name
            )));
        }
        (None, None) => {
            return Err(ApiError::BadRequest(format!(
                "input '{}' has no data: send `data` in the JSON, or parameters.binary_data_size with the tensor's bytes after the JSON header (binary tensor data extension)",
                input.name
            )));
        }
    };
    drop(body);
    let default_binary = request
        .parameters
        .unwrap_or_default()
        .binary_data_output
        .unwrap_or(false);
    let outputs = requested_outputs(request.outputs, default_binary)?;
    let rows = infer::rows_from_shape(served, &input.name, &input.shape)?;
    let inputs = infer::model_inputs(served, &input.name, datatype, data, rows)?;
    let probabilities = infer::predict(served, inputs, rows, announcement).await?;
    let prediction = Prediction::new(probabilities, rows, served.num_classes);
    encode_response(served, request.id, &prediction, &outputs)
}

/// Writes the answer: plain JSON when no output is binary, else the JSON header and the bytes.
fn encode_response(
    served: &ServedVersion,
    id: Option<String>,
    prediction: &Prediction,
    outputs: &[(Output, bool)],
) -> Result<Encoded, ApiError> {
    let class_names = &served.info.class_names;
    let mut tail = Vec::new();
    let mut response_outputs = Vec::with_capacity(outputs.len());
    for &(output, binary) in outputs {
        let (data, parameters) = if binary {
            let raw = prediction.raw(output, class_names);
            let size = raw.len();
            tail.extend_from_slice(&raw);
            (
                None,
                Some(BinaryParameters {
                    binary_data_size: size,
                }),
            )
        } else {
            let data = match output {
                Output::Probabilities => OutputData::Fp32(&prediction.probabilities),
                Output::Class => OutputData::Int64(&prediction.classes),
                Output::Label => OutputData::Bytes(prediction.labels(class_names)),
            };
            (Some(data), None)
        };
        response_outputs.push(ResponseOutput {
            name: output.name(),
            datatype: output.datatype(),
            shape: prediction.shape(output),
            data,
            parameters,
        });
    }
    let response = InferResponse {
        model_name: &served.model,
        model_version: served.version.to_string(),
        id,
        outputs: response_outputs,
    };
    let mut body = Vec::with_capacity(64 + prediction.probabilities.len() * 14 + tail.len());
    serde_json::to_writer(&mut body, &response).map_err(|e| ApiError::Internal(e.to_string()))?;
    if outputs.iter().any(|&(_, binary)| binary) {
        let header_length = body.len();
        body.extend_from_slice(&tail);
        Ok(Encoded {
            body,
            header_length: Some(header_length),
        })
    } else {
        Ok(Encoded {
            body,
            header_length: None,
        })
    }
}

/// Which outputs to return, in the model's order, each with whether it goes binary; none named
/// means the default ones.
fn requested_outputs(
    outputs: Option<Vec<RequestOutput>>,
    default_binary: bool,
) -> Result<Vec<(Output, bool)>, ApiError> {
    let Some(outputs) = outputs.filter(|o| !o.is_empty()) else {
        return Ok(Output::DEFAULT
            .into_iter()
            .map(|o| (o, default_binary))
            .collect());
    };
    let mut wanted: Vec<(Output, bool)> = Vec::with_capacity(outputs.len());
    for requested in outputs {
        let output = Output::named(&requested.name)?;
        let parameters = requested.parameters.unwrap_or_default();
        if parameters.classification.is_some() {
            return Err(ApiError::BadRequest(format!(
                "output '{}' asks for parameters.classification (the classification extension), which this server does not implement; ask for the 'class' and 'label' outputs instead",
                requested.name
            )));
        }
        let binary = parameters.binary_data.unwrap_or(default_binary);
        match wanted.iter_mut().find(|(o, _)| *o == output) {
            Some(existing) => existing.1 = binary,
            None => wanted.push((output, binary)),
        }
    }
    wanted.sort_by_key(|(o, _)| Output::ALL.iter().position(|a| a == o));
    Ok(wanted)
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
            { "name": "probabilities", "datatype": "FP32", "shape": [-1, served.num_classes] },
            { "name": "class", "datatype": "INT64", "shape": [-1] },
            { "name": "label", "datatype": "BYTES", "shape": [-1] },
        ],
        "parameters": {
            "version": served.version.to_string(),
            "architecture": served.info.architecture,
            "input_scale": served.info.scale,
            "class_names": served.info.class_names,
        },
    })
}

/// A binary tensor data response: the JSON header, then the outputs' bytes.
fn binary_response(body: Vec<u8>, header_length: usize) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (
                HeaderName::from_static(binary::HEADER_LENGTH),
                HeaderValue::from(header_length),
            ),
        ],
        body,
    )
        .into_response()
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
