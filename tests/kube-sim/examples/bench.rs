//! Rough timings of the simulator through a real kube-rs client (a script, not a test):
//! `cargo run -p kube-sim --example bench [-- N]` (N objects, default 500).

use std::time::Instant;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(500);
    let sim = kube_sim::Simulator::start(kube_sim::Config::default()).await?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&path, None)?;
    let cfg = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&path)?,
        &KubeConfigOptions::default(),
    )
    .await?;
    let api: Api<ConfigMap> = Api::namespaced(kube::Client::try_from(cfg)?, "default");
    let pp = PatchParams::apply("bench");
    let cm = |i: usize| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{i}"), "labels": {"app": "bench", "shard": (i % 10).to_string()}},
            "data": {"payload": "x".repeat(512)}})
    };

    let t = Instant::now();
    for i in 0..n {
        api.patch(&format!("cm-{i}"), &pp, &Patch::Apply(cm(i)))
            .await?;
    }
    let create = t.elapsed();
    let t = Instant::now();
    for i in 0..n {
        api.patch(&format!("cm-{i}"), &pp, &Patch::Apply(cm(i)))
            .await?;
    }
    let noop = t.elapsed();
    let rounds = 20;
    let t = Instant::now();
    for _ in 0..rounds {
        assert_eq!(api.list(&ListParams::default()).await?.items.len(), n);
    }
    let list = t.elapsed() / rounds;
    let t = Instant::now();
    for _ in 0..rounds {
        api.list(&ListParams::default().labels("app=bench,shard in (1,2)"))
            .await?;
    }
    let list_sel = t.elapsed() / rounds;
    println!("objects: {n}");
    println!(
        "SSA create: {:.2} ms/object",
        create.as_secs_f64() * 1e3 / n as f64
    );
    println!(
        "SSA no-op:  {:.2} ms/object",
        noop.as_secs_f64() * 1e3 / n as f64
    );
    println!("list all:   {:.1} ms", list.as_secs_f64() * 1e3);
    println!(
        "list with selector (1/5 match): {:.1} ms",
        list_sel.as_secs_f64() * 1e3
    );
    sim.shutdown().await;
    Ok(())
}
