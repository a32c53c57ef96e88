//! `wharf restore NAME`: put a backup back, in the order things depend on each other. Nothing is
//! written before the key has opened the backup and every state item has been decrypted and
//! checked. Then:
//!
//! 1. wharf's state: release records (with their values), stored inputs, generated secrets,
//!    platform settings;
//! 2. each application re-applied through the engine from the revision that was deployed when the
//!    backup was made (like `rollback`: a new revision, "restore from NAME"), with readiness waits;
//! 3. the custom resources of wharf's kinds (never those an operator makes);
//! 4. Dex's definitions (on a cluster Dex never ran on) and objects;
//! 5. MinIO's data, each object read back and checked against the backup's sha256.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use futures::{StreamExt, TryStreamExt};
use serde_json::Value;

use super::backup::{self as verb, Opened};
use super::{Global, Outcome, Session, converge};
use crate::backup::format::Item;
use crate::backup::items;
use crate::backup::key::KeySource;
use crate::backup::objects;
use crate::backup::restore::{self, Existing, Tally};
use crate::engine::{Desired, Prune, RunOptions, perform};
use crate::store::lock::Lock;

#[derive(Debug, Clone)]
pub struct Options {
    pub name: String,
    pub from: Option<String>,
    /// `old=new` namespace mappings for custom resources.
    pub mapping: Vec<String>,
    pub existing: Existing,
    /// MinIO's data too (when the backup has it).
    pub data: bool,
    pub s3_endpoint: Option<String>,
    pub key: KeySource,
    pub run: RunOptions,
    /// Data objects transferred at once.
    pub parallel: usize,
}

pub fn run(global: &Global, options: &Options) -> Outcome {
    super::runtime()?.block_on(restore(global, options))
}

