//! The one error type of the crate: every variant names the file (or tensor) and what is wrong,
//! so that a user reading it knows which artifact to fix or re-export.

use std::path::PathBuf;

/// Why an artifact could not be loaded, saved or turned into a runnable model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(
        "{path}: {source} (is this a model version directory holding model.json and model.safetensors?)"
    )]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid model metadata: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{path}: format_version {found} is newer than this build understands ({supported}); upgrade wharf"
    )]
    UnsupportedFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{path}: invalid safetensors file: {message}")]
    Safetensors { path: PathBuf, message: String },
    #[error("{path}: tensor `{name}` is missing (layer `{layer}` in model.json needs it)")]
    MissingTensor {
        path: PathBuf,
        name: String,
        layer: String,
    },
    #[error("{path}: tensor `{name}` has shape {found:?}, model.json implies {expected:?}")]
    TensorShape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{path}: tensor `{name}` has dtype {found}, only F32 is supported")]
    TensorDtype {
        path: PathBuf,
        name: String,
        found: String,
    },
    #[error(
        "{path}: tensor `{name}` is not used by any layer in model.json (stale or mismatched weights?)"
    )]
    UnusedTensor { path: PathBuf, name: String },
    #[error("model.json: invalid layers: {0}")]
    Layers(String),
    #[error("input has {found} values, expected batch {batch} x {per_item} = {expected}")]
    InputLength {
        found: usize,
        batch: usize,
        per_item: usize,
        expected: usize,
    },
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;
