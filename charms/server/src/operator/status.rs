//! What the operator reports in `status`: PredictorReady (the Deployment has a ready replica),
//! IngressReady (the gateway's route, the model Service, exists and has ready pods behind it) and
//! Ready (both), with the model's state and URL. Pure functions of what was observed, so that the
//! rules are tested without a cluster.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::crd::{
    CONDITION_INGRESS_READY, CONDITION_PREDICTOR_READY, CONDITION_READY, InferenceServiceStatus,
    ModelState,
};

/// Why an InferenceService is not served at all (bad spec, unusable storage, missing claim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: String,
    pub message: String,
}

/// What the reconcile saw of the objects it applied.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub deployment: Option<Deployment>,
    /// The model Service exists.
    pub service: bool,
    /// The Service's name and port, for messages.
    pub route: String,
    /// Why a model pod cannot start, as the kubelet says (`ImagePullBackOff: Back-off pulling
    /// image …`); looked up only while no replica is ready.
    pub waiting: Option<String>,
}

/// One condition's value before timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    pub reason: String,
    pub message: String,
}

fn verdict(ok: bool, reason: &str, message: impl Into<String>) -> Verdict {
    Verdict {
        ok,
        reason: reason.into(),
        message: message.into(),
    }
}

/// PredictorReady from the Deployment.
pub fn predictor(observed: &Observed, name: &str) -> Verdict {
    let Some(d) = &observed.deployment else {
        return verdict(
            false,
            "DeploymentMissing",
            "the Deployment is being created",
        );
    };
    let status = d.status.clone().unwrap_or_default();
    let generation = d.metadata.generation.unwrap_or(0);
    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let ready = status.ready_replicas.unwrap_or(0);
    if status.observed_generation.unwrap_or(0) < generation {
        return verdict(
            false,
            "Progressing",
            "the Deployment's new spec is being rolled out",
        );
    }
    if wanted == 0 {
        return verdict(
            false,
            "ScaledToZero",
            "minReplicas is 0: no replica is running",
        );
    }
    if ready >= 1 {
        return verdict(
            true,
            "MinimumReplicasAvailable",
            format!("{ready}/{wanted} replicas ready"),
        );
    }
    let why = match &observed.waiting {
        Some(waiting) => format!(": {waiting}"),
        None => format!(
            " (pulling the image or loading the model: \
             kubectl describe pods -l wharf.dev/inferenceservice={name})"
        ),
    };
    verdict(
        false,
        "ReplicasNotReady",
        format!("0/{wanted} replicas ready{why}"),
    )
}

/// IngressReady from the Service and the predictor (the Service has endpoints exactly when a
/// selected pod is ready).
pub fn ingress(observed: &Observed, predictor: &Verdict) -> Verdict {
    if !observed.service {
        return verdict(
            false,
            "ServiceMissing",
            "the model Service is being created",
        );
    }
    if !predictor.ok {
        return verdict(
            false,
            "NoReadyEndpoints",
            format!("Service {} has no ready pod behind it yet", observed.route),
        );
    }
    verdict(
        true,
        "Routed",
        format!("the gateway routes to Service {}", observed.route),
    )
}

/// The protocols every model is served with, as `status.protocols` names them.
pub const PROTOCOLS: [&str; 4] = ["v2-rest", "v2-grpc", "tfserving-rest", "tfserving-grpc"];

/// Where one model is reached: the base URL of its HTTP APIs and its gRPC `host:port`.
pub struct Endpoints {
    pub url: String,
    pub grpc_address: String,
}

