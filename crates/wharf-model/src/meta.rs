//! `model.json`: the metadata half of an artifact (architecture, layer list, input contract,
//! class names, metrics and provenance) as serde types, plus the canonical layer lists the
//! trainer builds for `mlp` and `cnn`.

use serde::{Deserialize, Serialize};

/// The `format_version` this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// The Fashion-MNIST labels, index = class id.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Side of a Fashion-MNIST image.
pub const IMAGE_SIDE: usize = 28;

/// Everything in `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    pub format_version: u32,
    pub architecture: Architecture,
    /// The forward pass, in order. Weight tensors are named `<layer name>.weight` / `.bias`,
    /// the same names candle-nn's `linear` / `conv2d` use.
    pub layers: Vec<LayerSpec>,
    pub input: InputSpec,
    pub class_names: Vec<String>,
    pub metrics: Metrics,
    /// `sha256:<hex>` of the training data files (see the trainer's data module).
    pub data_digest: String,
    pub trainer_version: String,
    /// RFC 3339 UTC time the artifact was written.
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hyperparameters: Option<Hyperparameters>,
}

/// The model family: a label for humans and for the operator; the layer list is authoritative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    Mlp,
    Cnn,
}

impl Architecture {
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::Mlp => "mlp",
            Architecture::Cnn => "cnn",
        }
    }

    /// The layer list the trainer uses for this architecture.
    pub fn layers(self) -> Vec<LayerSpec> {
        match self {
            Architecture::Mlp => vec![
                LayerSpec::Flatten,
                LayerSpec::dense("fc1", IMAGE_SIDE * IMAGE_SIDE, 128, Activation::Relu),
                LayerSpec::dense("fc2", 128, 10, Activation::None),
            ],
            // 28 -conv3-> 26 -pool2-> 13 -conv3-> 11 -pool2-> 5: 32*5*5 = 800 features.
            // 16/32 filters rather than 32/64: a quarter of the work, so CPU training fits
            // several epochs in the 5-minute budget.
            Architecture::Cnn => vec![
                LayerSpec::conv("conv1", 1, 16, 3),
                LayerSpec::MaxPool2d { size: 2 },
                LayerSpec::conv("conv2", 16, 32, 3),
                LayerSpec::MaxPool2d { size: 2 },
                LayerSpec::Flatten,
                LayerSpec::dense("fc1", 32 * 5 * 5, 128, Activation::Relu),
                LayerSpec::dense("fc2", 128, 10, Activation::None),
            ],
        }
    }

    /// The input shape the trainer records: `[28, 28]` for dense nets, `[1, 28, 28]` (CHW) for conv nets.
    pub fn input_shape(self) -> Vec<usize> {
        match self {
            Architecture::Mlp => vec![IMAGE_SIDE, IMAGE_SIDE],
            Architecture::Cnn => vec![1, IMAGE_SIDE, IMAGE_SIDE],
        }
    }
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Architecture {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mlp" => Ok(Architecture::Mlp),
            "cnn" => Ok(Architecture::Cnn),
            other => Err(format!(
                "unknown architecture `{other}`; expected mlp or cnn"
            )),
        }
    }
}

/// One step of the forward pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LayerSpec {
    /// `[C,H,W]` -> `[C*H*W]` in C, H, W order (PyTorch/candle order).
    Flatten,
    /// `y = activation(x W^T + b)`, `weight: [outputs, inputs]`, `bias: [outputs]`.
    Dense {
        name: String,
        inputs: usize,
        outputs: usize,
        activation: Activation,
    },
    /// Square-kernel, stride-1 convolution, `weight: [out, in, k, k]`, `bias: [out]`, zero padding.
    Conv2d {
        name: String,
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        #[serde(default)]
        padding: usize,
        activation: Activation,
    },
    /// Non-overlapping max pooling (window = stride = `size`), flooring the output size.
    MaxPool2d { size: usize },
}

