//! TF Serving's gRPC API (`tensorflow.serving.PredictionService`, `ModelService`) on the V2 gRPC
//! port, with a tonic client from the same generated code: Predict with every input form, output
//! filters, version pinning, errors as gRPC statuses naming the problem, metadata and status.

mod common;

use common::*;
use prost::Message;
use tonic::Code;
use wharf_server::repository::VersionPolicy;
use wharf_server::tfserving_grpc::proto::tensorflow::serving::model_service_client::ModelServiceClient;
use wharf_server::tfserving_grpc::proto::tensorflow::serving::model_spec::VersionChoice;
use wharf_server::tfserving_grpc::proto::tensorflow::serving::model_version_status::State;
use wharf_server::tfserving_grpc::proto::tensorflow::serving::prediction_service_client::PredictionServiceClient;
use wharf_server::tfserving_grpc::proto::tensorflow::serving::*;
use wharf_server::tfserving_grpc::proto::tensorflow::tensor_shape_proto::Dim;
use wharf_server::tfserving_grpc::proto::tensorflow::{
    DataType, TensorProto, TensorShapeProto, tensor_info,
};

type Client = PredictionServiceClient<tonic::transport::Channel>;

async fn serve_tf(
    repo: &std::path::Path,
    policy: VersionPolicy,
) -> (
    Server,
    Client,
    ModelServiceClient<tonic::transport::Channel>,
) {
    let s = serve(repo, |c| {
        c.grpc_addr = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        c.policy = policy;
    })
    .await;
    let addr = s.running.as_ref().unwrap().grpc_addr.expect("gRPC listens");
    let url = format!("http://{addr}");
    let client = PredictionServiceClient::connect(url.clone())
        .await
        .expect("connects");
    let models = ModelServiceClient::connect(url).await.expect("connects");
    (s, client, models)
}

fn shape(dims: &[i64]) -> Option<TensorShapeProto> {
    Some(TensorShapeProto {
        dim: dims
            .iter()
            .map(|&size| Dim {
                size,
                name: String::new(),
            })
            .collect(),
        unknown_rank: false,
    })
}

fn spec(model: &str, version: Option<i64>) -> Option<ModelSpec> {
    Some(ModelSpec {
        name: model.into(),
        version_choice: version.map(VersionChoice::Version),
        signature_name: "serving_default".into(),
    })
}

fn float_val(values: &[f32], dims: &[i64]) -> TensorProto {
    TensorProto {
        dtype: DataType::DtFloat as i32,
        tensor_shape: shape(dims),
        float_val: values.to_vec(),
        ..Default::default()
    }
}