/// The whole status of one reconcile. `previous` keeps transition times of unchanged conditions.
pub fn status(
    previous: Option<&InferenceServiceStatus>,
    generation: Option<i64>,
    refusal: Option<&Refusal>,
    observed: &Observed,
    name: &str,
    endpoints: Endpoints,
    served_version: Option<i64>,
) -> InferenceServiceStatus {
    let Endpoints { url, grpc_address } = endpoints;
    let (predictor, ingress) = match refusal {
        Some(r) => {
            let v = verdict(false, &r.reason, r.message.clone());
            (v.clone(), v)
        }
        None => {
            let p = predictor(observed, name);
            let i = ingress(observed, &p);
            (p, i)
        }
    };
    let ready = if predictor.ok && ingress.ok {
        verdict(true, "Ready", format!("serving at {url}"))
    } else if !predictor.ok {
        predictor.clone()
    } else {
        ingress.clone()
    };
    let model_state = match (refusal, &observed.deployment) {
        (Some(_), _) => ModelState::FailedToLoad,
        _ if predictor.ok => ModelState::Loaded,
        (None, Some(_)) if predictor.reason == "ReplicasNotReady" => ModelState::Loading,
        _ => ModelState::Pending,
    };
    let old = previous.map(|s| s.conditions.as_slice()).unwrap_or(&[]);
    InferenceServiceStatus {
        url: refusal.is_none().then_some(url),
        protocols: match refusal {
            None => PROTOCOLS.map(String::from).to_vec(),
            Some(_) => Vec::new(),
        },
        grpc_address: refusal.is_none().then_some(grpc_address),
        conditions: vec![
            condition(old, CONDITION_READY, &ready, generation),
            condition(old, CONDITION_PREDICTOR_READY, &predictor, generation),
            condition(old, CONDITION_INGRESS_READY, &ingress, generation),
        ],
        model_state: Some(model_state),
        served_version: served_version.filter(|_| refusal.is_none()),
        observed_generation: generation,
    }
}

