//! The trainable network in candle, built from the same `LayerSpec` list the artifact records,
//! with seeded Glorot-uniform initialisation (so runs are reproducible), a hand-written Adam
//! (so its moments can be checkpointed and resumed exactly) and conversion to/from the
//! wharf-model artifact tensors.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result};
use candle_core::{D, DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng, rngs::StdRng};
use wharf_model::ops::ConvGeom;
use wharf_model::{Activation, LayerSpec};

use crate::kernels;

/// A layer's trainable weight and bias.
struct Params {
    weight: Var,
    bias: Var,
}

pub struct Net {
    layers: Vec<(LayerSpec, Option<Params>)>,
    device: Device,
}

impl Net {
    /// New weights: Glorot-uniform (Keras' default) from a `seed`ed RNG, zero biases.
    pub fn init(layers: &[LayerSpec], seed: u64) -> Result<Self> {
        let device = Device::Cpu;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut out = Vec::with_capacity(layers.len());
        for layer in layers {
            let params = match layer.parameters().as_slice() {
                [(_, wshape), (_, bshape)] => {
                    // fan_in/fan_out per Glorot: inputs·k·k and outputs·k·k.
                    let receptive: usize = wshape[2..].iter().product();
                    let (fan_out, fan_in) = (wshape[0] * receptive, wshape[1] * receptive);
                    let limit = (6.0 / (fan_in + fan_out) as f32).sqrt();
                    let n: usize = wshape.iter().product();
                    let data: Vec<f32> = (0..n).map(|_| rng.random_range(-limit..limit)).collect();
                    Some(Params {
                        weight: Var::from_tensor(&Tensor::from_vec(
                            data,
                            wshape.as_slice(),
                            &device,
                        )?)?,
                        bias: Var::zeros(bshape.as_slice(), DType::F32, &device)?,
                    })
                }
                _ => None,
            };
            out.push((layer.clone(), params));
        }
        Ok(Net {
            layers: out,
            device,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Trainable variables with their artifact names, in layer order.
    pub fn named_vars(&self) -> Vec<(String, &Var)> {
        let mut vars = Vec::new();
        for (layer, params) in &self.layers {
            if let Some(p) = params {
                let names = layer.parameters();
                vars.push((names[0].0.clone(), &p.weight));
                vars.push((names[1].0.clone(), &p.bias));
            }
        }
        vars
    }

    /// Logits for a batch `x` shaped `[B, C, H, W]` (or `[B, N]` for dense-only nets).
    ///
    /// Spatial layers run channels-last (`[B, H, W, C]`) on the kernels in
    /// [`crate::kernels`]; `Flatten` turns the activations back to C, H, W order first, the
    /// order wharf-model (and the artifact's dense weights) expect.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        let mut channels_last = false;
        // A ReLU right before a max pooling runs after it instead, on a quarter of the values:
        // max(relu(a), relu(b)) = relu(max(a, b)).
        let mut relu_after_pool = false;
        for (i, (layer, params)) in self.layers.iter().enumerate() {
            let spatial = matches!(
                layer,
                LayerSpec::Conv2d { .. } | LayerSpec::MaxPool2d { .. }
            );
            if spatial && !channels_last {
                x = x.permute((0, 2, 3, 1))?.contiguous()?;
                channels_last = true;
            }
            x = match (layer, params) {
                (LayerSpec::Flatten, _) => {
                    if channels_last {
                        x = x.permute((0, 3, 1, 2))?.contiguous()?;
                        channels_last = false;
                    }
                    x.flatten_from(1)?
                }
                (LayerSpec::Dense { activation, .. }, Some(p)) => {
                    let y = x.matmul(&p.weight.t()?)?.broadcast_add(&p.bias)?;
                    activate(y, *activation)?
                }
                (
                    LayerSpec::Conv2d {
                        padding,
                        activation,
                        out_channels,
                        kernel_size,
                        ..
                    },
                    Some(p),
                ) => {
                    let (batch, height, width, channels) = x.dims4()?;
                    let shape = kernels::ConvShape {
                        batch,
                        geom: ConvGeom {
                            channels,
                            height,
                            width,
                            kernel: *kernel_size,
                            padding: *padding,
                        },
                    };
                    let cols = x.apply_op1(kernels::Im2col(shape))?;
                    let w = Tensor::cat(
                        &[
                            p.weight.reshape((*out_channels, shape.geom.patch_len()))?,
                            p.bias.reshape((*out_channels, 1))?,
                        ],
                        1,
                    )?;
                    let y = cols.matmul(&w.t()?)?.reshape((
                        batch,
                        shape.geom.out_height(),
                        shape.geom.out_width(),
                        *out_channels,
                    ))?;
                    let next_is_pool = matches!(
                        self.layers.get(i + 1),
                        Some((LayerSpec::MaxPool2d { .. }, _))
                    );
                    if *activation == Activation::Relu && next_is_pool {
                        relu_after_pool = true;
                        y
                    } else {
                        activate(y, *activation)?
                    }
                }
                (LayerSpec::MaxPool2d { size }, _) => {
                    let y = x.apply_op1(kernels::MaxPool { size: *size })?;
                    if std::mem::take(&mut relu_after_pool) {
                        y.relu()?
                    } else {
                        y
                    }
                }
                (other, None) => anyhow::bail!("layer {} has no parameters", other.label()),
            };
        }
        if channels_last {
            x = x.permute((0, 3, 1, 2))?.contiguous()?;
        }
        Ok(x)
    }

    /// The current weights as artifact tensors.
    pub fn export(&self) -> Result<BTreeMap<String, wharf_model::Tensor>> {
        self.named_vars()
            .into_iter()
            .map(|(name, var)| {
                let shape = var.dims().to_vec();
                let data = var.flatten_all()?.to_vec1::<f32>()?;
                Ok((name, wharf_model::Tensor::new(shape, data)))
            })
            .collect()
    }

    /// Overwrites the weights from named tensors (a checkpoint).
    pub fn import(&self, tensors: &HashMap<String, Tensor>, prefix: &str) -> Result<()> {
        for (name, var) in self.named_vars() {
            let t = tensors
                .get(&format!("{prefix}{name}"))
                .with_context(|| format!("checkpoint lacks tensor {prefix}{name}"))?;
            var.set(t)
                .with_context(|| format!("checkpoint tensor {prefix}{name}"))?;
        }
        Ok(())
    }
}

fn activate(y: Tensor, activation: Activation) -> Result<Tensor> {
    Ok(match activation {
        Activation::Relu => y.relu()?,
        Activation::None => y,
    })
}

/// Adam (Kingma & Ba) with Keras' defaults; its state is plain tensors so a checkpoint can
/// hold it and a resumed run continues exactly where it stopped.
pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub step: u64,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl Adam {
    pub fn new(net: &Net, lr: f64) -> Result<Self> {
        let zeros = |var: &Var| Tensor::zeros(var.dims(), DType::F32, net.device());
        let vars = net.named_vars();
        Ok(Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            step: 0,
            m: vars
                .iter()
                .map(|(_, v)| zeros(v))
                .collect::<Result<_, _>>()?,
            v: vars
                .iter()
                .map(|(_, v)| zeros(v))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Back-propagates `loss` and applies one update to every variable of `net`.
    pub fn backward_step(&mut self, net: &Net, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step += 1;
        let t = self.step as f64;
        // Bias correction folded into the step size, as in the paper's efficient form.
        let lr_t = self.lr * (1.0 - self.beta2.powf(t)).sqrt() / (1.0 - self.beta1.powf(t));
        for (i, (name, var)) in net.named_vars().into_iter().enumerate() {
            // Detach: a gradient carries the op graph it came from, and moments derived
            // from it would chain every step's graph together (an unbounded leak).
            let g = grads
                .get(var)
                .with_context(|| format!("no gradient for {name}"))?
                .detach();
            let g = &g;
            let m = ((&self.m[i] * self.beta1)? + (g * (1.0 - self.beta1))?)?;
            let v = ((&self.v[i] * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let update = ((&m * lr_t)? / (v.sqrt()? + self.eps)?)?;
            var.set(&var.sub(&update)?.detach())?;
            self.m[i] = m.detach();
            self.v[i] = v.detach();
        }
        Ok(())
    }

    /// The moments as named tensors (`adam.m.<name>`, `adam.v.<name>`).
    pub fn state(&self, net: &Net) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, (name, _)) in net.named_vars().into_iter().enumerate() {
            out.insert(format!("adam.m.{name}"), self.m[i].clone());
            out.insert(format!("adam.v.{name}"), self.v[i].clone());
        }
        out
    }

    pub fn load_state(
        &mut self,
        net: &Net,
        tensors: &HashMap<String, Tensor>,
        step: u64,
    ) -> Result<()> {
        for (i, (name, _)) in net.named_vars().into_iter().enumerate() {
            for (slot, key) in [(&mut self.m[i], "m"), (&mut self.v[i], "v")] {
                let k = format!("adam.{key}.{name}");
                *slot = tensors
                    .get(&k)
                    .with_context(|| format!("checkpoint lacks tensor {k}"))?
                    .clone();
            }
        }
        self.step = step;
        Ok(())
    }
}

/// Mean cross-entropy of `logits [B, K]` against `labels [B]` (u32).
pub fn loss(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::loss::cross_entropy(logits, labels)?)
}

/// How many rows of `logits` have their maximum at the label.
pub fn correct(logits: &Tensor, labels: &[u8]) -> Result<usize> {
    let pred = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
    Ok(pred
        .iter()
        .zip(labels)
        .filter(|(p, l)| **p == **l as u32)
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_model::{Architecture, Artifact, Model, ModelMeta};

    /// The candle network and the wharf-model forward pass must agree on layouts (weight
    /// orientation, flatten order), or the server would serve a different model.
    #[test]
    fn candle_forward_equals_wharf_model_forward() {
        for arch in [Architecture::Mlp, Architecture::Cnn] {
            let meta = ModelMeta::new(arch);
            let net = Net::init(&meta.layers, 3).unwrap();
            let x: Vec<f32> = (0..2 * 784)
                .map(|i| ((i * 37) % 255) as f32 / 255.0)
                .collect();
            let input = match arch {
                Architecture::Mlp => Tensor::from_slice(&x, (2, 784), net.device()).unwrap(),
                Architecture::Cnn => Tensor::from_slice(&x, (2, 1, 28, 28), net.device()).unwrap(),
            };
            let expected = net
                .forward(&input)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let model =
                Model::from_artifact(&Artifact::new(meta, net.export().unwrap()).unwrap()).unwrap();
            let mut got = Vec::new();
            model.logits(&x, 2, &mut got).unwrap();
            assert_eq!(got.len(), expected.len());
            for (a, b) in got.iter().zip(&expected) {
                assert!((a - b).abs() < 1e-4, "{arch}: {a} vs {b}");
            }
        }
    }

    /// The previous forward pass, on candle's own NCHW conv2d and a reshape + max pooling
    /// (whose backward routes each gradient to the window's maximum).
    fn reference_forward(net: &Net, x: &Tensor) -> Tensor {
        let mut x = x.clone();
        for (layer, params) in &net.layers {
            x = match (layer, params) {
                (LayerSpec::Flatten, _) => x.flatten_from(1).unwrap(),
                (LayerSpec::Dense { activation, .. }, Some(p)) => {
                    let y = x.matmul(&p.weight.t().unwrap()).unwrap();
                    activate(y.broadcast_add(&p.bias).unwrap(), *activation).unwrap()
                }
                (
                    LayerSpec::Conv2d {
                        padding,
                        activation,
                        out_channels,
                        ..
                    },
                    Some(p),
                ) => {
                    let y = x.conv2d(&p.weight, *padding, 1, 1, 1).unwrap();
                    let bias = p.bias.reshape((1, *out_channels, 1, 1)).unwrap();
                    activate(y.broadcast_add(&bias).unwrap(), *activation).unwrap()
                }
                (LayerSpec::MaxPool2d { size }, _) => {
                    let (b, c, h, w) = x.dims4().unwrap();
                    let (oh, ow) = (h / size, w / size);
                    let x = x.narrow(2, 0, oh * size).unwrap();
                    let x = x.narrow(3, 0, ow * size).unwrap().contiguous().unwrap();
                    let x = x.reshape((b, c, oh, *size, ow, *size)).unwrap();
                    x.max(5).unwrap().max(3).unwrap()
                }
                (_, None) => unreachable!(),
            };
        }
        x
    }

    /// The channels-last kernels (im2col, pooling and their backward passes) compute the same
    /// logits and the same gradient for every parameter as candle's conv2d and max, including
    /// a padded convolution and pooling that floors an odd size.
    #[test]
    fn fast_kernels_match_candle_conv_and_pooling() {
        let mut padded = LayerSpec::conv("conv2", 4, 6, 3);
        if let LayerSpec::Conv2d { padding, .. } = &mut padded {
            *padding = 1;
        }
        let nets = [
            Architecture::Cnn.layers(),
            vec![
                LayerSpec::conv("conv1", 2, 4, 3),
                LayerSpec::MaxPool2d { size: 2 },
                padded,
                LayerSpec::MaxPool2d { size: 3 },
                LayerSpec::Flatten,
                // 11x14 -conv3-> 9x12 -pool2-> 4x6 -conv3 pad1-> 4x6 -pool3-> 1x2, 6 channels.
                LayerSpec::dense("fc1", 12, 5, Activation::None),
            ],
        ];
        let inputs = [(3, 1, 28, 28), (2, 2, 11, 14)];
        for (layers, dims) in nets.iter().zip(inputs) {
            let net = Net::init(layers, 7).unwrap();
            let n = dims.0 * dims.1 * dims.2 * dims.3;
            let x: Vec<f32> = (0..n)
                .map(|i| ((i * 53) % 97) as f32 / 97.0 - 0.3)
                .collect();
            let x = Tensor::from_vec(x, dims, net.device()).unwrap();
            let labels =
                Tensor::from_iter((0..dims.0 as u32).map(|i| i % 5), net.device()).unwrap();
            let fast = net.forward(&x).unwrap();
            let slow = reference_forward(&net, &x);
            let diff = (&fast - &slow).unwrap().abs().unwrap().max_all().unwrap();
            assert!(
                diff.to_scalar::<f32>().unwrap() < 1e-4,
                "logits differ by {diff}"
            );
            let g_fast = loss(&fast, &labels).unwrap().backward().unwrap();
            let g_slow = loss(&slow, &labels).unwrap().backward().unwrap();
            for (name, var) in net.named_vars() {
                let a = g_fast.get(var).unwrap();
                let b = g_slow.get(var).unwrap();
                let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
                let diff = diff.to_scalar::<f32>().unwrap();
                let scale = b
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(
                    diff <= 1e-4 * scale.max(1.0),
                    "{name}: gradients differ by {diff}"
                );
            }
        }
    }

    #[test]
    fn init_is_seeded() {
        let layers = Architecture::Mlp.layers();
        let a = Net::init(&layers, 1).unwrap().export().unwrap();
        let b = Net::init(&layers, 1).unwrap().export().unwrap();
        let c = Net::init(&layers, 2).unwrap().export().unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
