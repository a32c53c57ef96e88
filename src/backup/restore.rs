//! The writes of a restore: namespaces, objects (created when missing; an existing one kept with
//! `--existing skip` or overwritten by a forced server-side apply with `--existing update`), and
//! MinIO objects streamed back with their attributes, then read again and checked against the
//! manifest's sha256.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use futures::StreamExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::crypto::BackupKey;
use super::format::{Item, ItemKind};
use super::items;
use super::repo::Repo;
use super::s3::{S3Access, map_to_attributes};
use crate::action::Session;
use crate::kube::{FIELD_MANAGER, ObjectRef, errors};

/// What to do with an object or data that already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Existing {
    /// Keep what is there.
    #[default]
    Skip,
    /// Overwrite it with the backup's.
    Update,
}

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Put {
    Created,
    Updated,
    Skipped,
}

/// Counts per outcome, for the summary.
#[derive(Debug, Default, Clone)]
pub struct Tally(pub BTreeMap<&'static str, usize>);

impl Tally {
    pub fn add(&mut self, put: Put) {
        let key = match put {
            Put::Created => "created",
            Put::Updated => "updated",
            Put::Skipped => "kept",
        };
        *self.0.entry(key).or_default() += 1;
    }

    pub fn text(&self) -> String {
        if self.0.is_empty() {
            return "nothing".into();
        }
        self.0
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Create the namespace if it does not exist (or is going away: then wait until it is gone).
pub async fn ensure_namespace(session: &Session, name: &str) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Namespace;
    let api: Api<Namespace> = Api::all(session.client().clone());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        match api
            .get_opt(name)
            .await
            .map_err(session.describe("read namespaces"))?
        {
            Some(ns) if ns.metadata.deletion_timestamp.is_none() => return Ok(()),
            Some(_) => {
                if tokio::time::Instant::now() > deadline {
                    bail!("namespace `{name}` is still being deleted; try again when it is gone");
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            None => {
                let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
                match api.create(&PostParams::default(), &ns).await {
                    Ok(_) => return Ok(()),
                    Err(e) if errors::is_conflict(&e) => return Ok(()),
                    Err(e) => return Err(session.describe(&format!("create namespace {name}"))(e)),
                }
            }
        }
    }
}

/// Write one object as `existing` says.
pub async fn put(session: &Session, obj: &Value, existing: Existing) -> anyhow::Result<Put> {
    let r = ObjectRef::of(obj)?;
    let api = session.catalog.api_for(session.client(), &r)?;
    let what = super::objects::describe(obj);
    let current = api
        .get_opt(&r.name)
        .await
        .map_err(session.describe(&format!("read {what}")))?;
    let dynamic: DynamicObject = serde_json::from_value(obj.clone())?;
    match (current, existing) {
        (Some(_), Existing::Skip) => Ok(Put::Skipped),
        (Some(_), Existing::Update) => {
            api.patch(
                &r.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&dynamic),
            )
            .await
            .map_err(session.describe(&format!("update {what}")))?;
            Ok(Put::Updated)
        }
        (None, _) => {
            api.create(&PostParams::default(), &dynamic)
                .await
                .map_err(session.describe(&format!("create {what}")))?;
            Ok(Put::Created)
        }
    }
}

/// Reload what the cluster serves until `kinds` (apiVersion, kind) are all served (CRDs just
/// created take a moment to be established).
pub async fn wait_served(session: &mut Session, kinds: &[(String, String)]) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        session.catalog = crate::kube::Catalog::load(session.client(), session.server()).await?;
        let missing: Vec<String> = kinds
            .iter()
            .filter(|(api_version, kind)| {
                let r = ObjectRef {
                    api_version: api_version.clone(),
                    kind: kind.clone(),
                    namespace: None,
                    name: "x".into(),
                };
                session.catalog.resolve(&r).is_none()
            })
            .map(|(a, k)| format!("{a} {k}"))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "the cluster does not serve {} a minute after its definition was restored",
                missing.join(", ")
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

/// A client for every bucket `items` name, each bucket created first when it is missing (a
/// fresh MinIO whose bucket Job has not run). Returns the clients and the buckets created.
pub async fn bucket_stores(
    items: &[&Item],
    access: &S3Access,
) -> anyhow::Result<(Stores, Vec<String>)> {
    let mut stores = Stores::new();
    let mut created = Vec::new();
    for item in items {
        let ItemKind::S3Object { bucket, .. } = &item.kind else {
            continue;
        };
        if stores.contains_key(bucket) {
            continue;
        }
        if access.ensure_bucket(bucket).await? {
            created.push(bucket.clone());
        }
        stores.insert(bucket.clone(), access.store(bucket)?);
    }
    Ok((stores, created))
}

/// A client per bucket.
pub type Stores = BTreeMap<String, std::sync::Arc<dyn ObjectStore>>;

/// One MinIO object back into its bucket, streamed: decrypted, checked and uploaded with its
/// attributes. `stores` has its bucket ([`bucket_stores`]).
pub async fn put_data(
    repo: &Repo,
    name: &str,
    key: &BackupKey,
    item: &Item,
    access: &S3Access,
    stores: &Stores,
    existing: Existing,
) -> anyhow::Result<Put> {
    let ItemKind::S3Object {
        bucket,
        key: object,
        attributes,
    } = &item.kind
    else {
        bail!("item {} is not data", item.id);
    };
    let store = stores
        .get(bucket)
        .ok_or_else(|| anyhow!("no client for bucket {bucket}"))?
        .clone();
    let path = ObjectPath::from(object.as_str());
    let exists = match store.head(&path).await {
        Ok(_) => true,
        Err(object_store::Error::NotFound { .. }) => false,
        Err(e) => bail!("cannot reach bucket `{bucket}` at {}: {e}", access.endpoint),
    };
    if exists && existing == Existing::Skip {
        return Ok(Put::Skipped);
    }
    let mut out = object_store::buffered::BufWriter::new(store, path)
        .with_attributes(map_to_attributes(attributes));
    items::read_item(repo, name, key, item, async |chunk: &[u8]| {
        out.write_all(chunk)
            .await
            .map_err(|e| anyhow!("writing s3://{bucket}/{object}: {e}"))
    })
    .await?;
    out.shutdown()
        .await
        .map_err(|e| anyhow!("writing s3://{bucket}/{object}: {e}"))?;
    Ok(if exists { Put::Updated } else { Put::Created })
}

/// Read a restored object back and check it against the manifest.
pub async fn check_data(item: &Item, stores: &Stores) -> anyhow::Result<()> {
    let ItemKind::S3Object {
        bucket,
        key: object,
        ..
    } = &item.kind
    else {
        return Ok(());
    };
    let store = stores
        .get(bucket)
        .ok_or_else(|| anyhow!("no client for bucket {bucket}"))?;
    let got = store
        .get(&ObjectPath::from(object.as_str()))
        .await
        .map_err(|e| anyhow!("s3://{bucket}/{object} cannot be read back: {e}"))?;
    let mut stream = got.into_stream();
    let mut hash = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        size += chunk.len() as u64;
        hash.update(&chunk);
    }
    let sha = hex::encode(hash.finalize());
    if sha != item.sha256 || size != item.size {
        bail!(
            "s3://{bucket}/{object} differs from the backup after the restore ({size} bytes, \
             sha256 {sha}; the backup has {} bytes, sha256 {})",
            item.size,
            item.sha256
        );
    }
    Ok(())
}
