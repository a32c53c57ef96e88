//! Property tests: malformed and random bodies on every POST route get a JSON 4xx (or a 200 when
//! the mutation happens to keep the request valid), never a 5xx, a panic or a dropped connection.

mod common;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

const ROUTES: [&str; 4] = [
    "/v2/models/fashion/infer",
    "/v2/models/fashion/versions/1/infer",
    "/v1/models/fashion:predict",
    "/v1/models/fashion/versions/1:predict",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-zA-Z0-9_ ]{0,12}".prop_map(Value::from),
        Just(json!("FP32")),
        Just(json!("UINT8")),
        Just(json!([1, 784])),
        Just(json!([1, 28, 28])),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("inputs".to_string()),
                    Just("instances".to_string()),
                    Just("data".to_string()),
                    Just("shape".to_string()),
                    Just("datatype".to_string()),
                    Just("outputs".to_string()),
                    Just("name".to_string()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid request with one part replaced by a random value.
fn mutated_request() -> impl Strategy<Value = Value> {
    let fields = ["id", "inputs", "outputs", "parameters"];
    let input_fields = ["name", "shape", "datatype", "data", "parameters"];
    (0..fields.len() + input_fields.len(), json_value(), any::<bool>()).prop_map(move |(i, v, uint8)| {
        let data: Vec<Value> = (0..INPUT_LEN).map(|k| if uint8 { json!(k % 256) } else { json!(0.5) }).collect();
        let mut req = json!({
            "id": "p",
            "inputs": [{"name": "input", "shape": [1, INPUT_LEN], "datatype": if uint8 { "UINT8" } else { "FP32" }, "data": data}],
        });
        if i < fields.len() {
            req[fields[i]] = v;
        } else {
            req["inputs"][0][input_fields[i - fields.len()]] = v;
        }
        req
    })
}

#[test]
fn random_and_malformed_bodies_never_cause_a_5xx() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "fashion", 1, 1);
    let server = rt.block_on(serve(dir.path(), |c| c.max_body_bytes = 64 * 1024));
    let post = |route: &str, body: Vec<u8>| -> u16 {
        rt.block_on(async { server.post_raw(route, body).await.0 })
    };
    let mut runner = TestRunner::new(Config {
        cases: 200,
        failure_persistence: None,
        ..Config::default()
    });

    runner
        .run(
            &(0..ROUTES.len(), prop::collection::vec(any::<u8>(), 0..512)),
            |(r, bytes)| {
                let code = post(ROUTES[r], bytes);
                prop_assert!((400..500).contains(&code), "random bytes -> {code}");
                Ok(())
            },
        )
        .unwrap();
    runner
        .run(&(0..ROUTES.len(), json_value()), |(r, value)| {
            let code = post(ROUTES[r], serde_json::to_vec(&value).unwrap());
            prop_assert!((400..500).contains(&code), "{value} -> {code}");
            Ok(())
        })
        .unwrap();
    runner
        .run(&mutated_request(), |req| {
            let code = post(ROUTES[0], serde_json::to_vec(&req).unwrap());
            prop_assert!(
                code == 200 || (400..500).contains(&code),
                "{req:.200} -> {code}"
            );
            Ok(())
        })
        .unwrap();
    // Truncations of a valid body: every prefix is malformed JSON.
    let valid = serde_json::to_vec(&v2_fp32(&vec![0.5; INPUT_LEN], 1)).unwrap();
    runner
        .run(&(0..valid.len()), |cut| {
            let code = post(ROUTES[0], valid[..cut].to_vec());
            prop_assert_eq!(code, 400);
            Ok(())
        })
        .unwrap();
    assert_eq!(
        post(ROUTES[0], valid),
        200,
        "the server still answers after the fuzzing"
    );
}
