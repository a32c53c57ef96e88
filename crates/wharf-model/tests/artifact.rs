//! The artifact contract: files round-trip, broken artifacts fail naming the file and the
//! fault, and the forward pass matches values computed by hand.

use std::collections::BTreeMap;

use wharf_model::{
    Activation, Architecture, Artifact, InputSpec, LayerSpec, Model, ModelError, ModelMeta, Tensor,
};

/// Weights for every parameter of `meta`, filled with a deterministic pattern.
fn patterned(meta: &ModelMeta) -> BTreeMap<String, Tensor> {
    meta.parameters()
        .into_iter()
        .enumerate()
        .map(|(t, (name, shape))| {
            let n: usize = shape.iter().product();
            let data = (0..n)
                .map(|i| (((i * 7 + t * 13) % 17) as f32 - 8.0) / 40.0)
                .collect();
            (name, Tensor::new(shape, data))
        })
        .collect()
}

fn artifact(arch: Architecture) -> Artifact {
    let mut meta = ModelMeta::new(arch);
    meta.metrics.test_accuracy = 0.5;
    meta.data_digest = "sha256:00".into();
    meta.trainer_version = "test".into();
    meta.created = "2026-11-22T00:00:00Z".into();
    let tensors = patterned(&meta);
    Artifact::new(meta, tensors).unwrap()
}

fn sample_inputs(len: usize, batch: usize) -> Vec<f32> {
    (0..len * batch)
        .map(|i| ((i * 31) % 256) as f32 / 255.0)
        .collect()
}

#[test]
fn save_then_load_gives_the_same_artifact_and_predictions() {
    for arch in [Architecture::Mlp, Architecture::Cnn] {
        let dir = tempfile::tempdir().unwrap();
        let original = artifact(arch);
        original.save(dir.path()).unwrap();
        let loaded = Artifact::load(dir.path()).unwrap();
        assert_eq!(loaded.meta, original.meta);
        assert_eq!(loaded.tensors, original.tensors);

        let (a, b) = (
            Model::from_artifact(&original).unwrap(),
            Model::from_artifact(&loaded).unwrap(),
        );
        assert_eq!(a.input_len(), 784);
        assert_eq!(a.num_classes(), 10);
        let x = sample_inputs(784, 3);
        let (mut pa, mut pb) = (Vec::new(), Vec::new());
        a.predict_proba(&x, 3, &mut pa).unwrap();
        b.predict_proba(&x, 3, &mut pb).unwrap();
        assert_eq!(pa, pb);
        assert_eq!(pa.len(), 30);
        for row in pa.chunks(10) {
            assert!(
                (row.iter().sum::<f32>() - 1.0).abs() < 1e-5,
                "{arch}: {row:?}"
            );
        }
    }
}

#[test]
fn batched_prediction_equals_one_at_a_time() {
    for arch in [Architecture::Mlp, Architecture::Cnn] {
        let model = Model::from_artifact(&artifact(arch)).unwrap();
        let x = sample_inputs(784, 4);
        let mut all = Vec::new();
        model.predict_proba(&x, 4, &mut all).unwrap();
        for i in 0..4 {
            let mut one = Vec::new();
            model
                .predict_proba(&x[i * 784..(i + 1) * 784], 1, &mut one)
                .unwrap();
            for (a, b) in one.iter().zip(&all[i * 10..(i + 1) * 10]) {
                assert!((a - b).abs() < 1e-6, "{arch} item {i}: {a} vs {b}");
            }
        }
    }
}

#[test]
fn missing_tensor_names_the_file_and_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = artifact(Architecture::Mlp);
    a.tensors.remove("fc2.bias");
    // Bypass Artifact::new's check by writing the files directly.
    let (weights, meta) = a.to_bytes().unwrap();
    std::fs::write(dir.path().join("model.safetensors"), weights).unwrap();
    std::fs::write(dir.path().join("model.json"), meta).unwrap();
    let err = Artifact::load(dir.path()).unwrap_err();
    assert!(matches!(err, ModelError::MissingTensor { ref name, .. } if name == "fc2.bias"));
    let msg = err.to_string();
    assert!(
        msg.contains("model.safetensors") && msg.contains("fc2.bias") && msg.contains("fc2"),
        "{msg}"
    );
}

#[test]
fn wrong_tensor_shape_is_reported_with_both_shapes() {
    let mut a = artifact(Architecture::Mlp);
    a.tensors
        .insert("fc1.bias".into(), Tensor::new(vec![64], vec![0.0; 64]));
    let err = Artifact::new(a.meta.clone(), a.tensors.clone()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("fc1.bias") && msg.contains("[128]") && msg.contains("[64]"),
        "{msg}"
    );
}

