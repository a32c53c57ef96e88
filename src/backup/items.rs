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
        let id = self.next_id();
        let item = self.sink().write(id, name, kind, stream).await?;
        self.record(item);
        Ok(())
    }

    /// Many items at once, at most `parallel` in flight (rclone's lead is its parallel
    /// transfers). Each `(name, open)` gets the next id in the given order, whichever finishes
    /// first, so the manifest's order is the input's; progress counts each as it ends. `open`
    /// gives the item's kind with its stream (an object's attributes come with its GET).
    pub async fn stream_all<I, F, S>(&mut self, items: I, parallel: usize) -> anyhow::Result<()>
    where
        I: IntoIterator<Item = (String, F)>,
        F: Future<Output = anyhow::Result<(ItemKind, S)>>,
        S: Stream<Item = Result<Bytes, object_store::Error>>,
    {
        let first = self.next_id();
        let sink = self.sink();
        let mut done = futures::stream::iter(items.into_iter().enumerate())
            .map(|(i, (name, open))| {
                let sink = sink.clone();
                async move {
                    let (kind, stream) = open.await?;
                    sink.write(first + i as u32, name, kind, stream).await
                }
            })
            .buffer_unordered(parallel.max(1));
        let mut finished = Vec::new();
        let mut failed = None;
        while let Some(result) = done.next().await {
            match result {
                Ok(item) => {
                    self.bytes += item.size;
                    (self.on_item)(&item);
                    finished.push(item);
                }
                // Stop starting new transfers; the caller removes the whole backup.
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        finished.sort_by_key(|i| i.id);
        self.manifest.items.extend(finished);
        Ok(())
    }

    fn next_id(&self) -> u32 {
        self.manifest.items.len() as u32 + 1
    }

    fn sink(&self) -> Sink<'a> {
        Sink {
            repo: self.repo,
            name: self.name,
            recipient: self.recipient.clone(),
        }
    }

    fn record(&mut self, item: Item) {
        self.bytes += item.size;
        (self.on_item)(&item);
        self.manifest.items.push(item);
    }
}

/// Where one item goes: what writing it needs, shareable by concurrent writes.
#[derive(Clone)]
struct Sink<'a> {
    repo: &'a Repo,
    name: &'a str,
    recipient: age::x25519::Recipient,
}

impl Sink<'_> {
    /// Encrypt `stream` chunk by chunk into item `id`, counting its plaintext size and sha256.
    async fn write<S>(
        &self,
        id: u32,
        name: String,
        kind: ItemKind,
        stream: S,
    ) -> anyhow::Result<Item>
    where
        S: Stream<Item = Result<Bytes, object_store::Error>>,
    {
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
        Ok(Item {
            id,
            name,
            kind,
            size,
            sha256: hex::encode(hash.finalize()),
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Parallel transfers that finish in reverse order still give the manifest the input's order
    /// and ids, every item readable and checked, and progress counts each one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parallel_items_keep_the_input_order_in_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::open(&dir.path().display().to_string(), true).unwrap();
        let key = BackupKey::generate();
        let seen = std::sync::Mutex::new(Vec::new());
        let mut w = ItemWriter::new(&repo, "b", &key);
        w.on_item = Box::new(|i| seen.lock().unwrap().push(i.id));
        w.document("first".into(), ItemKind::State, b"{}".to_vec())
            .await
            .unwrap();
        let n = 6u64;
        let transfers = (0..n).map(|i| {
            let open = async move {
                // The first one listed takes longest.
                tokio::time::sleep(std::time::Duration::from_millis(40 * (n - i))).await;
                let body = Bytes::from(format!("object {i}").repeat(1000));
                anyhow::Ok((ItemKind::State, futures::stream::iter([Ok(body)])))
            };
            (format!("o{i}"), open)
        });
        w.stream_all(transfers, 4).await.unwrap();
        let names: Vec<&str> = w.manifest.items.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["first", "o0", "o1", "o2", "o3", "o4", "o5"]);
        let ids: Vec<u32> = w.manifest.items.iter().map(|i| i.id).collect();
        assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7]);
        let mut finished = seen.lock().unwrap().clone();
        assert_ne!(finished, ids, "they did finish out of order");
        finished.sort();
        assert_eq!(finished, ids, "progress saw each item once");
        for item in &w.manifest.items[1..] {
            let got = read_document(&repo, "b", &key, item).await.unwrap();
            let i = &item.name[1..];
            assert_eq!(got, format!("object {i}").repeat(1000).into_bytes());
        }
    }
}
