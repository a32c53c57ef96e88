//! `wharf backup create | list | describe | verify | delete | prune | schedule | agent`.
//!
//! `create` reads the model — wharf's state, the custom resources of wharf's kinds, Dex's objects
//! and MinIO's data — and writes each as an encrypted item, streaming, then the encrypted
//! manifest, then `backup.json` last: a backup that stopped half-way is never listed complete.
//! `verify` decrypts every item and checks its size and sha256 without restoring anything.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{anyhow, bail};
use futures::TryStreamExt;
use object_store::ObjectStore;
use serde::Serialize;
use sha2::Digest;

use super::{Global, Outcome, OutputFormat, Session};
use crate::backup::crypto::{self, BackupKey, UserKey};
use crate::backup::format::{self, INFO_FILE, Info, ItemKind, MANIFEST_FILE};
use crate::backup::items::{self, ItemWriter};
use crate::backup::key::{KeySource, Purpose};
use crate::backup::{Repo, capture, objects, volumes};
use crate::charm::metadata::Quiesce;

/// Where backups go by default: `$XDG_DATA_HOME/wharf/backups/<model>`, else
/// `~/.local/share/wharf/backups/<model>`.
pub fn default_location(model: &str) -> String {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("wharf/backups").join(model).display().to_string()
}

#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub name: Option<String>,
    /// A directory or s3://BUCKET/PREFIX (None: the default directory).
    pub to: Option<String>,
    /// MinIO's buckets too.
    pub data: bool,
    pub s3_endpoint: Option<String>,
    pub s3_buckets: Vec<String>,
    pub key: KeySource,
    /// "manual", "before upgrade", "scheduled".
    pub reason: String,
    /// After the backup succeeds, keep this many of the model's complete backups there (the
    /// scheduled backup's retention).
    pub keep: Option<usize>,
    /// Data objects transferred at once (0 is taken as 1).
    pub parallel: usize,
    /// Where the charms are (their `data:` volumes); None: the charms shipped with wharf.
    pub charms_dir: Option<PathBuf>,
}

/// Data objects transferred at once unless told otherwise: rclone's default `--transfers`.
pub const DEFAULT_PARALLEL: usize = 4;

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            name: None,
            to: None,
            data: false,
            s3_endpoint: None,
            s3_buckets: Vec::new(),
            key: KeySource::default(),
            reason: String::new(),
            keep: None,
            parallel: DEFAULT_PARALLEL,
            charms_dir: None,
        }
    }
}

/// A location given, or the model's default.
pub fn location(given: Option<&str>, model: &str) -> String {
    given.map_or_else(|| default_location(model), str::to_owned)
}

