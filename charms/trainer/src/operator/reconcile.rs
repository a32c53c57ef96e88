//! One reconciliation of one TrainJob: refuse a spec the trainer cannot run, make sure its Job
//! exists, read the Job and its pod (and, while it trains, the pod's log for the per-epoch
//! progress lines), write the status when it changed, and tell the user through Events
//! (JobCreated, Running, Succeeded, Failed, InvalidSpec).

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::job::{self, JobSettings};
use super::metrics::Metrics;
use super::status::{self, Phase};
use crate::crd::{CONDITION_CREATED, CONDITION_RUNNING, EpochMetrics, TrainJob, TrainJobStatus};
use crate::progress;

/// Everything a reconciliation needs, shared by all of them.
pub struct Context {
    pub client: kube::Client,
    pub settings: JobSettings,
    pub recorder: Recorder,
    pub metrics: Metrics,
    /// How often a running TrainJob's log is read for new epochs (`--progress-interval`).
    pub progress_interval: Duration,
}

/// How much of the log one read takes: the last lines only, so a read costs the same at epoch 5
/// and epoch 5000. Epochs already in the status are kept by the merge; a container printing more
/// than this many other lines between two reads loses the epochs among them from the history.
const LOG_TAIL_LINES: i64 = 2 * progress::MAX_EPOCHS as i64;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Invalid(#[from] job::InvalidSpec),
    #[error("TrainJob has no namespace")]
    NoNamespace,
}

/// How often an unfinished TrainJob is looked at even without a watch event.
const RESYNC: Duration = Duration::from_secs(300);
/// ... and one whose pod has not started: a pod that cannot start changes nothing in the Job
/// (which is all the operator watches), so its reason is looked for again this often.
const RESYNC_NOT_STARTED: Duration = Duration::from_secs(15);

pub async fn reconcile(tj: Arc<TrainJob>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_inner(&tj, &ctx).await;
    ctx.metrics
        .reconcile_seconds
        .with_label_values(&[] as &[&str])
        .observe(started.elapsed().as_secs_f64());
    ctx.metrics
        .reconciles
        .with_label_values(&[if result.is_ok() { "ok" } else { "error" }])
        .inc();
    result
}

