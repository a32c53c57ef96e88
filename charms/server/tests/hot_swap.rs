//! The repository poller: new versions swap in under load without a failed request, removed
//! versions go away, and the version policies pick what they promise.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use wharf_server::repository::VersionPolicy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_swaps_in_under_load_with_zero_failed_requests() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = publish(dir.path(), "fashion", 1, 1);
    let s = Arc::new(serve(dir.path(), |c| c.poll_interval = Duration::from_millis(50)).await);
    let inputs = scaled(&Rng::new(2).pixels(INPUT_LEN));
    let body = v2_fp32(&inputs, 1);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (s, body, stop) = (s.clone(), body.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let (code, res) = s.post("/v2/models/fashion/infer", &body).await;
                    seen.push((
                        code,
                        res["model_version"].as_str().unwrap_or("").to_string(),
                        probabilities_or_empty(&res),
                    ));
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v2 = publish(dir.path(), "fashion", 2, 2);
    s.wait_until(|st| {
        st.repo
            .resolve("fashion", None)
            .is_ok_and(|v| v.version == 2)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);

    let (p1, p2) = (reference(&v1, &inputs, 1), reference(&v2, &inputs, 1));
    let mut total = 0;
    for client in clients {
        let seen = client.await.unwrap();
        total += seen.len();
        for (code, version, probs) in &seen {
            assert_eq!(*code, 200, "a request failed during the swap");
            let expected = if version == "1" { &p1 } else { &p2 };
            assert_eq!(
                probs, expected,
                "version {version} answered with another version's weights"
            );
        }
        let (_, last_version, _) = seen.last().unwrap();
        assert_eq!(
            last_version, "2",
            "the new version is served after the swap"
        );
        assert!(
            seen.iter().any(|(_, v, _)| v == "1"),
            "the old version served before the swap"
        );
    }
    assert!(total > 20, "the clients barely ran ({total} requests)");
    // The old version is unloaded under `latest`.
    assert_eq!(s.get("/v2/models/fashion/versions/1").await.0, 404);
}

fn probabilities_or_empty(res: &serde_json::Value) -> Vec<f32> {
    if res["outputs"].is_array() {
        probabilities(res)
    } else {
        Vec::new()
    }
}

#[tokio::test]
async fn removed_versions_and_models_are_unloaded() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "fashion", 1, 1);
    publish(dir.path(), "fashion", 2, 2);
    publish(dir.path(), "extra", 1, 3);
    let s = serve(dir.path(), |c| {
        c.policy = VersionPolicy::All;
        c.poll_interval = Duration::from_millis(50);
    })
    .await;
    assert_eq!(s.get("/v2/models/fashion/versions/2").await.0, 200);
    std::fs::remove_dir_all(dir.path().join("fashion/2")).unwrap();
    std::fs::remove_dir_all(dir.path().join("extra")).unwrap();
    s.wait_until(|st| st.repo.snapshot().models.len() == 1)
        .await;
    s.wait_until(|st| {
        st.repo
            .resolve("fashion", None)
            .is_ok_and(|v| v.version == 1)
    })
    .await;
    assert_eq!(s.get("/v2/models/fashion/versions/2").await.0, 404);
    assert_eq!(s.get("/v2/models/extra").await.0, 404);
    assert_eq!(s.get("/v2/models/fashion/versions/1").await.0, 200);
}

#[tokio::test]
async fn policies_choose_latest_all_or_one_version() {
    let dir = tempfile::tempdir().unwrap();
    for v in 1..=3 {
        publish(dir.path(), "fashion", v, v);
    }
    // Hidden staging directories and non-version names are ignored.
    std::fs::create_dir_all(dir.path().join("fashion/.tmp-4")).unwrap();
    std::fs::create_dir_all(dir.path().join("fashion/007")).unwrap();
    std::fs::create_dir_all(dir.path().join(".cache/1")).unwrap();
    for (policy, served) in [
        (VersionPolicy::Latest, vec![3]),
        (VersionPolicy::All, vec![1, 2, 3]),
        (VersionPolicy::Specific(2), vec![2]),
    ] {
        let s = serve(dir.path(), |c| c.policy = policy).await;
        let snapshot = s.state().repo.snapshot();
        let versions: Vec<u64> = snapshot.models["fashion"]
            .versions
            .keys()
            .copied()
            .collect();
        assert_eq!(versions, served, "{policy}");
        assert_eq!(snapshot.models.len(), 1, "hidden dirs are not models");
        s.stop().await;
    }
}

#[tokio::test]
async fn under_latest_a_broken_new_version_leaves_the_previous_one_serving() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "fashion", 1, 1);
    let s = serve(dir.path(), |c| c.poll_interval = Duration::from_millis(50)).await;
    std::fs::create_dir_all(dir.path().join("fashion/2")).unwrap();
    std::fs::write(dir.path().join("fashion/2/model.json"), "not json").unwrap();
    s.wait_until(|st| st.repo.snapshot().models["fashion"].errors.contains_key(&2))
        .await;
    let (code, res) = s
        .post(
            "/v2/models/fashion/infer",
            &v2_fp32(&vec![0.0; INPUT_LEN], 1),
        )
        .await;
    assert_eq!((code, res["model_version"].as_str()), (200, Some("1")));
    // Fixing it (a proper publish under a new number) is picked up.
    publish(dir.path(), "fashion", 3, 3);
    s.wait_until(|st| {
        st.repo
            .resolve("fashion", None)
            .is_ok_and(|v| v.version == 3)
    })
    .await;
}
