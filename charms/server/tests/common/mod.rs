//! Shared test fixtures: artifacts with random weights written through wharf-model's own API
//! (so no trainer is needed), servers started in-process on port 0, and a few request builders.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use wharf_model::{Architecture, Artifact, Model, ModelMeta, Tensor};
use wharf_server::artifact::ArtifactLoader;
use wharf_server::predictor::{LoadedModel, Loader, Predictor};
use wharf_server::server::{RunningServer, ServerConfig, start};

pub const INPUT_LEN: usize = 784;

/// xorshift64*: deterministic weights and pixels without a rand dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    pub fn pixels(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next_u64() >> 56) as u8).collect()
    }
}

/// An MLP artifact with random weights; different seeds give different predictions.
pub fn artifact(seed: u64) -> Artifact {
    let meta = ModelMeta::new(Architecture::Mlp);
    let mut rng = Rng::new(seed);
    let tensors: BTreeMap<String, Tensor> = meta
        .parameters()
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let data = (0..n).map(|_| rng.unit() * 0.1).collect();
            (name, Tensor::new(shape, data))
        })
        .collect();
    Artifact::new(meta, tensors).expect("random weights match the MLP layers")
}

/// Writes version `version` of `model` under `repo`, atomically (hidden dir + rename), as a
/// trainer should.
pub fn publish(repo: &Path, model: &str, version: u64, seed: u64) -> Artifact {
    let art = artifact(seed);
    let staging = repo.join(model).join(format!(".tmp-{version}"));
    art.save(&staging).unwrap();
    std::fs::rename(&staging, repo.join(model).join(version.to_string())).unwrap();
    art
}

/// The reference answer: wharf-model's own forward pass.
pub fn reference(art: &Artifact, inputs: &[f32], rows: usize) -> Vec<f32> {
    let model = Model::from_artifact(art).unwrap();
    let mut out = Vec::new();
    model.predict_proba(inputs, rows, &mut out).unwrap();
    out
}

pub fn scaled(pixels: &[u8]) -> Vec<f32> {
    pixels.iter().map(|&p| p as f32 * (1.0 / 255.0)).collect()
}

/// Starts a server on 127.0.0.1:0 and waits until it is ready.
pub async fn serve(repo: &Path, tweak: impl FnOnce(&mut ServerConfig)) -> Server {
    serve_with(repo, Arc::new(ArtifactLoader), tweak, true).await
}

pub async fn serve_with(
    repo: &Path,
    loader: Arc<dyn Loader>,
    tweak: impl FnOnce(&mut ServerConfig),
    wait_ready: bool,
) -> Server {
    let mut config = ServerConfig::new(repo.to_path_buf());
    config.poll_interval = Duration::from_millis(100);
    tweak(&mut config);
    let running = start(config, loader).await.expect("server starts");
    let server = Server {
        base: format!("http://{}", running.addr),
        client: reqwest::Client::new(),
        running: Some(running),
    };
    if wait_ready {
        server.wait_until(|s| s.is_ready()).await;
    }
    server
}

pub struct Server {
    pub base: String,
    pub client: reqwest::Client,
    pub running: Option<RunningServer>,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn state(&self) -> &wharf_server::server::AppState {
        &self.running.as_ref().unwrap().state
    }

