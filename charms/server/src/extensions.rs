//! V2 extensions clients ask for besides inference: the model repository extension (index, load,
//! unload) and Triton's model configuration — once, for both wires. HTTP renders them as JSON
//! here (`POST /v2/repository/index`, `.../models/{m}/load`, `.../unload`,
//! `GET /v2/models/{m}/config`); [`crate::grpc`] renders the same values as Triton's messages.
//!
//! The repository is polled, so "load" means "scan now" (what a client wants after publishing a
//! version) and "unload" is refused with the way to do it: remove the model's directory. Triton's
//! load-time overrides (a config or files in the request) are refused too: a wharf model is what
//! its repository directory holds.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::infer::Output;
use crate::repository::ServedVersion;
use crate::server::AppState;
use crate::v2;

/// One row of the repository index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexEntry {
    pub name: String,
    pub version: String,
    /// `READY` or `UNAVAILABLE`.
    pub state: &'static str,
    /// Why a version is unavailable (the loader's message); empty when ready.
    pub reason: String,
}

/// Every model version in the repository with its state; `ready_only` keeps the served ones.
pub fn index_entries(state: &AppState, ready_only: bool) -> Vec<IndexEntry> {
    let snapshot = state.repo.snapshot();
    let mut entries = Vec::new();
    for (name, entry) in &snapshot.models {
        for version in entry.versions.keys() {
            entries.push(IndexEntry {
                name: name.clone(),
                version: version.to_string(),
                state: "READY",
                reason: String::new(),
            });
        }
        if ready_only {
            continue;
        }
        for (version, reason) in &entry.errors {
            entries.push(IndexEntry {
                name: name.clone(),
                version: version.to_string(),
                state: "UNAVAILABLE",
                reason: reason.clone(),
            });
        }
    }
    entries
}

/// "Load": scan the repository now and answer the version then served. `overrides` names the
/// load-time parameters the request carried (refused: the repository is the only source).
pub async fn load_model(
    state: &AppState,
    model: &str,
    overrides: &[String],
) -> Result<Arc<ServedVersion>, ApiError> {
    if !overrides.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "cannot load '{model}' with parameters {}: this server loads models only from its \
             repository; write the model's files under <repository>/{model}/<version>/ and load \
             again without parameters",
            overrides.join(", ")
        )));
    }
    let repo = state.repo.clone();
    tokio::task::spawn_blocking(move || repo.scan())
        .await
        .map_err(|e| ApiError::Internal(format!("the repository scan panicked: {e}")))?
        .map_err(|e| ApiError::Internal(format!("cannot scan the model repository: {e}")))?;
    state.repo.resolve(model, None)
}

/// Why "unload" is refused, and how to do it instead.
pub fn unload_refusal(model: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "cannot unload '{model}': this server serves every model in its repository and rescans it every --poll-interval-ms; \
         remove the model's directory (or its versions) from the repository to unload it"
    ))
}

/// A tensor as the model configuration describes it: V2 datatype, dims without the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorConfig {
    pub name: &'static str,
    pub datatype: &'static str,
    pub dims: Vec<i64>,
}

impl TensorConfig {
    /// Triton's name for the datatype (`TYPE_FP32`; BYTES is `TYPE_STRING`).
    pub fn triton_type(&self) -> String {
        let name = if self.datatype == "BYTES" {
            "STRING"
        } else {
            self.datatype
        };
        format!("TYPE_{name}")
    }
}

/// A served version's configuration, the fields of Triton's `ModelConfig` a wharf model has.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub name: String,
    pub version: u64,
    pub platform: String,
    pub max_batch_size: usize,
    pub input: TensorConfig,
    pub outputs: Vec<TensorConfig>,
    pub max_queue_delay_microseconds: u64,
    /// Name and value, in a stable order.
    pub parameters: Vec<(&'static str, String)>,
}

impl ModelConfig {
    pub const BACKEND: &'static str = "wharf";