impl LayerSpec {
    pub fn dense(name: &str, inputs: usize, outputs: usize, activation: Activation) -> Self {
        LayerSpec::Dense {
            name: name.to_owned(),
            inputs,
            outputs,
            activation,
        }
    }

    /// A 'valid' (unpadded) ReLU convolution.
    pub fn conv(name: &str, in_channels: usize, out_channels: usize, kernel_size: usize) -> Self {
        LayerSpec::Conv2d {
            name: name.to_owned(),
            in_channels,
            out_channels,
            kernel_size,
            padding: 0,
            activation: Activation::Relu,
        }
    }

    /// The layer's weight tensors: `(name, shape)`, empty for layers without weights.
    pub fn parameters(&self) -> Vec<(String, Vec<usize>)> {
        match self {
            LayerSpec::Dense {
                name,
                inputs,
                outputs,
                ..
            } => vec![
                (format!("{name}.weight"), vec![*outputs, *inputs]),
                (format!("{name}.bias"), vec![*outputs]),
            ],
            LayerSpec::Conv2d {
                name,
                in_channels,
                out_channels,
                kernel_size,
                ..
            } => vec![
                (
                    format!("{name}.weight"),
                    vec![*out_channels, *in_channels, *kernel_size, *kernel_size],
                ),
                (format!("{name}.bias"), vec![*out_channels]),
            ],
            LayerSpec::Flatten | LayerSpec::MaxPool2d { .. } => Vec::new(),
        }
    }

    /// A short label for error messages.
    pub fn label(&self) -> String {
        match self {
            LayerSpec::Flatten => "flatten".into(),
            LayerSpec::Dense { name, .. } | LayerSpec::Conv2d { name, .. } => name.clone(),
            LayerSpec::MaxPool2d { size } => format!("max_pool2d({size})"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Relu,
    /// Linear output (the last layer: logits, softmax is applied by `predict_proba`).
    None,
}

/// How a request's raw pixels become the model's float input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    /// `[28, 28]` (HW) or `[1, 28, 28]` (CHW).
    pub shape: Vec<usize>,
    /// The raw dtype clients send, `uint8` for Fashion-MNIST pixels.
    pub dtype: String,
    /// Model input = raw value * scale (1/255 for pixels).
    pub scale: f32,
}

impl InputSpec {
    pub fn pixels(shape: Vec<usize>) -> Self {
        InputSpec {
            shape,
            dtype: "uint8".into(),
            scale: 1.0 / 255.0,
        }
    }

    /// Number of values in one input.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Final training results.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub test_accuracy: f64,
    pub train_accuracy: f64,
    /// Mean training cross-entropy of the last epoch.
    pub loss: f64,
    pub epochs: u32,
    #[serde(default)]
    pub train_seconds: f64,
    #[serde(default)]
    pub samples_per_second: f64,
    #[serde(default)]
    pub train_samples: usize,
    #[serde(default)]
    pub test_samples: usize,
}

/// How the model was trained (for reproducing it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hyperparameters {
    pub batch_size: usize,
    /// The initial rate when `lr_schedule` changes it.
    pub learning_rate: f64,
    /// `constant` or `cosine` (decay to 0 over the run); absent in older artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr_schedule: Option<String>,
    pub seed: u64,
    pub optimizer: String,
}

impl ModelMeta {
    /// Metadata for a freshly built model of `architecture` with zeroed metrics and provenance.
    pub fn new(architecture: Architecture) -> Self {
        ModelMeta {
            format_version: FORMAT_VERSION,
            architecture,
            layers: architecture.layers(),
            input: InputSpec::pixels(architecture.input_shape()),
            class_names: FASHION_MNIST_CLASSES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            metrics: Metrics::default(),
            data_digest: String::new(),
            trainer_version: String::new(),
            created: String::new(),
            hyperparameters: None,
        }
    }

    /// Every weight tensor the layers need, in layer order.
    pub fn parameters(&self) -> Vec<(String, Vec<usize>)> {
        self.layers.iter().flat_map(LayerSpec::parameters).collect()
    }
}
