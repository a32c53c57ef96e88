//! Open Inference Protocol V2 conformance: every endpoint, every input form, every error.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use serde_json::{Value, json};

fn repo_with(models: &[(&str, u64, u64)]) -> (tempfile::TempDir, Vec<wharf_model::Artifact>) {
    let dir = tempfile::tempdir().unwrap();
    let arts = models
        .iter()
        .map(|(m, v, seed)| publish(dir.path(), m, *v, *seed))
        .collect();
    (dir, arts)
}

#[tokio::test]
async fn health_and_server_metadata() {
    let (repo, _) = repo_with(&[("fashion", 1, 1)]);
    let s = serve(repo.path(), |_| {}).await;
    assert_eq!(s.get("/v2/health/live").await, (200, json!({"live": true})));
    assert_eq!(
        s.get("/v2/health/ready").await,
        (200, json!({"ready": true}))
    );
    let (code, meta) = s.get("/v2").await;
    assert_eq!(code, 200);
    assert_eq!(meta["name"], "wharf-server");
    assert!(meta["version"].is_string());
    assert_eq!(
        meta["extensions"],
        json!([
            "binary_tensor_data",
            "model_repository",
            "model_configuration"
        ])
    );
}

#[tokio::test]
async fn model_metadata_describes_inputs_outputs_and_versions() {
    let (repo, _) = repo_with(&[("fashion", 1, 1), ("fashion", 2, 2)]);
    let s = serve(repo.path(), |c| {
        c.policy = wharf_server::repository::VersionPolicy::All
    })
    .await;
    let (code, meta) = s.get("/v2/models/fashion").await;
    assert_eq!(code, 200, "{meta}");
    assert_eq!(meta["name"], "fashion");
    assert_eq!(meta["versions"], json!(["1", "2"]));
    assert_eq!(meta["platform"], "wharf_mlp");
    assert_eq!(
        meta["inputs"],
        json!([{"name": "input", "datatype": "FP32", "shape": [-1, 28, 28]}])
    );
    assert_eq!(
        meta["outputs"],
        json!([
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
            {"name": "class", "datatype": "INT64", "shape": [-1]},
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
        ])
    );
    assert_eq!(meta["parameters"]["version"], "2");
    assert_eq!(meta["parameters"]["class_names"][9], "Ankle boot");
    let (code, meta) = s.get("/v2/models/fashion/versions/1").await;
    assert_eq!(code, 200);
    assert_eq!(meta["parameters"]["version"], "1");
    assert_eq!(
        s.get("/v2/models/fashion/ready").await,
        (200, json!({"name": "fashion", "ready": true}))
    );
    assert_eq!(
        s.get("/v2/models/fashion/versions/1/ready").await,
        (
            200,
            json!({"name": "fashion", "version": "1", "ready": true})
        )
    );
}

