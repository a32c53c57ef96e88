//! When is an applied object ready? One rule per kind, read from the live object's status:
//! workload rollouts (with observedGeneration, so a stale status never counts), Jobs complete,
//! PVCs bound, LoadBalancer Services with an address, CRDs established. Other kinds are ready
//! once they exist.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Not yet; the text says what is awaited ("1/3 replicas available").
    Waiting(String),
    /// Will not become ready without a change (a failed Job, a stuck rollout).
    Failed(String),
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        matches!(self, Readiness::Ready)
    }
}

fn int(v: &Value, path: &[&str]) -> Option<i64> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_i64()
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// The condition of a type from `status.conditions`: (status, reason, message).
fn condition<'a>(obj: &'a Value, kind: &str) -> Option<(&'a str, &'a str, &'a str)> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        .map(|c| {
            (
                text(c, &["status"]).unwrap_or(""),
                text(c, &["reason"]).unwrap_or(""),
                text(c, &["message"]).unwrap_or(""),
            )
        })
}

/// The status has caught up with the latest spec (the controller saw this generation).
fn observed(obj: &Value) -> Option<Readiness> {
    let generation = int(obj, &["metadata", "generation"]).unwrap_or(0);
    let observed = int(obj, &["status", "observedGeneration"]).unwrap_or(0);
    (observed < generation)
        .then(|| Readiness::Waiting("rollout not yet observed by its controller".into()))
}

pub fn assess(kind: &str, obj: &Value) -> Readiness {
    match kind {
        "Deployment" => deployment(obj),
        "StatefulSet" => statefulset(obj),
        "DaemonSet" => daemonset(obj),
        "Job" => job(obj),
        "PersistentVolumeClaim" => match text(obj, &["status", "phase"]) {
            Some("Bound") => Readiness::Ready,
            Some("Lost") => Readiness::Failed("its volume is lost".into()),
            phase => Readiness::Waiting(format!(
                "volume {}",
                phase.unwrap_or("not bound").to_lowercase()
            )),
        },
        "Service" if text(obj, &["spec", "type"]) == Some("LoadBalancer") => {
            let has_address = obj
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
            if has_address {
                Readiness::Ready
            } else {
                Readiness::Waiting("load balancer has no address yet (is MetalLB enabled?)".into())
            }
        }
        "CustomResourceDefinition" => match condition(obj, "Established") {
            Some(("True", _, _)) => Readiness::Ready,
            _ => Readiness::Waiting("CRD not established yet".into()),
        },
        _ => Readiness::Ready,
    }
}

fn deployment(obj: &Value) -> Readiness {
    if let Some(w) = observed(obj) {
        return w;
    }
    if let Some(("False", "ProgressDeadlineExceeded", msg)) = condition(obj, "Progressing") {
        return Readiness::Failed(format!("rollout stuck: {msg}"));
    }
    let want = int(obj, &["spec", "replicas"]).unwrap_or(1);
    let updated = int(obj, &["status", "updatedReplicas"]).unwrap_or(0);
    let available = int(obj, &["status", "availableReplicas"]).unwrap_or(0);
    let total = int(obj, &["status", "replicas"]).unwrap_or(0);
    if updated < want {
        Readiness::Waiting(format!("{updated}/{want} replicas updated"))
    } else if total > updated {
        Readiness::Waiting(format!(
            "{} old replicas pending termination",
            total - updated
        ))
    } else if available < want {
        Readiness::Waiting(format!("{available}/{want} replicas available"))
    } else {
        Readiness::Ready
    }
}

fn statefulset(obj: &Value) -> Readiness {
    if let Some(w) = observed(obj) {
        return w;
    }
    let want = int(obj, &["spec", "replicas"]).unwrap_or(1);
    let ready = int(obj, &["status", "readyReplicas"]).unwrap_or(0);
    let rolling = text(obj, &["spec", "updateStrategy", "type"]).unwrap_or("RollingUpdate")
        == "RollingUpdate";
    if rolling {
        let updated = int(obj, &["status", "updatedReplicas"]).unwrap_or(0);
        if updated < want {
            return Readiness::Waiting(format!("{updated}/{want} replicas updated"));
        }
    }
    if ready < want {
        Readiness::Waiting(format!("{ready}/{want} replicas ready"))
    } else {
        Readiness::Ready
    }
}

fn daemonset(obj: &Value) -> Readiness {
    if let Some(w) = observed(obj) {
        return w;
    }
    let want = int(obj, &["status", "desiredNumberScheduled"]).unwrap_or(0);
    let updated = int(obj, &["status", "updatedNumberScheduled"]).unwrap_or(0);
    let ready = int(obj, &["status", "numberAvailable"])
        .or_else(|| int(obj, &["status", "numberReady"]))
        .unwrap_or(0);
    if updated < want {
        Readiness::Waiting(format!("{updated}/{want} nodes updated"))
    } else if ready < want {
        Readiness::Waiting(format!("{ready}/{want} nodes ready"))
    } else {
        Readiness::Ready
    }
}