pub fn create(global: &Global, options: &CreateOptions) -> Outcome {
    super::runtime()?.block_on(async {
        let key = options.key.resolve(Purpose::Create)?;
        let session = Session::open(global).await?;
        let info = make(&session, options, &key).await?;
        let at = location(options.to.as_deref(), &session.model);
        report_created(global.output, &info, &at)?;
        // Retention only after a success: a failed backup never costs an older one.
        if let Some(keep) = options.keep {
            prune_at(&at, &session.model, keep, true).await?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn report_created(output: OutputFormat, info: &Info, at: &str) -> anyhow::Result<()> {
    match output {
        OutputFormat::Text => eprintln!("{}", summary(info, at)),
        format => format.document(info)?,
    }
    Ok(())
}

/// `backup NAME: N items, X MB in Ys (Z MB/s), at LOCATION`
pub fn summary(info: &Info, at: &str) -> String {
    let mb = info.bytes as f64 / 1e6;
    format!(
        "backup {}: {} items, {:.1} MB in {:.1}s ({:.1} MB/s), at {}/{}",
        info.name,
        info.items,
        mb,
        info.seconds,
        mb / info.seconds.max(1e-3),
        at.trim_end_matches('/'),
        info.name
    )
}

/// Make one backup of the session's model with `key`. Used by `backup create` and before every
/// upgrade.
pub async fn make(
    session: &Session,
    options: &CreateOptions,
    key: &UserKey,
) -> anyhow::Result<Info> {
    // History and state from one consistent moment (no run holding the lock, nothing written
    // while they were read); the rest is read after.
    let capture::Snapshot { history, state } = capture::snapshot(session).await?;
    if history.apps.is_empty() {
        bail!(
            "model `{}` has no release records: nothing to back up (is -m right?)",
            session.model
        );
    }
    let name = options
        .name
        .clone()
        .unwrap_or_else(|| format::default_name(&session.model));
    format::check_name(&name)?;
    let at = location(options.to.as_deref(), &session.model);
    let repo = Repo::open(&at, true)?;
    if repo.exists(&name).await? {
        bail!(
            "a backup named `{name}` already exists at {at}: choose another name, or delete it \
             (`wharf backup delete {name} --from {at}`)"
        );
    }
    let minio = if options.data {
        capture::minio(
            session,
            &history,
            options.s3_endpoint.as_deref(),
            &options.s3_buckets,
        )
        .await?
    } else {
        None
    };
    // Which volumes hold data, decided before anything is written.
    let volumes = if options.data {
        let source = crate::charm::Source::new(options.charms_dir.as_deref());
        let mut claims = volumes::claims(&history, &session.model, &source)?;
        // MinIO's data is read through its S3 API (objects with their metadata, restorable into
        // any MinIO); streaming its volume too would store it twice, and its restore would find
        // the claim already filled by the objects.
        if let Some(m) = &minio {
            claims.retain(|c| c.app != m.app);
        }
        claims
    } else {
        Vec::new()
    };
    let backup_key = BackupKey::generate();
    let sealed = backup_key.seal(key)?;
    let started = Instant::now();
    let captured = Captured {
        history: &history,
        state,
        minio: minio.as_ref(),
        volumes: &volumes,
        parallel: options.parallel,
    };
    let result = write_items(session, &repo, &name, &backup_key, captured).await;
    let writer = match result {
        Ok(w) => w,
        Err(e) => {
            let _ = repo.delete(&name).await;
            return Err(e.context(format!("backup `{name}` failed; nothing of it is kept")));
        }
    };
    let manifest = crypto::encrypt_bytes(
        &backup_key.recipient(),
        &serde_json::to_vec(&writer.manifest)?,
    )?;
    let manifest_sha256 = hex::encode(sha2::Sha256::digest(&manifest));
    repo.put(&name, MANIFEST_FILE, manifest).await?;
    let info = Info {
        format: format::FORMAT,
        name: name.clone(),
        created: crate::store::record::now(),
        model: session.model.clone(),
        wharf_version: env!("CARGO_PKG_VERSION").into(),
        reason: if options.reason.is_empty() {
            "manual".into()
        } else {
            options.reason.clone()
        },
        data: minio.is_some() || !volumes.is_empty(),
        items: writer.manifest.items.len() as u64,
        bytes: writer.bytes,
        seconds: started.elapsed().as_secs_f64(),
        sealing: key.sealing(),
        identity: sealed,
        recipient: backup_key.recipient().to_string(),
        manifest_sha256,
    };
    // Last: from here on the backup is complete.
    repo.put(&name, INFO_FILE, serde_json::to_vec_pretty(&info)?)
        .await?;
    Ok(info)
}

/// What `make` read before writing items.
struct Captured<'c> {
    history: &'c crate::store::releases::History,
    state: Vec<serde_json::Value>,
    minio: Option<&'c capture::MinioSource>,
    /// The charms' data volumes.
    volumes: &'c [volumes::DataClaim],
    /// Objects transferred at once.
    parallel: usize,
}

async fn write_items<'a>(
    session: &Session,
    repo: &'a Repo,
    name: &'a str,
    key: &BackupKey,
    captured: Captured<'_>,
) -> anyhow::Result<ItemWriter<'a>> {
    let Captured {
        history,
        state,
        minio,
        volumes,
        parallel,
    } = captured;
    let progress = Bytes::new();
    let mut w = ItemWriter::new(repo, name, key);
    let bar = progress.clone();
    w.on_item = Box::new(move |item| bar.item(item.size));
    w.manifest.applications = capture::applications(history);

    progress.stage("wharf's state (release records, inputs, generated secrets, platform)");
    for obj in state {
        w.document(
            objects::describe(&obj),
            ItemKind::State,
            serde_json::to_vec(&obj)?,
        )
        .await?;
    }
    progress.stage("custom resources of wharf's kinds");
    let recorded = capture::recorded(history);
    for kind in objects::wharf_kinds(history) {
        let crs = capture::custom_resources(session, &kind, &recorded).await?;
        w.document(
            kind.crd.clone(),
            ItemKind::CustomResources,
            serde_json::to_vec(&crs)?,
        )
        .await?;
    }
    progress.stage("Dex's objects");
    for (kind, crd, objs) in capture::dex(session).await? {
        w.document(
            format!("CustomResourceDefinition/{}", kind.crd),
            ItemKind::DexDefinition,
            serde_json::to_vec(&crd)?,
        )
        .await?;
        w.document(kind.crd.clone(), ItemKind::Dex, serde_json::to_vec(&objs)?)
            .await?;
    }
    if let Some(m) = minio {
        progress.stage(&format!(
            "MinIO's data (application `{}`, {})",
            m.app, m.access.endpoint
        ));
        for bucket in &m.buckets {
            let store = m.access.store(bucket)?;
            let listed: Vec<object_store::ObjectMeta> =
                store.list(None).try_collect().await.map_err(|e| {
                    anyhow!(
                        "cannot list bucket `{bucket}` at {}: {e}",
                        m.access.endpoint
                    )
                })?;
            // `parallel` objects in flight; the manifest keeps the listing's order.
            let transfers = listed.into_iter().map(|meta| {
                let key = meta.location.to_string();
                let store = store.clone();
                let bucket = bucket.clone();
                let name = format!("s3://{bucket}/{key}");
                let what = name.clone();
                let open = async move {
                    let got = store
                        .get(&meta.location)
                        .await
                        .map_err(|e| anyhow!("cannot read {what}: {e}"))?;
                    let attributes = crate::backup::s3::attributes_to_map(&got.attributes);
                    let kind = ItemKind::S3Object {
                        bucket,
                        key,
                        attributes,
                    };
                    anyhow::Ok((kind, got.into_stream()))
                };
                (name, open)
            });
            w.stream_all(transfers, parallel).await?;
        }
    }
    for claim in volumes {
        progress.stage(&format!(
            "data volume {} of application `{}`{}",
            claim.claim,
            claim.app,
            if claim.quiesce == Quiesce::ScaleDown {
                " (scaled to 0 while it is read)"
            } else {
                ""
            }
        ));
        let kind = ItemKind::Volume {
            app: claim.app.clone(),
            claim: claim.claim.clone(),
            scale_down: claim.quiesce == Quiesce::ScaleDown,
        };
        let cleanup = &volumes::Cleanup::default();
        let w = &mut w;
        volumes::guarded(session, cleanup, async move {
            volumes::quiesce(session, claim, cleanup).await?;
            let pod = volumes::start_agent(session, claim, false, cleanup).await?;
            let stream = volumes::stream(session, &pod, claim).await?;
            w.stream(
                format!("volume {}/{}", claim.app, claim.claim),
                kind,
                stream,
            )
            .await
        })
        .await?;
    }
    progress.done();
    Ok(w)
}

/// Items and bytes on a terminal, stage lines otherwise.
#[derive(Clone)]
struct Bytes {
    bar: Option<indicatif::ProgressBar>,
    total: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Bytes {
    fn new() -> Bytes {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new_spinner();
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {elapsed:>4} {pos:>6} items {prefix:>10} {wide_msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(std::time::Duration::from_millis(120));
            b
        });
        Bytes {
            bar,
            total: Default::default(),
        }
    }

    fn stage(&self, what: &str) {
        match &self.bar {
            Some(b) => b.set_message(what.to_owned()),
            None => eprintln!("{what}"),
        }
    }

    fn item(&self, size: u64) {
        use std::sync::atomic::Ordering;
        let total = self.total.fetch_add(size, Ordering::Relaxed) + size;
        if let Some(b) = &self.bar {
            b.inc(1);
            b.set_prefix(indicatif::HumanBytes(total).to_string());
        }
    }

    fn done(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// `wharf backup list`
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    name: String,
    complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    items: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

pub fn list(global: &Global, from: Option<&str>) -> Outcome {
    super::runtime()?.block_on(async {
        let at = location(from, &global.model);
        let repo = match Repo::open(&at, false) {
            Ok(r) => r,
            Err(e) if from.is_none() => {
                eprintln!("{e:#}");
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) => return Err(e),
        };
        let rows: Vec<Row> = repo
            .list()
            .await?
            .into_iter()
            .map(|l| match l.info {
                Ok(Some(i)) => Row {
                    name: l.name,
                    complete: true,
                    created: Some(i.created),
                    model: Some(i.model),
                    reason: Some(i.reason),
                    items: Some(i.items),
                    bytes: Some(i.bytes),
                    problem: None,
                },
                Ok(None) => Row {
                    name: l.name,
                    complete: false,
                    created: None,
                    model: None,
                    reason: None,
                    items: None,
                    bytes: None,
                    problem: Some(
                        "incomplete: no backup.json (the run was killed or is still running); \
                         `wharf backup delete` removes it"
                            .into(),
                    ),
                },
                Err(why) => Row {
                    name: l.name,
                    complete: false,
                    created: None,
                    model: None,
                    reason: None,
                    items: None,
                    bytes: None,
                    problem: Some(why),
                },
            })
            .collect();
        match global.output {
            OutputFormat::Text => {
                let mut out = format!(
                    "{:<36} {:<26} {:<16} {:>7} {:>12}\n",
                    "NAME", "CREATED", "REASON", "ITEMS", "BYTES"
                );
                for r in &rows {
                    match &r.problem {
                        None => out.push_str(&format!(
                            "{:<36} {:<26} {:<16} {:>7} {:>12}\n",
                            r.name,
                            r.created.as_deref().unwrap_or(""),
                            r.reason.as_deref().unwrap_or(""),
                            r.items.unwrap_or(0),
                            r.bytes.unwrap_or(0)
                        )),
                        Some(p) => out.push_str(&format!("{:<36} {p}\n", r.name)),
                    }
                }
                super::print_stdout(&out)?;
            }
            format => format.document(&rows)?,
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// A complete backup opened with the user's key: its info, key and manifest.
pub struct Opened {
    pub repo: Repo,
    pub info: Info,
    pub key: BackupKey,
    pub manifest: format::Manifest,
}

/// Open backup `name` at `from` (or the model's default location) with the user's key.
pub async fn open(
    name: &str,
    from: Option<&str>,
    model: &str,
    key: &KeySource,
) -> anyhow::Result<Opened> {
    format::check_name(name)?;
    let at = location(from, model);
    let repo = Repo::open(&at, false)?;
    let info = repo.info(name).await?;
    let user_key = key.resolve(Purpose::Open)?;
    let backup_key = BackupKey::open(name, info.sealing, &info.identity, &user_key)?;
    let manifest = items::read_manifest(&repo, name, &backup_key, &info.manifest_sha256).await?;
    Ok(Opened {
        repo,
        info,
        key: backup_key,
        manifest,
    })
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Description<'a> {
    #[serde(flatten)]
    info: &'a Info,
    applications: &'a BTreeMap<String, u32>,
    contents: BTreeMap<&'static str, (u64, u64)>,
}

pub fn describe(global: &Global, name: &str, from: Option<&str>, key: &KeySource) -> Outcome {
    super::runtime()?.block_on(async {
        let opened = open(name, from, &global.model, key).await?;
        let mut contents: BTreeMap<&'static str, (u64, u64)> = BTreeMap::new();
        for item in &opened.manifest.items {
            let e = contents.entry(item.kind.label()).or_default();
            e.0 += 1;
            e.1 += item.size;
        }
        let d = Description {
            info: &opened.info,
            applications: &opened.manifest.applications,
            contents,
        };
        match global.output {
            OutputFormat::Text => {
                let i = d.info;
                let mut out = format!(
                    "backup {}\n  model:     {}\n  created:   {} by wharf {} ({})\n  format:    {}\n  \
                     sealed:    {:?}\n  items:     {} ({} bytes)\n  applications:\n",
                    i.name,
                    i.model,
                    i.created,
                    i.wharf_version,
                    i.reason,
                    i.format,
                    i.sealing,
                    i.items,
                    i.bytes
                );
                for (app, rev) in d.applications {
                    out.push_str(&format!("    {app} (revision {rev})\n"));
                }
                out.push_str("  contents:\n");
                for (kind, (n, bytes)) in &d.contents {
                    out.push_str(&format!("    {kind}: {n} item(s), {bytes} bytes\n"));
                }
                super::print_stdout(&out)?;
            }
            format => format.document(&d)?,
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `wharf backup verify NAME`: decrypt every item and check it against the manifest; every item
/// missing or altered is named.
pub fn verify(global: &Global, name: &str, from: Option<&str>, key: &KeySource) -> Outcome {
    super::runtime()?.block_on(async {
        let opened = open(name, from, &global.model, key).await?;
        let mut problems = Vec::new();
        for item in &opened.manifest.items {
            if let Err(e) =
                items::read_item(&opened.repo, name, &opened.key, item, async |_: &[u8]| {
                    Ok(())
                })
                .await
            {
                problems.push(format!("{e:#}"));
            }
        }
        if !problems.is_empty() {
            bail!(
                "backup `{name}` fails verification: {} of {} item(s) missing or altered:\n  {}",
                problems.len(),
                opened.manifest.items.len(),
                problems.join("\n  ")
            );
        }
        eprintln!(
            "backup `{name}` verified: {} item(s), {} bytes, every checksum matches",
            opened.manifest.items.len(),
            opened.info.bytes
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// A destructive step on a terminal asks first (default no); without one the command line, which
/// named exactly what goes, is the answer.
fn confirm(question: &str, yes: bool) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if yes || !std::io::stdin().is_terminal() {
        return Ok(());
    }
    let agreed = dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact()
        .map_err(|e| anyhow!("could not ask for confirmation ({e}); pass --yes instead"))?;
    if !agreed {
        bail!("not confirmed: nothing was deleted");
    }
    Ok(())
}

pub fn delete(global: &Global, name: &str, from: Option<&str>, yes: bool) -> Outcome {
    super::runtime()?.block_on(async {
        format::check_name(name)?;
        let at = location(from, &global.model);
        let repo = Repo::open(&at, false)?;
        if !repo.exists(name).await? {
            bail!("no backup `{name}` at {at} (`wharf backup list --from {at}`)");
        }
        confirm(&format!("Delete backup `{name}` at {at}, for good?"), yes)?;
        repo.delete(name).await?;
        eprintln!("deleted backup `{name}` from {at}");
        Ok(ExitCode::SUCCESS)
    })
}

/// `wharf backup prune --keep N`: delete the model's oldest complete backups beyond N.
pub fn prune(global: &Global, keep: usize, from: Option<&str>, yes: bool) -> Outcome {
    super::runtime()?.block_on(async {
        let at = location(from, &global.model);
        prune_at(&at, &global.model, keep, yes).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Delete `model`'s oldest complete backups at `at` beyond `keep` (at least one is kept).
async fn prune_at(at: &str, model: &str, keep: usize, yes: bool) -> anyhow::Result<()> {
    let repo = Repo::open(at, false)?;
    let mut complete: Vec<Info> = repo
        .list()
        .await?
        .into_iter()
        .filter_map(|l| l.info.ok().flatten())
        .filter(|i| i.model == model)
        .collect();
    complete.sort_by(|a, b| a.created.cmp(&b.created));
    let excess = complete.len().saturating_sub(keep.max(1));
    if excess > 0 {
        let names: Vec<&str> = complete[..excess].iter().map(|i| i.name.as_str()).collect();
        confirm(
            &format!(
                "Delete {excess} backup(s) at {at} for good: {}?",
                names.join(", ")
            ),
            yes,
        )?;
    }
    for info in &complete[..excess] {
        repo.delete(&info.name).await?;
        eprintln!("pruned backup `{}`", info.name);
    }
    eprintln!(
        "{} backup(s) of model `{model}` kept at {at}",
        complete.len() - excess,
    );
    Ok(())
}

/// `wharf backup …`, as cli.rs builds it.
#[derive(Debug, Clone)]
pub enum Command {
    Create(CreateOptions),
    List {
        from: Option<String>,
    },
    Describe(Named),
    Verify(Named),
    Delete {
        name: String,
        from: Option<String>,
        yes: bool,
    },
    Prune {
        keep: usize,
        from: Option<String>,
        yes: bool,
    },
    Schedule(ScheduleOptions),
    /// Inside the cluster: a directory as a tar stream to stdout.
    AgentStream(PathBuf),
    /// Inside the cluster: a tar stream from stdin into an empty directory.
    AgentRestore(PathBuf),
    /// Inside the cluster: the agent pod's main process, until wharf deletes the pod.
    AgentWait(u64),
}

/// A backup by name, where it is, and its key.
#[derive(Debug, Clone)]
pub struct Named {
    pub name: String,
    pub from: Option<String>,
    pub key: KeySource,
}

#[derive(Debug, Clone)]
pub struct ScheduleOptions {
    pub cron: String,
    pub keep: usize,
    pub to: String,
    pub key_secret: String,
    pub s3_secret: String,
    pub s3_endpoint: Option<String>,
    pub image: String,
    pub dry_run: bool,
}

/// Dispatch `wharf backup …`.
pub fn run(global: &Global, command: &Command) -> Outcome {
    match command {
        Command::Create(options) => create(global, options),
        Command::List { from } => list(global, from.as_deref()),
        Command::Describe(n) => describe(global, &n.name, n.from.as_deref(), &n.key),
        Command::Verify(n) => verify(global, &n.name, n.from.as_deref(), &n.key),
        Command::Delete { name, from, yes } => delete(global, name, from.as_deref(), *yes),
        Command::Prune { keep, from, yes } => prune(global, *keep, from.as_deref(), *yes),
        Command::Schedule(options) => schedule(global, options),
        Command::AgentStream(dir) => {
            // Buffered: stdout is line-buffered, and a tar stream is binary.
            let out = std::io::BufWriter::with_capacity(256 * 1024, std::io::stdout().lock());
            crate::backup::agent::stream(dir, out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::AgentRestore(dir) => {
            crate::backup::agent::restore(dir, std::io::stdin().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::AgentWait(seconds) => {
            crate::backup::agent::wait(*seconds);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `wharf backup schedule`: render the CronJob and its least-privilege RBAC; print or apply them.
fn schedule(global: &Global, args: &ScheduleOptions) -> Outcome {
    if !args.to.starts_with("s3://") {
        bail!(
            "--to {}: a scheduled backup runs in a pod, so it needs s3://BUCKET/PREFIX",
            args.to
        );
    }
    super::runtime()?.block_on(async {
        let session = Session::open(global).await?;
        let history = session.releases.list().await?;
        let schedule = crate::backup::schedule::Schedule {
            model: session.model.clone(),
            cron: args.cron.clone(),
            keep: args.keep,
            to: args.to.clone(),
            image: args.image.clone(),
            key_secret: args.key_secret.clone(),
            s3_secret: args.s3_secret.clone(),
            s3_endpoint: args.s3_endpoint.clone(),
            kinds: objects::wharf_kinds(&history),
        };
        let objs = schedule.render();
        if args.dry_run {
            match global.output {
                OutputFormat::Text => {
                    let mut out = String::new();
                    for o in &objs {
                        out.push_str("---\n");
                        out.push_str(&serde_saphyr::to_string(o)?);
                    }
                    super::print_stdout(&out)?;
                }
                format => format.document(&objs)?,
            }
            return Ok(ExitCode::SUCCESS);
        }
        for obj in &objs {
            let r = crate::kube::ObjectRef::of(obj)?;
            let api = session.catalog.api_for(session.client(), &r)?;
            let dynamic: kube::api::DynamicObject = serde_json::from_value(obj.clone())?;
            api.patch(
                &r.name,
                &kube::api::PatchParams::apply(crate::kube::FIELD_MANAGER).force(),
                &kube::api::Patch::Apply(&dynamic),
            )
            .await
            .map_err(session.describe(&format!("apply {r}")))?;
        }
        eprintln!(
            "scheduled: `{}` backs model `{}` up to {} ({}), keeping {}; create the Secrets `{}` \
             (key `passphrase`) and `{}` (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) in `{}`",
            crate::backup::schedule::NAME,
            session.model,
            args.to,
            args.cron,
            args.keep,
            args.key_secret,
            args.s3_secret,
            session.model
        );
        Ok(ExitCode::SUCCESS)
    })
}
