//! TensorFlow Serving's gRPC API (`tensorflow.serving.PredictionService` and `ModelService`),
//! served by tonic on the same port as V2 gRPC (`--grpc-port`), so `tensorflow-serving-api`
//! clients work unchanged once pointed at it (TF Serving's own default port is 8500).
//!
//! Predict shares everything past the wire with the other protocols: the repository snapshot
//! (hot swaps apply), each version's batcher, the metrics and the shutdown. The one signature is
//! `serving_default`: input `input` (DT_FLOAT scaled or DT_UINT8 raw pixels, `[N, 784]` or
//! `[N, 28, 28]`), outputs `probabilities`, `class` and `label` ([`crate::infer::Output`]; no
//! `output_filter` gives the V2 default, `probabilities` and `class`). GetModelMetadata answers
//! the `signature_def` field as TF Serving does; GetModelStatus lists the versions as TF Serving
//! REST's status does. Classify, Regress, MultiInference and HandleReloadConfigRequest answer
//! UNIMPLEMENTED, naming what to call instead.

use std::sync::Arc;
use std::time::Instant;

use prost::Message;
use tonic::{Request, Response, Status};

use crate::error::ApiError;
use crate::grpc::status;
use crate::infer::{self, Output, Prediction};
use crate::repository::ServedVersion;
use crate::server::AppState;
use crate::tf_tensor;
use crate::tfserving::SIGNATURE;
use crate::v2::{self, INPUT_NAME};

/// Code generated from `proto/tensorflow_serving/apis.proto` and the TensorFlow protos it
/// imports by build.rs; the modules mirror the protobuf packages, which the generated code's
/// paths between packages rely on.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    pub mod tensorflow {
        tonic::include_proto!("tensorflow");
        pub mod error {
            tonic::include_proto!("tensorflow.error");
        }
        pub mod serving {
            tonic::include_proto!("tensorflow.serving");
        }
    }
}

use proto::tensorflow::error::Code;
use proto::tensorflow::serving::model_service_server::{ModelService, ModelServiceServer};
use proto::tensorflow::serving::model_spec::VersionChoice;
use proto::tensorflow::serving::model_version_status::State;
use proto::tensorflow::serving::prediction_service_server::{
    PredictionService, PredictionServiceServer,
};
use proto::tensorflow::serving::*;
use proto::tensorflow::{DataType, SignatureDef, TensorInfo, tensor_info};

/// The one metadata field GetModelMetadata answers, as TF Serving names it.
pub const SIGNATURE_DEF_FIELD: &str = "signature_def";
/// The `type_url` of the `Any` holding the signatures.
pub const SIGNATURE_DEF_MAP_TYPE: &str = "type.googleapis.com/tensorflow.serving.SignatureDefMap";
/// TF Serving's method name for a Predict signature.
const PREDICT_METHOD: &str = "tensorflow/serving/predict";

/// `tensorflow.serving.PredictionService` over the server's shared state.
pub struct Predictions {
    state: Arc<AppState>,
}

/// `tensorflow.serving.ModelService` over the server's shared state.
pub struct Models {
    state: Arc<AppState>,
}

/// The PredictionService, with the same message size limit as HTTP bodies and V2 gRPC.
pub fn prediction_service(state: Arc<AppState>) -> PredictionServiceServer<Predictions> {
    let limit = state.max_body_bytes;
    PredictionServiceServer::new(Predictions { state })
        .max_decoding_message_size(limit)
        .max_encoding_message_size(usize::MAX)
}

/// The ModelService (GetModelStatus).
pub fn model_service(state: Arc<AppState>) -> ModelServiceServer<Models> {
    ModelServiceServer::new(Models { state })
}