#[test]
fn extra_tensor_is_rejected() {
    let mut a = artifact(Architecture::Mlp);
    a.tensors
        .insert("conv9.weight".into(), Tensor::new(vec![1], vec![0.0]));
    let err = Artifact::new(a.meta, a.tensors).unwrap_err();
    assert!(matches!(err, ModelError::UnusedTensor { ref name, .. } if name == "conv9.weight"));
}

#[test]
fn bad_json_names_model_json() {
    let dir = tempfile::tempdir().unwrap();
    artifact(Architecture::Mlp).save(dir.path()).unwrap();
    std::fs::write(
        dir.path().join("model.json"),
        b"{\"format_version\": 1, \"architecture\": \"rnn\"}",
    )
    .unwrap();
    let err = Artifact::load(dir.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ModelError::Json { .. }));
    assert!(msg.contains("model.json") && msg.contains("rnn"), "{msg}");
}

#[test]
fn newer_format_version_asks_for_an_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.json"), b"{\"format_version\": 99}").unwrap();
    let err = Artifact::load(dir.path()).unwrap_err();
    assert!(err.to_string().contains("upgrade"), "{err}");
}

#[test]
fn missing_directory_names_the_path() {
    let err = Artifact::load("/nonexistent/model/1").unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/model/1/model.json"),
        "{err}"
    );
}

#[test]
fn corrupt_weights_file_is_a_safetensors_error() {
    let dir = tempfile::tempdir().unwrap();
    artifact(Architecture::Mlp).save(dir.path()).unwrap();
    std::fs::write(dir.path().join("model.safetensors"), b"garbage").unwrap();
    let err = Artifact::load(dir.path()).unwrap_err();
    assert!(matches!(err, ModelError::Safetensors { .. }), "{err}");
}

#[test]
fn wrong_input_length_is_an_error() {
    let model = Model::from_artifact(&artifact(Architecture::Mlp)).unwrap();
    let err = model
        .predict_proba(&[0.0; 100], 1, &mut Vec::new())
        .unwrap_err();
    assert!(err.to_string().contains("expected batch 1 x 784"), "{err}");
}

/// A two-class model over a 2-value input, small enough to compute by hand.
fn tiny_meta(layers: Vec<LayerSpec>, shape: Vec<usize>) -> ModelMeta {
    let mut meta = ModelMeta::new(Architecture::Mlp);
    meta.layers = layers;
    meta.input = InputSpec::pixels(shape);
    meta.class_names = vec!["a".into(), "b".into()];
    meta
}

fn tensors(entries: &[(&str, Vec<usize>, Vec<f32>)]) -> BTreeMap<String, Tensor> {
    entries
        .iter()
        .map(|(n, s, d)| (n.to_string(), Tensor::new(s.clone(), d.clone())))
        .collect()
}

#[test]
fn dense_forward_matches_hand_computation() {
    let meta = tiny_meta(
        vec![
            LayerSpec::dense("h", 2, 2, Activation::Relu),
            LayerSpec::dense("o", 2, 2, Activation::None),
        ],
        vec![2],
    );
    let t = tensors(&[
        // h = relu([[1,2],[-1,1]] x + [0, -1])
        ("h.weight", vec![2, 2], vec![1., 2., -1., 1.]),
        ("h.bias", vec![2], vec![0., -1.]),
        // o = [[1,0],[0,3]] h + [0.5, 0]
        ("o.weight", vec![2, 2], vec![1., 0., 0., 3.]),
        ("o.bias", vec![2], vec![0.5, 0.]),
    ]);
    let model = Model::from_artifact(&Artifact::new(meta, t).unwrap()).unwrap();
    // x = [1, 1]: h = relu([3, -1]) = [3, 0]; o = [3.5, 0]
    // x = [0, 2]: h = relu([4, 1]) = [4, 1]; o = [4.5, 3]
    let mut logits = Vec::new();
    model.logits(&[1., 1., 0., 2.], 2, &mut logits).unwrap();
    assert_eq!(logits, vec![3.5, 0., 4.5, 3.]);

    let mut p = Vec::new();
    model.predict_proba(&[1., 1.], 1, &mut p).unwrap();
    let expected = 1.0 / (1.0 + (-3.5f32).exp());
    assert!(
        (p[0] - expected).abs() < 1e-6 && (p[1] - (1.0 - expected)).abs() < 1e-6,
        "{p:?}"
    );
    assert_eq!(model.predict(&[1., 1., 0., 2.], 2).unwrap(), vec![0, 0]);
}

