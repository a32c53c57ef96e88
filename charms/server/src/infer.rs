//! What both protocols share once a request is parsed: checking a tensor's shape against the
//! model, scaling UINT8 pixels, running the batcher, and turning probabilities into classes.

use std::sync::Arc;

use crate::error::ApiError;
use crate::repository::ServedVersion;
use crate::tensor::FlatTensor;

/// Element type of an input tensor as the client declared it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputType {
    /// Already scaled model input.
    Fp32,
    /// Raw pixels, multiplied by the model's scale here.
    Uint8,
}

/// Checks a V2 shape `[N, ...]` against the model and returns N.
///
/// Accepted: `[N, input_len]` (flat) or `[N] + input_shape`, where dimensions of size 1 are
/// ignored, so a CHW `[1, 28, 28]` model also takes `[N, 28, 28]`.
pub fn rows_from_shape(
    served: &ServedVersion,
    name: &str,
    shape: &[i64],
) -> Result<usize, ApiError> {
    let bad = |why: &str| {
        ApiError::BadRequest(format!(
            "input '{name}' has shape {shape:?}, {why}; expected [N, {}] or [N, {}] with N ≥ 1",
            served.input_len,
            join_dims(&served.info.input_shape)
        ))
    };
    let Some((&n, rest)) = shape.split_first() else {
        return Err(bad("which is a scalar"));
    };
    if n < 1 {
        return Err(bad("whose batch size N is not positive"));
    }
    if rest.iter().any(|&d| d < 0) {
        return Err(bad("which has a negative dimension"));
    }
    let squeeze =
        |dims: &mut dyn Iterator<Item = u64>| dims.filter(|&d| d != 1).collect::<Vec<_>>();
    let got = squeeze(&mut rest.iter().map(|&d| d as u64));
    let flat = got.len() == 1 && got[0] == served.input_len as u64;
    let spatial = got == squeeze(&mut served.info.input_shape.iter().map(|&d| d as u64));
    if !(flat || spatial) {
        return Err(bad("which does not match the model's input"));
    }
    usize::try_from(n).map_err(|_| bad("whose batch size is too large"))
}

/// Validates the data of a tensor of `rows` rows and scales it into model inputs.
pub fn model_inputs(
    served: &ServedVersion,
    name: &str,
    datatype: InputType,
    mut data: FlatTensor,
    rows: usize,
) -> Result<Vec<f32>, ApiError> {
    let expected = rows.checked_mul(served.input_len);
    if expected != Some(data.values.len()) {
        return Err(ApiError::BadRequest(format!(
            "input '{name}' holds {} values but its shape needs {} ({rows} rows of {})",
            data.values.len(),
            expected.map_or_else(|| "too many".to_string(), |e| e.to_string()),
            served.input_len
        )));
    }
    if datatype == InputType::Uint8 {
        if !data.all_uint8 {
            return Err(ApiError::BadRequest(format!(
                "input '{name}' is UINT8 but holds values that are not integers in 0..=255; \
                 send raw pixels as UINT8 or scaled values as FP32"
            )));
        }
        let scale = served.info.scale;
        for v in &mut data.values {
            *v *= scale;
        }
    }
    Ok(data.values)
}

/// Runs the inputs through the version's batcher.
pub async fn predict(
    served: &Arc<ServedVersion>,
    inputs: Vec<f32>,
    rows: usize,
    announcement: crate::batcher::Announcement,
) -> Result<Vec<f32>, ApiError> {
    served.batcher.infer(inputs, rows, announcement).await
}

/// An output this server's models produce; the V2 handlers (HTTP and gRPC) name them alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// FP32 `[N, classes]`.
    Probabilities,
    /// INT64 `[N]`: the index of the most probable class.
    Class,
    /// BYTES `[N]`: the name of the most probable class; only when asked for by name.
    Label,
}