pub fn error_policy(tj: Arc<TrainJob>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(trainjob = %tj.name_any(), namespace = ?tj.namespace(), %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile_inner(tj: &TrainJob, ctx: &Context) -> Result<Action, Error> {
    let ns = tj.namespace().ok_or(Error::NoNamespace)?;
    let name = tj.name_any();
    let generation = tj.metadata.generation;
    let previous = tj.status.as_ref();
    // Done means a Job ran to an end. A TrainJob refused before any Job existed (InvalidSpec,
    // JobConflict) is not done: once its spec is fixed, it runs.
    let finished = previous.is_some_and(|s| {
        matches!(s.state.as_deref(), Some("Succeeded" | "Failed"))
            && s.conditions
                .iter()
                .any(|c| c.type_ == CONDITION_CREATED && c.status == "True")
    });

    if let Err(invalid) = job::validate(tj, &ctx.settings) {
        // A spec that never ran stays refused until it is fixed (a new generation is checked again).
        let next = status::invalid(previous, &invalid.0, generation);
        if write_status(ctx, tj, &ns, previous, &next).await? {
            ctx.metrics.finished.with_label_values(&["Failed"]).inc();
            event(
                ctx,
                tj,
                EventType::Warning,
                "InvalidSpec",
                "Validate",
                &invalid.0,
            )
            .await;
        }
        return Ok(Action::await_change());
    }

    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let mut current = jobs.get_opt(&name).await?;
    if current.is_none() && !finished {
        let desired = job::build(tj, &ctx.settings)?;
        current = Some(match jobs.create(&PostParams::default(), &desired).await {
            Ok(created) => {
                tracing::info!(trainjob = %name, namespace = %ns, "created the Job");
                event(
                    ctx,
                    tj,
                    EventType::Normal,
                    "JobCreated",
                    "CreateJob",
                    &format!("created Job {name}"),
                )
                .await;
                created
            }
            Err(kube::Error::Api(e)) if e.code == 409 => jobs.get(&name).await?,
            Err(e) => return Err(e.into()),
        });
    }
    let Some(current) = current else {
        // Finished, and the Job was deleted since (e.g. by a TTL): the status stands.
        return Ok(Action::await_change());
    };
    if !current
        .owner_references()
        .iter()
        .any(|o| Some(&o.uid) == tj.metadata.uid.as_ref())
    {
        let message = format!("a Job named {name} exists and does not belong to this TrainJob");
        let next = status::status(
            previous,
            &Phase::Failed {
                reason: "JobConflict".into(),
                message: message.clone(),
            },
            None,
            None,
            generation,
        );
        if write_status(ctx, tj, &ns, previous, &next).await? {
            event(
                ctx,
                tj,
                EventType::Warning,
                "JobConflict",
                "CreateJob",
                &message,
            )
            .await;
        }
        return Ok(Action::await_change());
    }

    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pods = pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={name}")))
        .await?
        .items;
    let phase = status::phase(&current, &pods);
    let model_uri = match &phase {
        Phase::Succeeded {
            model_path: Some(path),
            ..
        } => Some(job::model_uri(&tj.spec.output.uri, path)),
        _ => None,
    };
    // While it trains, and once more when it ends (the last epochs may have come after the last
    // read); a finished TrainJob's history stands.
    let read = if phase == Phase::Running || (phase.is_finished() && !finished) {
        match status::log_pod(&pods) {
            Some(pod) => progress_lines(ctx, &ns, &pod).await,
            None => Vec::new(),
        }
    } else {
        Vec::new()
    };
    let next = status::with_epochs(
        status::status(previous, &phase, Some(&current), model_uri, generation),
        read,
    );
    let changed_state = previous.and_then(|s| s.state.as_deref()) != next.state.as_deref();
    let wrote = write_status(ctx, tj, &ns, previous, &next).await?;
    let job_generation = job::built_from(&current);
    let observed_before = previous
        .and_then(|s| s.conditions.first())
        .and_then(|c| c.observed_generation);
    if wrote
        && job_generation.is_some()
        && generation != job_generation
        && generation != observed_before
    {
        // Seen once per new generation: the status write above moved observedGeneration.
        let note = format!(
            "spec changed (generation {}) after Job {name} was created from generation {}; a Job \
             cannot change, so this TrainJob keeps running the old spec: delete and recreate it to \
             train with the new one",
            generation.unwrap_or_default(),
            job_generation.unwrap_or_default()
        );
        event(
            ctx,
            tj,
            EventType::Warning,
            "SpecChangeIgnored",
            "Validate",
            &note,
        )
        .await;
    }
    if wrote && changed_state {
        match &phase {
            Phase::Created { .. } => {}
            Phase::Running => {
                event(
                    ctx,
                    tj,
                    EventType::Normal,
                    "Running",
                    "Train",
                    "the training pod started",
                )
                .await
            }
            Phase::Succeeded { .. } => {
                ctx.metrics.finished.with_label_values(&["Succeeded"]).inc();
                let message = next
                    .conditions
                    .iter()
                    .find(|c| c.type_ == "Succeeded")
                    .map(|c| c.message.clone())
                    .unwrap_or_default();
                event(ctx, tj, EventType::Normal, "Succeeded", "Train", &message).await
            }
            Phase::Failed { reason, message } => {
                ctx.metrics.finished.with_label_values(&["Failed"]).inc();
                event(
                    ctx,
                    tj,
                    EventType::Warning,
                    "Failed",
                    "Train",
                    &format!("{reason}: {message}"),
                )
                .await
            }
        }
    }
    if let Phase::Created {
        waiting: Some(waiting),
    } = &phase
    {
        let running_reason = |s: &TrainJobStatus| {
            s.conditions
                .iter()
                .find(|c| c.type_ == CONDITION_RUNNING)
                .map(|c| c.reason.clone())
        };
        if wrote
            && !waiting.is_normal()
            && previous.and_then(running_reason) != running_reason(&next)
        {
            let message = format!("{}: {}", waiting.reason, waiting.message);
            event(
                ctx,
                tj,
                EventType::Warning,
                "PodNotStarting",
                "Train",
                &message,
            )
            .await;
        }
    }
    Ok(match phase {
        _ if phase.is_finished() => Action::await_change(),
        Phase::Created { .. } => Action::requeue(RESYNC_NOT_STARTED),
        Phase::Running => Action::requeue(ctx.progress_interval.min(RESYNC)),
        _ => Action::requeue(RESYNC),
    })
}

/// The epochs in the tail of the training container's log. Progress is a view, not the outcome:
/// a log that cannot be read (the pod just went, a kubelet that does not answer) is logged and
/// leaves the history as it was; the conditions still move.
async fn progress_lines(ctx: &Context, ns: &str, pod: &str) -> Vec<EpochMetrics> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let params = LogParams {
        container: Some("trainer".into()),
        tail_lines: Some(LOG_TAIL_LINES),
        ..LogParams::default()
    };
    match pods.logs(pod, &params).await {
        Ok(text) => progress::parse(&text),
        Err(e) => {
            tracing::warn!(%pod, namespace = %ns, error = %e, "could not read the training pod's log for progress");
            Vec::new()
        }
    }
}

/// Writes `next` to the status subresource if it differs; true when it wrote.
async fn write_status(
    ctx: &Context,
    tj: &TrainJob,
    ns: &str,
    previous: Option<&TrainJobStatus>,
    next: &TrainJobStatus,
) -> Result<bool, Error> {
    if previous == Some(next) {
        return Ok(false);
    }
    let api: Api<TrainJob> = Api::namespaced(ctx.client.clone(), ns);
    api.patch_status(
        &tj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": next })),
    )
    .await?;
    Ok(true)
}

/// Publishes an Event about the TrainJob; a failure is logged, never fatal.
async fn event(
    ctx: &Context,
    tj: &TrainJob,
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
    if let Err(e) = ctx.recorder.publish(&ev, &tj.object_ref(&())).await {
        tracing::warn!(trainjob = %tj.name_any(), error = %e, "could not publish an Event");
    }
}
