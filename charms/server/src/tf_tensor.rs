//! TensorFlow's `TensorProto` on the TF Serving gRPC path: the input tensor (DT_FLOAT scaled
//! inputs or DT_UINT8 raw pixels, in `tensor_content` or the dtype's typed field) into the
//! [`FlatTensor`] every protocol hands to [`crate::infer`], and the model's outputs back into
//! tensors that `tf.make_ndarray` reads.

use crate::binary;
use crate::error::ApiError;
use crate::infer::{InputType, Output, Prediction};
use crate::tensor::FlatTensor;
use crate::tfserving_grpc::proto::tensorflow::tensor_shape_proto::Dim;
use crate::tfserving_grpc::proto::tensorflow::{DataType, TensorProto, TensorShapeProto};

/// An input tensor, decoded.
#[derive(Debug)]
pub struct Input {
    pub datatype: InputType,
    pub shape: Vec<i64>,
    pub data: FlatTensor,
    /// The elements came in `tensor_content`, so the answer uses it too (numeric outputs).
    pub content: bool,
}

/// A dtype as TensorFlow names it (`DT_FLOAT`), or its number when it is not one wharf knows.
pub fn dtype_name(dtype: i32) -> String {
    DataType::try_from(dtype)
        .map(|d| d.as_str_name().to_string())
        .unwrap_or_else(|_| format!("dtype {dtype}"))
}

/// Decodes input `name`: its dtype, shape and elements, with a 400 naming the field to fix.
pub fn decode_input(name: &str, tensor: TensorProto) -> Result<Input, ApiError> {
    let datatype = match DataType::try_from(tensor.dtype) {
        Ok(DataType::DtFloat) => InputType::Fp32,
        Ok(DataType::DtUint8) => InputType::Uint8,
        _ => {
            return Err(ApiError::BadRequest(format!(
                "input '{name}' has {}; send DT_FLOAT (scaled inputs) or DT_UINT8 (raw pixels)",
                dtype_name(tensor.dtype)
            )));
        }
    };
    let shape = match &tensor.tensor_shape {
        Some(shape) if !shape.unknown_rank => shape.dim.iter().map(|d| d.size).collect::<Vec<_>>(),
        _ => {
            return Err(ApiError::BadRequest(format!(
                "input '{name}' has no tensor_shape; give its dims, e.g. [N, 784] or [N, 28, 28]"
            )));
        }
    };
    let typed_field = match datatype {
        InputType::Fp32 => "float_val",
        InputType::Uint8 => "int_val",
    };
    let typed_len = match datatype {
        InputType::Fp32 => tensor.float_val.len(),
        InputType::Uint8 => tensor.int_val.len(),
    };
    if !tensor.tensor_content.is_empty() {
        if typed_len > 0 {
            return Err(ApiError::BadRequest(format!(
                "input '{name}' has both tensor_content and {typed_field}; send one of them"
            )));
        }
        let data = binary::decode_input(
            name,
            datatype,
            &shape,
            &tensor.tensor_content,
            "tensor_content",
        )?;
        return Ok(Input {
            datatype,
            shape,
            data,
            content: true,
        });
    }
    let (values, all_uint8) = match datatype {
        InputType::Fp32 => (tensor.float_val, false),
        InputType::Uint8 => (
            tensor.int_val.iter().map(|&v| v as f32).collect(),
            tensor.int_val.iter().all(|v| (0..=255).contains(v)),
        ),
    };
    let elements = binary::element_count(name, &shape)?;
    if values.len() != elements {
        // TensorFlow would broadcast a single value or repeat the last one; a model input that
        // short is a client bug, so it is refused rather than guessed.
        return Err(ApiError::BadRequest(format!(
            "input '{name}' holds {} values in {typed_field} but its tensor_shape {shape:?} needs {elements}; \
             send every element (tf.make_tensor_proto does) or use tensor_content",
            values.len()
        )));
    }
    Ok(Input {
        datatype,
        shape,
        data: FlatTensor {
            values,
            all_uint8,
            row_lens: Vec::new(),
            had_named_rows: false,
        },
        content: false,
    })
}

/// The TensorFlow dtype of an output.
pub fn output_dtype(output: Output) -> DataType {
    match output {
        Output::Probabilities => DataType::DtFloat,
        Output::Class => DataType::DtInt64,
        Output::Label => DataType::DtString,
    }
}

/// A shape as a `TensorShapeProto` (-1 for a dimension of any size).
pub fn shape_proto(dims: &[i64]) -> TensorShapeProto {
    TensorShapeProto {
        dim: dims
            .iter()
            .map(|&size| Dim {
                size,
                name: String::new(),
            })
            .collect(),
        unknown_rank: false,
    }
}

