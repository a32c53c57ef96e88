//! Where backups are kept: a directory or an S3 prefix (`s3://bucket/prefix`, credentials from the
//! environment), one folder per backup (`<name>/backup.json`, `manifest.age`, `items/…`), all
//! through object_store so both behave alike. Files are written streaming (multipart upload on
//! S3; a staging file renamed at the end in a directory), so a killed run leaves no file that
//! looks finished, and a backup without `backup.json` is never listed as complete.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use futures::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

use super::format::{INFO_FILE, Info};
use super::s3::S3Access;

pub struct Repo {
    store: Arc<dyn ObjectStore>,
    root: ObjectPath,
    local: Option<PathBuf>,
    /// As the user wrote it.
    pub location: String,
}

/// One folder of the repository.
#[derive(Debug)]
pub struct Listed {
    pub name: String,
    /// `Ok(None)`: no backup.json (killed or still running).
    pub info: Result<Option<Info>, String>,
}

/// A reader of one stored file (futures' AsyncBufRead, for age).
pub type FileReader = Compat<
    tokio_util::io::StreamReader<
        futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>,
        bytes::Bytes,
    >,
>;

impl Repo {
    /// `s3://bucket/prefix` or a directory (made when `create`).
    pub fn open(location: &str, create: bool) -> anyhow::Result<Repo> {
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                bail!("`{location}` names no bucket: use s3://BUCKET/PREFIX");
            }
            let store = S3Access::from_env().store(bucket)?;
            return Ok(Repo {
                store,
                root: ObjectPath::from(prefix.trim_matches('/')),
                local: None,
                location: location.to_owned(),
            });
        }
        let dir = PathBuf::from(location);
        if !dir.exists() {
            if !create {
                bail!("no backups at {location}: the directory does not exist");
            }
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create the backup directory {location}"))?;
        }
        let store = LocalFileSystem::new_with_prefix(&dir)
            .with_context(|| format!("cannot use {location} for backups"))?;
        Ok(Repo {
            store: Arc::new(store),
            root: ObjectPath::default(),
            local: Some(dir),
            location: location.to_owned(),
        })
    }

    fn path(&self, name: &str, rel: &str) -> ObjectPath {
        let mut p = self.root.child(name);
        for part in rel.split('/') {
            p = p.child(part);
        }
        p
    }

    pub fn describe(&self, name: &str) -> String {
        format!("{}/{name}", self.location.trim_end_matches('/'))
    }

    /// Every backup folder, complete or not, sorted by name.
    pub async fn list(&self) -> anyhow::Result<Vec<Listed>> {
        let prefix = (!self.root.as_ref().is_empty()).then_some(&self.root);
        let listing = self
            .store
            .list_with_delimiter(prefix)
            .await
            .map_err(|e| anyhow!("cannot list backups at {}: {e}", self.location))?;
        let mut out = Vec::new();
        for dir in listing.common_prefixes {
            let Some(name) = dir.filename().map(str::to_owned) else {
                continue;
            };
            let info = match self.get(&name, INFO_FILE).await {
                Ok(Some(bytes)) => serde_json::from_slice::<Info>(&bytes)
                    .map(Some)
                    .map_err(|e| format!("backup.json is not readable: {e}")),
                Ok(None) => Ok(None),
                Err(e) => Err(format!("{e:#}")),
            };
            out.push(Listed { name, info });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// A complete backup's backup.json.
    pub async fn info(&self, name: &str) -> anyhow::Result<Info> {
        let bytes = self.get(name, INFO_FILE).await?.ok_or_else(|| {
            anyhow!(
                "no complete backup `{name}` at {} (`wharf backup list --from {}` shows what \
                 there is)",
                self.location,
                self.location
            )
        })?;
        let info: Info = serde_json::from_slice(&bytes)
            .with_context(|| format!("backup `{name}`: backup.json is not readable"))?;
        if info.format > super::format::FORMAT || info.format < super::format::OLDEST_READABLE {
            bail!(
                "backup `{name}` is in format {}; this wharf reads formats {} to {}: use a wharf \
                 at least as new as {}",
                info.format,
                super::format::OLDEST_READABLE,
                super::format::FORMAT,
                info.wharf_version
            );
        }
        Ok(info)
    }

    /// Whether anything is kept under `name`.
    pub async fn exists(&self, name: &str) -> anyhow::Result<bool> {
        let prefix = self.root.child(name);
        let first = self.store.list(Some(&prefix)).next().await;
        Ok(first.transpose()?.is_some())
    }

    /// A streaming writer of one file; shut it down to finish the file.
    pub fn writer(&self, name: &str, rel: &str) -> BufWriter {
        BufWriter::new(self.store.clone(), self.path(name, rel))
    }

    pub async fn put(&self, name: &str, rel: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        self.store
            .put(&self.path(name, rel), PutPayload::from(bytes))
            .await
            .map_err(|e| anyhow!("cannot write {}/{rel}: {e}", self.describe(name)))?;
        Ok(())
    }

    /// A whole (small) file, or None when it does not exist.
    pub async fn get(&self, name: &str, rel: &str) -> anyhow::Result<Option<Vec<u8>>> {
        match self.store.get(&self.path(name, rel)).await {
            Ok(r) => Ok(Some(r.bytes().await?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(anyhow!("cannot read {}/{rel}: {e}", self.describe(name))),
        }
    }

    /// A streaming reader of one file; Ok(None) when it is missing.
    pub async fn reader(&self, name: &str, rel: &str) -> anyhow::Result<Option<FileReader>> {
        match self.store.get(&self.path(name, rel)).await {
            Ok(r) => {
                let stream = r.into_stream().map_err(std::io::Error::other).boxed();
                Ok(Some(tokio_util::io::StreamReader::new(stream).compat()))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(anyhow!("cannot read {}/{rel}: {e}", self.describe(name))),
        }
    }

    /// Delete a backup: backup.json first, so that it stops being complete at once.
    pub async fn delete(&self, name: &str) -> anyhow::Result<()> {
        let info = self.path(name, INFO_FILE);
        match self.store.delete(&info).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => bail!("cannot delete {}: {e}", self.describe(name)),
        }
        if let Some(dir) = &self.local {
            let path = dir.join(name);
            if path.exists() {
                std::fs::remove_dir_all(&path)
                    .with_context(|| format!("cannot delete {}", path.display()))?;
            }
            return Ok(());
        }
        let prefix = self.root.child(name);
        let paths: Vec<ObjectPath> = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| m.location)
            .try_collect()
            .await?;
        for p in paths {
            self.store.delete(&p).await?;
        }
        Ok(())
    }
}