#[tokio::test]
async fn infer_answers_what_the_model_computes_for_fp32_uint8_flat_and_nested() {
    let (repo, arts) = repo_with(&[("fashion", 1, 7)]);
    let s = serve(repo.path(), |_| {}).await;
    let mut rng = Rng::new(3);
    let pixels = rng.pixels(3 * INPUT_LEN);
    let inputs = scaled(&pixels);
    let expected = reference(&arts[0], &inputs, 3);

    // FP32, flat, [3, 784]
    let (code, res) = s
        .post("/v2/models/fashion/infer", &v2_fp32(&inputs, 3))
        .await;
    assert_eq!(code, 200, "{res}");
    assert_eq!(res["model_name"], "fashion");
    assert_eq!(res["model_version"], "1");
    assert_eq!(res["id"], "req-1");
    assert_eq!(probabilities(&res), expected);
    let classes: Vec<i64> = expected
        .chunks(10)
        .map(|r| {
            r.iter()
                .enumerate()
                .fold(0, |b, (i, p)| if *p > r[b] { i } else { b }) as i64
        })
        .collect();
    let class_out = res["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "class")
        .unwrap();
    assert_eq!(class_out["datatype"], "INT64");
    assert_eq!(class_out["shape"], json!([3]));
    assert_eq!(class_out["data"], json!(classes));
    let prob_out = &res["outputs"][0];
    assert_eq!(prob_out["datatype"], "FP32");
    assert_eq!(prob_out["shape"], json!([3, 10]));

    // UINT8 raw pixels, nested [3, 28, 28]: scaled by the model's scale, same answer.
    let nested: Vec<Vec<Vec<u8>>> = pixels
        .chunks(INPUT_LEN)
        .map(|img| img.chunks(28).map(|r| r.to_vec()).collect())
        .collect();
    let body = json!({"inputs": [{"name": "x", "shape": [3, 28, 28], "datatype": "UINT8", "data": nested}]});
    let (code, res) = s.post("/v2/models/fashion/versions/1/infer", &body).await;
    assert_eq!(code, 200, "{res}");
    assert!(
        res.get("id").is_none(),
        "no id in the request, none in the answer"
    );
    assert_eq!(probabilities(&res), expected);
}

#[tokio::test]
async fn infer_returns_only_the_requested_outputs() {
    let (repo, _) = repo_with(&[("fashion", 1, 7)]);
    let s = serve(repo.path(), |_| {}).await;
    let inputs = scaled(&Rng::new(1).pixels(INPUT_LEN));
    for (wanted, names) in [
        (json!([{"name": "class"}]), vec!["class"]),
        (json!([{"name": "probabilities"}]), vec!["probabilities"]),
        (
            json!([{"name": "class"}, {"name": "probabilities"}]),
            vec!["probabilities", "class"],
        ),
        (json!([]), vec!["probabilities", "class"]),
        (
            json!([{"name": "label"}, {"name": "class"}]),
            vec!["class", "label"],
        ),
    ] {
        let mut body = v2_fp32(&inputs, 1);
        body["outputs"] = wanted.clone();
        let (code, res) = s.post("/v2/models/fashion/infer", &body).await;
        assert_eq!(code, 200, "{res}");
        let got: Vec<&str> = res["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap())
            .collect();
        assert_eq!(got, names, "outputs {wanted}");
    }
}

#[tokio::test]
async fn a_named_version_is_served_and_an_unnamed_one_means_the_latest() {
    let (repo, arts) = repo_with(&[("fashion", 1, 1), ("fashion", 2, 2)]);
    let s = serve(repo.path(), |c| {
        c.policy = wharf_server::repository::VersionPolicy::All
    })
    .await;
    let inputs = scaled(&Rng::new(9).pixels(INPUT_LEN));
    let (_, v1) = s
        .post("/v2/models/fashion/versions/1/infer", &v2_fp32(&inputs, 1))
        .await;
    let (_, latest) = s
        .post("/v2/models/fashion/infer", &v2_fp32(&inputs, 1))
        .await;
    assert_eq!(probabilities(&v1), reference(&arts[0], &inputs, 1));
    assert_eq!(latest["model_version"], "2");
    assert_eq!(probabilities(&latest), reference(&arts[1], &inputs, 1));
}

/// One row of the error table: what is sent, the status, and words the message must hold.
struct Case {
    what: &'static str,
    body: Value,
    code: u16,
    says: &'static str,
}

#[tokio::test]
async fn bad_requests_are_400_with_a_message_naming_the_problem() {
    let (repo, _) = repo_with(&[("fashion", 1, 1)]);
    let s = serve(repo.path(), |_| {}).await;
    let ok = scaled(&Rng::new(1).pixels(INPUT_LEN));
    let input = |shape: Value, datatype: &str, data: Value| json!({"inputs": [{"name": "input", "shape": shape, "datatype": datatype, "data": data}]});
    let cases = [
        Case {
            what: "no inputs field",
            body: json!({"id": "x"}),
            code: 400,
            says: "inputs",
        },
        Case {
            what: "two inputs",
            body: json!({"inputs": [
            {"name": "a", "shape": [1, 784], "datatype": "FP32", "data": ok},
            {"name": "b", "shape": [1, 784], "datatype": "FP32", "data": ok}]}),
            code: 400,
            says: "exactly one",
        },
        Case {
            what: "zero inputs",
            body: json!({"inputs": []}),
            code: 400,
            says: "exactly one",
        },
        Case {
            what: "BYTES datatype",
            body: input(json!([1, 784]), "BYTES", json!(ok)),
            code: 400,
            says: "datatype 'BYTES'",
        },
        Case {
            what: "FP64 datatype",
            body: input(json!([1, 784]), "FP64", json!(ok)),
            code: 400,
            says: "FP32",
        },
        Case {
            what: "wrong inner shape",
            body: input(json!([1, 783]), "FP32", json!(ok)),
            code: 400,
            says: "shape",
        },
        Case {
            what: "28x27",
            body: input(json!([1, 28, 27]), "FP32", json!(ok)),
            code: 400,
            says: "does not match",
        },
        Case {
            what: "zero batch",
            body: input(json!([0, 784]), "FP32", json!([])),
            code: 400,
            says: "not positive",
        },
        Case {
            what: "negative dim",
            body: input(json!([1, -784]), "FP32", json!(ok)),
            code: 400,
            says: "negative",
        },
        Case {
            what: "scalar shape",
            body: input(json!([]), "FP32", json!(ok)),
            code: 400,
            says: "scalar",
        },
        Case {
            what: "data shorter than shape",
            body: input(json!([2, 784]), "FP32", json!(ok)),
            code: 400,
            says: "holds 784 values",
        },
        Case {
            what: "strings in data",
            body: input(json!([1, 1]), "FP32", json!(["a"])),
            code: 400,
            says: "invalid V2",
        },
        Case {
            what: "null in data",
            body: input(json!([1, 784]), "FP32", json!([null])),
            code: 400,
            says: "invalid V2",
        },
        Case {
            what: "UINT8 with floats",
            body: input(json!([1, 784]), "UINT8", json!(ok)),
            code: 400,
            says: "0..=255",
        },
        Case {
            what: "UINT8 above 255",
            body: input(json!([1, 784]), "UINT8", json!(vec![256; 784])),
            code: 400,
            says: "0..=255",
        },
        Case {
            what: "UINT8 negative",
            body: input(json!([1, 784]), "UINT8", json!(vec![-1; 784])),
            code: 400,
            says: "0..=255",
        },
        Case {
            what: "FP32 overflow",
            body: input(json!([1, 784]), "FP32", json!(vec![1e39; 784])),
            code: 400,
            says: "FP32",
        },
        Case {
            what: "unknown output",
            body: {
                let mut b = input(json!([1, 784]), "FP32", json!(ok));
                b["outputs"] = json!([{"name": "logits"}]);
                b
            },
            code: 400,
            says: "unknown output 'logits'",
        },
        Case {
            what: "id is a number",
            body: {
                let mut b = input(json!([1, 784]), "FP32", json!(ok));
                b["id"] = json!(5);
                b
            },
            code: 400,
            says: "invalid V2",
        },
        Case {
            what: "shape is a string",
            body: input(json!("1,784"), "FP32", json!(ok)),
            code: 400,
            says: "invalid V2",
        },
        Case {
            what: "top level is an array",
            body: json!([1, 2]),
            code: 400,
            says: "invalid V2",
        },
    ];
    for case in cases {
        let (code, res) = s.post("/v2/models/fashion/infer", &case.body).await;
        assert_eq!(code, case.code, "{}: {res}", case.what);
        let msg = res["error"].as_str().unwrap();
        assert!(
            msg.contains(case.says),
            "{}: '{msg}' should mention '{}'",
            case.what,
            case.says
        );
    }
    let (code, res) = s.post_raw("/v2/models/fashion/infer", "{not json").await;
    assert_eq!(code, 400, "{res}");
    let (code, res) = s.post_raw("/v2/models/fashion/infer", "").await;
    assert_eq!(code, 400, "{res}");
}

#[tokio::test]
async fn unknown_models_versions_and_routes_are_404() {
    let (repo, _) = repo_with(&[("fashion", 1, 1)]);
    let s = serve(repo.path(), |_| {}).await;
    let body = v2_fp32(&vec![0.0; INPUT_LEN], 1);
    for (path, says) in [
        (
            "/v2/models/nope/infer",
            "unknown model 'nope'; models: fashion",
        ),
        ("/v2/models/fashion/versions/9/infer", "no served version 9"),
        (
            "/v2/models/fashion/versions/abc/infer",
            "versions are positive integers",
        ),
        ("/v2/models/fashion/versions/0/infer", "positive integers"),
    ] {
        let (code, res) = s.post(path, &body).await;
        assert_eq!(code, 404, "{path}: {res}");
        assert!(
            res["error"].as_str().unwrap().contains(says),
            "{path}: {res}"
        );
    }
    for path in [
        "/v2/models/nope",
        "/v2/models/nope/ready",
        "/v2/models/fashion/versions/2",
        "/v2/models/fashion/versions/2/ready",
        "/nowhere",
        "/v3/x",
    ] {
        let (code, res) = s.get(path).await;
        assert_eq!(code, 404, "{path}: {res}");
    }
    // A wrong method is a JSON 405 too.
    let (code, res) = s.get("/v2/models/fashion/infer").await;
    assert_eq!(code, 405, "{res}");
}

#[tokio::test]
async fn bodies_above_the_limit_are_413() {
    let (repo, _) = repo_with(&[("fashion", 1, 1)]);
    let s = serve(repo.path(), |c| c.max_body_bytes = 10_000).await;
    let big = v2_fp32(&vec![0.5; 4 * INPUT_LEN], 4); // ~14 kB
    let (code, res) = s.post("/v2/models/fashion/infer", &big).await;
    assert_eq!(code, 413, "{res}");
    assert!(res["error"].as_str().unwrap().contains("10000"), "{res}");
    let small = v2_fp32(&vec![0.5; INPUT_LEN], 1);
    assert_eq!(s.post("/v2/models/fashion/infer", &small).await.0, 200);
}

#[tokio::test]
async fn the_server_is_503_until_the_repository_is_loaded() {
    let (repo, _) = repo_with(&[("fashion", 1, 1)]);
    let gate = Gate::closed();
    let s = serve_with(
        repo.path(),
        Arc::new(GatedLoader(gate.clone())),
        |_| {},
        false,
    )
    .await;
    assert_eq!(s.get("/v2/health/live").await.0, 200, "live while loading");
    let (code, res) = s.get("/v2/health/ready").await;
    assert_eq!((code, &res["ready"]), (503, &json!(false)), "{res}");
    let (code, res) = s
        .post(
            "/v2/models/fashion/infer",
            &v2_fp32(&vec![0.0; INPUT_LEN], 1),
        )
        .await;
    assert_eq!(code, 503, "{res}");
    assert!(
        res["error"].as_str().unwrap().contains("still loading"),
        "{res}"
    );
    gate.open();
    s.wait_until(|st| st.is_ready()).await;
    assert_eq!(
        s.post(
            "/v2/models/fashion/infer",
            &v2_fp32(&vec![0.0; INPUT_LEN], 1)
        )
        .await
        .0,
        200
    );
}

#[tokio::test]
async fn a_model_whose_only_version_is_broken_is_503_and_keeps_the_server_unready() {
    let (repo, _) = repo_with(&[("fashion", 1, 1)]);
    std::fs::create_dir_all(repo.path().join("broken/1")).unwrap();
    std::fs::write(repo.path().join("broken/1/model.json"), "{").unwrap();
    let s = serve_with(
        repo.path(),
        Arc::new(wharf_server::artifact::ArtifactLoader),
        |_| {},
        false,
    )
    .await;
    s.wait_until(|st| st.repo.snapshot().scanned).await;
    let (code, res) = s
        .post(
            "/v2/models/broken/infer",
            &v2_fp32(&vec![0.0; INPUT_LEN], 1),
        )
        .await;
    assert_eq!(code, 503, "{res}");
    assert!(
        res["error"]
            .as_str()
            .unwrap()
            .contains("version 1 failed to load"),
        "{res}"
    );
    assert_eq!(s.get("/v2/health/ready").await.0, 503);
    assert_eq!(s.get("/v2/models/fashion/ready").await.0, 200);
    assert_eq!(s.get("/v2/models/broken/ready").await.0, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_is_503_and_the_queued_requests_still_succeed() {
    let (repo, _) = repo_with(&[("fashion", 1, 1)]);
    let gate = Gate::closed();
    let entered = Arc::new(AtomicUsize::new(0));
    let loader = SlowModelLoader {
        gate: gate.clone(),
        entered: entered.clone(),
    };
    let s = Arc::new(
        serve_with(
            repo.path(),
            Arc::new(loader),
            |c| {
                c.batch.queue_capacity = 1;
                c.batch.max_batch = 1;
            },
            true,
        )
        .await,
    );
    let body = v2_fp32(&vec![0.1; INPUT_LEN], 1);
    let send = |s: Arc<Server>, body: Value| {
        tokio::spawn(async move { s.post("/v2/models/fashion/infer", &body).await })
    };
    let wait_entered = |n: usize| {
        let entered = entered.clone();
        async move {
            while entered.load(Ordering::SeqCst) < n {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    };
    // The first leads (alone) and is stuck in the model; one forward pass at a time per version.
    let first = send(s.clone(), body.clone());
    wait_entered(1).await;
    // Six more while it is stuck: one fits in the queue, five are refused.
    let more: Vec<_> = (0..6).map(|_| send(s.clone(), body.clone())).collect();
    for _ in 0..1000 {
        if more.iter().filter(|h| h.is_finished()).count() >= 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        entered.load(Ordering::SeqCst),
        1,
        "a second forward pass ran"
    );
    gate.open();
    assert_eq!(first.await.unwrap().0, 200);
    let mut codes = Vec::new();
    for handle in more {
        let (code, res) = handle.await.unwrap();
        if code == 503 {
            assert!(
                res["error"].as_str().unwrap().contains("queue is full"),
                "{res}"
            );
        }
        codes.push(code);
    }
    codes.sort();
    assert_eq!(codes, vec![200, 503, 503, 503, 503, 503]);
}

#[tokio::test]
async fn a_model_that_panics_answers_a_json_500_and_the_server_survives() {
    let (repo, _) = repo_with(&[("fashion", 1, 1)]);
    let s = serve_with(repo.path(), Arc::new(PanickingLoader), |_| {}, true).await;
    for _ in 0..2 {
        let (code, res) = s
            .post(
                "/v2/models/fashion/infer",
                &v2_fp32(&vec![0.0; INPUT_LEN], 1),
            )
            .await;
        assert_eq!(code, 500, "{res}");
        assert!(
            res["error"]
                .as_str()
                .unwrap()
                .contains("deliberate test panic"),
            "{res}"
        );
    }
    assert_eq!(s.get("/v2/health/live").await.0, 200);
}

#[tokio::test]
async fn metrics_count_requests_by_model_and_code_and_batches() {
    let (repo, _) = repo_with(&[("fashion", 1, 1)]);
    let s = serve(repo.path(), |_| {}).await;
    let body = v2_fp32(&vec![0.0; INPUT_LEN], 1);
    s.post("/v2/models/fashion/infer", &body).await;
    s.post("/v2/models/fashion/infer", &body).await;
    s.post("/v2/models/fashion/infer", &json!({})).await;
    s.post("/v2/models/ghost/infer", &body).await;
    let text = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "wharf_server_requests_total{code=\"200\",model=\"fashion\"} 2",
        "wharf_server_requests_total{code=\"400\",model=\"fashion\"} 1",
        "wharf_server_requests_total{code=\"404\",model=\"_unknown\"} 1",
        "wharf_server_request_duration_seconds_count{model=\"fashion\"} 3",
        "wharf_server_batch_size_count{model=\"fashion\"} 2",
        "wharf_server_model_versions_loaded{model=\"fashion\"} 1",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
}