/// One output of a prediction: numbers in `tensor_content` when `content`, else in the typed
/// field (`float_val`, `int64_val`); labels always in `string_val`, which is how TensorFlow
/// serialises DT_STRING.
pub fn encode_output(
    prediction: &Prediction,
    output: Output,
    class_names: &[String],
    content: bool,
) -> TensorProto {
    let mut tensor = TensorProto {
        dtype: output_dtype(output) as i32,
        tensor_shape: Some(shape_proto(&prediction.shape(output))),
        ..Default::default()
    };
    match output {
        Output::Probabilities if content => {
            tensor.tensor_content = binary::encode_f32(&prediction.probabilities)
        }
        Output::Probabilities => tensor.float_val = prediction.probabilities.clone(),
        Output::Class if content => tensor.tensor_content = binary::encode_i64(&prediction.classes),
        Output::Class => tensor.int64_val = prediction.classes.clone(),
        Output::Label => {
            tensor.string_val = prediction
                .labels(class_names)
                .into_iter()
                .map(|l| l.into_owned().into_bytes())
                .collect()
        }
    }
    tensor
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(dtype: DataType, dims: &[i64]) -> TensorProto {
        TensorProto {
            dtype: dtype as i32,
            tensor_shape: Some(shape_proto(dims)),
            ..Default::default()
        }
    }

    #[test]
    fn float_val_and_tensor_content_decode_alike() {
        let mut typed = tensor(DataType::DtFloat, &[1, 2]);
        typed.float_val = vec![0.5, -1.0];
        let mut content = tensor(DataType::DtFloat, &[1, 2]);
        content.tensor_content = binary::encode_f32(&[0.5, -1.0]);
        let typed = decode_input("input", typed).unwrap();
        let content = decode_input("input", content).unwrap();
        assert_eq!(typed.data.values, content.data.values);
        assert_eq!((typed.content, content.content), (false, true));
        assert_eq!(typed.shape, vec![1, 2]);
    }

    #[test]
    fn uint8_takes_int_val_in_range_and_raw_bytes() {
        let mut typed = tensor(DataType::DtUint8, &[1, 3]);
        typed.int_val = vec![0, 128, 255];
        let decoded = decode_input("input", typed).unwrap();
        assert_eq!(decoded.datatype, InputType::Uint8);
        assert!(decoded.data.all_uint8);
        let mut out_of_range = tensor(DataType::DtUint8, &[1, 1]);
        out_of_range.int_val = vec![256];
        assert!(!decode_input("input", out_of_range).unwrap().data.all_uint8);
        let mut raw = tensor(DataType::DtUint8, &[1, 3]);
        raw.tensor_content = vec![0, 128, 255];
        assert_eq!(
            decode_input("input", raw).unwrap().data.values,
            vec![0.0, 128.0, 255.0]
        );
    }

    #[test]
    fn bad_inputs_name_the_field_to_fix() {
        let err = |t: TensorProto| decode_input("input", t).unwrap_err().to_string();
        assert!(err(tensor(DataType::DtInt32, &[1])).contains("DT_INT32"));
        let mut no_shape = tensor(DataType::DtFloat, &[1]);
        no_shape.tensor_shape = None;
        assert!(err(no_shape).contains("no tensor_shape"));
        let mut short = tensor(DataType::DtFloat, &[1, 3]);
        short.float_val = vec![1.0];
        assert!(err(short).contains("holds 1 values in float_val"));
        let mut both = tensor(DataType::DtFloat, &[1, 1]);
        both.float_val = vec![1.0];
        both.tensor_content = binary::encode_f32(&[1.0]);
        assert!(err(both).contains("both tensor_content and float_val"));
        let mut truncated = tensor(DataType::DtFloat, &[1, 2]);
        truncated.tensor_content = vec![0; 5];
        assert!(err(truncated).contains("tensor_content is 5 bytes"));
    }

    #[test]
    fn outputs_use_the_requests_form() {
        let prediction = Prediction::new(vec![0.25, 0.75], 1, 2);
        let p = encode_output(&prediction, Output::Probabilities, &[], true);
        assert_eq!(p.dtype, DataType::DtFloat as i32);
        assert_eq!(p.tensor_content, binary::encode_f32(&[0.25, 0.75]));
        assert!(p.float_val.is_empty());
        let c = encode_output(&prediction, Output::Class, &[], false);
        assert_eq!(
            (c.dtype, c.int64_val.clone()),
            (DataType::DtInt64 as i32, vec![1])
        );
        let names = ["no".to_string(), "yes".to_string()];
        let l = encode_output(&prediction, Output::Label, &names, true);
        assert_eq!(l.string_val, vec![b"yes".to_vec()]);
        assert_eq!(l.tensor_shape.unwrap().dim[0].size, 1);
    }
}