    /// Polls the server state (not HTTP) until `done`, failing after 10 s.
    pub async fn wait_until(&self, done: impl Fn(&wharf_server::server::AppState) -> bool) {
        for _ in 0..1000 {
            if done(self.state()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the server did not reach the expected state in 10 s");
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let res = self.client.get(self.url(path)).send().await.unwrap();
        decode(res).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let res = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        decode(res).await
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let res = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        decode(res).await
    }

    pub async fn stop(mut self) {
        self.running.take().unwrap().shutdown().await.unwrap();
    }
}

/// Status and JSON body; every response of this server must be JSON (except /metrics).
pub async fn decode(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = res.text().await.unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "status {status}: content-type {content_type:?}, body {text}"
    );
    let value: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {text}"));
    if status >= 400 {
        assert!(
            value["error"].is_string(),
            "error responses carry an error message: {value}"
        );
    }
    (status, value)
}

/// A V2 request for `rows` images given as scaled FP32, flat.
pub fn v2_fp32(inputs: &[f32], rows: usize) -> Value {
    json!({
        "id": "req-1",
        "inputs": [{ "name": "input", "shape": [rows, INPUT_LEN], "datatype": "FP32", "data": inputs }]
    })
}

pub fn probabilities(response: &Value) -> Vec<f32> {
    let outputs = response["outputs"].as_array().expect("outputs");
    let p = outputs
        .iter()
        .find(|o| o["name"] == "probabilities")
        .expect("probabilities output");
    p["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

/// A loader whose `load` blocks until [`Gate::open`]; lets tests see the not-ready state.
pub struct Gate {
    open: Mutex<bool>,
    changed: Condvar,
}

impl Gate {
    pub fn closed() -> Arc<Gate> {
        Arc::new(Gate {
            open: Mutex::new(false),
            changed: Condvar::new(),
        })
    }
    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.changed.notify_all();
    }
    pub fn close(&self) {
        *self.open.lock().unwrap() = false;
    }
    pub fn pass(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.changed.wait(open).unwrap();
        }
    }
}

pub struct GatedLoader(pub Arc<Gate>);

impl Loader for GatedLoader {
    fn load(&self, dir: &Path) -> Result<LoadedModel, String> {
        self.0.pass();
        ArtifactLoader.load(dir)
    }
}

/// A loader whose models wait on a gate inside every forward pass and count the calls.
pub struct SlowModelLoader {
    pub gate: Arc<Gate>,
    pub entered: Arc<std::sync::atomic::AtomicUsize>,
}

struct SlowModel {
    inner: Arc<dyn Predictor>,
    gate: Arc<Gate>,
    entered: Arc<std::sync::atomic::AtomicUsize>,
}

impl Predictor for SlowModel {
    fn input_len(&self) -> usize {
        self.inner.input_len()
    }
    fn num_classes(&self) -> usize {
        self.inner.num_classes()
    }
    fn predict_proba(
        &self,
        inputs: &[f32],
        batch: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), String> {
        self.entered
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // The server runs a lone request inline on a runtime worker. Held at the gate for as
        // long as a test likes, that worker would starve the task in its LIFO slot (which no other
        // worker may steal) and hang the test; block_in_place hands its queue to another thread.
        // Off a multi-thread runtime worker (the batch thread) it just runs the closure.
        let on_worker = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if on_worker {
            tokio::task::block_in_place(|| self.gate.pass());
        } else {
            self.gate.pass();
        }
        self.inner.predict_proba(inputs, batch, out)
    }
}

impl Loader for SlowModelLoader {
    fn load(&self, dir: &Path) -> Result<LoadedModel, String> {
        let loaded = ArtifactLoader.load(dir)?;
        Ok(LoadedModel {
            predictor: Arc::new(SlowModel {
                inner: loaded.predictor,
                gate: self.gate.clone(),
                entered: self.entered.clone(),
            }),
            info: loaded.info,
        })
    }
}

/// A loader whose models panic on every forward pass.
pub struct PanickingLoader;

struct Panicking(Arc<dyn Predictor>);

impl Predictor for Panicking {
    fn input_len(&self) -> usize {
        self.0.input_len()
    }
    fn num_classes(&self) -> usize {
        self.0.num_classes()
    }
    fn predict_proba(&self, _: &[f32], _: usize, _: &mut Vec<f32>) -> Result<(), String> {
        panic!("deliberate test panic in the forward pass")
    }
}

impl Loader for PanickingLoader {
    fn load(&self, dir: &Path) -> Result<LoadedModel, String> {
        let loaded = ArtifactLoader.load(dir)?;
        Ok(LoadedModel {
            predictor: Arc::new(Panicking(loaded.predictor)),
            info: loaded.info,
        })
    }
}
