//! gRPC load generator for scripts/bench-server.sh: CONCURRENCY workers, each on its own HTTP/2
//! connection, send V2 ModelInfer with `raw_input_contents` back to back (closed loop, like oha)
//! for SECONDS and print "req/s p50_ms p99_ms errors".
//!
//! `grpc_load ADDR MODEL IMAGE_F32_FILE CONCURRENCY SECONDS` (the file holds 784 little-endian f32)
//!
//! With `WHARF_LOAD_HTTP=URL` it POSTs the V2 JSON request for the same image to URL instead
//! (keep-alive, one connection per worker), or with `WHARF_LOAD_BINARY=1` too the binary tensor
//! data form: the same generator for every protocol, where oha is not installed.

use std::time::{Duration, Instant};

use anyhow::Context;
use wharf_server::grpc::proto::ModelInferRequest;
use wharf_server::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use wharf_server::grpc::proto::model_infer_request::InferInputTensor;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, model, image, concurrency, seconds] =
        <[String; 5]>::try_from(args).map_err(|_| {
            anyhow::anyhow!("usage: grpc_load ADDR MODEL IMAGE_F32_FILE CONCURRENCY SECONDS")
        })?;
    let raw = std::fs::read(&image).with_context(|| format!("cannot read {image}"))?;
    anyhow::ensure!(
        raw.len() == 784 * 4,
        "{image}: expected 3136 bytes (784 f32)"
    );
    let concurrency: usize = concurrency.parse()?;
    let duration = Duration::from_secs_f64(seconds.parse()?);
    let request = ModelInferRequest {
        model_name: model,
        inputs: vec![InferInputTensor {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![1, 784],
            ..Default::default()
        }],
        raw_input_contents: vec![raw],
        ..Default::default()
    };
    let deadline = Instant::now() + duration;
    let mut workers = Vec::new();
    if let Ok(url) = std::env::var("WHARF_LOAD_HTTP") {
        let image: Vec<f32> = request.raw_input_contents[0]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let (body, header_length) = if std::env::var("WHARF_LOAD_BINARY").is_ok() {
            let header = serde_json::json!({"inputs": [{"name": "input", "shape": [1, 784],
                "datatype": "FP32", "parameters": {"binary_data_size": 3136}}]})
            .to_string();
            let mut body = header.clone().into_bytes();
            body.extend_from_slice(&request.raw_input_contents[0]);
            (body, Some(header.len()))
        } else {
            let body = serde_json::json!({"inputs": [{"name": "input", "shape": [1, 784],
                "datatype": "FP32", "data": image}]});
            (body.to_string().into_bytes(), None)
        };
        for _ in 0..concurrency {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()?;
            let (url, body) = (url.clone(), body.clone());
            workers.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                while Instant::now() < deadline {
                    let started = Instant::now();
                    let mut post = client.post(&url).body(body.clone());
                    if let Some(length) = header_length {
                        post = post.header("inference-header-content-length", length);
                    }
                    let ok = match post.send().await {
                        Ok(res) => res.status().is_success() && res.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if ok {
                        latencies.push(started.elapsed());
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            }));
        }
    }
    for _ in 0..(if workers.is_empty() { concurrency } else { 0 }) {
        let mut client = GrpcInferenceServiceClient::connect(format!("http://{addr}")).await?;
        let request = request.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let started = Instant::now();
                match client.model_infer(request.clone()).await {
                    Ok(_) => latencies.push(started.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (l, e) = worker.await?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64().max(duration.as_secs_f64());
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{:.0} {:.3} {:.3} {errors}",
        latencies.len() as f64 / elapsed,
        pct(0.5),
        pct(0.99)
    );
    Ok(())
}
