//! `wharf-trainer predict`: the latest version of an ML model under a directory (or S3 prefix)
//! predicts the first test images of Fashion-MNIST, and says how many it got right. The batch step
//! after `train` in a pipeline (examples/pipelines/fashion-mnist-train-predict.yaml), reading the
//! artifact `train` wrote to the shared volume. The forward pass is wharf-model's, as in the server.

use anyhow::{Context, Result, bail};
use serde::Serialize;
use wharf_model::Model;
use wharf_model::location::Location;

use crate::data::Split;
use crate::output::block_on;
use crate::train::scale;

/// What `predict` reports (JSON on stdout and in `--out`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The version directory the ML model was read from.
    pub model: String,
    pub count: usize,
    pub correct: usize,
    pub accuracy: f64,
    pub predictions: Vec<Prediction>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// The test image's index in the t10k set.
    pub index: usize,
    pub label: String,
    pub predicted: String,
}

/// The highest numbered version under `dir` (`train` writes `dir/1/`, `dir/2/`, …).
pub fn latest_version(dir: &Location) -> Result<Location> {
    let children = block_on(dir.children()).with_context(|| format!("listing {dir}"))?;
    let Some(latest) = children.iter().filter_map(|c| c.parse::<u64>().ok()).max() else {
        bail!(
            "{dir} holds no model version (a numbered directory `train` writes); run train first"
        );
    };
    Ok(dir.join(&latest.to_string()))
}

/// Predict the first `count` images of `test` with the latest ML model under `dir`.
pub fn predict(dir: &Location, test: &Split, count: usize) -> Result<Report> {
    if count == 0 || count > test.len() {
        bail!(
            "--count must be between 1 and {} (the test images)",
            test.len()
        );
    }
    let version = latest_version(dir)?;
    let artifact = block_on(version.load_artifact())
        .with_context(|| format!("reading the model artifact in {version}"))?;
    let model = Model::from_artifact(&artifact)
        .with_context(|| format!("the model artifact in {version}"))?;
    let pixels = &test.pixels[..count * test.pixels_per_image];
    let inputs = scale(pixels, artifact.meta.input.scale);
    let classes = model
        .predict(&inputs, count)
        .with_context(|| format!("predicting with {version}"))?;
    let name = |class: usize| {
        artifact
            .meta
            .class_names
            .get(class)
            .cloned()
            .unwrap_or_else(|| class.to_string())
    };
    let predictions: Vec<Prediction> = classes
        .iter()
        .enumerate()
        .map(|(index, &class)| Prediction {
            index,
            label: name(usize::from(test.labels[index])),
            predicted: name(class),
        })
        .collect();
    let correct = classes
        .iter()
        .zip(&test.labels)
        .filter(|(p, l)| **p == usize::from(**l))
        .count();
    Ok(Report {
        model: version.to_string(),
        count,
        correct,
        accuracy: correct as f64 / count as f64,
        predictions,
    })
}
