//! Open Inference Protocol V2 over gRPC (`inference.GRPCInferenceService`, KServe's
//! `grpc_predict_v2.proto`, which Triton's clients speak too), served with tonic on its own port.
//!
//! It shares everything past the wire with the HTTP handlers: the repository snapshot (so hot
//! swaps apply), each version's batcher, the metrics and the shutdown flag. Inputs come as typed
//! `contents` (`fp32_contents`, `uint_contents`) or as `raw_input_contents`; the answer uses the
//! same form as the request, since Triton's client reads only `raw_output_contents`.
//!
//! Triton's model configuration and repository RPCs answer from [`crate::extensions`], the same
//! values as the HTTP endpoints.

use std::sync::Arc;
use std::time::Instant;

use tonic::{Request, Response, Status};

use crate::binary;
use crate::error::ApiError;
use crate::extensions::{self, IndexEntry, ModelConfig as Config, TensorConfig};
use crate::infer::{self, InputType, Output, Prediction};
use crate::repository::ServedVersion;
use crate::server::AppState;
use crate::tensor::FlatTensor;
use crate::v2;

/// Code generated from `proto/grpc_predict_v2.proto` by build.rs.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("inference");
}

use proto::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use proto::model_infer_response::InferOutputTensor;
use proto::model_metadata_response::TensorMetadata;
use proto::*;

/// The service over the server's shared state.
pub struct Service {
    state: Arc<AppState>,
}

/// The tonic service, with the same message size limit as HTTP bodies.
pub fn service(state: Arc<AppState>) -> GrpcInferenceServiceServer<Service> {
    let limit = state.max_body_bytes;
    GrpcInferenceServiceServer::new(Service { state })
        .max_decoding_message_size(limit)
        .max_encoding_message_size(usize::MAX)
}

/// The gRPC status for an API error: the same distinctions the HTTP status codes make.
pub fn status(error: ApiError) -> Status {
    let message = error.to_string();
    match error {
        ApiError::BadRequest(_) => Status::invalid_argument(message),
        ApiError::NotFound(_) => Status::not_found(message),
        ApiError::PayloadTooLarge(_) => Status::resource_exhausted(message),
        ApiError::Unavailable(_) => Status::unavailable(message),
        ApiError::Internal(_) => Status::internal(message),
    }
}

