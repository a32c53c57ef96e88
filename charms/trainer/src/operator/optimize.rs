//! One reconciliation of one OptimizationJob: read it afresh and list the TrainJobs it owns, let
//! [`super::trials::plan`] decide, then make the decision real — create the new trials'
//! TrainJobs, record the status (before a stopped trial's TrainJob is deleted, so its record
//! outlives it), delete the TrainJobs hyperband stopped — and tell the user through Events
//! (TrialCreated, TrialEarlyStopped, Succeeded, Failed, InvalidSpec).
//!
//! The OptimizationJob controller runs in the TrainJob operator's process (`super::run`): one
//! more watch, no more pods or images.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::trials::{self, LABEL_JOB, MAX_TRIAL_NAME};
use crate::crd::TrainJob;
use crate::optimization::{OptimizationJob, OptimizationJobStatus, TrialState};
use crate::search;

/// What the OptimizationJob controller needs.
pub struct Context {
    pub client: kube::Client,
    pub recorder: Recorder,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("OptimizationJob has no namespace")]
    NoNamespace,
}

/// How often a running OptimizationJob is looked at without a watch event (its TrainJobs'
/// changes wake it up sooner).
const RESYNC: Duration = Duration::from_secs(60);

pub async fn reconcile(oj: Arc<OptimizationJob>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = oj.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<OptimizationJob> = Api::namespaced(ctx.client.clone(), &ns);
    // Afresh, not from the watch's cache: the status written by the last pass holds the records
    // of stopped trials whose TrainJobs are gone, and a stale copy would not.
    let Some(oj) = api.get_opt(&oj.name_any()).await? else {
        return Ok(Action::await_change());
    };
    if oj.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = oj.name_any();
    let generation = oj.metadata.generation;
    let previous = oj.status.as_ref();
    let now = Time(Timestamp::now());

    let mut errors = search::validate(&oj.spec);
    let longest = trials::trial_name(&name, search::budget(&oj.spec).saturating_sub(1));
    if longest.len() > MAX_TRIAL_NAME {
        errors.push(format!(
            "metadata.name: trial TrainJobs are named like {longest} ({} characters, at most \
             {MAX_TRIAL_NAME}); use a name of at most {} characters",
            longest.len(),
            MAX_TRIAL_NAME - (longest.len() - name.len())
        ));
    }
    if !errors.is_empty() {
        // Refused before any trial ran; a fixed spec (a new generation) is checked again.
        if previous.is_some_and(|s| !s.trials.is_empty()) {
            tracing::warn!(optimizationjob = %name, namespace = %ns, ?errors, "spec became invalid after trials started; keeping the trials");
        }
        let next = trials::invalid(previous, &errors, generation, &now);
        if write_status(&api, &name, previous, &next).await? {
            event(
                &ctx,
                &oj,
                EventType::Warning,
                "InvalidSpec",
                "Validate",
                &errors.join("; "),
            )
            .await;
        }
        return Ok(Action::await_change());
    }

    let trainjobs: Api<TrainJob> = Api::namespaced(ctx.client.clone(), &ns);
    let owned = trainjobs
        .list(&ListParams::default().labels(&format!("{LABEL_JOB}={name}")))
        .await?
        .items;
    let uid = oj.metadata.uid.clone();
    let metric = oj.spec.objectives[0].metric;
    let observed: Vec<trials::Observed> = owned
        .iter()
        .filter(|tj| {
            tj.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == uid.as_ref())
        })
        .filter_map(|tj| trials::observe(tj, metric))
        .collect();
    let mut plan = trials::plan(&name, &oj.spec, previous, &observed, generation, &now);

    for trial in &plan.create {
        let desired = trials::train_job(&oj, trial);
        match trainjobs.create(&PostParams::default(), &desired).await {
            Ok(_) => {
                let note = format!("trial {} with {}", trial.index, describe(&desired));
                event(
                    &ctx,
                    &oj,
                    EventType::Normal,
                    "TrialCreated",
                    "CreateTrial",
                    &note,
                )
                .await;
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let mine = trainjobs
                    .get(&trial.name)
                    .await?
                    .owner_references()
                    .iter()
                    .any(|o| Some(&o.uid) == uid.as_ref());
                if !mine {
                    let message = format!(
                        "a TrainJob named {} exists and does not belong to this OptimizationJob; \
                         rename or delete it",
                        trial.name
                    );
                    if let Some(t) = plan
                        .status
                        .trials
                        .iter_mut()
                        .find(|t| t.index == trial.index)
                    {
                        t.state = TrialState::Failed;
                        t.message = Some(message.clone());
                    }
                    event(
                        &ctx,
                        &oj,
                        EventType::Warning,
                        "TrialConflict",
                        "CreateTrial",
                        &message,
                    )
                    .await;
                }
            }
            Err(e) => return Err(e.into()),
        }
    }

    let changed_state = previous.and_then(|s| s.state.as_deref()) != plan.status.state.as_deref();
    let wrote = write_status(&api, &name, previous, &plan.status).await?;

    for stop in &plan.stop {
        delete_trial(&trainjobs, &stop.name).await?;
        let note = format!("{}: {}", stop.name, stop.message);
        event(
            &ctx,
            &oj,
            EventType::Normal,
            "TrialEarlyStopped",
            "StopTrial",
            &note,
        )
        .await;
    }
    // A stop recorded by an earlier pass whose delete did not happen (the API failed after the
    // status write): the record stands, so only this pass can still stop the training.
    for t in &plan.status.trials {
        let left = owned
            .iter()
            .any(|tj| tj.name_any() == t.name && tj.metadata.deletion_timestamp.is_none());
        if t.state == TrialState::EarlyStopped
            && left
            && !plan.stop.iter().any(|s| s.name == t.name)
        {
            delete_trial(&trainjobs, &t.name).await?;
        }
    }

    if wrote && changed_state {
        let condition =
            plan.status.conditions.iter().find(|c| {
                Some(c.type_.as_str()) == plan.status.state.as_deref() && c.status == "True"
            });
        let message = condition.map(|c| c.message.clone()).unwrap_or_default();
        match plan.status.state.as_deref() {
            Some("Succeeded") => {
                event(&ctx, &oj, EventType::Normal, "Succeeded", "Tune", &message).await
            }
            Some("Failed") => {
                event(&ctx, &oj, EventType::Warning, "Failed", "Tune", &message).await
            }
            _ => {}
        }
    }
    Ok(if plan.status.active_trials > 0 {
        Action::requeue(RESYNC)
    } else {
        Action::await_change()
    })
}

