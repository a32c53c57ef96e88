//! The training run: epochs of shuffled mini-batches through the candle network, a JSON line
//! per epoch, a checkpoint after each epoch (weights, Adam moments, step, epoch) that
//! `--resume` continues from, and test accuracy measured with the wharf-model forward pass on
//! the exported artifact, so the server's predictions equal the trainer's evaluation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::Tensor;
use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};
use serde::{Deserialize, Serialize};
use wharf_model::{Architecture, Artifact, Hyperparameters, Model, ModelMeta};

use crate::data::{Dataset, Split};
use crate::net::{self, Adam, Net};

#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub architecture: Architecture,
    pub epochs: u32,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub seed: u64,
    /// Checkpoints go to `out/checkpoint/`.
    pub out: PathBuf,
    pub resume: bool,
}

/// One line of progress on stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochReport {
    pub epoch: u32,
    pub loss: f64,
    pub train_accuracy: f64,
    pub test_accuracy: f64,
    pub seconds: f64,
    pub samples_per_second: f64,
}

/// What a checkpoint's `state.json` holds beside `weights.safetensors`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointState {
    epoch: u32,
    step: u64,
    architecture: Architecture,
    seed: u64,
    batch_size: usize,
    learning_rate: f64,
    last: Option<EpochReport>,
    train_seconds: f64,
}

pub const CHECKPOINT_DIR: &str = "checkpoint";

/// Trains and returns the final artifact (not yet written anywhere). `on_epoch` sees each report.
pub fn train(
    cfg: &TrainConfig,
    data: &Dataset,
    mut on_epoch: impl FnMut(&EpochReport),
) -> Result<Artifact> {
    if cfg.batch_size == 0 || cfg.epochs == 0 || cfg.learning_rate <= 0.0 {
        bail!("--epochs and --batch-size must be at least 1 and --lr greater than 0");
    }
    if data.train.is_empty() || data.test.is_empty() {
        bail!("the training and test sets must not be empty");
    }
    let mut meta = ModelMeta::new(cfg.architecture);
    let net = Net::init(&meta.layers, cfg.seed)?;
    let mut adam = Adam::new(&net, cfg.learning_rate)?;
    let ckpt = cfg.out.join(CHECKPOINT_DIR);
    let mut start_epoch = 0;
    let mut last: Option<EpochReport> = None;
    let mut train_seconds = 0.0;
    if cfg.resume {
        let state = load_checkpoint(&ckpt, cfg, &net, &mut adam)?;
        start_epoch = state.epoch;
        last = state.last;
        train_seconds = state.train_seconds;
        eprintln!("resuming from {} after epoch {start_epoch}", ckpt.display());
    }

    let test_inputs = scale(&data.test.pixels, meta.input.scale);
    for epoch in start_epoch..cfg.epochs {
        let started = Instant::now();
        let (loss, train_accuracy) =
            run_epoch(cfg, &net, &mut adam, &data.train, epoch, meta.input.scale)?;
        let artifact = Artifact::new(meta.clone(), net.export()?)?;
        let test_accuracy = evaluate(&artifact, &test_inputs, &data.test.labels)?;
        let seconds = started.elapsed().as_secs_f64();
        train_seconds += seconds;
        let report = EpochReport {
            epoch: epoch + 1,
            loss,
            train_accuracy,
            test_accuracy,
            seconds,
            samples_per_second: data.train.len() as f64 / seconds,
        };
        on_epoch(&report);
        save_checkpoint(
            &ckpt,
            &net,
            &adam,
            &CheckpointState {
                epoch: epoch + 1,
                step: adam.step,
                architecture: cfg.architecture,
                seed: cfg.seed,
                batch_size: cfg.batch_size,
                learning_rate: cfg.learning_rate,
                last: Some(report.clone()),
                train_seconds,
            },
        )?;
        last = Some(report);
    }

    let last = last.context("no epoch was run (the checkpoint already covers --epochs)")?;
    meta.metrics.test_accuracy = last.test_accuracy;
    meta.metrics.train_accuracy = last.train_accuracy;
    meta.metrics.loss = last.loss;
    meta.metrics.epochs = cfg.epochs;
    meta.metrics.train_seconds = train_seconds;
    meta.metrics.samples_per_second =
        data.train.len() as f64 * f64::from(cfg.epochs) / train_seconds.max(1e-9);
    meta.metrics.train_samples = data.train.len();
    meta.metrics.test_samples = data.test.len();
    meta.data_digest = data.digest.clone();
    meta.trainer_version = format!("wharf-trainer {}", env!("CARGO_PKG_VERSION"));
    meta.created = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    meta.hyperparameters = Some(Hyperparameters {
        batch_size: cfg.batch_size,
        learning_rate: cfg.learning_rate,
        seed: cfg.seed,
        optimizer: "adam".into(),
    });
    Ok(Artifact::new(meta, net.export()?)?)
}

