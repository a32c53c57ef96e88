//! Writes an MLP artifact through wharf-model's own API, for benchmarks and manual testing
//! when no trainer run is at hand.
//!
//! `make_artifact --out DIR [--weights FILE] [--seed N] [--accuracy A]`
//!
//! With `--weights`, FILE is JSON `{"fc1.weight": {"shape": [128, 784], "data": [...]}, ...}`
//! holding every tensor the MLP layers need (e.g. exported from scikit-learn, transposed to
//! `[outputs, inputs]`); without it the weights are random (seeded).

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use serde::Deserialize;
use wharf_model::{Architecture, Artifact, ModelMeta, Tensor};

#[derive(Deserialize)]
struct JsonTensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

fn main() -> anyhow::Result<()> {
    let mut out = None;
    let mut weights = None;
    let mut seed = 1u64;
    let mut accuracy = 0.0;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => out = Some(value()?),
            "--weights" => weights = Some(value()?),
            "--seed" => seed = value()?.parse().context("--seed must be an integer")?,
            "--accuracy" => accuracy = value()?.parse().context("--accuracy must be a number")?,
            other => bail!(
                "unknown flag {other}; usage: make_artifact --out DIR [--weights FILE] [--seed N] [--accuracy A]"
            ),
        }
    }
    let out = out.context("--out DIR is required")?;
    let mut meta = ModelMeta::new(Architecture::Mlp);
    meta.metrics.test_accuracy = accuracy;
    meta.trainer_version = "wharf-server make_artifact example".into();
    let tensors: BTreeMap<String, Tensor> = match weights {
        Some(path) => {
            let text =
                std::fs::read(&path).with_context(|| format!("cannot read --weights {path}"))?;
            let raw: BTreeMap<String, JsonTensor> = serde_json::from_slice(&text)
                .with_context(|| format!("--weights {path} is not tensor JSON"))?;
            raw.into_iter()
                .map(|(name, t)| {
                    let n: usize = t.shape.iter().product();
                    if n != t.data.len() {
                        bail!(
                            "--weights {path}: {name} has shape {:?} but {} values",
                            t.shape,
                            t.data.len()
                        );
                    }
                    Ok((name, Tensor::new(t.shape, t.data)))
                })
                .collect::<anyhow::Result<_>>()?
        }
        None => {
            let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            meta.parameters()
                .into_iter()
                .map(|(name, shape)| {
                    let n: usize = shape.iter().product();
                    let data = (0..n)
                        .map(|_| {
                            state ^= state << 13;
                            state ^= state >> 7;
                            state ^= state << 17;
                            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
                        })
                        .collect();
                    (name, Tensor::new(shape, data))
                })
                .collect()
        }
    };
    let artifact = Artifact::new(meta, tensors).context("the weights do not fit the MLP layers")?;
    artifact
        .save(&out)
        .with_context(|| format!("cannot write the artifact to {out}"))?;
    println!("wrote {out}");
    Ok(())
}
