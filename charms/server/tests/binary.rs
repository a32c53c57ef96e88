//! The V2 binary tensor data extension (HTTP), byte for byte as Triton and KServe lay it out, and
//! the repository and model configuration extensions.

mod common;

use common::*;
use serde_json::{Value, json};

const HEADER: &str = "inference-header-content-length";

/// A body of the extension: the JSON header, then `tail`.
fn binary_body(header: &Value, tail: &[u8]) -> (Vec<u8>, usize) {
    let mut body = serde_json::to_vec(header).unwrap();
    let length = body.len();
    body.extend_from_slice(tail);
    (body, length)
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

struct BinaryAnswer {
    status: u16,
    content_type: String,
    header: Value,
    tail: Vec<u8>,
}

async fn post_binary(
    s: &Server,
    path: &str,
    body: Vec<u8>,
    header_length: Option<usize>,
) -> BinaryAnswer {
    let mut request = s.client.post(s.url(path)).body(body);
    if let Some(length) = header_length {
        request = request
            .header(HEADER, length.to_string())
            .header("content-type", "application/octet-stream");
    }
    let res = request.send().await.unwrap();
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let answer_length: Option<usize> = res
        .headers()
        .get(HEADER)
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let bytes = res.bytes().await.unwrap().to_vec();
    let split = answer_length.unwrap_or(bytes.len());
    let header = serde_json::from_slice(&bytes[..split])
        .unwrap_or_else(|e| panic!("status {status}: the JSON part is not JSON ({e})"));
    BinaryAnswer {
        status,
        content_type,
        header,
        tail: bytes[split..].to_vec(),
    }
}

#[tokio::test]
async fn binary_inputs_and_outputs_match_the_json_answer() {
    let dir = tempfile::tempdir().unwrap();
    let art = publish(dir.path(), "fashion", 1, 7);
    let s = serve(dir.path(), |_| {}).await;
    let pixels = Rng::new(5).pixels(2 * INPUT_LEN);
    let inputs = scaled(&pixels);
    let expected = reference(&art, &inputs, 2);

    // FP32 in binary, every output in binary (what tritonclient sends by default).
    let raw = f32_bytes(&inputs);
    let header = json!({
        "id": "b-1",
        "inputs": [{"name": "input", "shape": [2, 784], "datatype": "FP32",
                    "parameters": {"binary_data_size": raw.len()}}],
        "parameters": {"binary_data_output": true},
    });
    let (body, length) = binary_body(&header, &raw);
    let a = post_binary(&s, "/v2/models/fashion/infer", body, Some(length)).await;
    assert_eq!(a.status, 200, "{}", a.header);
    assert_eq!(a.content_type, "application/octet-stream");
    assert_eq!(a.header["id"], "b-1");
    let outputs = a.header["outputs"].as_array().unwrap();
    assert_eq!(outputs[0]["name"], "probabilities");
    assert_eq!(outputs[0]["shape"], json!([2, 10]));
    assert!(
        outputs[0].get("data").is_none(),
        "binary outputs have no data"
    );
    assert_eq!(outputs[0]["parameters"]["binary_data_size"], 80);
    assert_eq!(outputs[1]["name"], "class");
    assert_eq!(outputs[1]["parameters"]["binary_data_size"], 16);
    assert_eq!(a.tail.len(), 96, "80 bytes of FP32 then 16 of INT64");
    let probabilities: Vec<f32> = a.tail[..80]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(probabilities, expected);
    let classes: Vec<i64> = a.tail[80..]
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let want: Vec<i64> = wharf_server::infer::classes(&expected, 10);
    assert_eq!(classes, want);

    // UINT8 pixels in binary, JSON outputs: a plain JSON answer.
    let header = json!({
        "inputs": [{"name": "x", "shape": [2, 28, 28], "datatype": "UINT8",
                    "parameters": {"binary_data_size": pixels.len()}}],
    });
    let (body, length) = binary_body(&header, &pixels);
    let a = post_binary(&s, "/v2/models/fashion/infer", body, Some(length)).await;
    assert_eq!(a.status, 200, "{}", a.header);
    assert_eq!(a.content_type, "application/json");
    assert!(a.tail.is_empty());
    assert_eq!(probabilities_of(&a.header), expected);

    // JSON input, one output binary by its own parameter, the other JSON; label as BYTES.
    let mut request = v2_fp32(&inputs, 2);
    request["outputs"] = json!([
        {"name": "label", "parameters": {"binary_data": true}},
        {"name": "class"},
    ]);
    let a = post_binary(
        &s,
        "/v2/models/fashion/infer",
        serde_json::to_vec(&request).unwrap(),
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.header);
    assert_eq!(a.content_type, "application/octet-stream");
    let outputs = a.header["outputs"].as_array().unwrap();
    assert_eq!(outputs[0]["name"], "class");
    assert_eq!(outputs[0]["data"], json!(want));
    assert_eq!(outputs[1]["name"], "label");
    assert_eq!(outputs[1]["datatype"], "BYTES");
    let names = &art.meta.class_names;
    let mut labels = Vec::new();
    for c in &want {
        let name = names[*c as usize].as_bytes();
        labels.extend_from_slice(&(name.len() as u32).to_le_bytes());
        labels.extend_from_slice(name);
    }
    assert_eq!(outputs[1]["parameters"]["binary_data_size"], labels.len());
    assert_eq!(
        a.tail, labels,
        "each label: 4-byte little-endian length, then its bytes"
    );
}

fn probabilities_of(response: &Value) -> Vec<f32> {
    probabilities(response)
}

#[tokio::test]
async fn binary_size_mismatches_are_400s_naming_the_tensor_and_the_sizes() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "fashion", 1, 1);
    let s = serve(dir.path(), |_| {}).await;
    let raw = f32_bytes(&scaled(&Rng::new(1).pixels(INPUT_LEN)));
    let input = |size: usize, shape: Value| {
        json!({"inputs": [{"name": "img", "shape": shape, "datatype": "FP32",
                           "parameters": {"binary_data_size": size}}]})
    };
    let cases: Vec<(&str, Vec<u8>, Option<String>, &str)> = vec![
        (
            "size says more than the body has",
            binary_body(&input(4000, json!([1, 784])), &raw).0,
            Some(
                binary_body(&input(4000, json!([1, 784])), &raw)
                    .1
                    .to_string(),
            ),
            "binary_data_size 4000 but the body has 3136 bytes",
        ),
        (
            "size matches the body but not the shape",
            binary_body(&input(3132, json!([1, 784])), &raw[..3132]).0,
            Some(
                binary_body(&input(3132, json!([1, 784])), &raw[..3132])
                    .1
                    .to_string(),
            ),
            "'img': parameters.binary_data_size is 3132 bytes but shape [1, 784] of FP32 needs 3136",
        ),
        (
            "header length past the end",
            b"{}".to_vec(),
            Some("10".to_string()),
            "Inference-Header-Content-Length is 10 but the body has only 2 bytes",
        ),
        (
            "header length not a number",
            b"{}".to_vec(),
            Some("ten".to_string()),
            "Inference-Header-Content-Length is 'ten'",
        ),
        (
            "binary size without the header",
            serde_json::to_vec(&input(3136, json!([1, 784]))).unwrap(),
            None,
            "missing: the whole body was read as JSON",
        ),
        (
            "neither data nor size",
            serde_json::to_vec(
                &json!({"inputs": [{"name": "img", "shape": [1, 784], "datatype": "FP32"}]}),
            )
            .unwrap(),
            None,
            "input 'img' has no data",
        ),
        (
            "bytes after the header but no binary input",
            {
                let (mut b, _) =
                    binary_body(&v2_fp32(&scaled(&Rng::new(1).pixels(INPUT_LEN)), 1), b"");
                b.extend_from_slice(b"xyz");
                b
            },
            Some({
                let (b, _) = binary_body(&v2_fp32(&scaled(&Rng::new(1).pixels(INPUT_LEN)), 1), b"");
                b.len().to_string()
            }),
            "3 bytes after the JSON header",
        ),
        (
            "classification extension",
            {
                let mut r = v2_fp32(&scaled(&Rng::new(1).pixels(INPUT_LEN)), 1);
                r["outputs"] =
                    json!([{"name": "probabilities", "parameters": {"classification": 3}}]);
                serde_json::to_vec(&r).unwrap()
            },
            None,
            "classification extension",
        ),
    ];
    for (what, body, header, says) in cases {
        let mut request = s.client.post(s.url("/v2/models/fashion/infer")).body(body);
        if let Some(h) = header {
            request = request.header(HEADER, h);
        }
        let (code, res) = decode(request.send().await.unwrap()).await;
        assert_eq!(code, 400, "{what}: {res}");
        let msg = res["error"].as_str().unwrap();
        assert!(msg.contains(says), "{what}: '{msg}' should say '{says}'");
    }
}