async fn restore(global: &Global, o: &Options) -> Outcome {
    let mapping = objects::parse_mapping(&o.mapping)?;
    let mut session = Session::open(global).await?;
    let opened = verb::open(&o.name, o.from.as_deref(), &session.model, &o.key).await?;
    check_fits(&session, &opened, &mapping, o)?;
    let progress = converge::progress(global.output);

    progress.line(&format!("1/5 wharf's state from backup `{}`", o.name));
    let state = documents(&opened, "state").await?;
    restore::ensure_namespace(&session, &session.model).await?;
    let lock = Lock::acquire(
        session.client(),
        &session.model,
        session.server(),
        o.run.force_unlock,
    )
    .await?;
    let guard = lock.guard();
    let applied = async {
        let mut tally = Tally::default();
        for obj in &state {
            guard.check()?;
            tally.add(restore::put(&session, obj, o.existing).await?);
        }
        progress.line(&format!("    {} object(s): {}", state.len(), tally.text()));
        progress.line("2/5 applications, through the engine");
        let desired = desired(&session, &opened).await?;
        let prepared = converge::prepare_and_gate(&session, desired, Prune::default()).await?;
        perform(&session, &prepared, &o.run, &guard, &progress).await
    }
    .await;
    lock.release().await;
    let performed = applied?;
    if !performed.succeeded() {
        return converge::conclude(&session.model, &performed, &progress).map_err(|e| {
            e.context(
                "the restore stopped after wharf's state: custom resources, Dex's objects and \
                 data were not restored; fix the application, then run the same restore again \
                 (with --existing skip it keeps what is there)",
            )
        });
    }

    progress.line("3/5 custom resources of wharf's kinds");
    let mut kinds: Vec<(String, String)> = Vec::new();
    let mut crs = Vec::new();
    for list in documents(&opened, "custom resources").await? {
        for mut obj in list.as_array().cloned().unwrap_or_default() {
            if objects::operator_owned(&obj) {
                continue;
            }
            objects::map_namespace(&mut obj, &mapping);
            kinds.push((str_at(&obj, "/apiVersion"), str_at(&obj, "/kind")));
            crs.push(obj);
        }
    }
    restore::wait_served(&mut session, &kinds).await?;
    let tally = put_all(&session, &crs, o.existing).await?;
    progress.line(&format!(
        "    {} custom resource(s): {}",
        crs.len(),
        tally.text()
    ));

    progress.line("4/5 Dex's objects");
    let definitions = documents(&opened, "Dex definition").await?;
    let mut tally = put_all(&session, &definitions, Existing::Skip).await?;
    let dex: Vec<Value> = documents(&opened, "Dex")
        .await?
        .into_iter()
        .flat_map(|l| l.as_array().cloned().unwrap_or_default())
        .collect();
    let dex_kinds: Vec<(String, String)> = dex
        .iter()
        .map(|o| (str_at(o, "/apiVersion"), str_at(o, "/kind")))
        .collect();
    restore::wait_served(&mut session, &dex_kinds).await?;
    for obj in &dex {
        tally.add(restore::put(&session, obj, o.existing).await?);
    }
    progress.line(&format!(
        "    {} Dex object(s): {}",
        dex.len(),
        tally.text()
    ));

    let data: Vec<&Item> = opened.manifest.of_kind("data").collect();
    let volume_items: Vec<&Item> = opened.manifest.of_kind("volume").collect();
    if data.is_empty() && volume_items.is_empty() {
        progress.line("5/5 data: the backup has none");
    } else if !o.data {
        progress.line("5/5 data: skipped (--no-data)");
    } else if data.is_empty() {
        progress.line("5/5 data");
    } else {
        progress.line(&format!("5/5 MinIO's data: {} object(s)", data.len()));
        let history = session.releases.list().await?;
        let source =
            crate::backup::capture::minio(&session, &history, o.s3_endpoint.as_deref(), &[])
                .await?
                .ok_or_else(|| {
                    anyhow!("the restored model has no MinIO application to put the data in")
                })?;
        let (stores, created) = restore::bucket_stores(&data, &source.access).await?;
        for bucket in created {
            progress.line(&format!(
                "    created bucket `{bucket}` at {}",
                source.access.endpoint
            ));
        }
        // `parallel` objects in flight, as the backup made them; the first error stops it.
        let parallel = o.parallel.max(1);
        let (repo, key, access, stores) = (&opened.repo, &opened.key, &source.access, &stores);
        let puts: Vec<(&Item, restore::Put)> = futures::stream::iter(data.iter().copied())
            .map(|item| async move {
                let put =
                    restore::put_data(repo, &o.name, key, item, access, stores, o.existing).await?;
                anyhow::Ok((item, put))
            })
            .buffer_unordered(parallel)
            .try_collect()
            .await?;
        let mut tally = Tally::default();
        let mut written = Vec::new();
        for (item, put) in puts {
            if put != restore::Put::Skipped {
                written.push(item);
            }
            tally.add(put);
        }
        futures::stream::iter(written)
            .map(|item| restore::check_data(item, stores))
            .buffer_unordered(parallel)
            .try_collect::<Vec<()>>()
            .await?;
        progress.line(&format!(
            "    {} object(s): {}; the restored data matches the backup's checksums",
            data.len(),
            tally.text()
        ));
    }
    if o.data && !volume_items.is_empty() {
        let history = session.releases.list().await?;
        for item in volume_items {
            restore_volume(&session, &opened, item, &history, &progress).await?;
        }
    }
    progress.line(&format!(
        "model `{}` restored from backup `{}` ({})",
        session.model, o.name, opened.info.created
    ));
    Ok(ExitCode::SUCCESS)
}

