//! TensorFlow Serving REST conformance (status, metadata, predict in row and columnar format)
//! and KServe V1's model list.

mod common;

use common::*;
use serde_json::{Value, json};

fn rows(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_f64().unwrap() as f32)
        })
        .collect()
}

#[tokio::test]
async fn model_list_status_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "fashion", 1, 1);
    publish(dir.path(), "fashion", 2, 2);
    publish(dir.path(), "other", 5, 3);
    let s = serve(dir.path(), |c| {
        c.policy = wharf_server::repository::VersionPolicy::All
    })
    .await;
    assert_eq!(
        s.get("/v1/models").await,
        (200, json!({"models": ["fashion", "other"]}))
    );

    let (code, status) = s.get("/v1/models/fashion").await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["name"], "fashion");
    assert_eq!(status["ready"], true);
    let available = json!({"error_code": "OK", "error_message": ""});
    assert_eq!(
        status["model_version_status"],
        json!([
            {"version": "2", "state": "AVAILABLE", "status": available},
            {"version": "1", "state": "AVAILABLE", "status": available},
        ])
    );
    let (code, one) = s.get("/v1/models/fashion/versions/1").await;
    assert_eq!(code, 200);
    assert_eq!(one["model_version_status"].as_array().unwrap().len(), 1);
    assert_eq!(one["model_version_status"][0]["version"], "1");

    let (code, meta) = s.get("/v1/models/fashion/metadata").await;
    assert_eq!(code, 200, "{meta}");
    assert_eq!(meta["model_spec"]["version"], "2");
    let sig = &meta["metadata"]["signature_def"]["signature_def"]["serving_default"];
    assert_eq!(sig["inputs"]["input"]["dtype"], "DT_FLOAT");
    assert_eq!(
        sig["outputs"]["probabilities"]["tensor_shape"]["dim"][1]["size"],
        "10"
    );
    let (code, meta) = s.get("/v1/models/fashion/versions/1/metadata").await;
    assert_eq!((code, &meta["model_spec"]["version"]), (200, &json!("1")));
}

#[tokio::test]
async fn a_failed_version_shows_as_end_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "fashion", 1, 1);
    std::fs::create_dir_all(dir.path().join("fashion/2")).unwrap();
    let s = serve(dir.path(), |_| {}).await;
    let (code, status) = s.get("/v1/models/fashion").await;
    assert_eq!(code, 200);
    let versions = status["model_version_status"].as_array().unwrap();
    assert_eq!(versions[0]["version"], "2");
    assert_eq!(versions[0]["state"], "END");
    assert!(
        versions[0]["status"]["error_message"]
            .as_str()
            .unwrap()
            .contains("model.json"),
        "{status}"
    );
    assert_eq!(versions[1]["state"], "AVAILABLE");
}

#[tokio::test]
async fn predict_in_row_and_columnar_format_matches_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let art = publish(dir.path(), "fashion", 3, 11);
    let s = serve(dir.path(), |_| {}).await;
    let inputs = scaled(&Rng::new(5).pixels(2 * INPUT_LEN));
    let expected = reference(&art, &inputs, 2);
    let flat: Vec<Vec<f32>> = inputs.chunks(INPUT_LEN).map(|r| r.to_vec()).collect();
    let nested: Vec<Vec<Vec<f32>>> = flat
        .iter()
        .map(|r| r.chunks(28).map(|c| c.to_vec()).collect())
        .collect();

    let row_bodies = [
        json!({"instances": flat}),
        json!({"signature_name": "serving_default", "instances": nested}),
        json!({"instances": flat.iter().map(|r| json!({"input": r})).collect::<Vec<_>>()}),
    ];
    for body in row_bodies {
        for path in [
            "/v1/models/fashion:predict",
            "/v1/models/fashion/versions/3:predict",
        ] {
            let (code, res) = s.post(path, &body).await;
            assert_eq!(code, 200, "{path}: {res}");
            assert_eq!(rows(&res["predictions"]), expected, "{path}");
            assert_eq!(res["predictions"].as_array().unwrap().len(), 2);
        }
    }
    for body in [
        json!({"inputs": flat}),
        json!({"inputs": {"input": nested}}),
    ] {
        let (code, res) = s.post("/v1/models/fashion:predict", &body).await;
        assert_eq!(code, 200, "{res}");
        assert_eq!(rows(&res["outputs"]), expected);
        assert!(res.get("predictions").is_none());
    }
}

#[tokio::test]
async fn bad_predict_requests_are_400_and_unknown_things_404() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "fashion", 1, 1);
    let s = serve(dir.path(), |_| {}).await;
    let row = vec![0.5f32; INPUT_LEN];
    let cases = [
        (json!({}), "needs 'instances'"),
        (json!({"instances": [row], "inputs": [row]}), "not both"),
        (json!({"instances": []}), "non-empty"),
        (
            json!({"instances": [vec![0.5; 783]]}),
            "entry 0 holds 783 values",
        ),
        (
            json!({"instances": [row, vec![0.5; 10]]}),
            "entry 1 holds 10",
        ),
        (json!({"instances": row}), "entry 0 holds 1 values"),
        (
            json!({"instances": [row], "signature_name": "classify"}),
            "unknown signature_name",
        ),
        (
            json!({"instances": [{"a": row, "b": row}]}),
            "exactly one entry",
        ),
        (json!({"instances": [["x"]]}), "invalid TF Serving"),
        (
            json!({"inputs": {"a": [row], "b": [row]}}),
            "more than one input",
        ),
        (json!({"inputs": 3}), "invalid TF Serving"),
    ];
    for (body, says) in cases {
        let (code, res) = s.post("/v1/models/fashion:predict", &body).await;
        assert_eq!(code, 400, "{body:.80}: {res}");
        assert!(
            res["error"].as_str().unwrap().contains(says),
            "'{res}' should mention '{says}'"
        );
    }
    for verb in ["classify", "regress"] {
        let (code, _) = s
            .post(
                &format!("/v1/models/fashion:{verb}"),
                &json!({"instances": [row]}),
            )
            .await;
        assert_eq!(code, 400, ":{verb}");
    }
    let ok = json!({"instances": [row]});
    for path in [
        "/v1/models/ghost:predict",
        "/v1/models/fashion/versions/7:predict",
        "/v1/models/fashion:explode",
    ] {
        assert_eq!(s.post(path, &ok).await.0, 404, "{path}");
    }
    for path in [
        "/v1/models/ghost",
        "/v1/models/fashion/versions/2",
        "/v1/models/fashion/labels/x",
        "/v1/models/ghost/metadata",
    ] {
        assert_eq!(s.get(path).await.0, 404, "{path}");
    }
    assert_eq!(s.get("/v1/models/fashion:predict").await.0, 400);
    assert_eq!(s.post("/v1/models/fashion", &ok).await.0, 400);
}