/// Raw pixels to model input exactly as the server does it (`pixel * input.scale`), so the
/// trainer's evaluation and the server's predictions agree bit for bit.
pub fn scale(pixels: &[u8], factor: f32) -> Vec<f32> {
    pixels.iter().map(|&p| f32::from(p) * factor).collect()
}

/// One pass over the shuffled training set; returns (mean loss, running accuracy).
fn run_epoch(
    cfg: &TrainConfig,
    net: &Net,
    adam: &mut Adam,
    train: &Split,
    epoch: u32,
    scale: f32,
) -> Result<(f64, f64)> {
    // Shuffle seeded by (seed, epoch): a resumed run sees the same order as a straight one.
    let mut order: Vec<usize> = (0..train.len()).collect();
    order.shuffle(&mut StdRng::seed_from_u64(
        cfg.seed ^ (u64::from(epoch) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    ));
    let ppi = train.pixels_per_image;
    let mut x = Vec::with_capacity(cfg.batch_size * ppi);
    let mut y = Vec::with_capacity(cfg.batch_size);
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    for batch in order.chunks(cfg.batch_size) {
        x.clear();
        y.clear();
        for &i in batch {
            x.extend(
                train.pixels[i * ppi..(i + 1) * ppi]
                    .iter()
                    .map(|&p| f32::from(p) * scale),
            );
            y.push(train.labels[i]);
        }
        let b = batch.len();
        let input = match cfg.architecture {
            Architecture::Mlp => Tensor::from_slice(&x, (b, ppi), net.device())?,
            Architecture::Cnn => Tensor::from_slice(&x, (b, 1, 28, 28), net.device())?,
        };
        let labels = Tensor::from_iter(y.iter().map(|&l| u32::from(l)), net.device())?;
        let logits = net.forward(&input)?;
        let loss = net::loss(&logits, &labels)?;
        loss_sum += f64::from(loss.to_scalar::<f32>()?) * b as f64;
        correct += net::correct(&logits, &y)?;
        adam.backward_step(net, &loss)?;
    }
    let n = train.len() as f64;
    Ok((loss_sum / n, correct as f64 / n))
}

/// Accuracy of the artifact's own forward pass, the two halves of the set on two threads.
pub fn evaluate(artifact: &Artifact, inputs: &[f32], labels: &[u8]) -> Result<f64> {
    let model = Model::from_artifact(artifact)?;
    let len = model.input_len();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    let per = labels.len().div_ceil(threads);
    let correct: usize = std::thread::scope(|s| {
        let handles: Vec<_> = labels
            .chunks(per)
            .zip(inputs.chunks(per * len))
            .map(|(labs, xs)| {
                let model = &model;
                s.spawn(move || -> wharf_model::Result<usize> {
                    let mut hits = 0;
                    for (l, x) in labs.chunks(256).zip(xs.chunks(256 * len)) {
                        let pred = model.predict(x, l.len())?;
                        hits += pred
                            .iter()
                            .zip(l)
                            .filter(|(p, l)| **p == usize::from(**l))
                            .count();
                    }
                    Ok(hits)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("evaluation thread panicked"))
            .sum::<wharf_model::Result<usize>>()
    })?;
    Ok(correct as f64 / labels.len() as f64)
}

fn save_checkpoint(dir: &Path, net: &Net, adam: &Adam, state: &CheckpointState) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tensors: HashMap<String, Tensor> = adam.state(net);
    for (name, var) in net.named_vars() {
        tensors.insert(format!("param.{name}"), var.as_tensor().clone());
    }
    let weights = dir.join("weights.safetensors");
    candle_core::safetensors::save(&tensors, dir.join("weights.safetensors.tmp"))
        .with_context(|| format!("writing {}", weights.display()))?;
    std::fs::rename(dir.join("weights.safetensors.tmp"), &weights)?;
    // state.json last: it is what marks the checkpoint complete.
    let path = dir.join("state.json");
    std::fs::write(&path, serde_json::to_vec_pretty(state)?)
        .with_context(|| format!("writing {}", path.display()))
}

fn load_checkpoint(
    dir: &Path,
    cfg: &TrainConfig,
    net: &Net,
    adam: &mut Adam,
) -> Result<CheckpointState> {
    let path = dir.join("state.json");
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "--resume: cannot read {} (run without --resume to start fresh)",
            path.display()
        )
    })?;
    let state: CheckpointState = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: invalid checkpoint state", path.display()))?;
    if state.architecture != cfg.architecture
        || state.batch_size != cfg.batch_size
        || state.seed != cfg.seed
    {
        bail!(
            "{}: checkpoint was made with --model {} --batch-size {} --seed {}; resume with the same values",
            path.display(),
            state.architecture,
            state.batch_size,
            state.seed
        );
    }
    let weights = dir.join("weights.safetensors");
    let tensors = candle_core::safetensors::load(&weights, net.device())
        .with_context(|| format!("reading {}", weights.display()))?;
    net.import(&tensors, "param.")
        .with_context(|| format!("{}", weights.display()))?;
    adam.load_state(net, &tensors, state.step)
        .with_context(|| format!("{}", weights.display()))?;
    Ok(state)
}