/// One data volume back into its claim (which the engine re-created, empty): the application
/// quiesced as when it was backed up, the tar stream fed to the agent pod's `restore`, then
/// streamed back and checked against the backup's sha256. The agent pod is deleted and the
/// replicas put back whatever happens.
async fn restore_volume(
    session: &Session,
    opened: &Opened,
    item: &Item,
    history: &crate::store::releases::History,
    progress: &crate::kube::progress::Progress,
) -> anyhow::Result<()> {
    use crate::backup::format::ItemKind;
    use crate::backup::volumes;
    use crate::charm::metadata::Quiesce;
    let ItemKind::Volume {
        app,
        claim,
        scale_down,
    } = &item.kind
    else {
        bail!("item {} is not a volume", item.id);
    };
    let quiesce = if *scale_down {
        Quiesce::ScaleDown
    } else {
        Quiesce::None
    };
    let target =
        volumes::claims_of_items(&[(app.clone(), claim.clone(), quiesce)], history).remove(0);
    let cleanup = volumes::Cleanup::default();
    let name = &opened.info.name;
    volumes::guarded(session, &cleanup, async {
        volumes::quiesce(session, &target, &cleanup).await?;
        let pod = volumes::start_agent(session, &target, true, &cleanup).await?;
        volumes::restore(session, &pod, &target, async |stdin| {
            use tokio::io::AsyncWriteExt;
            items::read_item(
                &opened.repo,
                name,
                &opened.key,
                item,
                async |chunk: &[u8]| {
                    stdin
                        .write_all(chunk)
                        .await
                        .map_err(|e| anyhow!("sending claim {claim} to the backup agent: {e}"))
                },
            )
            .await
        })
        .await?;
        // The check: what the claim holds now streams to the backup's bytes.
        let mut stream = std::pin::pin!(volumes::stream(session, &pod, &target).await?);
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| anyhow!("reading claim {claim} back: {e}"))?;
            size += chunk.len() as u64;
            hash.update(&chunk);
        }
        let sha = hex::encode(hash.finalize());
        if sha != item.sha256 || size != item.size {
            bail!(
                "claim {claim} of application `{app}` differs from the backup after the restore \
                 ({size} bytes, sha256 {sha}; the backup has {} bytes, sha256 {})",
                item.size,
                item.sha256
            );
        }
        anyhow::Ok(())
    })
    .await?;
    progress.line(&format!(
        "    data volume {claim} of `{app}`: {} bytes restored; the restored data matches the \
         backup's checksums",
        item.size
    ));
    Ok(())
}

/// Refuse, before any write, what this restore cannot do.
fn check_fits(
    session: &Session,
    opened: &Opened,
    mapping: &BTreeMap<String, String>,
    o: &Options,
) -> anyhow::Result<()> {
    if opened.info.model != session.model {
        bail!(
            "backup `{}` is of model `{}`, not `{}`: restore it with -m {}",
            o.name,
            opened.info.model,
            session.model,
            opened.info.model
        );
    }
    if mapping.contains_key(&session.model) {
        bail!(
            "--namespace-mapping cannot move the model namespace `{}` (its release records name \
             it); it maps the namespaces of custom resources",
            session.model
        );
    }
    if o.data && opened.manifest.of_kind("data").next().is_some() && o.s3_endpoint.is_none() {
        bail!(
            "backup `{}` holds MinIO data, which wharf writes back through MinIO's S3 API: pass \
             --s3-endpoint URL (e.g. after `kubectl -n {} port-forward svc/minio 9000:9000`, \
             --s3-endpoint http://127.0.0.1:9000), or --no-data",
            o.name,
            session.model
        );
    }
    Ok(())
}

/// Every item of `label`, decrypted, checked and parsed.
async fn documents(opened: &Opened, label: &str) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    for item in opened.manifest.of_kind(label) {
        let bytes =
            items::read_document(&opened.repo, &opened.info.name, &opened.key, item).await?;
        out.push(
            serde_json::from_slice(&bytes)
                .map_err(|e| anyhow!("item {} ({}) is not JSON: {e}", item.id, item.name))?,
        );
    }
    Ok(out)
}

/// What each application becomes: the revision deployed at backup time, re-applied.
async fn desired(session: &Session, opened: &Opened) -> anyhow::Result<Vec<Desired>> {
    let history = session.releases.list().await?;
    let mut out = Vec::new();
    for (app, revision) in &opened.manifest.applications {
        let record = history
            .of(app)
            .iter()
            .find(|r| r.revision == *revision)
            .ok_or_else(|| {
                anyhow!(
                    "the backup's record of `{app}` revision {revision} is not in the model after \
                     restoring the state (was it kept with --existing skip over another history?)"
                )
            })?;
        let values = session.releases.values(app, *revision).await?;
        let mut d = Desired::from_record(record, &values)?;
        d.description = format!("restore from {}", opened.info.name);
        d.rollback_of = None;
        out.push(d);
    }
    Ok(out)
}

async fn put_all(session: &Session, objs: &[Value], existing: Existing) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    for obj in objs {
        if let Some(ns) = obj.pointer("/metadata/namespace").and_then(Value::as_str) {
            restore::ensure_namespace(session, ns).await?;
        }
        tally.add(restore::put(session, obj, existing).await?);
    }
    Ok(tally)
}

fn str_at(obj: &Value, pointer: &str) -> String {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}