#[tokio::test]
async fn the_repository_index_lists_versions_and_load_rescans_now() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "fashion", 1, 1);
    // A long poll interval: only the explicit load can bring the second model in time.
    let s = serve(dir.path(), |c| {
        c.poll_interval = std::time::Duration::from_secs(3600)
    })
    .await;
    let res = s
        .client
        .post(s.url("/v2/repository/index"))
        .send()
        .await
        .unwrap();
    let (code, index) = decode(res).await;
    assert_eq!(code, 200, "{index}");
    assert_eq!(
        index,
        json!([{"name": "fashion", "version": "1", "state": "READY", "reason": ""}])
    );

    publish(dir.path(), "shirts", 3, 2);
    std::fs::create_dir_all(dir.path().join("broken/2")).unwrap();
    assert_eq!(
        s.get("/v2/models/shirts/ready").await.0,
        404,
        "not scanned yet"
    );
    let (code, loaded) = s
        .post("/v2/repository/models/shirts/load", &json!({}))
        .await;
    assert_eq!(code, 200, "{loaded}");
    assert_eq!(loaded["version"], "3");
    assert_eq!(s.get("/v2/models/shirts/ready").await.0, 200);

    let (code, all) = s.post("/v2/repository/index", &json!({})).await;
    assert_eq!(code, 200);
    let states: Vec<(String, String)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().into(),
                e["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        states.contains(&("broken".into(), "UNAVAILABLE".into())),
        "{all}"
    );
    let (_, ready) = s
        .post("/v2/repository/index", &json!({"ready": true}))
        .await;
    assert_eq!(ready.as_array().unwrap().len(), 2, "{ready}");

    let (code, res) = s.post("/v2/repository/models/nope/load", &json!({})).await;
    assert_eq!(code, 404, "{res}");
    // Triton's load-time overrides would be silently ignored otherwise: refused, named.
    let (code, res) = s
        .post(
            "/v2/repository/models/fashion/load",
            &json!({"parameters": {"config": "{\"max_batch_size\": 4}"}}),
        )
        .await;
    assert_eq!(code, 400, "{res}");
    assert!(
        res["error"].as_str().unwrap().contains("parameters config"),
        "{res}"
    );
    let (code, res) = s
        .post("/v2/repository/models/fashion/unload", &json!({}))
        .await;
    assert_eq!(code, 400, "{res}");
    assert!(
        res["error"]
            .as_str()
            .unwrap()
            .contains("remove the model's directory"),
        "{res}"
    );
}

#[tokio::test]
async fn the_model_configuration_describes_inputs_outputs_and_batching() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "fashion", 2, 1);
    let s = serve(dir.path(), |c| c.batch.max_batch = 16).await;
    let (code, config) = s.get("/v2/models/fashion/config").await;
    assert_eq!(code, 200, "{config}");
    assert_eq!(config["name"], "fashion");
    assert_eq!(config["max_batch_size"], 16);
    assert_eq!(
        config["input"],
        json!([{"name": "input", "data_type": "TYPE_FP32", "dims": [28, 28]}])
    );
    assert_eq!(config["output"][0]["dims"], json!([10]));
    assert_eq!(config["output"][2]["data_type"], "TYPE_STRING");
    let (code, _) = s.get("/v2/models/fashion/versions/2/config").await;
    assert_eq!(code, 200);
    assert_eq!(s.get("/v2/models/fashion/versions/1/config").await.0, 404);
}
