//! V2 over gRPC (`inference.GRPCInferenceService`): every RPC, raw and typed contents, errors as
//! gRPC statuses, Triton's configuration and repository RPCs, and the state it shares with HTTP
//! (hot swap, metrics, graceful shutdown).

mod common;

use std::time::Duration;

use common::*;
use tonic::Code;
use wharf_server::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use wharf_server::grpc::proto::model_infer_request::{
    InferInputTensor, InferRequestedOutputTensor,
};
use wharf_server::grpc::proto::*;

type Client = GrpcInferenceServiceClient<tonic::transport::Channel>;

async fn serve_grpc(repo: &std::path::Path) -> (Server, Client) {
    let s = serve(repo, |c| {
        c.grpc_addr = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
    })
    .await;
    let addr = s.running.as_ref().unwrap().grpc_addr.expect("gRPC listens");
    let client = GrpcInferenceServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connects");
    (s, client)
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn raw_request(model: &str, inputs: &[f32], rows: i64) -> ModelInferRequest {
    ModelInferRequest {
        model_name: model.into(),
        id: "g-1".into(),
        inputs: vec![InferInputTensor {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![rows, 784],
            ..Default::default()
        }],
        raw_input_contents: vec![f32_bytes(inputs)],
        ..Default::default()
    }
}

#[tokio::test]
async fn health_and_metadata_rpcs_answer() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "fashion", 1, 1);
    let (_s, mut c) = serve_grpc(dir.path()).await;
    assert!(
        c.server_live(ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    assert!(
        c.server_ready(ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let ready = |name: &str, version: &str| ModelReadyRequest {
        name: name.into(),
        version: version.into(),
    };
    assert!(
        c.model_ready(ready("fashion", ""))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        c.model_ready(ready("fashion", "1"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        !c.model_ready(ready("fashion", "2"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        !c.model_ready(ready("nope", ""))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let meta = c
        .server_metadata(ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meta.name, "wharf-server");
    let meta = c
        .model_metadata(ModelMetadataRequest {
            name: "fashion".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meta.versions, vec!["1"]);
    assert_eq!(meta.inputs[0].shape, vec![-1, 28, 28]);
    let outputs: Vec<_> = meta
        .outputs
        .iter()
        .map(|o| (o.name.as_str(), o.datatype.as_str()))
        .collect();
    assert_eq!(
        outputs,
        vec![
            ("probabilities", "FP32"),
            ("class", "INT64"),
            ("label", "BYTES")
        ]
    );
    let err = c
        .model_metadata(ModelMetadataRequest {
            name: "nope".into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
}

#[tokio::test]
async fn raw_and_typed_inference_match_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let art = publish(dir.path(), "fashion", 1, 7);
    let (_s, mut c) = serve_grpc(dir.path()).await;
    let pixels = Rng::new(4).pixels(3 * INPUT_LEN);
    let inputs = scaled(&pixels);
    let expected = reference(&art, &inputs, 3);
    let classes = wharf_server::infer::classes(&expected, 10);

    // Raw FP32 in, raw out (Triton's client reads only raw_output_contents).
    let res = c
        .model_infer(raw_request("fashion", &inputs, 3))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            res.model_name.as_str(),
            res.model_version.as_str(),
            res.id.as_str()
        ),
        ("fashion", "1", "g-1")
    );
    assert_eq!(res.outputs.len(), 2);
    assert_eq!(res.outputs[0].shape, vec![3, 10]);
    assert!(res.outputs[0].contents.is_none());
    let probabilities: Vec<f32> = res.raw_output_contents[0]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(probabilities, expected);
    let got: Vec<i64> = res.raw_output_contents[1]
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(got, classes);

    // Typed UINT8 pixels in, typed out, with the label output by name.
    let request = ModelInferRequest {
        model_name: "fashion".into(),
        model_version: "1".into(),
        inputs: vec![InferInputTensor {
            name: "pixels".into(),
            datatype: "UINT8".into(),
            shape: vec![3, 28, 28],
            contents: Some(InferTensorContents {
                uint_contents: pixels.iter().map(|&p| p as u32).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        outputs: ["label", "probabilities"]
            .into_iter()
            .map(|name| InferRequestedOutputTensor {
                name: name.into(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let res = c.model_infer(request).await.unwrap().into_inner();
    assert!(res.raw_output_contents.is_empty());
    assert_eq!(res.outputs[0].name, "probabilities");
    assert_eq!(
        res.outputs[0].contents.as_ref().unwrap().fp32_contents,
        expected
    );
    assert_eq!(res.outputs[1].name, "label");
    let labels: Vec<String> = res.outputs[1]
        .contents
        .as_ref()
        .unwrap()
        .bytes_contents
        .iter()
        .map(|b| String::from_utf8(b.clone()).unwrap())
        .collect();
    let want: Vec<String> = classes
        .iter()
        .map(|&c| art.meta.class_names[c as usize].clone())
        .collect();
    assert_eq!(labels, want);
}

#[tokio::test]
async fn bad_requests_are_invalid_argument_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "fashion", 1, 1);
    let (s, mut c) = serve_grpc(dir.path()).await;
    let ok = scaled(&Rng::new(1).pixels(INPUT_LEN));
    let mut short = raw_request("fashion", &ok, 1);
    short.raw_input_contents[0].truncate(100);
    let mut two_raw = raw_request("fashion", &ok, 1);
    two_raw.raw_input_contents.push(vec![]);
    let mut both = raw_request("fashion", &ok, 1);
    both.inputs[0].contents = Some(InferTensorContents::default());
    let mut no_data = raw_request("fashion", &ok, 1);
    no_data.raw_input_contents.clear();
    let mut bad_type = raw_request("fashion", &ok, 1);
    bad_type.inputs[0].datatype = "FP64".into();
    let mut bad_output = raw_request("fashion", &ok, 1);
    bad_output.outputs = vec![InferRequestedOutputTensor {
        name: "logits".into(),
        ..Default::default()
    }];
    let mut bad_shape = raw_request("fashion", &ok, 1);
    bad_shape.inputs[0].shape = vec![2, 392];
    let cases = [
        (
            short,
            Code::InvalidArgument,
            "raw_input_contents[0] is 100 bytes but shape [1, 784] of FP32 needs 3136",
        ),
        (
            two_raw,
            Code::InvalidArgument,
            "raw_input_contents has 2 entries",
        ),
        (both, Code::InvalidArgument, "send one of them"),
        (no_data, Code::InvalidArgument, "contents.fp32_contents"),
        (bad_type, Code::InvalidArgument, "datatype 'FP64'"),
        (bad_output, Code::InvalidArgument, "unknown output 'logits'"),
        (bad_shape, Code::InvalidArgument, "does not match"),
        (raw_request("nope", &ok, 1), Code::NotFound, "nope"),
    ];
    for (request, code, says) in cases {
        let err = c.model_infer(request).await.unwrap_err();
        assert_eq!(err.code(), code, "{err}");
        assert!(
            err.message().contains(says),
            "'{}' should say '{says}'",
            err.message()
        );
    }
    // Failures are counted like HTTP ones, under the HTTP status they stand for.
    let metrics = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"wharf_server_requests_total{code="400",model="fashion"} 7"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn grpc_follows_hot_swaps_and_stops_gracefully_with_http() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "fashion", 1, 1);
    let (s, mut c) = serve_grpc(dir.path()).await;
    let ok = scaled(&Rng::new(2).pixels(INPUT_LEN));
    let res = c
        .model_infer(raw_request("fashion", &ok, 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.model_version, "1");
    let v2 = publish(dir.path(), "fashion", 2, 2);
    s.wait_until(|st| st.repo.resolve("fashion", Some(2)).is_ok())
        .await;
    let res = c
        .model_infer(raw_request("fashion", &ok, 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.model_version, "2");
    let probabilities: Vec<f32> = res.raw_output_contents[0]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(probabilities, reference(&v2, &ok, 1));

    let grpc_addr = s.running.as_ref().unwrap().grpc_addr.unwrap();
    tokio::time::timeout(Duration::from_secs(10), s.stop())
        .await
        .expect("both servers stop");
    assert!(
        tokio::net::TcpStream::connect(grpc_addr).await.is_err(),
        "the gRPC port is closed after shutdown"
    );
}

#[tokio::test]
async fn the_repository_rpcs_list_load_and_refuse_unload_as_http_does() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "fashion", 1, 1);
    // A long poll interval: only the explicit load can bring the second model in time.
    let s = serve(dir.path(), |c| {
        c.grpc_addr = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        c.poll_interval = Duration::from_secs(3600);
    })
    .await;
    let addr = s.running.as_ref().unwrap().grpc_addr.unwrap();
    let mut c = GrpcInferenceServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let index = |ready: bool| RepositoryIndexRequest {
        repository_name: String::new(),
        ready,
    };
    let rows = |r: RepositoryIndexResponse| -> Vec<(String, String, String)> {
        r.models
            .into_iter()
            .map(|m| (m.name, m.version, m.state))
            .collect()
    };
    let first = c.repository_index(index(false)).await.unwrap().into_inner();
    assert_eq!(
        rows(first),
        vec![("fashion".into(), "1".into(), "READY".into())]
    );

    publish(dir.path(), "shirts", 3, 2);
    std::fs::create_dir_all(dir.path().join("broken/2")).unwrap();
    let load = |model: &str| RepositoryModelLoadRequest {
        model_name: model.into(),
        ..Default::default()
    };
    c.repository_model_load(load("shirts")).await.unwrap();
    let ready = c
        .model_ready(ModelReadyRequest {
            name: "shirts".into(),
            version: "3".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ready.ready, "the load rescanned the repository");
    let all = c.repository_index(index(false)).await.unwrap().into_inner();
    let broken = all.models.iter().find(|m| m.name == "broken").unwrap();
    assert_eq!(broken.state, "UNAVAILABLE");
    assert!(!broken.reason.is_empty(), "an unavailable version says why");
    let ready_only = c.repository_index(index(true)).await.unwrap().into_inner();
    assert_eq!(
        rows(ready_only),
        vec![
            ("fashion".into(), "1".into(), "READY".into()),
            ("shirts".into(), "3".into(), "READY".into())
        ]
    );

    let err = c.repository_model_load(load("nope")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    let mut with_config = load("fashion");
    with_config.parameters.insert(
        "config".into(),
        ModelRepositoryParameter {
            parameter_choice: Some(model_repository_parameter::ParameterChoice::StringParam(
                "{}".into(),
            )),
        },
    );
    let err = c.repository_model_load(with_config).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("parameters config"), "{err}");
    let err = c
        .repository_model_unload(RepositoryModelUnloadRequest {
            model_name: "fashion".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(
        err.message().contains("remove the model's directory"),
        "{err}"
    );
    assert!(
        c.model_ready(ModelReadyRequest {
            name: "fashion".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .ready,
        "a refused unload changes nothing"
    );
}

#[tokio::test]
async fn the_model_configuration_rpc_says_what_the_http_endpoint_says() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "fashion", 2, 1);
    let (s, mut c) = serve_grpc(dir.path()).await;
    let config = c
        .model_config(ModelConfigRequest {
            name: "fashion".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .config
        .expect("a configuration");
    assert_eq!(config.name, "fashion");
    assert_eq!(config.backend, "wharf");
    assert_eq!(config.input[0].name, "input");
    assert_eq!(config.input[0].data_type, DataType::TypeFp32 as i32);
    assert_eq!(config.input[0].dims, vec![28, 28]);
    let outputs: Vec<(String, i32, Vec<i64>)> = config
        .output
        .iter()
        .map(|o| (o.name.clone(), o.data_type, o.dims.clone()))
        .collect();
    assert_eq!(
        outputs,
        vec![
            ("probabilities".into(), DataType::TypeFp32 as i32, vec![10]),
            ("class".into(), DataType::TypeInt64 as i32, vec![1]),
            ("label".into(), DataType::TypeString as i32, vec![1]),
        ]
    );
    match config.version_policy.and_then(|p| p.policy_choice) {
        Some(model_version_policy::PolicyChoice::Specific(s)) => assert_eq!(s.versions, vec![2]),
        other => panic!("version policy {other:?}"),
    }
    // The same values as HTTP's Triton JSON, field by field.
    let (code, http) = s.get("/v2/models/fashion/config").await;
    assert_eq!(code, 200, "{http}");
    assert_eq!(http["max_batch_size"], config.max_batch_size);
    assert_eq!(http["platform"], config.platform.as_str());
    assert_eq!(
        http["dynamic_batching"]["max_queue_delay_microseconds"],
        config
            .dynamic_batching
            .unwrap()
            .max_queue_delay_microseconds
    );
    assert_eq!(
        http["parameters"]["class_names"]["string_value"],
        config.parameters["class_names"].string_value.as_str()
    );
    let err = c
        .model_config(ModelConfigRequest {
            name: "fashion".into(),
            version: "7".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    let meta = c
        .server_metadata(ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        meta.extensions,
        vec!["model_repository", "model_configuration"]
    );
}
