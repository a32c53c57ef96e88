//! Items in and out of a backup. The writer encrypts each item as it streams to the repository,
//! counting its plaintext bytes and sha256 for the manifest; the reader decrypts an item and
//! checks both, so that a missing, truncated or altered item is named, never silently used.

use std::pin::Pin;

use anyhow::{anyhow, bail};
use bytes::Bytes;
use futures::{AsyncReadExt, AsyncWriteExt, Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio_util::compat::TokioAsyncWriteCompatExt;

use super::crypto::{self, BackupKey};
use super::format::{Item, ItemKind, Manifest};
use super::repo::Repo;

/// Writes the items of one backup.
pub struct ItemWriter<'a> {
    repo: &'a Repo,
    name: &'a str,
    recipient: age::x25519::Recipient,
    pub manifest: Manifest,
    pub bytes: u64,
    /// Called after each item with its plaintext size (progress bars).
    pub on_item: Box<dyn Fn(&Item) + 'a>,
}

impl<'a> ItemWriter<'a> {
    pub fn new(repo: &'a Repo, name: &'a str, key: &BackupKey) -> Self {
        ItemWriter {
            repo,
            name,
            recipient: key.recipient(),
            manifest: Manifest {
                format: super::format::FORMAT,
                ..Manifest::default()
            },
            bytes: 0,
            on_item: Box::new(|_| {}),
        }
    }

    /// A small document (a Kubernetes object, a list of them).
    pub async fn document(
        &mut self,
        name: String,
        kind: ItemKind,
        bytes: Vec<u8>,
    ) -> anyhow::Result<()> {
        let stream = futures::stream::once(async move { Ok(Bytes::from(bytes)) });
        self.stream(name, kind, stream).await
    }

    /// An item of any size, encrypted chunk by chunk as it arrives.
    pub async fn stream<S>(&mut self, name: String, kind: ItemKind, stream: S) -> anyhow::Result<()>
    where
        S: Stream<Item = Result<Bytes, object_store::Error>>,
    {
        let id = self.manifest.items.len() as u32 + 1;
        let file = super::format::item_file(id);
        let out = self.repo.writer(self.name, &file).compat_write();
        let mut w = crypto::encrypt(&self.recipient, out).await?;
        let mut hash = Sha256::new();
        let mut size = 0u64;
        let mut stream: Pin<Box<S>> = Box::pin(stream);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| anyhow!("reading {name}: {e}"))?;
            hash.update(&chunk);
            size += chunk.len() as u64;
            w.write_all(&chunk)
                .await
                .map_err(|e| anyhow!("writing {name} to {}: {e}", self.repo.describe(self.name)))?;
        }
        w.close()
            .await
            .map_err(|e| anyhow!("writing {name} to {}: {e}", self.repo.describe(self.name)))?;
        let item = Item {
            id,
            name,
            kind,
            size,
            sha256: hex::encode(hash.finalize()),
        };
        self.bytes += size;
        (self.on_item)(&item);
        self.manifest.items.push(item);
        Ok(())
    }
}

/// Decrypt `item` of backup `name`, handing each plaintext chunk to `sink`, and check its size and
/// sha256. The error names the item and what is wrong with it.
pub async fn read_item<F>(
    repo: &Repo,
    name: &str,
    key: &BackupKey,
    item: &Item,
    mut sink: F,
) -> anyhow::Result<()>
where
    F: AsyncFnMut(&[u8]) -> anyhow::Result<()>,
{
    let what = format!("item {} ({}, {})", item.id, item.name, item.file());
    let Some(input) = repo.reader(name, &item.file()).await? else {
        bail!("{what} is missing");
    };
    let mut r = crypto::decrypt(key.identity(), input)
        .await
        .map_err(|e| anyhow!("{what} is altered: {e:#}"))?;
    let mut hash = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = r
            .read(&mut buf)
            .await
            .map_err(|e| anyhow!("{what} is altered or truncated: {e}"))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        size += n as u64;
        sink(&buf[..n]).await?;
    }
    let sha = hex::encode(hash.finalize());
    if size != item.size || sha != item.sha256 {
        bail!(
            "{what} is altered: {size} bytes with sha256 {sha}, the manifest says {} bytes with \
             sha256 {}",
            item.size,
            item.sha256
        );
    }
    Ok(())
}

/// A whole (small) item, checked.
pub async fn read_document(
    repo: &Repo,
    name: &str,
    key: &BackupKey,
    item: &Item,
) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(item.size as usize);
    read_item(repo, name, key, item, async |chunk: &[u8]| {
        out.extend_from_slice(chunk);
        Ok(())
    })
    .await?;
    Ok(out)
}

/// The backup's manifest: its stored sha256 checked against backup.json, then decrypted.
pub async fn read_manifest(
    repo: &Repo,
    name: &str,
    key: &BackupKey,
    expected_sha256: &str,
) -> anyhow::Result<Manifest> {
    let file = super::format::MANIFEST_FILE;
    let sealed = repo
        .get(name, file)
        .await?
        .ok_or_else(|| anyhow!("backup `{name}`: {file} is missing"))?;
    let sha = hex::encode(Sha256::digest(&sealed));
    if sha != expected_sha256 {
        bail!("backup `{name}`: {file} is altered (its sha256 differs from backup.json's)");
    }
    let plain = crypto::decrypt_bytes(key.identity(), &sealed)
        .map_err(|e| anyhow!("backup `{name}`: {file} {e:#}"))?;
    serde_json::from_slice(&plain)
        .map_err(|e| anyhow!("backup `{name}`: {file} is not readable: {e}"))
}