#[test]
fn conv_pool_forward_matches_hand_computation() {
    // 1×3×3 input -> conv 2×2 (2 filters) -> relu -> 2×2 -> maxpool 2 -> 2 values -> dense 2.
    let meta = tiny_meta(
        vec![
            LayerSpec::conv("c", 1, 2, 2),
            LayerSpec::MaxPool2d { size: 2 },
            LayerSpec::Flatten,
            LayerSpec::dense("o", 2, 2, Activation::None),
        ],
        vec![1, 3, 3],
    );
    let t = tensors(&[
        // filter 0 = [[1,0],[0,1]] (diagonal sum), filter 1 = [[0,0],[0,-1]] (minus bottom-right)
        (
            "c.weight",
            vec![2, 1, 2, 2],
            vec![1., 0., 0., 1., 0., 0., 0., -1.],
        ),
        ("c.bias", vec![2], vec![0., 10.]),
        ("o.weight", vec![2, 2], vec![1., 0., 1., 1.]),
        ("o.bias", vec![2], vec![0., 0.]),
    ]);
    let model = Model::from_artifact(&Artifact::new(meta, t).unwrap()).unwrap();
    // image [[1,2,3],[4,5,6],[7,8,9]]
    // filter 0: [[1+5, 2+6],[4+8, 5+9]] = [[6,8],[12,14]] -> max 14
    // filter 1: 10 - [[5,6],[8,9]] = [[5,4],[2,1]] -> max 5
    // o = [14, 19]
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let mut logits = Vec::new();
    model.logits(&x, 1, &mut logits).unwrap();
    assert_eq!(logits, vec![14., 19.]);
}

#[test]
fn padded_conv_keeps_the_spatial_size() {
    let meta = tiny_meta(
        vec![
            LayerSpec::Conv2d {
                name: "c".into(),
                in_channels: 1,
                out_channels: 1,
                kernel_size: 3,
                padding: 1,
                activation: Activation::None,
            },
            LayerSpec::Flatten,
            LayerSpec::dense("o", 4, 2, Activation::None),
        ],
        vec![2, 2],
    );
    let box_filter = vec![1.0; 9];
    let t = tensors(&[
        ("c.weight", vec![1, 1, 3, 3], box_filter),
        ("c.bias", vec![1], vec![0.]),
        // o0 = first conv output, o1 = last
        ("o.weight", vec![2, 4], vec![1., 0., 0., 0., 0., 0., 0., 1.]),
        ("o.bias", vec![2], vec![0., 0.]),
    ]);
    let model = Model::from_artifact(&Artifact::new(meta, t).unwrap()).unwrap();
    // Every 3×3 window over a zero-padded 2×2 covers the whole image: sum = 10.
    let mut logits = Vec::new();
    model.logits(&[1., 2., 3., 4.], 1, &mut logits).unwrap();
    assert_eq!(logits, vec![10., 10.]);
}

#[test]
fn layer_chain_errors_say_what_to_fix() {
    let cases: Vec<(Vec<LayerSpec>, Vec<usize>, &str)> = vec![
        (
            vec![LayerSpec::dense("o", 4, 2, Activation::None)],
            vec![2, 2],
            "add a `flatten` layer",
        ),
        (
            vec![
                LayerSpec::Flatten,
                LayerSpec::dense("o", 5, 2, Activation::None),
            ],
            vec![2, 2],
            "expects 5 inputs but the previous layer gives 4",
        ),
        (
            vec![
                LayerSpec::Flatten,
                LayerSpec::dense("o", 4, 3, Activation::None),
            ],
            vec![2, 2],
            "one value per class_names entry (2)",
        ),
        (
            vec![LayerSpec::conv("c", 3, 2, 2)],
            vec![1, 2, 2],
            "expects 3 input channels but gets 1",
        ),
        (
            vec![LayerSpec::conv("c", 1, 2, 5)],
            vec![1, 2, 2],
            "does not fit a 2x2 input",
        ),
        (vec![], vec![1, 1, 1, 1], "1 to 3 dimensions"),
    ];
    for (layers, shape, expected) in cases {
        let meta = tiny_meta(layers, shape);
        let t = patterned(&meta);
        let err = Model::from_artifact(&Artifact::new(meta, t).unwrap()).unwrap_err();
        assert!(
            err.to_string().contains(expected),
            "{err} should contain {expected}"
        );
    }
}

#[test]
fn model_json_uses_the_documented_field_names() {
    let json: serde_json::Value = serde_json::to_value(&artifact(Architecture::Cnn).meta).unwrap();
    assert_eq!(json["architecture"], "cnn");
    assert_eq!(json["input"]["shape"], serde_json::json!([1, 28, 28]));
    assert_eq!(json["input"]["dtype"], "uint8");
    assert_eq!(json["class_names"][9], "Ankle boot");
    assert_eq!(json["layers"][0]["type"], "conv2d");
    assert_eq!(json["layers"][0]["kernel_size"], 3);
    for key in ["test_accuracy", "train_accuracy", "loss", "epochs"] {
        assert!(json["metrics"].get(key).is_some(), "metrics.{key}");
    }
    for key in [
        "format_version",
        "data_digest",
        "trainer_version",
        "created",
    ] {
        assert!(json.get(key).is_some(), "{key}");
    }
}
