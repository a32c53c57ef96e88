//! `wharf deploy BUNDLE`: the steps a user would list — resolve the bundle with the model's
//! stored options and this command's `--set`/`--reset`, render, prepare the changes and pass the
//! gates, show the plan or diff, then under the model lock keep the inputs, apply, prune, wait and
//! record each application's new revision. Options set by earlier commands are kept: a deploy
//! never drops the login.

use std::process::ExitCode;

use anyhow::anyhow;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use tokio::time::Instant;

use super::converge;
use super::{Global, Outcome, Session};
use crate::bundle::Texts;
use crate::engine::{Prune, RunOptions};
use crate::kube::{errors, wait};
use crate::store::inputs::{BundleSource, Changes};

#[derive(Debug, Clone)]
pub struct Options {
    pub source: BundleSource,
    pub changes: Changes,
    pub dry_run: bool,
    pub diff: bool,
    pub prune: Prune,
    pub run: RunOptions,
    /// Refuse when the bundle runs wharf's own images and no node has them (`images_on_nodes`).
    pub image_check: bool,
}

pub fn run(global: &Global, options: &Options) -> Outcome {
    super::runtime()?.block_on(deploy(global, options))
}

pub async fn deploy(global: &Global, options: &Options) -> Outcome {
    // Bundle files are read first: a missing file needs no cluster to be reported.
    let texts = Texts::read(&options.source.spec, &options.source.overlays)?;
    let session = Session::open(global).await?;
    let resolution = converge::resolve(
        &session,
        &options.source.spec,
        texts,
        options.source.charms_dir.as_deref(),
        &options.changes,
    )
    .await?;
    for note in &resolution.notes {
        eprintln!("note: {note}");
    }
    let rendered = converge::render(&session, &resolution).await?;
    let prepared =
        converge::prepare_and_gate(&session, rendered.desired.clone(), options.prune).await?;
    // An application the model has but the bundle no longer names is left alone: removing a
    // running service because it vanished from a file is too easy to do by accident. Say so.
    for app in prepared
        .history
        .apps
        .keys()
        .filter(|app| !prepared.desired.contains_key(*app))
    {
        eprintln!(
            "note: application `{app}` is deployed in model `{}` but not in bundle `{}`; it is \
             left as it is (`wharf remove {app}` removes it)",
            session.model, resolution.resolved.bundle.name
        );
    }
    converge::check_images_on_nodes(&session, &prepared, options.image_check, options.dry_run)
        .await?;
    let changes = converge::option_changes(&prepared);
    if global.output.is_text() {
        for (app, lines) in &changes {
            eprintln!("options of `{app}` that change:");
            for line in lines {
                eprintln!("  {line}");
            }
        }
    }

    if options.dry_run || options.diff {
        if options.diff {
            converge::print_diff(&prepared)?;
        } else {
            let report = converge::plan_report(&session.model, &prepared);
            match global.output {
                super::OutputFormat::Text => super::print_stdout(&converge::plan_text(&report))?,
                format => format.document(&report)?,
            }
        }
        if options.dry_run {
            return Ok(ExitCode::SUCCESS);
        }
    }

    let deadline = Instant::now() + options.run.timeout;
    ensure_namespace(&session, deadline).await?;
    let progress = converge::progress(global.output);
    let performed = converge::commit(
        &session,
        &prepared,
        &resolution,
        &rendered,
        &options.run,
        &progress,
    )
    .await?;
    global
        .output
        .document(&converge::run_report(&session.model, &performed, &changes))?;
    converge::conclude(&session.model, &performed, &progress)
}

/// Create the model namespace if it does not exist (labelled, so `remove --all` knows wharf
/// made it).
async fn ensure_namespace(session: &Session, deadline: Instant) -> anyhow::Result<()> {
    let model = session.model.as_str();
    let api: Api<Namespace> = Api::all(session.client().clone());
    let describe = session.describe(&format!("create namespace {model}"));
    // A namespace being deleted (a `remove --all` just before) refuses new objects: say so, and
    // wait it out until the deadline.
    match api.get_opt(model).await.map_err(&describe)? {
        None => {}
        Some(ns) if ns.metadata.deletion_timestamp.is_none() => return Ok(()),
        Some(_) => {
            let left = deadline.saturating_duration_since(Instant::now());
            wait::until_namespace_gone(session.client(), session.server(), model, left, |line| {
                eprintln!("{line}; waiting for it to go before deploying into it")
            })
            .await
            .map_err(|e| anyhow!("{e}; deploy again once it is gone"))?;
        }
    }
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(model.to_owned()),
            labels: Some(
                [(
                    crate::store::OWNER_LABEL.to_string(),
                    crate::store::OWNER.to_string(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(e) if errors::is_conflict(&e) => Ok(()),
        Err(e) => Err(describe(e)),
    }
}
