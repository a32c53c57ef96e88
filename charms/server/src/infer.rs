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