/// The model a `model_spec` names, at its pinned version or the latest.
fn resolve(state: &AppState, spec: &ModelSpec) -> Result<Arc<ServedVersion>, ApiError> {
    let name = model_name(spec)?;
    match &spec.version_choice {
        None => v2::resolve(state, name, None),
        Some(VersionChoice::Version(v)) => v2::resolve(state, name, Some(&v.to_string())),
        Some(VersionChoice::VersionLabel(label)) => Err(unsupported_label(name, label)),
    }
}

fn model_name(spec: &ModelSpec) -> Result<&str, ApiError> {
    if spec.name.is_empty() {
        return Err(ApiError::BadRequest(
            "model_spec.name is empty; name the model to ask (model_spec { name: \"...\" })".into(),
        ));
    }
    Ok(&spec.name)
}

fn unsupported_label(model: &str, label: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "model '{model}': model_spec.version_label '{label}' is not supported (wharf-server has no \
         version labels); pin a version with model_spec.version or leave both unset for the latest"
    ))
}

/// Only `serving_default` exists; an empty name means it, as in TF Serving.
fn check_signature(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name == SIGNATURE {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "unknown signature_name '{name}'; this model has one signature, '{SIGNATURE}'"
        )))
    }
}

/// The `model_spec` of an answer: the model and the version that answered.
fn answered_spec(served: &ServedVersion, signature_name: &str) -> ModelSpec {
    ModelSpec {
        name: served.model.clone(),
        version_choice: Some(VersionChoice::Version(served.version as i64)),
        signature_name: signature_name.to_string(),
    }
}

/// The outputs `output_filter` names, in the model's order; an empty filter means the default
/// ones.
fn requested_outputs(filter: &[String]) -> Result<Vec<Output>, ApiError> {
    if filter.is_empty() {
        return Ok(Output::DEFAULT.to_vec());
    }
    let mut wanted = Vec::with_capacity(filter.len());
    for name in filter {
        let output = Output::named(name)?;
        if !wanted.contains(&output) {
            wanted.push(output);
        }
    }
    wanted.sort_by_key(|o| Output::ALL.iter().position(|a| a == o));
    Ok(wanted)
}

async fn predict(
    served: &Arc<ServedVersion>,
    request: PredictRequest,
) -> Result<PredictResponse, ApiError> {
    let announcement = served.batcher.announce();
    let PredictRequest {
        model_spec,
        inputs,
        output_filter,
    } = request;
    check_signature(model_spec.as_ref().map_or("", |s| &s.signature_name))?;
    let wanted = requested_outputs(&output_filter)?;
    if inputs.len() != 1 {
        return Err(ApiError::BadRequest(format!(
            "the request has {} inputs; signature '{SIGNATURE}' takes exactly one, '{INPUT_NAME}'",
            inputs.len()
        )));
    }
    let (name, tensor) = inputs.into_iter().next().expect("one input");
    if name != INPUT_NAME {
        return Err(ApiError::BadRequest(format!(
            "input '{name}' is not in signature '{SIGNATURE}'; its one input is '{INPUT_NAME}'"
        )));
    }
    let input = tf_tensor::decode_input(&name, tensor)?;
    let rows = infer::rows_from_shape(served, &name, &input.shape)?;
    let values = infer::model_inputs(served, &name, input.datatype, input.data, rows)?;
    let probabilities = infer::predict(served, values, rows, announcement).await?;
    let prediction = Prediction::new(probabilities, rows, served.num_classes);
    let outputs = wanted
        .into_iter()
        .map(|output| {
            let tensor = tf_tensor::encode_output(
                &prediction,
                output,
                &served.info.class_names,
                input.content,
            );
            (output.name().to_string(), tensor)
        })
        .collect();
    Ok(PredictResponse {
        model_spec: Some(answered_spec(served, SIGNATURE)),
        outputs,
    })
}