fn job(obj: &Value) -> Readiness {
    if let Some(("True", reason, msg)) = condition(obj, "Failed") {
        let why = if msg.is_empty() { reason } else { msg };
        return Readiness::Failed(format!("job failed: {why}"));
    }
    match condition(obj, "Complete") {
        Some(("True", _, _)) => Readiness::Ready,
        _ => {
            let active = int(obj, &["status", "active"]).unwrap_or(0);
            Readiness::Waiting(format!("job running ({active} active)"))
        }
    }
}

/// Why a Pod is not ready, from its container statuses: the waiting reason and message
/// (`ImagePullBackOff: ...`), a termination message, or the phase.
pub fn pod_problem(pod: &Value) -> Option<String> {
    let statuses = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for s in &statuses {
        if s.get("ready").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(w) = s.pointer("/state/waiting") {
            let reason = text(w, &["reason"]).unwrap_or("Waiting");
            return Some(match text(w, &["message"]) {
                Some(m) if !m.is_empty() => format!("{reason}: {m}"),
                _ => reason.to_owned(),
            });
        }
        if let Some(t) = s.pointer("/state/terminated") {
            let reason = text(t, &["reason"]).unwrap_or("Terminated");
            return Some(match text(t, &["message"]) {
                Some(m) if !m.is_empty() => format!("{reason}: {m}"),
                _ => reason.to_owned(),
            });
        }
    }
    match text(pod, &["status", "phase"]) {
        Some("Running")
            if statuses
                .iter()
                .all(|s| s.get("ready").and_then(Value::as_bool) == Some(true)) =>
        {
            None
        }
        Some("Succeeded") => None,
        Some(phase) => Some(match text(pod, &["status", "message"]) {
            Some(m) if !m.is_empty() => format!("{phase}: {m}"),
            _ => phase.to_lowercase(),
        }),
        None => Some("pending".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_rollout_table() {
        let cases = [
            (
                json!({"metadata": {"generation": 2}, "spec": {"replicas": 1},
                "status": {"observedGeneration": 1, "updatedReplicas": 1, "availableReplicas": 1, "replicas": 1}}),
                false,
                "not yet observed",
            ),
            (
                json!({"metadata": {"generation": 1}, "spec": {"replicas": 3},
                "status": {"observedGeneration": 1, "updatedReplicas": 3, "availableReplicas": 1, "replicas": 3}}),
                false,
                "1/3 replicas available",
            ),
            (
                json!({"metadata": {"generation": 1}, "spec": {"replicas": 2},
                "status": {"observedGeneration": 1, "updatedReplicas": 2, "availableReplicas": 2, "replicas": 3}}),
                false,
                "old replicas",
            ),
            (
                json!({"metadata": {"generation": 1},
                "status": {"observedGeneration": 1, "updatedReplicas": 1, "availableReplicas": 1, "replicas": 1}}),
                true,
                "",
            ),
        ];
        for (obj, ready, why) in cases {
            let r = assess("Deployment", &obj);
            assert_eq!(r.is_ready(), ready, "{obj}: {r:?}");
            if let Readiness::Waiting(w) = r {
                assert!(w.contains(why), "{w} should contain {why}");
            }
        }
        let stuck = json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1,
            "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "too slow"}]}});
        assert!(
            matches!(assess("Deployment", &stuck), Readiness::Failed(m) if m.contains("too slow"))
        );
    }

    #[test]
    fn statefulset_daemonset_job_pvc_service_crd() {
        let sts = json!({"metadata": {"generation": 1}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "readyReplicas": 2, "updatedReplicas": 2}});
        assert!(assess("StatefulSet", &sts).is_ready());
        let ds = json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1,
            "desiredNumberScheduled": 1, "updatedNumberScheduled": 1, "numberReady": 0}});
        assert!(!assess("DaemonSet", &ds).is_ready());
        let done = json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}});
        assert!(assess("Job", &done).is_ready());
        let failed = json!({"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}});
        assert_eq!(
            assess("Job", &failed),
            Readiness::Failed("job failed: BackoffLimitExceeded".into())
        );
        assert!(
            assess(
                "PersistentVolumeClaim",
                &json!({"status": {"phase": "Bound"}})
            )
            .is_ready()
        );
        assert!(
            !assess(
                "PersistentVolumeClaim",
                &json!({"status": {"phase": "Pending"}})
            )
            .is_ready()
        );
        let lb = json!({"spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {}}});
        assert!(!assess("Service", &lb).is_ready());
        let lb = json!({"spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}});
        assert!(assess("Service", &lb).is_ready());
        assert!(assess("Service", &json!({"spec": {"type": "ClusterIP"}})).is_ready());
        let crd = json!({"status": {"conditions": [{"type": "Established", "status": "True"}]}});
        assert!(assess("CustomResourceDefinition", &crd).is_ready());
        assert!(!assess("CustomResourceDefinition", &json!({})).is_ready());
        assert!(assess("ConfigMap", &json!({})).is_ready());
    }

    #[test]
    fn pod_problems_name_the_reason() {
        let pod = json!({"status": {"phase": "Pending", "containerStatuses": [{"ready": false,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}}}]}});
        assert_eq!(
            pod_problem(&pod).as_deref(),
            Some("ImagePullBackOff: no such image")
        );
        let ok = json!({"status": {"phase": "Running", "containerStatuses": [{"ready": true, "state": {"running": {}}}]}});
        assert_eq!(pod_problem(&ok), None);
    }
}