fn condition(old: &[Condition], type_: &str, v: &Verdict, generation: Option<i64>) -> Condition {
    let status = if v.ok { "True" } else { "False" };
    let since = old
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()));
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: v.reason.clone(),
        message: v.message.clone(),
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// The Ready condition of a status, as (status, reason), to notice transitions worth an Event.
pub fn ready_of(status: Option<&InferenceServiceStatus>) -> Option<(String, String)> {
    status?
        .conditions
        .iter()
        .find(|c| c.type_ == CONDITION_READY)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// Whether two statuses say the same thing (transition times aside).
pub fn same(a: Option<&InferenceServiceStatus>, b: &InferenceServiceStatus) -> bool {
    let Some(a) = a else { return false };
    let strip = |s: &InferenceServiceStatus| {
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
    use serde_json::json;

    fn deployment(generation: i64, observed: i64, replicas: i32, ready: i32) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "fashion", "generation": generation},
            "spec": {"replicas": replicas, "selector": {}, "template": {}},
            "status": {"observedGeneration": observed, "readyReplicas": ready},
        }))
        .unwrap()
    }

    fn observed(d: Option<Deployment>, service: bool) -> Observed {
        Observed {
            deployment: d,
            service,
            route: "fashion:8080".into(),
            waiting: None,
        }
    }

    fn run(o: &Observed, refusal: Option<&Refusal>) -> InferenceServiceStatus {
        status(
            None,
            Some(4),
            refusal,
            o,
            "fashion",
            Endpoints {
                url: "http://u/".into(),
                grpc_address: "fashion.ns.svc.cluster.local:8081".into(),
            },
            Some(2),
        )
    }

    fn cond<'a>(s: &'a InferenceServiceStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn ready_needs_a_ready_replica_and_the_service() {
        let table = [
            // (deployment, service, Ready, PredictorReady, IngressReady, reason of Ready, state)
            (
                None,
                false,
                "False",
                "False",
                "False",
                "DeploymentMissing",
                ModelState::Pending,
            ),
            (
                Some(deployment(1, 0, 1, 0)),
                true,
                "False",
                "False",
                "False",
                "Progressing",
                ModelState::Pending,
            ),
            (
                Some(deployment(1, 1, 1, 0)),
                true,
                "False",
                "False",
                "False",
                "ReplicasNotReady",
                ModelState::Loading,
            ),
            (
                Some(deployment(1, 1, 0, 0)),
                true,
                "False",
                "False",
                "False",
                "ScaledToZero",
                ModelState::Pending,
            ),
            (
                Some(deployment(1, 1, 2, 1)),
                false,
                "False",
                "True",
                "False",
                "ServiceMissing",
                ModelState::Loaded,
            ),
            (
                Some(deployment(1, 1, 2, 1)),
                true,
                "True",
                "True",
                "True",
                "Ready",
                ModelState::Loaded,
            ),
        ];
        for (d, svc, ready, pred, ing, reason, state) in table {
            let s = run(&observed(d, svc), None);
            let got = (
                cond(&s, "Ready").status.as_str(),
                cond(&s, "PredictorReady").status.as_str(),
                cond(&s, "IngressReady").status.as_str(),
                cond(&s, "Ready").reason.as_str(),
                s.model_state.unwrap(),
            );
            assert_eq!(got, (ready, pred, ing, reason, state));
            assert_eq!(cond(&s, "Ready").observed_generation, Some(4));
        }
    }

    #[test]
    fn a_refusal_fails_every_condition_with_its_reason_and_no_url() {
        let refusal = Refusal {
            reason: "InvalidSpec".into(),
            message: "spec.minReplicas (3) is greater than spec.maxReplicas (1)".into(),
        };
        let s = run(&observed(None, false), Some(&refusal));
        for t in ["Ready", "PredictorReady", "IngressReady"] {
            assert_eq!(cond(&s, t).status, "False");
            assert_eq!(cond(&s, t).reason, "InvalidSpec");
            assert!(cond(&s, t).message.contains("greater than"));
        }
        assert_eq!(s.model_state, Some(ModelState::FailedToLoad));
        assert_eq!((s.url, s.served_version), (None, None));
        assert_eq!((s.grpc_address, s.protocols.len()), (None, 0));
    }

    #[test]
    fn transition_times_are_kept_while_a_condition_holds() {
        let o = observed(Some(deployment(1, 1, 1, 1)), true);
        let mut first = run(&o, None);
        for c in &mut first.conditions {
            c.last_transition_time = Time(Timestamp::UNIX_EPOCH);
        }
        let again = status(
            Some(&first),
            Some(4),
            None,
            &o,
            "fashion",
            Endpoints {
                url: "http://u/".into(),
                grpc_address: "fashion.ns.svc.cluster.local:8081".into(),
            },
            Some(2),
        );
        assert!(same(Some(&first), &again));
        assert_eq!(
            cond(&again, "Ready").last_transition_time,
            Time(Timestamp::UNIX_EPOCH)
        );
        let down = observed(Some(deployment(1, 1, 1, 0)), true);
        let changed = status(
            Some(&first),
            Some(4),
            None,
            &down,
            "fashion",
            Endpoints {
                url: "http://u/".into(),
                grpc_address: "fashion.ns.svc.cluster.local:8081".into(),
            },
            Some(2),
        );
        assert_ne!(
            cond(&changed, "Ready").last_transition_time,
            Time(Timestamp::UNIX_EPOCH)
        );
        assert!(!same(Some(&first), &changed));
        assert_eq!(
            ready_of(Some(&changed)),
            Some(("False".into(), "ReplicasNotReady".into()))
        );
    }

    #[test]
    fn a_pod_that_cannot_start_gives_the_kubelets_reason() {
        let mut o = observed(Some(deployment(1, 1, 1, 0)), true);
        o.waiting = Some("ImagePullBackOff: Back-off pulling image \"x:1\"".into());
        let s = run(&o, None);
        let ready = cond(&s, CONDITION_READY);
        assert_eq!(ready.reason, "ReplicasNotReady");
        assert_eq!(
            ready.message,
            "0/1 replicas ready: ImagePullBackOff: Back-off pulling image \"x:1\""
        );
        assert_eq!(s.model_state, Some(ModelState::Loading));
    }
}
