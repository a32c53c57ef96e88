//! `--model-repository s3://...` against a real S3-compatible server (moto_server): versions are
//! downloaded and served, a new version uploaded to the bucket swaps in without a failed
//! request (and not before its model.json exists), a deleted one is unloaded, and a bad bucket fails the start with the
//! URI and the fix, never the secret. Needs moto_server (see wharf_model::moto).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use wharf_model::location::Location;
use wharf_model::moto::Moto;
use wharf_model::{Artifact, META_FILE, WEIGHTS_FILE};
use wharf_server::artifact::ArtifactLoader;
use wharf_server::server::{ServerConfig, start};

/// Uploads an artifact as `<repo>/<model>/<version>/`; `with_meta: false` leaves the version
/// incomplete (weights only), as a trainer midway through writing it.
async fn upload(repo: &Location, model: &str, version: u64, art: &Artifact, with_meta: bool) {
    let dir = repo.join(&format!("{model}/{version}"));
    let (weights, meta) = art.to_bytes().unwrap();
    dir.put(WEIGHTS_FILE, weights).await.unwrap();
    if with_meta {
        dir.put(META_FILE, meta).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_from_s3_and_swaps_in_an_uploaded_version() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("models");
    let repo = Location::parse_with("s3://models/repo", &moto.config()).unwrap();
    let (v1, v2) = (artifact(1), artifact(2));
    upload(&repo, "fashion", 1, &v1, true).await;

    let cache = tempfile::tempdir().unwrap();
    let remote = repo.clone();
    let s = Arc::new(
        serve(cache.path(), move |c| {
            c.remote = Some(remote);
            c.poll_interval = Duration::from_millis(50);
        })
        .await,
    );
    let inputs = scaled(&Rng::new(3).pixels(INPUT_LEN));
    let body = v2_fp32(&inputs, 1);
    let (code, res) = s.post("/v2/models/fashion/infer", &body).await;
    assert_eq!(code, 200, "{res}");
    assert_eq!(res["model_version"], "1");
    assert_eq!(probabilities(&res), reference(&v1, &inputs, 1));

    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (s, body, stop) = (s.clone(), body.clone(), stop.clone());
        tokio::spawn(async move {
            let mut codes = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                codes.push(s.post("/v2/models/fashion/infer", &body).await.0);
            }
            codes
        })
    };

    // Weights without model.json: an upload in progress, not a version yet.
    upload(&repo, "fashion", 2, &v2, false).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, res) = s.post("/v2/models/fashion/infer", &body).await;
    assert_eq!(
        res["model_version"], "1",
        "an incomplete version is not served"
    );

    upload(&repo, "fashion", 2, &v2, true).await;
    s.wait_until(|st| {
        st.repo
            .resolve("fashion", None)
            .is_ok_and(|v| v.version == 2)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let codes = client.await.unwrap();
    assert!(codes.len() > 5, "the client barely ran ({})", codes.len());
    assert!(
        codes.iter().all(|&c| c == 200),
        "a request failed during the swap: {codes:?}"
    );
    let (code, res) = s.post("/v2/models/fashion/infer", &body).await;
    assert_eq!(code, 200, "{res}");
    assert_eq!(res["model_version"], "2");
    assert_eq!(probabilities(&res), reference(&v2, &inputs, 1));

    // A version deleted from the bucket leaves the cache and is unloaded; v1 serves again.
    for file in [META_FILE, WEIGHTS_FILE] {
        repo.join("fashion/2").delete(file).await.unwrap();
    }
    s.wait_until(|st| {
        st.repo
            .resolve("fashion", None)
            .is_ok_and(|v| v.version == 1)
    })
    .await;
    assert!(!cache.path().join("fashion/2").exists());
    let (code, res) = s.post("/v2/models/fashion/infer", &body).await;
    assert_eq!(code, 200, "{res}");
    assert_eq!(probabilities(&res), reference(&v1, &inputs, 1));
}

#[tokio::test]
async fn a_missing_bucket_fails_the_start_with_the_uri_and_the_fix() {
    let Some(moto) = Moto::start() else { return };
    let config = moto.config();
    let secret = config.secret_access_key.clone().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut server = ServerConfig::new(cache.path().to_path_buf());
    server.remote = Some(Location::parse_with("s3://no-such-bucket/repo", &config).unwrap());
    let err = match start(server, Arc::new(ArtifactLoader)).await {
        Ok(_) => panic!("the server started on a missing bucket"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("s3://no-such-bucket/repo"), "{err}");
    assert!(
        err.contains("bucket 'no-such-bucket' does not exist"),
        "{err}"
    );
    assert!(!err.contains(&secret), "{err}");
}

#[test]
fn an_s3_repository_without_credentials_is_refused_with_the_variables_to_set() {
    use clap::Parser;
    let cli = wharf_server::cli::Cli::try_parse_from([
        "wharf-server",
        "serve",
        "--model-repository",
        "s3://models/repo",
    ])
    .unwrap();
    let wharf_server::cli::Command::Serve(args) = cli.command else {
        panic!("parsed as serve")
    };
    // The test process has no AWS_ACCESS_KEY_ID unless a developer exported one.
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        return;
    }
    let err = args.config().unwrap_err().to_string();
    assert!(
        err.contains("s3://models/repo: AWS_ACCESS_KEY_ID is not set"),
        "{err}"
    );
}
