//! Training on a slice of the real Fashion-MNIST data: it learns, it is deterministic, resume
//! continues exactly, and the artifact it writes predicts what the trainer evaluated.
//! Needs the dataset: `apt-get install dataset-fashion-mnist`.

use std::path::Path;

use wharf_model::location::Location;
use wharf_model::{Architecture, Artifact};
use wharf_trainer::data::{DEFAULT_DATA_DIR, Dataset};
use wharf_trainer::train::LrSchedule;
use wharf_trainer::train::evaluate;
use wharf_trainer::{EpochReport, TrainConfig, train};

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

fn config(out: &Path, epochs: u32, resume: bool) -> TrainConfig {
    TrainConfig {
        architecture: Architecture::Mlp,
        epochs,
        batch_size: 32,
        learning_rate: 0.001,
        lr_schedule: Default::default(),
        seed: 7,
        out: Location::Local(out.to_path_buf()),
        resume,
    }
}

#[test]
fn mlp_learns_on_a_slice_of_the_data() {
    let data = dataset(2000, 1000);
    let dir = tempfile::tempdir().unwrap();
    let mut reports: Vec<EpochReport> = Vec::new();
    let artifact = train(&config(dir.path(), 2, false), &data, |r| {
        reports.push(r.clone())
    })
    .unwrap();
    assert_eq!(reports.len(), 2);
    assert!(reports[1].loss < reports[0].loss, "{reports:?}");
    assert!(reports[1].test_accuracy > 0.5, "{reports:?}");
    assert_eq!(
        artifact.meta.metrics.test_accuracy,
        reports[1].test_accuracy
    );
    assert_eq!(artifact.meta.metrics.epochs, 2);
    assert!(artifact.meta.data_digest.starts_with("sha256:"));
    assert!(dir.path().join("checkpoint/state.json").is_file());
}

#[test]
fn same_seed_gives_identical_weights() {
    let data = dataset(500, 200);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let x = train(&config(a.path(), 1, false), &data, |_| {}).unwrap();
    let y = train(&config(b.path(), 1, false), &data, |_| {}).unwrap();
    assert_eq!(x.to_bytes().unwrap().0, y.to_bytes().unwrap().0);
    let mut other = config(b.path(), 1, false);
    other.seed = 8;
    let z = train(&other, &data, |_| {}).unwrap();
    assert_ne!(x.tensors, z.tensors);
}

#[test]
fn resume_continues_exactly_where_the_checkpoint_stopped() {
    let data = dataset(500, 200);
    let (straight, split) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let full = train(&config(straight.path(), 2, false), &data, |_| {}).unwrap();
    train(&config(split.path(), 1, false), &data, |_| {}).unwrap();
    let mut epochs = Vec::new();
    let resumed = train(&config(split.path(), 2, true), &data, |r| {
        epochs.push(r.epoch)
    })
    .unwrap();
    assert_eq!(epochs, vec![2], "only epoch 2 runs after resuming");
    assert_eq!(resumed.tensors, full.tensors);
}

/// The cosine schedule's rate comes from the step count the checkpoint holds, so a resumed
/// run still equals a straight one; and the schedule does change the result.
#[test]
fn resume_with_a_cosine_schedule_equals_a_straight_run() {
    let data = dataset(500, 200);
    let cosine = |dir: &Path, epochs, resume| TrainConfig {
        lr_schedule: LrSchedule::Cosine,
        ..config(dir, epochs, resume)
    };
    let (straight, split, constant) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let full = train(&cosine(straight.path(), 2, false), &data, |_| {}).unwrap();
    // Killed during epoch 2: the checkpoint holds epoch 1, made with the 2-epoch schedule.
    let killed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        train(&cosine(split.path(), 2, false), &data, |r| {
            assert!(r.epoch < 2, "killed in epoch 2");
        })
    }));
    assert!(killed.is_err());
    let resumed = train(&cosine(split.path(), 2, true), &data, |_| {}).unwrap();
    assert_eq!(resumed.tensors, full.tensors);
    let flat = train(&config(constant.path(), 2, false), &data, |_| {}).unwrap();
    assert_ne!(flat.tensors, full.tensors);
    let hp = full.meta.hyperparameters.unwrap();
    assert_eq!(hp.lr_schedule.as_deref(), Some("cosine"));
}

#[test]
fn resume_without_a_checkpoint_says_so() {
    let data = dataset(100, 100);
    let dir = tempfile::tempdir().unwrap();
    let err = train(&config(dir.path(), 1, true), &data, |_| {}).unwrap_err();
    assert!(
        format!("{err:#}").contains("checkpoint/state.json"),
        "{err:#}"
    );
}

#[test]
fn saved_artifact_predicts_what_the_trainer_evaluated() {
    let data = dataset(300, 300);
    let dir = tempfile::tempdir().unwrap();
    let artifact = train(&config(dir.path(), 1, false), &data, |_| {}).unwrap();
    let out = Location::Local(dir.path().to_path_buf());
    let version = wharf_trainer::output::write_artifact(&artifact, &out).unwrap();
    assert_eq!(
        version.to_string(),
        dir.path().join("1").display().to_string()
    );
    let loaded = Artifact::load(dir.path().join("1")).unwrap();
    assert_eq!(loaded.meta, artifact.meta);
    let inputs: Vec<f32> = data
        .test
        .pixels
        .iter()
        .map(|&p| p as f32 * loaded.meta.input.scale)
        .collect();
    let acc = evaluate(&loaded, &inputs, &data.test.labels).unwrap();
    assert_eq!(acc, artifact.meta.metrics.test_accuracy);
}

#[test]
fn cnn_trains_and_exports() {
    let data = dataset(256, 100);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 1, false);
    cfg.architecture = Architecture::Cnn;
    let artifact = train(&cfg, &data, |_| {}).unwrap();
    assert_eq!(artifact.meta.input.shape, vec![1, 28, 28]);
    assert!(artifact.meta.metrics.test_accuracy > 0.0);
}