    pub fn of(state: &AppState, served: &ServedVersion) -> ModelConfig {
        let outputs = Output::ALL
            .into_iter()
            .map(|o| TensorConfig {
                name: o.name(),
                datatype: o.datatype(),
                dims: match o {
                    Output::Probabilities => vec![served.num_classes as i64],
                    Output::Class | Output::Label => vec![1],
                },
            })
            .collect();
        ModelConfig {
            name: served.model.clone(),
            version: served.version,
            platform: format!("wharf_{}", served.info.architecture),
            max_batch_size: state.batch.max_batch,
            input: TensorConfig {
                name: v2::INPUT_NAME,
                datatype: "FP32",
                dims: served.info.input_shape.iter().map(|&d| d as i64).collect(),
            },
            outputs,
            max_queue_delay_microseconds: state.batch.delay.as_micros() as u64,
            parameters: vec![
                ("input_scale", served.info.scale.to_string()),
                ("class_names", served.info.class_names.join(",")),
            ],
        }
    }

    /// Triton's JSON form (what its HTTP client's `get_model_config` reads).
    pub fn to_json(&self) -> Value {
        let tensor = |t: &TensorConfig| json!({ "name": t.name, "data_type": t.triton_type(), "dims": t.dims });
        let parameters: Map<String, Value> = self
            .parameters
            .iter()
            .map(|(k, v)| (k.to_string(), json!({ "string_value": v })))
            .collect();
        json!({
            "name": self.name,
            "platform": self.platform,
            "backend": Self::BACKEND,
            "max_batch_size": self.max_batch_size,
            "version_policy": { "specific": { "versions": [self.version.to_string()] } },
            "input": [tensor(&self.input)],
            "output": self.outputs.iter().map(tensor).collect::<Vec<_>>(),
            "dynamic_batching": { "max_queue_delay_microseconds": self.max_queue_delay_microseconds },
            "parameters": parameters,
        })
    }
}

#[derive(Deserialize, Default)]
struct IndexRequest {
    /// Only models that are ready.
    #[serde(default)]
    ready: bool,
}

#[derive(Deserialize, Default)]
struct LoadRequest {
    #[serde(default)]
    parameters: Map<String, Value>,
}

/// A JSON body that may be empty, or a 400 naming the request and what to send.
fn optional_json<T: Default + serde::de::DeserializeOwned>(
    body: &Bytes,
    what: &str,
    send: &str,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid {what} request: {e}; send {send}")))
}

/// `POST /v2/repository/index`: every model version in the repository with its state.
pub async fn index(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<Vec<IndexEntry>>, ApiError> {
    let request: IndexRequest =
        optional_json(&body, "repository index", "{} or {\"ready\": true}")?;
    Ok(Json(index_entries(&state, request.ready)))
}

/// `POST /v2/repository/models/{m}/load`: scans the repository now and answers whether the
/// model is then served.
pub async fn load(
    State(state): State<Arc<AppState>>,
    Path(model): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: LoadRequest = optional_json(&body, "model load", "{} or no body")?;
    let overrides: Vec<String> = request.parameters.keys().cloned().collect();
    let served = load_model(&state, &model, &overrides).await?;
    Ok(Json(
        json!({ "name": served.model, "version": served.version.to_string(), "state": "READY" }),
    ))
}

/// `POST /v2/repository/models/{m}/unload`: not possible for a polled repository.
pub async fn unload(Path(model): Path<String>) -> ApiError {
    unload_refusal(&model)
}

/// `GET /v2/models/{m}/config`
pub async fn config(
    State(state): State<Arc<AppState>>,
    Path(model): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let served = state.repo.resolve(&model, None)?;
    Ok(Json(ModelConfig::of(&state, &served).to_json()))
}

/// `GET /v2/models/{m}/versions/{v}/config`
pub async fn version_config(
    State(state): State<Arc<AppState>>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let served = v2::resolve(&state, &model, Some(&version))?;
    Ok(Json(ModelConfig::of(&state, &served).to_json()))
}
