//! What a TrainJob's status should say, from its Job and the Job's pod: the phase, the four
//! conditions (each with observedGeneration; a transition time that moves only when the status
//! flips), start and completion times, the metrics and model URI the trainer left in its
//! termination message, and the per-epoch history read from its log ([`with_epochs`]).

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;

use crate::crd::{
    CONDITION_CREATED, CONDITION_FAILED, CONDITION_RUNNING, CONDITION_SUCCEEDED, EpochMetrics,
    TrainJobStatus, TrainMetrics,
};
use crate::progress;

/// Where a TrainJob is.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// The Job exists, no pod has started yet; `waiting` says why, when the kubelet said.
    Created {
        waiting: Option<Waiting>,
    },
    Running,
    Succeeded {
        metrics: Option<TrainMetrics>,
        /// The version directory inside the pod, as the trainer reported it.
        model_path: Option<String>,
    },
    Failed {
        reason: String,
        message: String,
    },
}

/// Why the training container has not started: the kubelet's reason and message, for example
/// `CreateContainerConfigError: secret "minio-credentials" not found` or `ImagePullBackOff`.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

impl Waiting {
    /// True for the reasons a pod passes through on its way to running; anything else (a missing
    /// Secret, an image that cannot be pulled) needs someone to act.
    pub fn is_normal(&self) -> bool {
        matches!(
            self.reason.as_str(),
            "ContainerCreating" | "PodInitializing"
        )
    }
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Created { .. } => CONDITION_CREATED,
            Phase::Running => CONDITION_RUNNING,
            Phase::Succeeded { .. } => CONDITION_SUCCEEDED,
            Phase::Failed { .. } => CONDITION_FAILED,
        }
    }

    pub fn is_finished(&self) -> bool {
        matches!(self, Phase::Succeeded { .. } | Phase::Failed { .. })
    }
}

/// The termination message of a successful `wharf-trainer train` (main.rs writes it; the
/// metrics are the artifact's own, in snake_case).
#[derive(Debug, Deserialize)]
struct Summary {
    model_uri: String,
    metrics: wharf_model::Metrics,
}

impl From<wharf_model::Metrics> for TrainMetrics {
    fn from(m: wharf_model::Metrics) -> Self {
        TrainMetrics {
            test_accuracy: m.test_accuracy,
            train_accuracy: Some(m.train_accuracy),
            loss: m.loss,
            epochs: m.epochs,
        }
    }
}

/// The trainer container's waiting state in the newest pod, if it is waiting.
fn waiting(pods: &[Pod]) -> Option<Waiting> {
    let newest = pods
        .iter()
        .max_by_key(|pod| pod.metadata.creation_timestamp.clone())?;
    let statuses = newest.status.as_ref()?.container_statuses.as_ref()?;
    let status = statuses.iter().find(|s| s.name == "trainer")?;
    let waiting = status.state.as_ref()?.waiting.as_ref()?;
    Some(Waiting {
        reason: waiting.reason.clone().unwrap_or_default(),
        message: waiting.message.clone().unwrap_or_default(),
    })
}

/// A condition reason must be CamelCase-like (the API rejects others); kubelet reasons are, but
/// a status write must never fail on one that is not.
fn condition_reason(reason: &str) -> &str {
    let valid = reason.starts_with(|c: char| c.is_ascii_alphabetic())
        && reason
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ',' | ':'))
        && !reason.ends_with([',', ':']);
    if valid { reason } else { "PodWaiting" }
}

/// The trainer container's terminated state, from the newest pod that has one.
fn terminated(pods: &[Pod]) -> Option<&ContainerStateTerminated> {
    let mut states: Vec<(&Pod, &ContainerStateTerminated)> = pods
        .iter()
        .filter_map(|pod| {
            let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
            let status = statuses.iter().find(|s| s.name == "trainer")?;
            Some((pod, status.state.as_ref()?.terminated.as_ref()?))
        })
        .collect();
    states.sort_by_key(|(pod, _)| pod.metadata.creation_timestamp.clone());
    states.last().map(|(_, t)| *t)
}

