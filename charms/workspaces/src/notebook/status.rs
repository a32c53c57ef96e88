//! What the operator reports in a Notebook's `status`: the Ready condition (Running, Starting,
//! Stopped, InvalidName, InvalidSpec) with its message, the ready replicas and the gateway path.
//! Pure, like the Profile's ([`crate::profile::status`], whose `Verdict` and condition rules it
//! shares).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::crd::{CONDITION_READY, NotebookStatus};
use crate::profile::status::{Verdict, condition};

/// What the reconcile saw of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// The Notebook cannot be run (reason, message).
    Refused(Verdict),
    /// Stopped by the annotation; since when (its value).
    Stopped { since: String },
    /// Its pod is ready.
    Running,
    /// Not ready yet (the StatefulSet's pod is being made, pulled or started).
    Starting,
}

/// The Ready verdict of what was observed.
pub fn verdict(observed: &Observed, namespace: &str, name: &str) -> Verdict {
    let path = format!("{}/", super::crd::prefix(namespace, name));
    match observed {
        Observed::Refused(v) => v.clone(),
        Observed::Stopped { since } => Verdict::not(
            "Stopped",
            format!(
                "the server is stopped (kubeflow-resource-stopped: {since}); its workspace is \
                 kept. Start it again: kubectl annotate notebook {name} -n {namespace} \
                 kubeflow-resource-stopped-"
            ),
        ),
        Observed::Running => Verdict::ok("Running", format!("Jupyter answers at {path}")),
        Observed::Starting => Verdict::not(
            "Starting",
            format!(
                "the server's pod {name}-0 is not ready yet (kubectl describe pod {name}-0 -n \
                 {namespace} says why if this lasts)"
            ),
        ),
    }
}

/// The whole status; `previous` keeps the transition time of an unchanged condition.
pub fn status(
    previous: Option<&NotebookStatus>,
    generation: Option<i64>,
    ready: &Verdict,
    ready_replicas: i32,
    url: Option<String>,
) -> NotebookStatus {
    let old = previous.map(|s| s.conditions.as_slice()).unwrap_or(&[]);
    NotebookStatus {
        conditions: vec![condition(old, CONDITION_READY, ready, generation)],
        ready_replicas,
        url,
    }
}

/// The Ready condition's (status, reason): an Event is recorded when it changes.
pub fn ready_of(status: Option<&NotebookStatus>) -> Option<(String, String)> {
    status?
        .conditions
        .iter()
        .find(|c| c.type_ == CONDITION_READY)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// Whether two statuses say the same thing (transition times aside).
pub fn same(a: Option<&NotebookStatus>, b: &NotebookStatus) -> bool {
    let Some(a) = a else { return false };
    let strip = |s: &NotebookStatus| {
        let mut s = s.clone();
        for c in &mut s.conditions {
            c.last_transition_time = Time(Timestamp::UNIX_EPOCH);
        }
        s
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_server_says_how_to_start_it_again() {
        let v = verdict(
            &Observed::Stopped {
                since: "2026-01-01T00:00:00Z".into(),
            },
            "alice",
            "nb",
        );
        assert!(!v.ok);
        assert_eq!(v.reason, "Stopped");
        assert!(
            v.message
                .contains("kubectl annotate notebook nb -n alice kubeflow-resource-stopped-"),
            "{}",
            v.message
        );
    }

    #[test]
    fn ready_when_running_and_the_transition_time_is_kept() {
        let running = verdict(&Observed::Running, "alice", "nb");
        assert!(running.ok);
        assert_eq!(running.message, "Jupyter answers at /notebook/alice/nb/");
        let mut first = status(None, Some(2), &running, 1, None);
        first.conditions[0].last_transition_time = Time(Timestamp::UNIX_EPOCH);
        let again = status(Some(&first), Some(2), &running, 1, None);
        assert!(same(Some(&first), &again));
        let starting = status(
            Some(&first),
            Some(2),
            &verdict(&Observed::Starting, "alice", "nb"),
            0,
            None,
        );
        assert!(!same(Some(&first), &starting));
        assert_ne!(ready_of(Some(&first)), ready_of(Some(&starting)));
    }
}
