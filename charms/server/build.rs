//! Generates the gRPC services from proto/ with protox, a protobuf compiler written in Rust, so
//! building needs no `protoc`: V2 (grpc_predict_v2.proto) and TF Serving's PredictionService and
//! ModelService (tensorflow_serving/apis.proto, which imports the TensorFlow protos beside it).
//!
//! The compiled descriptors are also written to `$OUT_DIR/descriptors.bin`: tests/conformance.rs
//! hands them to TensorFlow's own python modules to check our TF messages field by field.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/grpc_predict_v2.proto",
        "proto/tensorflow_serving/apis.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler
        .include_source_info(true)
        .include_imports(true)
        .open_files(protos)?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("descriptors.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
