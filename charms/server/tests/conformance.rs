//! Conformance with the inference clients users already have: NVIDIA's `tritonclient` (HTTP with
//! binary and JSON tensors, gRPC), KServe's `kserve` clients (V2 REST and gRPC) and TF Serving's
//! `tensorflow-serving-api` (gRPC PredictionService, with TensorFlow's tensor helpers), from PyPI,
//! against a wharf-server on loopback serving an MLP trained here on real Fashion-MNIST images;
//! every client must get the classes wharf's own forward pass predicts for known test images.
//!
//! Needs WHARF_CONFORMANCE_PYTHON: a python with `tritonclient[http,grpc]`, `kserve`,
//! `tensorflow-serving-api` and `tensorflow` (scripts/test.sh installs them into
//! target/conformance-venv), and the dataset
//! (`apt-get install dataset-fashion-mnist`). WHARF_SKIP_CONFORMANCE=1 skips it loudly.

mod common;

use std::path::Path;

use wharf_model::location::Location;
use wharf_model::{Architecture, Model};
use wharf_trainer::data::{DEFAULT_DATA_DIR, Dataset};
use wharf_trainer::{TrainConfig, train};

/// Test images sent by every client.
const IMAGES: usize = 16;

// Not a tokio test: the trainer runs its own runtime for its output, and that cannot nest.
#[test]
fn tritonclient_and_kserve_clients_get_the_models_classes() {
    if std::env::var("WHARF_SKIP_CONFORMANCE").as_deref() == Ok("1") {
        eprintln!(
            "SKIPPED: WHARF_SKIP_CONFORMANCE=1 (no real client was run against wharf-server)"
        );
        return;
    }
    let python = std::env::var("WHARF_CONFORMANCE_PYTHON").unwrap_or_else(|_| {
        panic!(
            "set WHARF_CONFORMANCE_PYTHON to a python with tritonclient[http,grpc], kserve and \
             tensorflow-serving-api \
             (scripts/test.sh does), or WHARF_SKIP_CONFORMANCE=1 to skip this test"
        )
    });
    let mut data = Dataset::load(Path::new(DEFAULT_DATA_DIR)).unwrap_or_else(|e| {
        panic!("this test needs Fashion-MNIST: apt-get install dataset-fashion-mnist ({e:#})")
    });
    data.train.truncate(3000);
    data.test.truncate(500);

    // A real model: the trainer's MLP, one epoch on 3000 images (a few seconds).
    let repo = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        architecture: Architecture::Mlp,
        epochs: 1,
        batch_size: 32,
        learning_rate: 0.001,
        lr_schedule: Default::default(),
        seed: 7,
        out: Location::Local(work.path().to_path_buf()),
        resume: false,
    };
    let artifact = train(&config, &data, |_| {}).expect("the trainer trains");
    artifact.save(repo.path().join("fashion/1")).unwrap();

    // What wharf's own forward pass says about the first test images; the model must have learnt.
    let pixels = &data.test.pixels[..IMAGES * 784];
    let inputs: Vec<f32> = pixels
        .iter()
        .map(|&p| p as f32 * artifact.meta.input.scale)
        .collect();
    let mut probabilities = Vec::new();
    Model::from_artifact(&artifact)
        .unwrap()
        .predict_proba(&inputs, IMAGES, &mut probabilities)
        .unwrap();
    let expected = wharf_server::infer::classes(&probabilities, 10);
    let right = expected
        .iter()
        .zip(&data.test.labels)
        .filter(|(p, l)| **p == i64::from(**l))
        .count();
    assert!(
        right >= IMAGES / 2,
        "the trained model got only {right}/{IMAGES} test images right"
    );
    let images = work.path().join("images.u8");
    std::fs::write(&images, pixels).unwrap();
    // Our TF Serving protos as build.rs compiled them: the tfserving_grpc family checks each of
    // their messages, fields, enums and RPCs against TensorFlow's own descriptors.
    let descriptors = work.path().join("descriptors.bin");
    std::fs::write(
        &descriptors,
        include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin")),
    )
    .unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run_clients(
        &python,
        repo.path(),
        &images,
        &descriptors,
        &expected,
    ));
}

async fn run_clients(
    python: &str,
    repo: &Path,
    images: &Path,
    descriptors: &Path,
    expected: &[i64],
) {
    let s = common::serve(repo, |c| {
        c.grpc_addr = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
    })
    .await;
    let running = s.running.as_ref().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/clients.py");
    let expected_text: Vec<String> = expected.iter().map(|c| c.to_string()).collect();
    // One process per family: tritonclient and kserve both register the `inference` protos in
    // protobuf's default pool, and one python process cannot hold both.
    // tfserving_grpc: TF Serving's client on the same gRPC port.
    for family in ["triton_http", "triton_grpc", "kserve", "tfserving_grpc"] {
        let mut command = tokio::process::Command::new(python);
        command
            .arg(&script)
            .arg(running.addr.to_string())
            .arg(running.grpc_addr.unwrap().to_string())
            .arg("fashion")
            .arg(images)
            .arg(expected_text.join(","))
            .arg(family)
            .env("WHARF_TF_DESCRIPTORS", descriptors);
        let out = tokio::time::timeout(std::time::Duration::from_secs(300), command.output())
            .await
            .expect("the clients finish within 5 minutes")
            .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("{stdout}");
        assert!(
            out.status.success(),
            "the {family} clients failed:\n{stdout}\n{stderr}"
        );
        assert!(stdout.contains("all client checks passed"), "{stdout}");
    }
}