fn float_content(values: &[f32], dims: &[i64]) -> TensorProto {
    TensorProto {
        dtype: DataType::DtFloat as i32,
        tensor_shape: shape(dims),
        tensor_content: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn request(model: &str, version: Option<i64>, input: TensorProto) -> PredictRequest {
    PredictRequest {
        model_spec: spec(model, version),
        inputs: [("input".to_string(), input)].into_iter().collect(),
        output_filter: Vec::new(),
    }
}

fn content_f32(t: &TensorProto) -> Vec<f32> {
    t.tensor_content
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn dims(t: &TensorProto) -> Vec<i64> {
    t.tensor_shape
        .as_ref()
        .unwrap()
        .dim
        .iter()
        .map(|d| d.size)
        .collect()
}

#[tokio::test]
async fn predict_fp32_from_float_val_and_tensor_content_matches_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let art = publish(dir.path(), "fashion", 1, 7);
    let (_s, mut c, _) = serve_tf(dir.path(), VersionPolicy::Latest).await;
    let pixels = Rng::new(4).pixels(3 * INPUT_LEN);
    let inputs = scaled(&pixels);
    let expected = reference(&art, &inputs, 3);
    let classes = wharf_server::infer::classes(&expected, 10);

    // float_val in: float_val and int64_val out, the default outputs, the answering version.
    let res = c
        .predict(request("fashion", None, float_val(&inputs, &[3, 784])))
        .await
        .unwrap()
        .into_inner();
    let answered = res.model_spec.unwrap();
    assert_eq!(
        (
            answered.name.as_str(),
            answered.version_choice,
            answered.signature_name.as_str()
        ),
        (
            "fashion",
            Some(VersionChoice::Version(1)),
            "serving_default"
        )
    );
    let mut names: Vec<&String> = res.outputs.keys().collect();
    names.sort();
    assert_eq!(names, ["class", "probabilities"]);
    let p = &res.outputs["probabilities"];
    assert_eq!(
        (p.dtype, dims(p), p.float_val.clone()),
        (DataType::DtFloat as i32, vec![3, 10], expected.clone())
    );
    assert!(p.tensor_content.is_empty());
    let k = &res.outputs["class"];
    assert_eq!(
        (k.dtype, dims(k), k.int64_val.clone()),
        (DataType::DtInt64 as i32, vec![3], classes.clone())
    );

    // tensor_content in, as [N, 28, 28] (tf.make_tensor_proto's form): tensor_content out.
    let res = c
        .predict(request(
            "fashion",
            None,
            float_content(&inputs, &[3, 28, 28]),
        ))
        .await
        .unwrap()
        .into_inner();
    let p = &res.outputs["probabilities"];
    assert!(p.float_val.is_empty());
    assert_eq!(content_f32(p), expected);
    let got: Vec<i64> = res.outputs["class"]
        .tensor_content
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(got, classes);
}

#[tokio::test]
async fn predict_uint8_pixels_with_an_output_filter() {
    let dir = tempfile::tempdir().unwrap();
    let art = publish(dir.path(), "fashion", 1, 3);
    let (_s, mut c, _) = serve_tf(dir.path(), VersionPolicy::Latest).await;
    let pixels = Rng::new(9).pixels(2 * INPUT_LEN);
    let expected = reference(&art, &scaled(&pixels), 2);
    let classes = wharf_server::infer::classes(&expected, 10);
    let labels: Vec<Vec<u8>> = classes
        .iter()
        .map(|&k| art.meta.class_names[k as usize].clone().into_bytes())
        .collect();

    // DT_UINT8 in int_val (TF's typed field for it), shape [N, 28, 28].
    let typed = TensorProto {
        dtype: DataType::DtUint8 as i32,
        tensor_shape: shape(&[2, 28, 28]),
        int_val: pixels.iter().map(|&p| i32::from(p)).collect(),
        ..Default::default()
    };
    let mut req = request("fashion", Some(1), typed);
    req.output_filter = vec!["label".into(), "class".into()];
    let res = c.predict(req).await.unwrap().into_inner();
    let mut names: Vec<&String> = res.outputs.keys().collect();
    names.sort();
    assert_eq!(names, ["class", "label"]);
    assert_eq!(res.outputs["class"].int64_val, classes);
    let label = &res.outputs["label"];
    assert_eq!(
        (label.dtype, dims(label), label.string_val.clone()),
        (DataType::DtString as i32, vec![2], labels.clone())
    );

    // DT_UINT8 raw bytes in tensor_content, [N, 784]; labels stay in string_val.
    let raw = TensorProto {
        dtype: DataType::DtUint8 as i32,
        tensor_shape: shape(&[2, 784]),
        tensor_content: pixels.clone(),
        ..Default::default()
    };
    let mut req = request("fashion", None, raw);
    req.output_filter = vec!["probabilities".into(), "label".into()];
    let res = c.predict(req).await.unwrap().into_inner();
    assert_eq!(content_f32(&res.outputs["probabilities"]), expected);
    assert_eq!(res.outputs["label"].string_val, labels);
    assert!(!res.outputs.contains_key("class"));
}

#[tokio::test]
async fn model_spec_version_pins_a_version() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = publish(dir.path(), "fashion", 1, 1);
    let v2 = publish(dir.path(), "fashion", 2, 2);
    let (_s, mut c, mut models) = serve_tf(dir.path(), VersionPolicy::All).await;
    let inputs = scaled(&Rng::new(5).pixels(INPUT_LEN));
    for (version, art, answered) in [(Some(1), &v1, 1), (Some(2), &v2, 2), (None, &v2, 2)] {
        let res = c
            .predict(request("fashion", version, float_val(&inputs, &[1, 784])))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            res.model_spec.unwrap().version_choice,
            Some(VersionChoice::Version(answered))
        );
        assert_eq!(
            res.outputs["probabilities"].float_val,
            reference(art, &inputs, 1)
        );
    }
    let err = c
        .predict(request("fashion", Some(3), float_val(&inputs, &[1, 784])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    assert!(err.message().contains("no served version 3"), "{err}");

    // GetModelStatus: both versions AVAILABLE, newest first; one pinned; an unknown one.
    let status = |version: Option<i64>| GetModelStatusRequest {
        model_spec: spec("fashion", version),
    };
    let all = models
        .get_model_status(status(None))
        .await
        .unwrap()
        .into_inner();
    let got: Vec<(i64, i32, i32)> = all
        .model_version_status
        .iter()
        .map(|s| (s.version, s.state, s.status.as_ref().unwrap().error_code))
        .collect();
    assert_eq!(
        got,
        vec![
            (2, State::Available as i32, 0),
            (1, State::Available as i32, 0)
        ]
    );
    let one = models
        .get_model_status(status(Some(1)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.model_version_status.len(), 1);
    assert_eq!(one.model_version_status[0].version, 1);
    let err = models.get_model_status(status(Some(9))).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    let err = models
        .get_model_status(GetModelStatusRequest {
            model_spec: spec("nope", None),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    assert!(err.message().contains("nope"), "{err}");
}

#[tokio::test]
async fn bad_predict_requests_get_the_right_code_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "fashion", 1, 1);
    let (s, mut c, _) = serve_tf(dir.path(), VersionPolicy::Latest).await;
    let ok = scaled(&Rng::new(1).pixels(INPUT_LEN));
    let good = || request("fashion", None, float_val(&ok, &[1, 784]));

    let mut bad_signature = good();
    bad_signature.model_spec.as_mut().unwrap().signature_name = "classify_x".into();
    let mut label = good();
    label.model_spec.as_mut().unwrap().version_choice =
        Some(VersionChoice::VersionLabel("stable".into()));
    let mut no_spec = good();
    no_spec.model_spec = None;
    let bad_shape = request("fashion", None, float_val(&ok[..392], &[2, 196]));
    let short = request("fashion", None, float_val(&ok[..10], &[1, 784]));
    let mut wrong_dtype = float_val(&ok, &[1, 784]);
    wrong_dtype.dtype = DataType::DtDouble as i32;
    let wrong_dtype = request("fashion", None, wrong_dtype);
    let mut wrong_name = good();
    let tensor = wrong_name.inputs.remove("input").unwrap();
    wrong_name.inputs.insert("images".into(), tensor);
    let mut two_inputs = good();
    two_inputs
        .inputs
        .insert("extra".into(), float_val(&ok, &[1, 784]));
    let mut bad_filter = good();
    bad_filter.output_filter = vec!["logits".into()];
    let mut truncated = request("fashion", None, float_content(&ok, &[1, 784]));
    truncated
        .inputs
        .get_mut("input")
        .unwrap()
        .tensor_content
        .truncate(100);

    let cases = [
        (
            bad_signature,
            Code::InvalidArgument,
            "unknown signature_name 'classify_x'; this model has one signature, 'serving_default'",
        ),
        (label, Code::InvalidArgument, "version_label 'stable'"),
        (no_spec, Code::InvalidArgument, "model_spec.name is empty"),
        (bad_shape, Code::InvalidArgument, "[2, 196]"),
        (short, Code::InvalidArgument, "holds 10 values in float_val"),
        (wrong_dtype, Code::InvalidArgument, "DT_DOUBLE"),
        (
            wrong_name,
            Code::InvalidArgument,
            "input 'images' is not in signature 'serving_default'; its one input is 'input'",
        ),
        (two_inputs, Code::InvalidArgument, "has 2 inputs"),
        (bad_filter, Code::InvalidArgument, "unknown output 'logits'"),
        (
            truncated,
            Code::InvalidArgument,
            "tensor_content is 100 bytes",
        ),
        (
            request("nope", None, float_val(&ok, &[1, 784])),
            Code::NotFound,
            "nope",
        ),
        (
            request("fashion", Some(4), float_val(&ok, &[1, 784])),
            Code::NotFound,
            "no served version 4",
        ),
    ];
    for (request, code, says) in cases {
        let err = c.predict(request).await.unwrap_err();
        assert_eq!(err.code(), code, "{err}");
        assert!(
            err.message().contains(says),
            "'{}' should say '{says}'",
            err.message()
        );
    }

    // The RPCs wharf does not serve name what to call instead.
    let err = c.classify(ClassificationRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err}");
    assert!(err.message().contains("Predict"), "{err}");
    for err in [
        c.regress(RegressionRequest {}).await.unwrap_err(),
        c.multi_inference(MultiInferenceRequest {})
            .await
            .unwrap_err(),
    ] {
        assert_eq!(err.code(), Code::Unimplemented, "{err}");
        assert!(err.message().contains("Predict"), "{err}");
    }

    // Counted like every other protocol: the successes and, under the HTTP status they stand
    // for, the failures of model 'fashion' (the others fall under the unknown-model label).
    c.predict(good()).await.unwrap();
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
        metrics.contains(r#"wharf_server_requests_total{code="400",model="fashion"} 9"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"wharf_server_requests_total{code="404",model="fashion"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"wharf_server_requests_total{code="200",model="fashion"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn metadata_answers_the_signature_def_map_as_tf_serving_does() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "fashion", 1, 1);
    let (_s, mut c, _) = serve_tf(dir.path(), VersionPolicy::Latest).await;
    let ask = |fields: &[&str], model: &str| GetModelMetadataRequest {
        model_spec: Some(ModelSpec {
            name: model.into(),
            ..Default::default()
        }),
        metadata_field: fields.iter().map(|f| f.to_string()).collect(),
    };
    let res = c
        .get_model_metadata(ask(&["signature_def"], "fashion"))
        .await
        .unwrap()
        .into_inner();
    let answered = res.model_spec.unwrap();
    assert_eq!(answered.version_choice, Some(VersionChoice::Version(1)));
    let any = &res.metadata["signature_def"];
    assert_eq!(
        any.type_url,
        "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    );
    let map = SignatureDefMap::decode(any.value.as_slice()).unwrap();
    let signature = &map.signature_def["serving_default"];
    assert_eq!(signature.method_name, "tensorflow/serving/predict");
    let input = &signature.inputs["input"];
    assert_eq!(
        input.encoding,
        Some(tensor_info::Encoding::Name("input".into()))
    );
    let input_dims: Vec<i64> = input
        .tensor_shape
        .as_ref()
        .unwrap()
        .dim
        .iter()
        .map(|d| d.size)
        .collect();
    assert_eq!(
        (input.dtype, input_dims),
        (DataType::DtFloat as i32, vec![-1, 28, 28])
    );
    let mut outputs: Vec<(&str, i32, usize)> = signature
        .outputs
        .iter()
        .map(|(name, info)| {
            let rank = info.tensor_shape.as_ref().unwrap().dim.len();
            (name.as_str(), info.dtype, rank)
        })
        .collect();
    outputs.sort();
    assert_eq!(
        outputs,
        vec![
            ("class", DataType::DtInt64 as i32, 1),
            ("label", DataType::DtString as i32, 1),
            ("probabilities", DataType::DtFloat as i32, 2),
        ]
    );

    for (request, code, says) in [
        (
            ask(&[], "fashion"),
            Code::InvalidArgument,
            "metadata_field is empty",
        ),
        (
            ask(&["signature_def", "graph"], "fashion"),
            Code::InvalidArgument,
            "metadata_field 'graph' is not supported",
        ),
        (ask(&["signature_def"], "nope"), Code::NotFound, "nope"),
    ] {
        let err = c.get_model_metadata(request).await.unwrap_err();
        assert_eq!(err.code(), code, "{err}");
        assert!(err.message().contains(says), "{err}");
    }
}

#[tokio::test]
async fn predict_follows_hot_swaps_and_status_shows_a_failed_version() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "fashion", 1, 1);
    // Version 2 has no model.json: it fails to load and version 1 keeps serving.
    std::fs::create_dir_all(dir.path().join("fashion/2")).unwrap();
    let (s, mut c, mut models) = serve_tf(dir.path(), VersionPolicy::Latest).await;
    let inputs = scaled(&Rng::new(6).pixels(INPUT_LEN));
    let answered = |res: &PredictResponse| res.model_spec.as_ref().unwrap().version_choice.clone();
    let res = c
        .predict(request("fashion", None, float_val(&inputs, &[1, 784])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answered(&res), Some(VersionChoice::Version(1)));
    let status = models
        .get_model_status(GetModelStatusRequest {
            model_spec: spec("fashion", None),
        })
        .await
        .unwrap()
        .into_inner();
    let failed = &status.model_version_status[0];
    let failed_status = failed.status.as_ref().unwrap();
    assert_eq!(
        (failed.version, failed.state, failed_status.error_code),
        (2, State::End as i32, 2 /* tensorflow.error.UNKNOWN */)
    );
    assert!(
        failed_status.error_message.contains("model.json"),
        "{failed_status:?}"
    );
    assert_eq!(status.model_version_status[1].version, 1);

    let v3 = publish(dir.path(), "fashion", 3, 3);
    s.wait_until(|st| st.repo.resolve("fashion", Some(3)).is_ok())
        .await;
    let res = c
        .predict(request("fashion", None, float_val(&inputs, &[1, 784])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answered(&res), Some(VersionChoice::Version(3)));
    assert_eq!(
        res.outputs["probabilities"].float_val,
        reference(&v3, &inputs, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_lets_an_in_flight_predict_finish_then_closes_the_port() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let art = publish(dir.path(), "fashion", 1, 1);
    let gate = Gate::closed();
    let entered = Arc::new(AtomicUsize::new(0));
    let loader = SlowModelLoader {
        gate: gate.clone(),
        entered: entered.clone(),
    };
    let mut s = serve_with(
        dir.path(),
        Arc::new(loader),
        |c| c.grpc_addr = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        true,
    )
    .await;
    let running = s.running.take().unwrap();
    let grpc_addr = running.grpc_addr.unwrap();
    let mut c = PredictionServiceClient::connect(format!("http://{grpc_addr}"))
        .await
        .unwrap();
    let inputs = scaled(&Rng::new(8).pixels(INPUT_LEN));
    let sent = request("fashion", None, float_val(&inputs, &[1, 784]));
    let in_flight = tokio::spawn(async move { c.predict(sent).await });
    while entered.load(Ordering::SeqCst) < 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // The Predict is inside the model: shutdown waits for it.
    let stopping = tokio::spawn(running.shutdown());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !stopping.is_finished(),
        "shutdown finished with a Predict in flight"
    );
    gate.open();
    let res = in_flight
        .await
        .unwrap()
        .expect("the in-flight Predict finishes")
        .into_inner();
    assert_eq!(
        res.outputs["probabilities"].float_val,
        reference(&art, &inputs, 1)
    );
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("the server stops once the Predict is answered")
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(grpc_addr).await.is_err(),
        "the gRPC port is closed after shutdown"
    );
}
