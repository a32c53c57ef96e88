//! The cost of a backup's encryption: the item pipeline `wharf backup create` runs for every item
//! (chunks in, sha256 and size counted, written to the repository through object_store) timed
//! with its age layer — the real `ItemWriter`, as a backup runs it — and without, the same steps
//! minus `crypto::encrypt`. Only this benchmark has the unencrypted path: wharf never offers an
//! unencrypted backup.
//!
//!   cargo run --release --example bench_items -- [MiB-per-item] [items] [rounds]
//!
//! scripts/bench-backup.sh runs it and prints the ratio.

use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use wharf::backup::crypto::BackupKey;
use wharf::backup::format::ItemKind;
use wharf::backup::items::ItemWriter;
use wharf::backup::repo::Repo;

const CHUNK: usize = 256 * 1024;

fn chunks(data: &Bytes) -> impl futures::Stream<Item = Result<Bytes, object_store::Error>> + use<> {
    let data = data.clone();
    let n = data.len().div_ceil(CHUNK);
    futures::stream::iter(
        (0..n).map(move |i| Ok(data.slice(i * CHUNK..((i + 1) * CHUNK).min(data.len())))),
    )
}

/// The items through the real, encrypting writer.
async fn encrypted(repo: &Repo, name: &str, data: &Bytes, items: usize) -> anyhow::Result<()> {
    let key = BackupKey::generate();
    let mut w = ItemWriter::new(repo, name, &key);
    for i in 0..items {
        w.stream(format!("item {i}"), ItemKind::State, chunks(data))
            .await?;
    }
    Ok(())
}

/// The same steps without the age layer.
async fn plain(repo: &Repo, name: &str, data: &Bytes, items: usize) -> anyhow::Result<()> {
    for i in 0..items {
        let mut out = repo.writer(name, &format!("items/{i:06}.bin"));
        let mut hash = Sha256::new();
        let mut size = 0u64;
        let mut stream = Box::pin(chunks(data));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            hash.update(&chunk);
            size += chunk.len() as u64;
            out.write_all(&chunk).await?;
        }
        out.shutdown().await?;
        std::hint::black_box((hash.finalize(), size));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arg = |i: usize, default: usize| -> usize {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (mib, items, rounds) = (arg(1, 4), arg(2, 25), arg(3, 3));
    // Incompressible bytes, as real data mostly is (a fixed seed: runs compare).
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let data: Bytes = (0..mib * 1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect::<Vec<u8>>()
        .into();
    let dir = tempfile::tempdir()?;
    let repo = Repo::open(&dir.path().display().to_string(), true)?;
    let bytes = (mib * 1024 * 1024 * items) as f64;
    let (mut best_enc, mut best_plain) = (f64::MAX, f64::MAX);
    for round in 0..rounds {
        // Alternate which goes first, so neither always meets a warm page cache.
        for enc in if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        } {
            let name = format!("r{round}-{}", if enc { "age" } else { "plain" });
            let t = Instant::now();
            if enc {
                encrypted(&repo, &name, &data, items).await?;
            } else {
                plain(&repo, &name, &data, items).await?;
            }
            let s = t.elapsed().as_secs_f64();
            let best = if enc { &mut best_enc } else { &mut best_plain };
            *best = best.min(s);
            repo.delete(&name).await?;
        }
    }
    println!(
        "item pipeline, {items} x {mib} MiB, best of {rounds}: with age {:.3} s ({:.0} MB/s), \
         without {:.3} s ({:.0} MB/s); encrypted/unencrypted time ratio {:.2}",
        best_enc,
        bytes / 1e6 / best_enc,
        best_plain,
        bytes / 1e6 / best_plain,
        best_enc / best_plain
    );
    Ok(())
}
