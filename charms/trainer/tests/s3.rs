//! `wharf-trainer train` against a real S3-compatible server (moto_server): the IDX files read
//! from a bucket (gzipped and plain), the artifact and the checkpoints written there, `--resume`
//! from there, and the same weights as a local run with the same seed. Errors name the URI and
//! the fix, never the secret. Needs moto_server (see wharf_model::moto) and Fashion-MNIST.

use std::path::Path;
use std::process::{Command, Output};

use wharf_model::location::Location;
use wharf_model::moto::Moto;
use wharf_model::{Artifact, Model};
use wharf_trainer::data::{DEFAULT_DATA_DIR, Dataset};
use wharf_trainer::idx::{self, IMAGES_MAGIC, LABELS_MAGIC};
use wharf_trainer::output::block_on;

const TRAIN_N: usize = 300;
const TEST_N: usize = 100;

/// A small slice of Fashion-MNIST as the four IDX files: training images gzipped (as the
/// Debian package ships them), the rest plain, so both kinds are read from S3.
fn slice_files() -> Vec<(String, Vec<u8>)> {
    let mut d = Dataset::load(Path::new(DEFAULT_DATA_DIR)).unwrap_or_else(|e| {
        panic!("this test needs Fashion-MNIST: `apt-get install dataset-fashion-mnist` ({e:#})")
    });
    d.train.truncate(TRAIN_N);
    d.test.truncate(TEST_N);
    let images = |n: usize, pixels: &[u8]| idx::encode(IMAGES_MAGIC, &[n as u32, 28, 28], pixels);
    let labels = |l: &[u8]| idx::encode(LABELS_MAGIC, &[l.len() as u32], l);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &images(TRAIN_N, &d.train.pixels)).unwrap();
    vec![
        ("train-images-idx3-ubyte.gz".into(), gz.finish().unwrap()),
        ("train-labels-idx1-ubyte".into(), labels(&d.train.labels)),
        (
            "t10k-images-idx3-ubyte".into(),
            images(TEST_N, &d.test.pixels),
        ),
        ("t10k-labels-idx1-ubyte".into(), labels(&d.test.labels)),
    ]
}

fn trainer(moto: &Moto, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wharf-trainer"))
        .arg("train")
        .args(args)
        .args(["--model", "mlp", "--batch-size", "32", "--seed", "5"])
        .envs(moto.env())
        .env_remove("AWS_ENDPOINT_URL_S3")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("TERMINATION_MESSAGE_PATH")
        .output()
        .unwrap()
}

fn succeeded(out: &Output) -> serde_json::Value {
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "trainer failed:\n{stdout}\n{stderr}");
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "the trainer should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn predictions(artifact: &Artifact, files: &[(String, Vec<u8>)]) -> Vec<usize> {
    let pixels = idx::decode_images(Path::new("t10k"), &files[2].1)
        .unwrap()
        .pixels;
    let input: Vec<f32> = pixels
        .iter()
        .map(|&p| f32::from(p) * artifact.meta.input.scale)
        .collect();
    Model::from_artifact(artifact)
        .unwrap()
        .predict(&input, TEST_N)
        .unwrap()
}

#[test]
fn trains_from_s3_to_s3_like_a_local_run_and_resumes_there() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("wharf");
    let files = slice_files();
    let s3 = |uri: &str| Location::parse_with(uri, &moto.config()).unwrap();
    let local = tempfile::tempdir().unwrap();
    for (name, bytes) in &files {
        block_on(s3("s3://wharf/datasets/fashion").put(name, bytes.clone())).unwrap();
        std::fs::write(local.path().join(name), bytes).unwrap();
    }
    let local_data = local.path().to_str().unwrap();
    let local_out = local.path().join("out");
    let local_out = local_out.to_str().unwrap();
    let data = "s3://wharf/datasets/fashion";
    let out = "s3://wharf/models/fashion";

    let summary = succeeded(&trainer(
        &moto,
        &["--data", data, "--out", out, "--epochs", "1"],
    ));
    assert_eq!(summary["model_uri"], "s3://wharf/models/fashion/1");
    let from_s3 = block_on(s3(out).join("1").load_artifact()).unwrap();
    succeeded(&trainer(
        &moto,
        &["--data", local_data, "--out", local_out, "--epochs", "1"],
    ));
    let from_disk = Artifact::load(Path::new(local_out).join("1")).unwrap();
    assert_eq!(
        from_s3.tensors, from_disk.tensors,
        "same seed, same weights"
    );
    assert_eq!(from_s3.meta.data_digest, from_disk.meta.data_digest);
    assert_eq!(
        predictions(&from_s3, &files),
        predictions(&from_disk, &files)
    );
    assert!(
        block_on(s3(out).get("checkpoint/state.json"))
            .unwrap()
            .is_some(),
        "the checkpoint is in the bucket"
    );

    // Resume from the bucket's checkpoint: epoch 2 only, equal to a straight 2-epoch run.
    let resumed = trainer(
        &moto,
        &["--data", data, "--out", out, "--epochs", "2", "--resume"],
    );
    let summary = succeeded(&resumed);
    assert_eq!(summary["model_uri"], "s3://wharf/models/fashion/2");
    let epochs: Vec<u64> = String::from_utf8_lossy(&resumed.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["epoch"].as_u64())
        .collect();
    assert_eq!(epochs, vec![2], "only epoch 2 runs after resuming");
    let straight = local.path().join("straight");
    succeeded(&trainer(
        &moto,
        &[
            "--data",
            local_data,
            "--out",
            straight.to_str().unwrap(),
            "--epochs",
            "2",
        ],
    ));
    let resumed = block_on(s3(out).join("2").load_artifact()).unwrap();
    let straight = Artifact::load(straight.join("1")).unwrap();
    assert_eq!(resumed.tensors, straight.tensors);
}

#[test]
fn s3_errors_name_the_uri_and_the_fix_without_the_secret() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("data");
    let secret = moto.config().secret_access_key.unwrap();

    let no_keys = Command::new(env!("CARGO_BIN_EXE_wharf-trainer"))
        .args([
            "train",
            "--data",
            "s3://data/fashion",
            "--out",
            "/nonexistent",
        ])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    let err = failed(&no_keys);
    assert!(
        err.contains("s3://data/fashion: AWS_ACCESS_KEY_ID is not set"),
        "{err}"
    );

    let err = failed(&trainer(
        &moto,
        &[
            "--data",
            "s3://missing-bucket/fashion",
            "--out",
            "/nonexistent",
        ],
    ));
    assert!(err.contains("s3://missing-bucket/fashion"), "{err}");
    assert!(
        err.contains("bucket 'missing-bucket' does not exist"),
        "{err}"
    );
    assert!(!err.contains(&secret), "{err}");

    let err = failed(&trainer(
        &moto,
        &["--data", "s3://data/empty", "--out", "/nonexistent"],
    ));
    assert!(
        err.contains("s3://data/empty: neither train-images-idx3-ubyte nor"),
        "{err}"
    );

    let mut unreachable = trainer_command();
    unreachable
        .args(["--data", "s3://data/fashion", "--out", "/nonexistent"])
        .envs(moto.env())
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
    let err = failed(&unreachable.output().unwrap());
    assert!(err.contains("cannot reach http://127.0.0.1:9"), "{err}");
    assert!(!err.contains(&secret), "{err}");
}

fn trainer_command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wharf-trainer"));
    c.arg("train").env_remove("AWS_ENDPOINT_URL_S3");
    c
}
