//! V2 extensions clients ask for besides inference: the model repository extension
//! (`POST /v2/repository/index`, `.../models/{m}/load`, `.../unload`) and Triton's model
//! configuration extension (`GET /v2/models/{m}/config`).
//!
//! The repository is polled, so "load" means "scan now" (what a client wants after publishing a
//! version) and "unload" is refused with the way to do it: remove the model's directory.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::infer::Output;
use crate::repository::ServedVersion;
use crate::server::AppState;
use crate::v2;

#[derive(Deserialize, Default)]
struct IndexRequest {
    /// Only models that are ready.
    #[serde(default)]
    ready: bool,
}

/// `POST /v2/repository/index`: every model version in the repository with its state.
pub async fn index(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: IndexRequest = if body.iter().all(u8::is_ascii_whitespace) {
        IndexRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::BadRequest(format!(
                "invalid repository index request: {e}; send {{}} or {{\"ready\": true}}"
            ))
        })?
    };
    Ok(Json(Value::Array(index_entries(&state, request.ready))))
}

fn index_entries(state: &AppState, ready_only: bool) -> Vec<Value> {
    let snapshot = state.repo.snapshot();
    let mut entries = Vec::new();
    for (name, entry) in &snapshot.models {
        for version in entry.versions.keys() {
            entries.push(json!({ "name": name, "version": version.to_string(), "state": "READY", "reason": "" }));
        }
        if ready_only {
            continue;
        }
        for (version, reason) in &entry.errors {
            entries.push(json!({ "name": name, "version": version.to_string(), "state": "UNAVAILABLE", "reason": reason }));
        }
    }
    entries
}

/// `POST /v2/repository/models/{m}/load`: scans the repository now and answers whether the
/// model is then served.
pub async fn load(
    State(state): State<Arc<AppState>>,
    Path(model): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let repo = state.repo.clone();
    tokio::task::spawn_blocking(move || repo.scan())
        .await
        .map_err(|e| ApiError::Internal(format!("the repository scan panicked: {e}")))?
        .map_err(|e| ApiError::Internal(format!("cannot scan the model repository: {e}")))?;
    let served = state.repo.resolve(&model, None)?;
    Ok(Json(
        json!({ "name": served.model, "version": served.version.to_string(), "state": "READY" }),
    ))
}

/// `POST /v2/repository/models/{m}/unload`: not possible for a polled repository.
pub async fn unload(Path(model): Path<String>) -> ApiError {
    ApiError::BadRequest(format!(
        "cannot unload '{model}': this server serves every model in its repository and rescans it every --poll-interval-ms; \
         remove the model's directory (or its versions) from the repository to unload it"
    ))
}

/// `GET /v2/models/{m}/config`
pub async fn config(
    State(state): State<Arc<AppState>>,
    Path(model): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let served = state.repo.resolve(&model, None)?;
    Ok(Json(model_config(&state, &served)))
}

/// `GET /v2/models/{m}/versions/{v}/config`
pub async fn version_config(
    State(state): State<Arc<AppState>>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let served = v2::resolve(&state, &model, Some(&version))?;
    Ok(Json(model_config(&state, &served)))
}

/// The model as Triton's `ModelConfig` JSON describes one (the fields clients read).
fn model_config(state: &AppState, served: &ServedVersion) -> Value {
    let triton_type = |datatype: &str| {
        format!(
            "TYPE_{}",
            if datatype == "BYTES" {
                "STRING"
            } else {
                datatype
            }
        )
    };
    let outputs: Vec<Value> = Output::ALL
        .into_iter()
        .map(|o| {
            let dims: Vec<i64> = match o {
                Output::Probabilities => vec![served.num_classes as i64],
                Output::Class | Output::Label => vec![1],
            };
            json!({ "name": o.name(), "data_type": triton_type(o.datatype()), "dims": dims })
        })
        .collect();
    json!({
        "name": served.model,
        "platform": format!("wharf_{}", served.info.architecture),
        "backend": "wharf",
        "max_batch_size": state.batch.max_batch,
        "version_policy": { "specific": { "versions": [served.version.to_string()] } },
        "input": [{
            "name": v2::INPUT_NAME,
            "data_type": "TYPE_FP32",
            "dims": served.info.input_shape,
        }],
        "output": outputs,
        "dynamic_batching": { "max_queue_delay_microseconds": state.batch.delay.as_micros() as u64 },
        "parameters": {
            "input_scale": { "string_value": served.info.scale.to_string() },
            "class_names": { "string_value": served.info.class_names.join(",") },
        },
    })
}
