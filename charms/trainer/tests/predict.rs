//! `wharf-trainer predict`: the latest version `train` wrote predicts the first test images, with
//! the accuracy the trainer measured on the same images; the command writes the result where a
//! pipeline step's output parameter is read from. Needs the dataset:
//! `apt-get install dataset-fashion-mnist`.

use std::path::Path;

use wharf_model::Architecture;
use wharf_model::location::Location;
use wharf_trainer::data::{DEFAULT_DATA_DIR, Dataset};
use wharf_trainer::predict::predict;
use wharf_trainer::train::{evaluate, scale};
use wharf_trainer::{TrainConfig, output, train};

fn dataset(train_n: usize, test_n: usize) -> Dataset {
    let mut d = Dataset::load(Path::new(DEFAULT_DATA_DIR)).unwrap_or_else(|e| {
        panic!(
            "these tests need Fashion-MNIST: run `apt-get install dataset-fashion-mnist` ({e:#})"
        )
    });
    d.train.truncate(train_n);
    d.test.truncate(test_n);
    d
}

fn config(out: &Path, seed: u64) -> TrainConfig {
    TrainConfig {
        architecture: Architecture::Mlp,
        epochs: 1,
        batch_size: 32,
        learning_rate: 0.001,
        lr_schedule: Default::default(),
        seed,
        out: Location::Local(out.to_path_buf()),
        resume: false,
    }
}

#[test]
fn the_latest_version_predicts_with_the_accuracy_the_trainer_measured() {
    let data = dataset(1000, 64);
    let dir = tempfile::tempdir().unwrap();
    let out = Location::Local(dir.path().to_path_buf());
    let first = train(&config(dir.path(), 1), &data, |_| {}).unwrap();
    output::write_artifact(&first, &out).unwrap();
    let second = train(&config(dir.path(), 2), &data, |_| {}).unwrap();
    output::write_artifact(&second, &out).unwrap();

    let report = predict(&out, &data.test, 64).unwrap();
    assert!(
        report.model.ends_with("/2"),
        "the latest version: {}",
        report.model
    );
    assert_eq!(report.count, 64);
    assert_eq!(report.predictions.len(), 64);
    let inputs = scale(&data.test.pixels, second.meta.input.scale);
    let measured = evaluate(&second, &inputs, &data.test.labels).unwrap();
    assert!(
        (report.accuracy - measured).abs() < 1e-9,
        "{} vs {measured}",
        report.accuracy
    );
    assert!(
        report.accuracy > 0.5,
        "one epoch on 1000 images learns: {report:?}"
    );
    let names = &second.meta.class_names;
    for p in &report.predictions {
        assert_eq!(p.label, names[usize::from(data.test.labels[p.index])]);
        assert!(names.contains(&p.predicted), "{p:?}");
    }
    let right = report
        .predictions
        .iter()
        .filter(|p| p.label == p.predicted)
        .count();
    assert_eq!(right, report.correct);
}

#[test]
fn predict_without_a_trained_version_says_to_train_first() {
    let data = dataset(0, 4);
    let dir = tempfile::tempdir().unwrap();
    let err = predict(&Location::Local(dir.path().to_path_buf()), &data.test, 4).unwrap_err();
    assert!(err.to_string().contains("run train first"), "{err:#}");
}

#[test]
fn the_command_prints_the_report_and_writes_it_to_out_creating_its_directory() {
    let data = dataset(300, 10);
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let artifact = train(&config(&models, 3), &data, |_| {}).unwrap();
    output::write_artifact(&artifact, &Location::Local(models.clone())).unwrap();
    let file = dir.path().join("outputs/parameters/predictions");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wharf-trainer"))
        .args(["predict", "--count", "5", "--model-dir"])
        .arg(&models)
        .arg("--out")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(printed, written);
    assert_eq!(written["count"], 5);
    assert_eq!(written["predictions"].as_array().unwrap().len(), 5);
}
