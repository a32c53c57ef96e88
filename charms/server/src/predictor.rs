//! The seam between the HTTP layer and the model: what the server needs from a loaded model
//! version, and how a version directory becomes one.
//!
//! The real implementation is `crate::artifact::ArtifactLoader` over `wharf-model`; tests plug in
//! their own loaders (slow, panicking, counting) to pin the server's behaviour without a trainer.

use std::path::Path;
use std::sync::Arc;

/// A loaded model that turns a batch of already-scaled inputs into class probabilities.
pub trait Predictor: Send + Sync + 'static {
    /// Number of f32 values in one input row (784 for 28×28 images).
    fn input_len(&self) -> usize;
    /// Number of classes, i.e. probabilities in one output row.
    fn num_classes(&self) -> usize;
    /// Runs the forward pass on `batch` rows of `inputs` (row-major, `batch * input_len` values)
    /// and writes `batch * num_classes` softmax probabilities into `out` (cleared first).
    fn predict_proba(&self, inputs: &[f32], batch: usize, out: &mut Vec<f32>)
    -> Result<(), String>;
}

/// What the protocols report about a model version, taken from its `model.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// e.g. "mlp" or "cnn".
    pub architecture: String,
    /// Shape of one input without the batch dimension, e.g. [28, 28].
    pub input_shape: Vec<usize>,
    /// A UINT8 pixel times this is the model's input (FP32 requests are already scaled).
    pub scale: f32,
    /// One name per class, in output order.
    pub class_names: Vec<String>,
}

/// A model version ready to serve.
#[derive(Clone)]
pub struct LoadedModel {
    pub predictor: Arc<dyn Predictor>,
    pub info: ModelInfo,
}

/// Turns a version directory (`<repo>/<model>/<version>/`) into a [`LoadedModel`].
pub trait Loader: Send + Sync + 'static {
    /// Loads the artifact in `dir`; the error says which file is wrong and why.
    fn load(&self, dir: &Path) -> Result<LoadedModel, String>;
}
