//! Generates the gRPC services from proto/ with protox, a protobuf compiler written in Rust, so
//! building needs no `protoc`: V2 (grpc_predict_v2.proto) and TF Serving's PredictionService and
//! ModelService (tensorflow_serving/apis.proto, which imports the TensorFlow protos beside it).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/grpc_predict_v2.proto",
        "proto/tensorflow_serving/apis.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
