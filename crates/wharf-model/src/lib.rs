//! The model artifact format and its forward pass, shared by the trainer (which writes and
//! evaluates artifacts) and the model server (which loads and serves them), so the format
//! and the arithmetic exist once.
//!
//! An artifact is a directory `<model>/<version>/` holding `model.json` ([`ModelMeta`]) and
//! `model.safetensors` (F32 weights named `<layer>.weight` / `<layer>.bias`, the names and
//! layouts candle-nn uses). [`Model`] runs it with plain loops and a gemm-grade matrix
//! product: no framework, no dispatch, microseconds per item.
//!
//! ```no_run
//! use wharf_model::{Artifact, Model};
//! let artifact = Artifact::load("models/fashion/1")?;
//! let model = Model::from_artifact(&artifact)?;
//! let pixels = vec![0u8; model.input_len()];
//! let scale = artifact.meta.input.scale;
//! let input: Vec<f32> = pixels.iter().map(|&p| p as f32 * scale).collect();
//! let mut proba = Vec::new();
//! model.predict_proba(&input, 1, &mut proba)?;
//! let class = wharf_model::argmax(&proba);
//! # Ok::<(), wharf_model::ModelError>(())
//! ```

mod artifact;
/// A dense layer's product (row dot products; AVX2/FMA where the CPU has them).
pub mod dense;
mod error;
/// Local directories and `s3://` prefixes (feature `s3`).
#[cfg(feature = "s3")]
pub mod location;
mod meta;
mod model;
/// Test support: an S3-compatible `moto_server` for the S3 tests (feature `moto`).
#[cfg(feature = "moto")]
pub mod moto;
pub mod ops;

pub use artifact::{Artifact, META_FILE, Tensor, WEIGHTS_FILE};
pub use error::{ModelError, Result};
pub use meta::{
    Activation, Architecture, FASHION_MNIST_CLASSES, FORMAT_VERSION, Hyperparameters, IMAGE_SIDE,
    InputSpec, LayerSpec, Metrics, ModelMeta,
};
pub use model::{Model, argmax_rows};
pub use ops::argmax;
