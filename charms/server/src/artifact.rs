//! The production [`Loader`]: reads a version directory with `wharf-model` (which owns the
//! artifact format and the forward pass) and adapts its `Model` to the server's [`Predictor`].

use std::path::Path;
use std::sync::Arc;

use wharf_model::{Artifact, Model};

use crate::predictor::{LoadedModel, Loader, ModelInfo, Predictor};

/// Loads `model.json` + `model.safetensors` artifacts.
#[derive(Debug, Default, Clone, Copy)]
pub struct ArtifactLoader;

impl Loader for ArtifactLoader {
    fn load(&self, dir: &Path) -> Result<LoadedModel, String> {
        let artifact = Artifact::load(dir).map_err(|e| e.to_string())?;
        let model = Model::from_artifact(&artifact).map_err(|e| e.to_string())?;
        let meta = &artifact.meta;
        if meta.class_names.len() != model.num_classes() {
            return Err(format!(
                "{}: class_names lists {} names but the model has {} outputs",
                dir.join(wharf_model::META_FILE).display(),
                meta.class_names.len(),
                model.num_classes()
            ));
        }
        let info = ModelInfo {
            architecture: meta.architecture.to_string(),
            input_shape: meta.input.shape.clone(),
            scale: meta.input.scale,
            class_names: meta.class_names.clone(),
        };
        Ok(LoadedModel {
            predictor: Arc::new(model),
            info,
        })
    }
}

impl Predictor for Model {
    fn input_len(&self) -> usize {
        Model::input_len(self)
    }
    fn num_classes(&self) -> usize {
        Model::num_classes(self)
    }
    fn predict_proba(
        &self,
        inputs: &[f32],
        batch: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), String> {
        Model::predict_proba(self, inputs, batch, out).map_err(|e| e.to_string())
    }
}