/// The `serving_default` signature of a served version.
pub fn signature_def(served: &ServedVersion) -> SignatureDef {
    let info = |name: &str, dtype: DataType, dims: &[i64]| TensorInfo {
        encoding: Some(tensor_info::Encoding::Name(name.to_string())),
        dtype: dtype as i32,
        tensor_shape: Some(tf_tensor::shape_proto(dims)),
    };
    let mut input_dims = vec![-1];
    input_dims.extend(served.info.input_shape.iter().map(|&d| d as i64));
    // DT_FLOAT, as the model takes it; DT_UINT8 raw pixels are accepted too and scaled here.
    let inputs = [(
        INPUT_NAME.to_string(),
        info(INPUT_NAME, DataType::DtFloat, &input_dims),
    )];
    let outputs = Output::ALL.into_iter().map(|o| {
        let dims = match o {
            Output::Probabilities => vec![-1, served.num_classes as i64],
            Output::Class | Output::Label => vec![-1],
        };
        let tensor = info(o.name(), tf_tensor::output_dtype(o), &dims);
        (o.name().to_string(), tensor)
    });
    SignatureDef {
        inputs: inputs.into_iter().collect(),
        outputs: outputs.collect(),
        method_name: PREDICT_METHOD.to_string(),
    }
}

fn metadata(
    state: &AppState,
    request: GetModelMetadataRequest,
) -> Result<GetModelMetadataResponse, ApiError> {
    if request.metadata_field.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "metadata_field is empty; ask for \"{SIGNATURE_DEF_FIELD}\""
        )));
    }
    if let Some(other) = request
        .metadata_field
        .iter()
        .find(|f| *f != SIGNATURE_DEF_FIELD)
    {
        return Err(ApiError::BadRequest(format!(
            "metadata_field '{other}' is not supported; the one there is is \"{SIGNATURE_DEF_FIELD}\""
        )));
    }
    let served = resolve(state, &request.model_spec.unwrap_or_default())?;
    let map = SignatureDefMap {
        signature_def: [(SIGNATURE.to_string(), signature_def(&served))]
            .into_iter()
            .collect(),
    };
    let any = prost_types::Any {
        type_url: SIGNATURE_DEF_MAP_TYPE.to_string(),
        value: map.encode_to_vec(),
    };
    Ok(GetModelMetadataResponse {
        // TF Serving leaves the signature name empty here: the map holds every signature.
        model_spec: Some(answered_spec(&served, "")),
        metadata: [(SIGNATURE_DEF_FIELD.to_string(), any)]
            .into_iter()
            .collect(),
    })
}

/// Every version of the model: served ones AVAILABLE, failed ones END with their error, newest
/// first; or the one `model_spec.version` pins.
fn model_status(
    state: &AppState,
    request: GetModelStatusRequest,
) -> Result<GetModelStatusResponse, ApiError> {
    let spec = request.model_spec.unwrap_or_default();
    let name = model_name(&spec)?;
    let snapshot = state.repo.snapshot();
    let Some(entry) = snapshot.models.get(name) else {
        // Not scanned yet (UNAVAILABLE) or unknown (NOT_FOUND, listing the models).
        return Err(state
            .repo
            .resolve(name, None)
            .err()
            .unwrap_or_else(|| ApiError::NotFound(format!("unknown model '{name}'"))));
    };
    let ok = |v: u64| ModelVersionStatus {
        version: v as i64,
        state: State::Available as i32,
        status: Some(StatusProto {
            error_code: Code::Ok as i32,
            error_message: String::new(),
        }),
    };
    let failed = |v: u64, e: &String| ModelVersionStatus {
        version: v as i64,
        state: State::End as i32,
        status: Some(StatusProto {
            error_code: Code::Unknown as i32,
            error_message: e.clone(),
        }),
    };
    let mut statuses: Vec<ModelVersionStatus> = entry
        .versions
        .keys()
        .map(|&v| ok(v))
        .chain(entry.errors.iter().map(|(&v, e)| failed(v, e)))
        .collect();
    statuses.sort_by_key(|s| std::cmp::Reverse(s.version));
    match &spec.version_choice {
        None => {}
        Some(VersionChoice::VersionLabel(label)) => return Err(unsupported_label(name, label)),
        Some(VersionChoice::Version(v)) => {
            statuses.retain(|s| s.version == *v);
            if statuses.is_empty() {
                return Err(ApiError::NotFound(format!(
                    "model '{name}' has no version '{v}'"
                )));
            }
        }
    }
    Ok(GetModelStatusResponse {
        model_version_status: statuses,
    })
}