pub fn error_policy(oj: Arc<OptimizationJob>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(optimizationjob = %oj.name_any(), namespace = ?oj.namespace(), %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Deletes a stopped trial's TrainJob (its Job and pod go with it); gone already is fine.
async fn delete_trial(trainjobs: &Api<TrainJob>, name: &str) -> Result<(), Error> {
    match trainjobs.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `learningRate=0.001 batchSize=64`, from the trial's annotation.
fn describe(tj: &TrainJob) -> String {
    tj.annotations()
        .get(trials::ANNOTATION_PARAMETERS)
        .and_then(|a| serde_json::from_str::<std::collections::BTreeMap<String, f64>>(a).ok())
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Writes `next` to the status subresource if it differs; true when it wrote.
async fn write_status(
    api: &Api<OptimizationJob>,
    name: &str,
    previous: Option<&OptimizationJobStatus>,
    next: &OptimizationJobStatus,
) -> Result<bool, Error> {
    if previous == Some(next) {
        return Ok(false);
    }
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": next })),
    )
    .await?;
    Ok(true)
}

/// Publishes an Event about the OptimizationJob; a failure is logged, never fatal.
async fn event(
    ctx: &Context,
    oj: &OptimizationJob,
    type_: EventType,
    reason: &str,
    action: &str,
    note: &str,
) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &oj.object_ref(&())).await {
        tracing::warn!(optimizationjob = %oj.name_any(), error = %e, "could not publish an Event");
    }
}
