//! wharf-server: serves wharf model artifacts over the Open Inference Protocol V2 and the
//! TensorFlow Serving REST and gRPC APIs, with dynamic batching, hot version swaps and Prometheus
//! metrics.
//!
//! Flow of a request: router ([`server`]) → protocol handler ([`v2`], [`tfserving`]) →
//! typed JSON parse ([`tensor`]) → shape and scale checks ([`infer`]) → the version's batch
//! worker ([`batcher`]) → the model ([`predictor`], [`artifact`]); versions come from the
//! repository ([`repository`]), swapped atomically by a poller; an `s3://` repository is
//! mirrored into a local cache first ([`mirror`]).
//!
//! Beside HTTP, [`grpc`] serves V2 over gRPC from the same state; [`binary`] is the tensor byte
//! layout both use; [`extensions`] has the repository and model configuration endpoints.
//! [`tfserving_grpc`] serves TF Serving's gRPC PredictionService on the same port as V2 gRPC, with
//! [`tf_tensor`] converting TensorFlow's TensorProto.
//!
//! [`operator`] is the InferenceService controller (`wharf-server operator`) that deploys this
//! server for each model; [`crd`] is its custom resource.

pub mod artifact;
pub mod batcher;
pub mod binary;
pub mod cli;
pub mod crd;
pub mod error;
pub mod extensions;
pub mod grpc;
pub mod infer;
pub mod metrics;
pub mod mirror;
pub mod operator;
pub mod predictor;
pub mod repository;
pub mod server;
pub mod tensor;
pub mod tf_tensor;
pub mod tfserving;
pub mod tfserving_grpc;
pub mod v2;