impl Output {
    /// What a request that names no output gets.
    pub const DEFAULT: [Output; 2] = [Output::Probabilities, Output::Class];
    pub const ALL: [Output; 3] = [Output::Probabilities, Output::Class, Output::Label];

    pub fn name(self) -> &'static str {
        match self {
            Output::Probabilities => "probabilities",
            Output::Class => "class",
            Output::Label => "label",
        }
    }

    pub fn datatype(self) -> &'static str {
        match self {
            Output::Probabilities => "FP32",
            Output::Class => "INT64",
            Output::Label => "BYTES",
        }
    }

    /// The output called `name`, or a 400 listing the model's outputs.
    pub fn named(name: &str) -> Result<Output, ApiError> {
        Output::ALL
            .into_iter()
            .find(|o| o.name() == name)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "unknown output '{name}'; this model has outputs 'probabilities', 'class' and 'label'"
                ))
            })
    }
}

/// A V2 datatype name as an input type, or a 400 naming the input and what it accepts.
pub fn input_type(input: &str, datatype: &str) -> Result<InputType, ApiError> {
    match datatype {
        "FP32" => Ok(InputType::Fp32),
        "UINT8" => Ok(InputType::Uint8),
        other => Err(ApiError::BadRequest(format!(
            "input '{input}' has datatype '{other}'; use FP32 (scaled inputs) or UINT8 (raw pixels)"
        ))),
    }
}

/// The model's answer for a batch of rows, ready to be written as any of the [`Output`]s.
pub struct Prediction {
    pub rows: usize,
    pub num_classes: usize,
    pub probabilities: Vec<f32>,
    pub classes: Vec<i64>,
}

impl Prediction {
    pub fn new(probabilities: Vec<f32>, rows: usize, num_classes: usize) -> Prediction {
        let classes = classes(&probabilities, num_classes);
        Prediction {
            rows,
            num_classes,
            probabilities,
            classes,
        }
    }

    pub fn shape(&self, output: Output) -> Vec<i64> {
        match output {
            Output::Probabilities => vec![self.rows as i64, self.num_classes as i64],
            Output::Class | Output::Label => vec![self.rows as i64],
        }
    }

    /// Each row's class name (the index as text when the model has no names).
    pub fn labels<'a>(&self, class_names: &'a [String]) -> Vec<std::borrow::Cow<'a, str>> {
        self.classes
            .iter()
            .map(|&c| match class_names.get(c as usize) {
                Some(name) => std::borrow::Cow::Borrowed(name.as_str()),
                None => std::borrow::Cow::Owned(c.to_string()),
            })
            .collect()
    }

    /// The output's elements in the binary layout (see [`crate::binary`]).
    pub fn raw(&self, output: Output, class_names: &[String]) -> Vec<u8> {
        match output {
            Output::Probabilities => crate::binary::encode_f32(&self.probabilities),
            Output::Class => crate::binary::encode_i64(&self.classes),
            Output::Label => {
                let labels = self.labels(class_names);
                let elements: Vec<&[u8]> = labels.iter().map(|l| l.as_bytes()).collect();
                crate::binary::encode_bytes(&elements)
            }
        }
    }
}

/// Index of the largest probability of each row.
pub fn classes(probabilities: &[f32], num_classes: usize) -> Vec<i64> {
    probabilities
        .chunks_exact(num_classes)
        .map(|row| {
            let mut best = 0;
            for (i, &p) in row.iter().enumerate() {
                if p > row[best] {
                    best = i;
                }
            }
            best as i64
        })
        .collect()
}

fn join_dims(dims: &[usize]) -> String {
    dims.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_take_the_first_maximum_of_each_row() {
        let p = [0.1, 0.7, 0.2, 0.5, 0.25, 0.25, 0.3, 0.3, 0.4];
        assert_eq!(classes(&p, 3), vec![1, 0, 2]);
        assert_eq!(classes(&[0.5, 0.5], 2), vec![0]);
    }
}