fn unimplemented(rpc: &str, instead: &str) -> Status {
    Status::unimplemented(format!("{rpc} is not supported by wharf-server; {instead}"))
}

#[tonic::async_trait]
impl PredictionService for Predictions {
    async fn classify(
        &self,
        _: Request<ClassificationRequest>,
    ) -> Result<Response<ClassificationResponse>, Status> {
        Err(unimplemented(
            "Classify",
            "call Predict and read its 'class' (and 'label') outputs",
        ))
    }

    async fn regress(
        &self,
        _: Request<RegressionRequest>,
    ) -> Result<Response<RegressionResponse>, Status> {
        Err(unimplemented(
            "Regress",
            "the models are classifiers: call Predict",
        ))
    }

    async fn multi_inference(
        &self,
        _: Request<MultiInferenceRequest>,
    ) -> Result<Response<MultiInferenceResponse>, Status> {
        Err(unimplemented(
            "MultiInference",
            "call Predict, with output_filter naming the outputs you want",
        ))
    }

    async fn predict(
        &self,
        request: Request<PredictRequest>,
    ) -> Result<Response<PredictResponse>, Status> {
        let started = Instant::now();
        let request = request.into_inner();
        let spec = request.model_spec.clone().unwrap_or_default();
        let served = match resolve(&self.state, &spec) {
            Ok(served) => served,
            Err(e) => {
                self.state.count_failure(&spec.name, started, &e);
                return Err(status(e));
            }
        };
        match predict(&served, request).await {
            Ok(response) => {
                served.ok.inc();
                served.latency.observe(started.elapsed().as_secs_f64());
                Ok(Response::new(response))
            }
            Err(e) => {
                self.state.count_failure(&spec.name, started, &e);
                Err(status(e))
            }
        }
    }

    async fn get_model_metadata(
        &self,
        request: Request<GetModelMetadataRequest>,
    ) -> Result<Response<GetModelMetadataResponse>, Status> {
        metadata(&self.state, request.into_inner())
            .map(Response::new)
            .map_err(status)
    }
}

#[tonic::async_trait]
impl ModelService for Models {
    async fn get_model_status(
        &self,
        request: Request<GetModelStatusRequest>,
    ) -> Result<Response<GetModelStatusResponse>, Status> {
        model_status(&self.state, request.into_inner())
            .map(Response::new)
            .map_err(status)
    }

    async fn handle_reload_config_request(
        &self,
        _: Request<ReloadConfigRequest>,
    ) -> Result<Response<ReloadConfigResponse>, Status> {
        Err(unimplemented(
            "HandleReloadConfigRequest",
            "the server serves what its model repository holds: add or remove version directories there",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_other_than_serving_default_are_refused_by_name() {
        assert!(check_signature("").is_ok());
        assert!(check_signature("serving_default").is_ok());
        let e = check_signature("classify").unwrap_err().to_string();
        assert!(
            e.contains("'classify'") && e.contains("'serving_default'"),
            "{e}"
        );
    }

    #[test]
    fn output_filter_picks_outputs_in_model_order() {
        assert_eq!(requested_outputs(&[]).unwrap(), Output::DEFAULT.to_vec());
        let names = ["label".to_string(), "probabilities".into(), "label".into()];
        assert_eq!(
            requested_outputs(&names).unwrap(),
            vec![Output::Probabilities, Output::Label]
        );
        assert!(
            requested_outputs(&["logits".to_string()])
                .unwrap_err()
                .to_string()
                .contains("'logits'")
        );
    }
}