fn version_of(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

#[tonic::async_trait]
impl GrpcInferenceService for Service {
    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        Ok(Response::new(ServerReadyResponse {
            ready: self.state.is_ready(),
        }))
    }

    async fn model_ready(
        &self,
        request: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        let request = request.into_inner();
        // Unknown and not yet loadable models are "not ready", as the HTTP endpoint's 404/503.
        let ready = !self.state.is_shutting_down()
            && v2::resolve(&self.state, &request.name, version_of(&request.version)).is_ok();
        Ok(Response::new(ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        Ok(Response::new(ServerMetadataResponse {
            name: "wharf-server".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            // Binary tensor data is HTTP's; raw contents are gRPC's own form of it.
            extensions: v2::EXTENSIONS
                .into_iter()
                .filter(|e| *e != "binary_tensor_data")
                .map(str::to_string)
                .collect(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let request = request.into_inner();
        let served = v2::resolve(&self.state, &request.name, version_of(&request.version))
            .map_err(status)?;
        let versions = self
            .state
            .repo
            .snapshot()
            .models
            .get(&served.model)
            .map(|m| m.versions.keys().map(|v| v.to_string()).collect())
            .unwrap_or_default();
        let mut input_shape = vec![-1];
        input_shape.extend(served.info.input_shape.iter().map(|&d| d as i64));
        let outputs = Output::ALL
            .into_iter()
            .map(|o| TensorMetadata {
                name: o.name().to_string(),
                datatype: o.datatype().to_string(),
                shape: match o {
                    Output::Probabilities => vec![-1, served.num_classes as i64],
                    Output::Class | Output::Label => vec![-1],
                },
            })
            .collect();
        Ok(Response::new(ModelMetadataResponse {
            name: served.model.clone(),
            versions,
            platform: format!("wharf_{}", served.info.architecture),
            inputs: vec![TensorMetadata {
                name: v2::INPUT_NAME.to_string(),
                datatype: "FP32".to_string(),
                shape: input_shape,
            }],
            outputs,
        }))
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let started = Instant::now();
        let request = request.into_inner();
        let model = request.model_name.clone();
        let served = match v2::resolve(&self.state, &model, version_of(&request.model_version)) {
            Ok(served) => served,
            Err(e) => {
                self.state.count_failure(&model, started, &e);
                return Err(status(e));
            }
        };
        match infer(&served, request).await {
            Ok(response) => {
                served.ok.inc();
                served.latency.observe(started.elapsed().as_secs_f64());
                Ok(Response::new(response))
            }
            Err(e) => {
                self.state.count_failure(&model, started, &e);
                Err(status(e))
            }
        }
    }

    async fn model_config(
        &self,
        request: Request<ModelConfigRequest>,
    ) -> Result<Response<ModelConfigResponse>, Status> {
        let request = request.into_inner();
        let served = v2::resolve(&self.state, &request.name, version_of(&request.version))
            .map_err(status)?;
        Ok(Response::new(ModelConfigResponse {
            config: Some(model_config(&Config::of(&self.state, &served))),
        }))
    }

    async fn repository_index(
        &self,
        request: Request<RepositoryIndexRequest>,
    ) -> Result<Response<RepositoryIndexResponse>, Status> {
        let models = extensions::index_entries(&self.state, request.into_inner().ready)
            .into_iter()
            .map(
                |IndexEntry {
                     name,
                     version,
                     state,
                     reason,
                 }| {
                    repository_index_response::ModelIndex {
                        name,
                        version,
                        state: state.to_string(),
                        reason,
                    }
                },
            )
            .collect();
        Ok(Response::new(RepositoryIndexResponse { models }))
    }

    async fn repository_model_load(
        &self,
        request: Request<RepositoryModelLoadRequest>,
    ) -> Result<Response<RepositoryModelLoadResponse>, Status> {
        let request = request.into_inner();
        let mut overrides: Vec<String> = request.parameters.into_keys().collect();
        overrides.sort();
        extensions::load_model(&self.state, &request.model_name, &overrides)
            .await
            .map_err(status)?;
        Ok(Response::new(RepositoryModelLoadResponse {}))
    }

    async fn repository_model_unload(
        &self,
        request: Request<RepositoryModelUnloadRequest>,
    ) -> Result<Response<RepositoryModelUnloadResponse>, Status> {
        Err(status(extensions::unload_refusal(
            &request.into_inner().model_name,
        )))
    }
}

/// The configuration as Triton's `ModelConfig` message.
fn model_config(config: &Config) -> proto::ModelConfig {
    let data_type = |t: &TensorConfig| {
        DataType::from_str_name(&t.triton_type()).unwrap_or(DataType::TypeInvalid) as i32
    };
    proto::ModelConfig {
        name: config.name.clone(),
        platform: config.platform.clone(),
        backend: Config::BACKEND.to_string(),
        version_policy: Some(ModelVersionPolicy {
            policy_choice: Some(model_version_policy::PolicyChoice::Specific(
                model_version_policy::Specific {
                    versions: vec![config.version as i64],
                },
            )),
        }),
        max_batch_size: config.max_batch_size as i32,
        input: vec![ModelInput {
            name: config.input.name.to_string(),
            data_type: data_type(&config.input),
            dims: config.input.dims.clone(),
        }],
        output: config
            .outputs
            .iter()
            .map(|t| ModelOutput {
                name: t.name.to_string(),
                data_type: data_type(t),
                dims: t.dims.clone(),
            })
            .collect(),
        dynamic_batching: Some(ModelDynamicBatching {
            preferred_batch_size: Vec::new(),
            max_queue_delay_microseconds: config.max_queue_delay_microseconds,
        }),
        parameters: config
            .parameters
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    ModelParameter {
                        string_value: v.clone(),
                    },
                )
            })
            .collect(),
    }
}

async fn infer(
    served: &Arc<ServedVersion>,
    request: ModelInferRequest,
) -> Result<ModelInferResponse, ApiError> {
    let announcement = served.batcher.announce();
    let ModelInferRequest {
        id,
        inputs,
        outputs,
        raw_input_contents,
        ..
    } = request;
    let [input] =
        <[model_infer_request::InferInputTensor; 1]>::try_from(inputs).map_err(|inputs| {
            ApiError::BadRequest(format!(
                "the request has {} inputs; this model takes exactly one ('{}')",
                inputs.len(),
                v2::INPUT_NAME
            ))
        })?;
    let datatype = infer::input_type(&input.name, &input.datatype)?;
    let raw = !raw_input_contents.is_empty();
    let data = if raw {
        let [bytes] = <[Vec<u8>; 1]>::try_from(raw_input_contents).map_err(|raw| {
            ApiError::BadRequest(format!(
                "raw_input_contents has {} entries but the request has 1 input; send one entry per input",
                raw.len()
            ))
        })?;
        if input.contents.is_some() {
            return Err(ApiError::BadRequest(format!(
                "input '{}' has contents and the request has raw_input_contents; send one of them",
                input.name
            )));
        }
        binary::decode_input(
            &input.name,
            datatype,
            &input.shape,
            &bytes,
            "raw_input_contents[0]",
        )?
    } else {
        typed_input(&input, datatype)?
    };
    let wanted = requested_outputs(&outputs)?;
    let rows = infer::rows_from_shape(served, &input.name, &input.shape)?;
    let inputs = infer::model_inputs(served, &input.name, datatype, data, rows)?;
    let probabilities = infer::predict(served, inputs, rows, announcement).await?;
    let prediction = Prediction::new(probabilities, rows, served.num_classes);
    Ok(encode(served, id, &prediction, &wanted, raw))
}

/// An input's typed contents: `fp32_contents` for FP32, `uint_contents` for UINT8.
fn typed_input(
    input: &model_infer_request::InferInputTensor,
    datatype: InputType,
) -> Result<FlatTensor, ApiError> {
    let missing = |field: &str| {
        ApiError::BadRequest(format!(
            "input '{}' has no data: put its {} values in contents.{field}, or send raw_input_contents",
            input.name, input.datatype
        ))
    };
    let contents = input.contents.as_ref();
    let (values, all_uint8) = match datatype {
        InputType::Fp32 => {
            let values = contents
                .map(|c| c.fp32_contents.clone())
                .unwrap_or_default();
            (values, false)
        }
        InputType::Uint8 => {
            let raw = contents.map(|c| c.uint_contents.as_slice()).unwrap_or(&[]);
            let all_uint8 = raw.iter().all(|&v| v <= 255);
            (raw.iter().map(|&v| v as f32).collect(), all_uint8)
        }
    };
    if values.is_empty() && binary::element_count(&input.name, &input.shape)? > 0 {
        return Err(missing(match datatype {
            InputType::Fp32 => "fp32_contents",
            InputType::Uint8 => "uint_contents",
        }));
    }
    Ok(FlatTensor {
        values,
        all_uint8,
        row_lens: Vec::new(),
        had_named_rows: false,
    })
}

/// The outputs named in the request, in the model's order; none named means the default ones.
fn requested_outputs(
    outputs: &[model_infer_request::InferRequestedOutputTensor],
) -> Result<Vec<Output>, ApiError> {
    if outputs.is_empty() {
        return Ok(Output::DEFAULT.to_vec());
    }
    let mut wanted = Vec::with_capacity(outputs.len());
    for requested in outputs {
        let output = Output::named(&requested.name)?;
        if requested.parameters.contains_key("classification") {
            return Err(ApiError::BadRequest(format!(
                "output '{}' asks for the classification extension, which this server does not implement; ask for the 'class' and 'label' outputs instead",
                requested.name
            )));
        }
        if !wanted.contains(&output) {
            wanted.push(output);
        }
    }
    wanted.sort_by_key(|o| Output::ALL.iter().position(|a| a == o));
    Ok(wanted)
}

fn encode(
    served: &ServedVersion,
    id: String,
    prediction: &Prediction,
    outputs: &[Output],
    raw: bool,
) -> ModelInferResponse {
    let class_names = &served.info.class_names;
    let mut response = ModelInferResponse {
        model_name: served.model.clone(),
        model_version: served.version.to_string(),
        id,
        parameters: Default::default(),
        outputs: Vec::with_capacity(outputs.len()),
        raw_output_contents: Vec::new(),
    };
    for &output in outputs {
        let contents = if raw {
            response
                .raw_output_contents
                .push(prediction.raw(output, class_names));
            None
        } else {
            let mut contents = InferTensorContents::default();
            match output {
                Output::Probabilities => contents.fp32_contents = prediction.probabilities.clone(),
                Output::Class => contents.int64_contents = prediction.classes.clone(),
                Output::Label => {
                    contents.bytes_contents = prediction
                        .labels(class_names)
                        .into_iter()
                        .map(|l| l.into_owned().into_bytes())
                        .collect()
                }
            }
            Some(contents)
        };
        response.outputs.push(InferOutputTensor {
            name: output.name().to_string(),
            datatype: output.datatype().to_string(),
            shape: prediction.shape(output),
            parameters: Default::default(),
            contents,
        });
    }
    response
}
