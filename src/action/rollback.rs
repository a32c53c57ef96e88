//! `wharf rollback APP [REVISION]`: re-apply an earlier revision — its manifests and its secret
//! values, exactly as recorded — through the same engine: prune what it did not have, wait, and
//! record a new revision "rollback to N" (history is never rewritten). The application's stored
//! options go back to that revision's, so the next deploy keeps the rollback. Refused before any
//! write when the revision needs something the cluster no longer serves.

use std::process::ExitCode;

use anyhow::{anyhow, bail};

use super::converge;
use super::{Global, Outcome, OutputFormat, Session};
use crate::engine::{Desired, Prune, RunOptions};
use crate::store::ReleaseStatus;
use crate::store::inputs::Inputs;
use crate::store::releases::History;

#[derive(Debug, Clone)]
pub struct Options {
    pub app: String,
    pub revision: Option<u32>,
    pub dry_run: bool,
    pub run: RunOptions,
}

pub fn run(global: &Global, options: &Options) -> Outcome {
    super::runtime()?.block_on(rollback(global, options))
}

/// The revision a rollback without one goes back to: the last deployed one when the newest record
/// failed (an upgrade that broke), else the deployed revision before the current one.
pub fn default_target(history: &History, app: &str) -> anyhow::Result<u32> {
    let records = history.of(app);
    let last = records
        .last()
        .ok_or_else(|| anyhow!("`{app}` has no revisions"))?;
    if last.status != ReleaseStatus::Deployed
        && let Some(deployed) = history.deployed(app)
    {
        return Ok(deployed.revision);
    }
    records
        .iter()
        .rev()
        .filter(|r| r.revision < last.revision)
        .find(|r| {
            matches!(
                r.status,
                ReleaseStatus::Superseded | ReleaseStatus::Deployed
            )
        })
        .map(|r| r.revision)
        .ok_or_else(|| {
            anyhow!(
                "`{app}` has no earlier deployed revision to go back to (`wharf history {app}`); \
                 name one: `wharf rollback {app} REVISION`"
            )
        })
}

async fn rollback(global: &Global, options: &Options) -> Outcome {
    let session = Session::open(global).await?;
    let app = options.app.as_str();
    let history = session.releases.list().await?;
    if history.of(app).is_empty() {
        bail!(
            "model `{}` has no application `{app}`{}",
            session.model,
            crate::bundle::did_you_mean(app, history.apps.keys())
        );
    }
    let revision = match options.revision {
        Some(r) => r,
        None => default_target(&history, app)?,
    };
    let record = history
        .of(app)
        .iter()
        .find(|r| r.revision == revision)
        .ok_or_else(|| {
            let kept: Vec<String> = history
                .of(app)
                .iter()
                .map(|r| r.revision.to_string())
                .collect();
            anyhow!(
                "`{app}` has no revision {revision}; the kept ones are {} (`wharf history {app}`)",
                kept.join(", ")
            )
        })?;
    let values = session.releases.values(app, revision).await?;
    let desired = Desired::from_record(record, &values)?;
    let user_options = desired.user_options();
    let prepared = converge::prepare_and_gate(&session, vec![desired], Prune::default())
        .await
        .map_err(|e| anyhow!("cannot roll `{app}` back to revision {revision}: {e:#}"))?;
    if options.dry_run {
        let report = converge::plan_report(&session.model, &prepared);
        match global.output {
            OutputFormat::Text => super::print_stdout(&converge::plan_text(&report))?,
            format => format.document(&report)?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    let lock = converge::lock(&session, &prepared, options.run.force_unlock).await?;
    // The application's options go back to the revision's, so that the next deploy keeps them.
    let restore = async {
        let mut inputs = Inputs::load(session.client(), &session.model, session.server()).await?;
        let before = inputs.clone();
        if user_options.is_empty() {
            inputs.config.remove(app);
        } else {
            inputs.config.insert(app.to_owned(), user_options);
        }
        if inputs != before {
            lock.guard().check()?;
            inputs
                .save(session.client(), &session.model, session.server())
                .await?;
        }
        anyhow::Ok(())
    };
    if let Err(e) = restore.await {
        lock.release().await;
        return Err(e);
    }
    let progress = converge::progress(global.output);
    let performed =
        converge::perform_locked(&session, &prepared, &options.run, lock, &progress).await?;
    match global.output {
        OutputFormat::Text => {
            if let Some(new) = performed.revisions.get(app) {
                println!("{app}: revision {new} re-applies revision {revision}");
            }
            related_hint(&history, app, revision);
        }
        format => format.document(&converge::run_report(
            &session.model,
            &performed,
            &Default::default(),
        ))?,
    }
    converge::conclude(&session.model, &performed, &progress)
}

/// Applications that got a revision from the same command as the one rolled away from (a
/// `config` that reached them through relations) are not rolled back with it: say so.
fn related_hint(history: &History, app: &str, target: u32) {
    let Some(undone) = history
        .of(app)
        .iter()
        .find(|r| r.revision > target && r.status != ReleaseStatus::Failed)
    else {
        return;
    };
    for (other, records) in &history.apps {
        if other == app {
            continue;
        }
        if let Some(r) = records.iter().find(|r| r.started == undone.started) {
            eprintln!(
                "note: `{other}` revision {} came from the same command ({}); roll it back too if \
                 needed: wharf rollback {other}",
                r.revision, r.description
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Release;
    use ReleaseStatus::*;

    fn history(statuses: &[ReleaseStatus]) -> History {
        let mut h = History::default();
        h.apps.insert(
            "a".into(),
            statuses
                .iter()
                .enumerate()
                .map(|(i, s)| Release::fixture("a", i as u32 + 1).with_status(*s))
                .collect(),
        );
        h
    }

    #[test]
    fn default_target_is_the_previous_deployed_revision() {
        assert_eq!(
            default_target(&history(&[Superseded, Deployed]), "a").unwrap(),
            1
        );
        assert_eq!(
            default_target(&history(&[Superseded, Failed, Deployed]), "a").unwrap(),
            1
        );
        // The newest failed (a broken upgrade): back to what runs.
        assert_eq!(
            default_target(&history(&[Superseded, Deployed, Failed]), "a").unwrap(),
            2
        );
        assert!(default_target(&history(&[Deployed]), "a").is_err());
    }
}
