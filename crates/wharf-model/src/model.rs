//! A runnable model: the artifact's layer list checked once (shapes chain, weights present)
//! and compiled into a sequence of ops over flat row-major buffers, so a request only runs
//! loops and matrix products.

use crate::artifact::Artifact;
use crate::error::{ModelError, Result};
use crate::meta::{Activation, LayerSpec};
use crate::ops::{self, ConvGeom};

/// The shape of the activations between two layers (batch dimension excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Spatial { c: usize, h: usize, w: usize },
    Flat(usize),
}

impl Shape {
    fn len(self) -> usize {
        match self {
            Shape::Spatial { c, h, w } => c * h * w,
            Shape::Flat(n) => n,
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Dense {
        weight: Vec<f32>,
        bias: Vec<f32>,
        inputs: usize,
        outputs: usize,
        relu: bool,
    },
    Conv {
        weight: Vec<f32>,
        bias: Vec<f32>,
        geom: ConvGeom,
        out_channels: usize,
        relu: bool,
    },
    MaxPool {
        c: usize,
        h: usize,
        w: usize,
        size: usize,
    },
}

/// A model ready for inference. Immutable and `Sync`: share one across request threads.
#[derive(Debug, Clone)]
pub struct Model {
    ops: Vec<Op>,
    input_len: usize,
    num_classes: usize,
    /// Largest activation size per item, to size the ping-pong buffers once per call.
    max_width: usize,
    /// Largest im2col matrix of one item.
    max_cols: usize,
}

impl Model {
    /// Checks the layer list against the input shape and the weights, then compiles it.
    pub fn from_artifact(artifact: &Artifact) -> Result<Self> {
        let meta = &artifact.meta;
        let mut shape = match meta.input.shape.as_slice() {
            [n] => Shape::Flat(*n),
            [h, w] => Shape::Spatial { c: 1, h: *h, w: *w },
            [c, h, w] => Shape::Spatial {
                c: *c,
                h: *h,
                w: *w,
            },
            other => {
                return Err(ModelError::Layers(format!(
                    "input.shape {other:?} must have 1 to 3 dimensions ([N], [H,W] or [C,H,W])"
                )));
            }
        };
        let input_len = shape.len();
        if input_len == 0 {
            return Err(ModelError::Layers(
                "input.shape has a zero dimension".into(),
            ));
        }
        let mut max_width = input_len;
        let mut max_cols = 0;
        let mut ops = Vec::with_capacity(meta.layers.len());
        let tensor = |name: &str, layer: &LayerSpec| -> Result<Vec<f32>> {
            // Artifact::load already checked shapes; a hand-built Artifact may not have.
            artifact
                .tensors
                .get(name)
                .map(|t| t.data.clone())
                .ok_or_else(|| ModelError::MissingTensor {
                    path: artifact
                        .source
                        .clone()
                        .unwrap_or_else(|| "(in-memory artifact)".into()),
                    name: name.to_owned(),
                    layer: layer.label(),
                })
        };
        let check_len = |name: &str, data: &[f32], expected: usize| -> Result<()> {
            if data.len() == expected {
                Ok(())
            } else {
                Err(ModelError::Layers(format!(
                    "tensor `{name}` has {} values, the layer needs {expected}",
                    data.len()
                )))
            }
        };

        for layer in &meta.layers {
            match layer {
                LayerSpec::Flatten => {
                    // CHW activations are already stored flat in C, H, W order.
                    shape = Shape::Flat(shape.len());
                }
                LayerSpec::Dense {
                    name,
                    inputs,
                    outputs,
                    activation,
                } => {
                    match shape {
                        Shape::Flat(n) if n == *inputs => {}
                        Shape::Flat(n) => {
                            return Err(ModelError::Layers(format!(
                                "dense layer `{name}` expects {inputs} inputs but the previous layer gives {n}"
                            )));
                        }
                        Shape::Spatial { .. } => {
                            return Err(ModelError::Layers(format!(
                                "dense layer `{name}` follows a spatial layer: add a `flatten` layer before it"
                            )));
                        }
                    }
                    let weight = tensor(&format!("{name}.weight"), layer)?;
                    let bias = tensor(&format!("{name}.bias"), layer)?;
                    check_len(&format!("{name}.weight"), &weight, inputs * outputs)?;
                    check_len(&format!("{name}.bias"), &bias, *outputs)?;
                    ops.push(Op::Dense {
                        weight,
                        bias,
                        inputs: *inputs,
                        outputs: *outputs,
                        relu: *activation == Activation::Relu,
                    });
                    shape = Shape::Flat(*outputs);
                }
                LayerSpec::Conv2d {
                    name,
                    in_channels,
                    out_channels,
                    kernel_size,
                    padding,
                    activation,
                } => {
                    let Shape::Spatial { c, h, w } = shape else {
                        return Err(ModelError::Layers(format!(
                            "conv layer `{name}` needs a [C,H,W] input but follows a flattened one"
                        )));
                    };
                    if c != *in_channels {
                        return Err(ModelError::Layers(format!(
                            "conv layer `{name}` expects {in_channels} input channels but gets {c}"
                        )));
                    }
                    if *kernel_size == 0
                        || h + 2 * padding < *kernel_size
                        || w + 2 * padding < *kernel_size
                    {
                        return Err(ModelError::Layers(format!(
                            "conv layer `{name}`: kernel {kernel_size} (padding {padding}) does not fit a {h}x{w} input"
                        )));
                    }
                    let geom = ConvGeom {
                        channels: c,
                        height: h,
                        width: w,
                        kernel: *kernel_size,
                        padding: *padding,
                    };
                    let weight = tensor(&format!("{name}.weight"), layer)?;
                    let bias = tensor(&format!("{name}.bias"), layer)?;
                    check_len(
                        &format!("{name}.weight"),
                        &weight,
                        out_channels * geom.patch_len(),
                    )?;
                    check_len(&format!("{name}.bias"), &bias, *out_channels)?;
                    max_cols =
                        max_cols.max(geom.patch_len() * geom.out_height() * geom.out_width());
                    shape = Shape::Spatial {
                        c: *out_channels,
                        h: geom.out_height(),
                        w: geom.out_width(),
                    };
                    ops.push(Op::Conv {
                        weight,
                        bias,
                        geom,
                        out_channels: *out_channels,
                        relu: *activation == Activation::Relu,
                    });
                }
                LayerSpec::MaxPool2d { size } => {
                    let Shape::Spatial { c, h, w } = shape else {
                        return Err(ModelError::Layers(
                            "max_pool2d needs a [C,H,W] input but follows a flattened one".into(),
                        ));
                    };
                    if *size == 0 || *size > h || *size > w {
                        return Err(ModelError::Layers(format!(
                            "max_pool2d size {size} does not fit a {h}x{w} input"
                        )));
                    }
                    ops.push(Op::MaxPool {
                        c,
                        h,
                        w,
                        size: *size,
                    });
                    shape = Shape::Spatial {
                        c,
                        h: h / size,
                        w: w / size,
                    };
                }
            }
            max_width = max_width.max(shape.len());
        }

        let classes = meta.class_names.len();
        match shape {
            Shape::Flat(n) if n == classes && n > 0 => {}
            other => {
                return Err(ModelError::Layers(format!(
                    "the last layer must output one value per class_names entry ({classes}), it outputs {other:?}"
                )));
            }
        }
        Ok(Model {
            ops,
            input_len,
            num_classes: classes,
            max_width,
            max_cols,
        })
    }

    /// Values per input item (784 for Fashion-MNIST).
    pub fn input_len(&self) -> usize {
        self.input_len
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Runs `batch` items (already scaled, row-major `batch × input_len`) and writes
    /// row-major `batch × num_classes` softmax probabilities into `out` (resized).
    pub fn predict_proba(&self, inputs: &[f32], batch: usize, out: &mut Vec<f32>) -> Result<()> {
        self.logits(inputs, batch, out)?;
        for row in out.chunks_exact_mut(self.num_classes) {
            ops::softmax(row);
        }
        Ok(())
    }

    /// Like [`predict_proba`](Self::predict_proba) but returns the raw last-layer outputs.
    pub fn logits(&self, inputs: &[f32], batch: usize, out: &mut Vec<f32>) -> Result<()> {
        let expected = batch * self.input_len;
        if inputs.len() != expected {
            return Err(ModelError::InputLength {
                found: inputs.len(),
                batch,
                per_item: self.input_len,
                expected,
            });
        }
        let mut cur = Vec::with_capacity(batch * self.max_width);
        cur.extend_from_slice(inputs);
        let mut next = vec![0.0f32; batch * self.max_width];
        let mut cols = vec![0.0f32; self.max_cols];
        let mut width = self.input_len;

        for op in &self.ops {
            let out_width = match op {
                Op::Dense {
                    weight,
                    bias,
                    inputs,
                    outputs,
                    relu,
                } => {
                    let y = &mut next[..batch * outputs];
                    crate::dense::matmul_bt(
                        &cur[..batch * inputs],
                        weight,
                        y,
                        batch,
                        *inputs,
                        *outputs,
                    );
                    for row in y.chunks_exact_mut(*outputs) {
                        for (v, b) in row.iter_mut().zip(bias) {
                            *v += b;
                        }
                        if *relu {
                            ops::relu(row);
                        }
                    }
                    *outputs
                }
                Op::Conv {
                    weight,
                    bias,
                    geom,
                    out_channels,
                    relu,
                } => {
                    let spatial = geom.out_height() * geom.out_width();
                    let out_len = out_channels * spatial;
                    let cols = &mut cols[..geom.patch_len() * spatial];
                    for i in 0..batch {
                        ops::im2col(&cur[i * width..(i + 1) * width], *geom, cols);
                        let y = &mut next[i * out_len..(i + 1) * out_len];
                        ops::matmul(weight, cols, y, *out_channels, geom.patch_len(), spatial);
                        for (plane, b) in y.chunks_exact_mut(spatial).zip(bias) {
                            for v in plane.iter_mut() {
                                *v += b;
                            }
                        }
                        if *relu {
                            ops::relu(y);
                        }
                    }
                    out_len
                }
                Op::MaxPool { c, h, w, size } => {
                    let out_len = c * (h / size) * (w / size);
                    for i in 0..batch {
                        ops::max_pool(
                            &cur[i * width..(i + 1) * width],
                            *c,
                            *h,
                            *w,
                            *size,
                            &mut next[i * out_len..(i + 1) * out_len],
                        );
                    }
                    out_len
                }
            };
            width = out_width;
            // The output becomes the next input; `next` keeps its capacity for reuse.
            cur.resize(batch * width, 0.0);
            cur[..batch * width].copy_from_slice(&next[..batch * width]);
        }
        out.clear();
        out.extend_from_slice(&cur[..batch * width]);
        Ok(())
    }

    /// The predicted class of each item.
    pub fn predict(&self, inputs: &[f32], batch: usize) -> Result<Vec<usize>> {
        let mut logits = Vec::new();
        self.logits(inputs, batch, &mut logits)?;
        Ok(argmax_rows(&logits, self.num_classes))
    }
}

/// The index of the largest value in each `width`-long row of `values`.
pub fn argmax_rows(values: &[f32], width: usize) -> Vec<usize> {
    values
        .chunks_exact(width)
        .map(|row| ops::argmax(row).unwrap_or(0))
        .collect()
}