fn job_condition<'a>(
    job: &'a Job,
    type_: &str,
) -> Option<&'a k8s_openapi::api::batch::v1::JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// The phase a Job and its pods are in.
pub fn phase(job: &Job, pods: &[Pod]) -> Phase {
    let message = terminated(pods)
        .and_then(|t| t.message.clone())
        .unwrap_or_default();
    if job_condition(job, "Complete").is_some() {
        let summary: Option<Summary> = serde_json::from_str(message.trim()).ok();
        // A user's container writes one progress line to WHARF_METRICS_FILE instead (the last
        // such line, if it wrote several).
        let line = || {
            message
                .lines()
                .rev()
                .find_map(progress::parse_line)
                .as_ref()
                .and_then(progress::final_metrics)
        };
        return Phase::Succeeded {
            metrics: summary
                .as_ref()
                .map(|s| s.metrics.clone().into())
                .or_else(line),
            model_path: summary.map(|s| s.model_uri),
        };
    }
    if let Some(failed) = job_condition(job, "Failed") {
        let from_pod = message.trim().trim_start_matches("error: ").trim();
        let message = if !from_pod.is_empty() {
            from_pod.to_owned()
        } else {
            failed.message.clone().unwrap_or_default()
        };
        return Phase::Failed {
            reason: failed
                .reason
                .clone()
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "JobFailed".into()),
            message,
        };
    }
    // A pod that cannot start (a missing Secret, an image that cannot be pulled) still counts
    // as active in the Job: the container's own state tells.
    if let Some(waiting) = waiting(pods) {
        return Phase::Created {
            waiting: Some(waiting),
        };
    }
    let status = job.status.as_ref();
    let active = status.and_then(|s| s.active).unwrap_or(0) > 0;
    if active || status.and_then(|s| s.start_time.as_ref()).is_some() {
        Phase::Running
    } else {
        Phase::Created { waiting: None }
    }
}

/// Sets one condition, keeping its transition time when the status did not change (the
/// OptimizationJob's status uses it too).
pub(crate) fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    on: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) {
    let status = if on { "True" } else { "False" };
    let transition = conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    conditions.retain(|c| c.type_ != type_);
    conditions.push(Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        observed_generation: generation,
        last_transition_time: transition,
    });
}

/// The status for `phase`, built on `previous` (kept times and transition times).
///
/// `job` gives startTime and completionTime; `model_uri` is already mapped back to the output URI.
pub fn status(
    previous: Option<&TrainJobStatus>,
    phase: &Phase,
    job: Option<&Job>,
    model_uri: Option<String>,
    generation: Option<i64>,
) -> TrainJobStatus {
    let now = Time(Timestamp::now());
    let mut next = previous.cloned().unwrap_or_default();
    let job_status = job.and_then(|j| j.status.as_ref());
    let conditions = &mut next.conditions;
    let created = job.is_some();
    set_condition(
        conditions,
        CONDITION_CREATED,
        created,
        if created { "JobCreated" } else { "NoJob" },
        &match job.and_then(|j| j.metadata.name.as_deref()) {
            Some(name) => format!("Job {name} created"),
            None => String::new(),
        },
        generation,
        &now,
    );
    let running = *phase == Phase::Running;
    let (reason, message) = match phase {
        Phase::Created {
            waiting: Some(waiting),
        } => (
            condition_reason(&waiting.reason),
            format!(
                "the training pod is waiting: {}",
                if waiting.message.is_empty() {
                    &waiting.reason
                } else {
                    &waiting.message
                }
            ),
        ),
        Phase::Created { waiting: None } => ("Pending", String::new()),
        Phase::Running => ("PodRunning", "the training pod is running".into()),
        Phase::Succeeded { .. } | Phase::Failed { .. } => ("Finished", String::new()),
    };
    set_condition(
        conditions,
        CONDITION_RUNNING,
        running,
        reason,
        &message,
        generation,
        &now,
    );
    let (ok, ok_message) = match phase {
        Phase::Succeeded { metrics, .. } => (
            true,
            metrics
                .as_ref()
                .map(|m| {
                    format!(
                        "test accuracy {:.4} after {} epochs",
                        m.test_accuracy, m.epochs
                    )
                })
                .unwrap_or_else(|| "training finished (no metrics reported)".into()),
        ),
        _ => (false, String::new()),
    };
    set_condition(
        conditions,
        CONDITION_SUCCEEDED,
        ok,
        if ok {
            "TrainingSucceeded"
        } else {
            "NotFinished"
        },
        &ok_message,
        generation,
        &now,
    );
    let (failed, reason, message) = match phase {
        Phase::Failed { reason, message } => (true, reason.as_str(), message.as_str()),
        _ => (false, "NotFailed", ""),
    };
    set_condition(
        conditions,
        CONDITION_FAILED,
        failed,
        reason,
        message,
        generation,
        &now,
    );
    conditions.sort_by_key(|c| {
        [
            CONDITION_CREATED,
            CONDITION_RUNNING,
            CONDITION_SUCCEEDED,
            CONDITION_FAILED,
        ]
        .iter()
        .position(|t| *t == c.type_)
    });

    next.state = Some(phase.name().to_owned());
    if let Some(start) = job_status.and_then(|s| s.start_time.clone()) {
        next.start_time.get_or_insert(start);
    }
    if phase.is_finished() {
        let end = job_status
            .and_then(|s| s.completion_time.clone())
            .or_else(|| {
                job_status
                    .and_then(|s| s.conditions.as_ref())
                    .and_then(|cs| cs.iter().find(|c| c.type_ == "Failed"))
                    .and_then(|c| c.last_transition_time.clone())
            });
        next.completion_time = next.completion_time.take().or(end).or(Some(now));
    }
    if let Phase::Succeeded { metrics, .. } = phase {
        next.metrics = metrics.clone();
        next.model_uri = model_uri;
    }
    next
}

