//! Shared test setup: start a simulator and build a real kube-rs client from its generated kubeconfig.
#![allow(dead_code)]

use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_sim::{Config, Simulator};

/// A simulator with short delays, so each test stays well under two seconds.
pub fn fast_config() -> Config {
    Config {
        readiness_delay: Duration::from_millis(50),
        crd_established_delay: Duration::from_millis(50),
        namespace_termination_delay: Duration::from_millis(100),
        ..Config::default()
    }
}

pub async fn start() -> Simulator {
    Simulator::start(fast_config())
        .await
        .expect("simulator starts")
}

/// A client reading the kubeconfig `write_kubeconfig` generated (admin when `token` is None).
pub async fn client(sim: &Simulator, token: Option<&str>) -> kube::Client {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&path, token)
        .expect("kubeconfig written");
    let kc = Kubeconfig::read_from(&path).expect("kubeconfig parses");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig is usable");
    kube::Client::try_from(cfg).expect("client builds")
}

/// Like `client`, without kube-rs's default retry of 429/503/504 (15 tries, exponential backoff):
/// for tests of answers a client should see at once, as wharf's own client does.
pub async fn client_without_retry(sim: &Simulator) -> kube::Client {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&path, None)
        .expect("kubeconfig written");
    let kc = Kubeconfig::read_from(&path).expect("kubeconfig parses");
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig is usable");
    cfg.default_retry = false;
    kube::Client::try_from(cfg).expect("client builds")
}

/// The API error's Status, or a panic naming what happened instead.
pub fn api_err<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> kube::core::Status {
    match r {
        Err(kube::Error::Api(s)) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Poll `f` every 20 ms until it returns Some, for up to 1.5 s.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