/// The pod whose log holds the progress: the newest one whose trainer container has started
/// (running or ended; a waiting container has no log yet).
pub fn log_pod(pods: &[Pod]) -> Option<String> {
    pods.iter()
        .filter(|pod| {
            let statuses = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref());
            statuses.into_iter().flatten().any(|c| {
                c.name == "trainer"
                    && c.state
                        .as_ref()
                        .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
            })
        })
        .max_by_key(|pod| pod.metadata.creation_timestamp.clone())
        .and_then(|pod| pod.metadata.name.clone())
}

/// `next` with the epochs just read from the log merged into its history (bounded, see
/// [`progress::merge`]); a finished run that reported no final metrics gets its last epoch's.
pub fn with_epochs(mut next: TrainJobStatus, read: Vec<EpochMetrics>) -> TrainJobStatus {
    if !read.is_empty() {
        next.epochs = progress::merge(&next.epochs, read);
    }
    if next.state.as_deref() == Some(CONDITION_SUCCEEDED) && next.metrics.is_none() {
        next.metrics = next.epochs.last().and_then(progress::final_metrics);
    }
    next
}

/// The status of a TrainJob whose spec the operator refused (no Job is created).
pub fn invalid(
    previous: Option<&TrainJobStatus>,
    message: &str,
    generation: Option<i64>,
) -> TrainJobStatus {
    let phase = Phase::Failed {
        reason: "InvalidSpec".into(),
        message: message.to_owned(),
    };
    status(previous, &phase, None, None, generation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(status: serde_json::Value) -> Job {
        serde_json::from_value(json!({"metadata": {"name": "fashion"}, "status": status})).unwrap()
    }

    fn pod(message: &str, exit: i32) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "fashion-abc", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"containerStatuses": [{"name": "trainer", "image": "i", "imageID": "",
                "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": exit, "message": message}}}]}
        }))
        .unwrap()
    }

    const SUMMARY: &str = r#"{"model_uri":"/mnt/claims/models/fashion/1","metrics":{"test_accuracy":0.875,"train_accuracy":0.9,"loss":0.31,"epochs":2,"train_seconds":12.5}}"#;

    fn condition<'a>(s: &'a TrainJobStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn a_complete_job_succeeds_with_the_trainers_metrics() {
        let job = job(json!({"startTime": "2026-01-01T00:00:01Z",
            "completionTime": "2026-01-01T00:01:00Z", "succeeded": 1,
            "conditions": [{"type": "Complete", "status": "True"}]}));
        let phase = phase(&job, &[pod(SUMMARY, 0)]);
        let Phase::Succeeded {
            metrics,
            model_path,
        } = &phase
        else {
            panic!("{phase:?}")
        };
        assert_eq!(metrics.as_ref().unwrap().test_accuracy, 0.875);
        assert_eq!(model_path.as_deref(), Some("/mnt/claims/models/fashion/1"));
        let s = status(
            None,
            &phase,
            Some(&job),
            Some("pvc://models/fashion/1".into()),
            Some(3),
        );
        assert_eq!(s.state.as_deref(), Some("Succeeded"));
        assert_eq!(condition(&s, "Succeeded").status, "True");
        assert_eq!(condition(&s, "Running").status, "False");
        assert_eq!(condition(&s, "Created").status, "True");
        assert!(
            s.conditions
                .iter()
                .all(|c| c.observed_generation == Some(3))
        );
        assert_eq!(
            s.completion_time.unwrap().0.to_string(),
            "2026-01-01T00:01:00Z"
        );
        assert_eq!(s.model_uri.as_deref(), Some("pvc://models/fashion/1"));
    }

    #[test]
    fn a_failed_job_fails_with_its_reason_and_the_pods_message() {
        let job = job(json!({"failed": 1, "conditions": [
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
             "message": "Job has reached the specified backoff limit"}]}));
        let p = phase(
            &job,
            &[pod(
                "error: /data: neither train-images-idx3-ubyte nor ...",
                1,
            )],
        );
        assert_eq!(
            p,
            Phase::Failed {
                reason: "BackoffLimitExceeded".into(),
                message: "/data: neither train-images-idx3-ubyte nor ...".into()
            }
        );
        let without_pod = phase(&job, &[]);
        assert!(
            matches!(without_pod, Phase::Failed { message, .. } if message.contains("backoff limit"))
        );
    }

    #[test]
    fn transition_times_move_only_when_a_condition_flips() {
        let running = job(json!({"active": 1, "startTime": "2026-01-01T00:00:01Z"}));
        let first = status(None, &Phase::Running, Some(&running), None, Some(1));
        let mut aged = first.clone();
        for c in &mut aged.conditions {
            c.last_transition_time = Time("2020-01-01T00:00:00Z".parse().unwrap());
        }
        let again = status(Some(&aged), &Phase::Running, Some(&running), None, Some(1));
        assert_eq!(again, aged, "nothing changed: nothing to write");
        let done = job(json!({"conditions": [{"type": "Complete", "status": "True"}]}));
        let next = status(Some(&aged), &phase(&done, &[]), Some(&done), None, Some(1));
        assert_ne!(
            condition(&next, "Running").last_transition_time,
            condition(&aged, "Running").last_transition_time
        );
        assert_eq!(
            condition(&next, "Created").last_transition_time,
            condition(&aged, "Created").last_transition_time
        );
        assert_eq!(
            next.start_time.unwrap().0.to_string(),
            "2026-01-01T00:00:01Z"
        );
    }

    #[test]
    fn a_job_without_a_pod_yet_is_created() {
        assert_eq!(
            phase(&job(json!({})), &[]),
            Phase::Created { waiting: None }
        );
        let s = invalid(
            None,
            "output.uri \"s3://Bad_Bucket/x\": \"Bad_Bucket\" is not an S3 bucket name",
            Some(2),
        );
        assert_eq!(condition(&s, "Failed").reason, "InvalidSpec");
        assert_eq!(condition(&s, "Created").status, "False");
    }

    #[test]
    fn a_pod_that_cannot_start_is_not_running_and_says_why() {
        // The Job counts the pod as active; the kubelet cannot start its container.
        let job = job(json!({"active": 1, "startTime": "2026-01-01T00:00:01Z"}));
        let stuck: Pod = serde_json::from_value(json!({
            "metadata": {"name": "fashion-abc", "creationTimestamp": "2026-01-01T00:00:02Z"},
            "status": {"containerStatuses": [{"name": "trainer", "image": "i", "imageID": "",
                "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "CreateContainerConfigError",
                    "message": "secret \"minio-credentials\" not found"}}}]}
        }))
        .unwrap();
        let phase = phase(&job, &[stuck]);
        let Phase::Created {
            waiting: Some(waiting),
        } = &phase
        else {
            panic!("expected Created with a reason, got {phase:?}")
        };
        assert!(!waiting.is_normal());
        let s = status(None, &phase, None, None, Some(1));
        assert_eq!(s.state.as_deref(), Some("Created"));
        let running = condition(&s, "Running");
        assert_eq!(
            (running.status.as_str(), running.reason.as_str()),
            ("False", "CreateContainerConfigError")
        );
        assert_eq!(
            running.message,
            "the training pod is waiting: secret \"minio-credentials\" not found"
        );
    }

    fn epoch(n: u32, loss: f64, accuracy: f64) -> EpochMetrics {
        EpochMetrics {
            epoch: n,
            loss: Some(loss),
            accuracy: Some(accuracy),
            train_accuracy: None,
        }
    }

    #[test]
    fn a_containers_metrics_file_line_is_its_final_metrics() {
        let done = job(json!({"conditions": [{"type": "Complete", "status": "True"}]}));
        let written = "{\"epoch\": 5, \"loss\": 0.2, \"accuracy\": 0.93}\n";
        let Phase::Succeeded {
            metrics,
            model_path,
        } = phase(&done, &[pod(written, 0)])
        else {
            panic!()
        };
        let m = metrics.unwrap();
        assert_eq!(
            (m.test_accuracy, m.loss, m.epochs, m.train_accuracy),
            (0.93, 0.2, 5, None)
        );
        assert_eq!(model_path, None, "no artifact path was reported");
        let s = status(
            None,
            &phase(&done, &[pod(written, 0)]),
            Some(&done),
            None,
            Some(1),
        );
        assert_eq!(
            condition(&s, "Succeeded").message,
            "test accuracy 0.9300 after 5 epochs"
        );
    }

    #[test]
    fn epochs_grow_while_running_and_the_last_one_is_the_final_metrics_when_none_were_written() {
        let running = job(json!({"active": 1, "startTime": "2026-01-01T00:00:01Z"}));
        let first = with_epochs(
            status(None, &Phase::Running, Some(&running), None, Some(1)),
            vec![epoch(1, 0.9, 0.6)],
        );
        assert_eq!(first.epochs.len(), 1);
        assert_eq!(first.metrics, None, "not finished: no final metrics yet");
        let second = with_epochs(
            status(Some(&first), &Phase::Running, Some(&running), None, Some(1)),
            vec![epoch(1, 0.9, 0.6), epoch(2, 0.7, 0.7)],
        );
        assert_eq!(second.epochs.len(), 2);
        let unchanged = with_epochs(
            status(
                Some(&second),
                &Phase::Running,
                Some(&running),
                None,
                Some(1),
            ),
            vec![],
        );
        assert_eq!(unchanged, second, "nothing new read: nothing to write");
        let done = job(json!({"conditions": [{"type": "Complete", "status": "True"}]}));
        let finished = with_epochs(
            status(
                Some(&second),
                &phase(&done, &[]),
                Some(&done),
                None,
                Some(1),
            ),
            vec![epoch(3, 0.5, 0.8)],
        );
        let m = finished.metrics.unwrap();
        assert_eq!((m.test_accuracy, m.loss, m.epochs), (0.8, 0.5, 3));
    }

    #[test]
    fn the_log_is_read_from_the_newest_pod_that_started() {
        let started = pod(SUMMARY, 0);
        let mut waiting: Pod = serde_json::from_value(json!({
            "metadata": {"name": "fashion-new", "creationTimestamp": "2026-01-01T00:05:00Z"},
            "status": {"containerStatuses": [{"name": "trainer", "image": "i", "imageID": "",
                "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ErrImagePull"}}}]}
        }))
        .unwrap();
        assert_eq!(
            log_pod(&[started.clone(), waiting.clone()]).as_deref(),
            Some("fashion-abc")
        );
        waiting
            .status
            .as_mut()
            .unwrap()
            .container_statuses
            .as_mut()
            .unwrap()[0]
            .state =
            serde_json::from_value(json!({"running": {"startedAt": "2026-01-01T00:05:01Z"}}))
                .unwrap();
        assert_eq!(log_pod(&[started, waiting]).as_deref(), Some("fashion-new"));
        assert_eq!(log_pod(&[]), None);
    }

    #[test]
    fn a_waiting_reason_the_api_would_refuse_is_replaced() {
        assert_eq!(condition_reason("ImagePullBackOff"), "ImagePullBackOff");
        assert_eq!(condition_reason("not camel case"), "PodWaiting");
        assert_eq!(condition_reason(""), "PodWaiting");
        assert_eq!(condition_reason("Bad:"), "PodWaiting");
    }
}
