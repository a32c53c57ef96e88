//! The `autoscaling/v2` HorizontalPodAutoscaler controller, modelled on kube-controller-manager's
//! (pkg/controller/podautoscaler): every `Config::hpa_sync_period` each HPA reads its target's
//! `/scale`, the pods its selector picks and their metrics from `metrics.k8s.io`, computes
//! `desired = ceil(current × currentUtilization / target)` per Resource metric (0.1 tolerance,
//! pods without metrics counted at 100 % on a scale-down and 0 % on a scale-up, requests required
//! for utilization), takes the highest, stabilizes scale-downs over a window, limits scale-ups to
//! max(+4, ×2) per sync, clamps to min/max, and writes `/scale` as manager
//! `kube-controller-manager`. Status, the AbleToScale/ScalingActive/ScalingLimited conditions and
//! Events say what the real one says.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::managed::Scope;
use crate::metrics::{self, Usage};
use crate::ops::{WriteCtx, now, rand_suffix};
use crate::scale;
use crate::selector::LabelSelector;
use crate::store::{ObjKey, State};
use crate::{Config, Shared};

/// The field manager of the real controller's writes (its user agent's product).
pub const MANAGER: &str = "kube-controller-manager";
/// `--horizontal-pod-autoscaler-tolerance`.
const TOLERANCE: f64 = 0.1;

/// Recent recommendations per HPA (namespace, name), for scale-down stabilization.
type History = HashMap<(String, String), Vec<(Instant, i64)>>;

pub async fn run(shared: Arc<Shared>) {
    let mut history = History::new();
    let mut tick = tokio::time::interval(shared.config.hpa_sync_period);
    loop {
        tick.tick().await;
        if *shared.shutdown.borrow() {
            return;
        }
        let mut st = shared.lock();
        let usage = shared.usage.lock().unwrap_or_else(|p| p.into_inner());
        let Some(rt) = st
            .catalog
            .find("autoscaling", "v2", "horizontalpodautoscalers")
        else {
            return;
        };
        let hpas = st
            .op_list(&rt, None, &Default::default())
            .ok()
            .and_then(|l| l["items"].as_array().cloned())
            .unwrap_or_default();
        for hpa in hpas {
            if hpa["metadata"]["deletionTimestamp"].is_null() {
                sync(&mut st, &usage, &shared.config, &hpa, &mut history);
            }
        }
    }
}

fn condition(kind: &str, status: bool, reason: &str, message: &str) -> Value {
    json!({"type": kind, "status": if status { "True" } else { "False" }, "reason": reason,
           "message": message, "lastTransitionTime": now()})
}

/// One Resource metric's recommendation, or why there is none (the condition's reason and text).
struct Proposal {
    replicas: i64,
    /// `status.currentMetrics[]` entry.
    current: Value,
    /// `cpu resource utilization (percentage of request)`, for the rescale event.
    name: String,
}

struct MetricError {
    reason: &'static str,
    message: String,
}

fn sync(st: &mut State, usage: &Usage, config: &Config, hpa: &Value, history: &mut History) {
    let ns = hpa["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let name = hpa["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let spec = &hpa["spec"];
    let target = &spec["scaleTargetRef"];
    let min = spec["minReplicas"].as_i64().unwrap_or(1);
    let max = spec["maxReplicas"].as_i64().unwrap_or(1);
    let rt = st.catalog.find_kind(
        target["apiVersion"].as_str().unwrap_or_default(),
        target["kind"].as_str().unwrap_or_default(),
    );
    let found = rt.as_ref().and_then(|rt| {
        let paths = scale::paths(&*st, rt)?;
        let obj = st
            .get(&ObjKey::new(
                rt,
                &ns,
                target["name"].as_str().unwrap_or_default(),
            ))?
            .clone();
        Some((rt.clone(), scale::scale_of(&obj, &paths)))
    });
    let Some((target_rt, scale_obj)) = found else {
        let what = format!(
            "{} \"{}\" not found",
            target["kind"].as_str().unwrap_or("?").to_lowercase(),
            target["name"].as_str().unwrap_or("?")
        );
        let message =
            format!("the HPA controller was unable to get the target's current scale: {what}");
        event(st, hpa, "Warning", "FailedGetScale", &what);
        write_status(
            st,
            hpa,
            json!({
                "currentReplicas": 0, "desiredReplicas": 0,
                "conditions": [condition("AbleToScale", false, "FailedGetScale", &message)],
            }),
        );
        return;
    };
    let current = scale_obj["spec"]["replicas"].as_i64().unwrap_or(0);
    let status_replicas = scale_obj["status"]["replicas"].as_i64().unwrap_or(0);
    if current == 0 && min != 0 {
        write_status(
            st,
            hpa,
            json!({
                "currentReplicas": status_replicas, "desiredReplicas": 0,
                "conditions": [
                    condition("AbleToScale", true, "SucceededGetScale", "the HPA controller was able to get the target's current scale"),
                    condition("ScalingActive", false, "ScalingDisabled", "scaling is disabled since the replica count of the target is zero"),
                ],
            }),
        );
        return;
    }
    let selector = scale_obj["status"]["selector"].as_str().unwrap_or_default();
    if selector.is_empty() {
        event(
            st,
            hpa,
            "Warning",
            "SelectorRequired",
            "selector is required",
        );
        write_status(
            st,
            hpa,
            json!({
                "currentReplicas": status_replicas, "desiredReplicas": current,
                "conditions": [
                    condition("AbleToScale", true, "SucceededGetScale", "the HPA controller was able to get the target's current scale"),
                    condition("ScalingActive", false, "InvalidSelector", "the HPA target's scale is missing a selector"),
                ],
            }),
        );
        return;
    }
    let default_metrics = [
        json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}),
    ];
    let metric_specs: Vec<Value> = spec["metrics"]
        .as_array()
        .filter(|m| !m.is_empty())
        .cloned()
        .unwrap_or_else(|| default_metrics.to_vec());
    let mut proposals = Vec::new();
    let mut errors = Vec::new();
    for m in &metric_specs {
        match propose(st, usage, config, &ns, selector, current, m) {
            Ok(p) => proposals.push(p),
            Err(e) => errors.push(e),
        }
    }
    let mut conditions = vec![condition(
        "AbleToScale",
        true,
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale",
    )];
    let first_error = errors.first();
    if let Some(e) = first_error {
        event(st, hpa, "Warning", e.reason, &e.message);
        event(
            st,
            hpa,
            "Warning",
            "FailedComputeMetricsReplicas",
            &format!(
                "invalid metrics ({} invalid out of {}), first error is: {}",
                errors.len(),
                metric_specs.len(),
                e.message
            ),
        );
    }
    let best = proposals.iter().max_by_key(|p| p.replicas);
    let current_metrics: Vec<Value> = proposals.iter().map(|p| p.current.clone()).collect();
    // With an invalid metric the controller never scales down (it cannot know it is safe).
    let proposal = match best {
        None => {
            let e = first_error.expect("no proposal means an error");
            conditions.push(condition(
                "ScalingActive",
                false,
                e.reason,
                &format!(
                    "the HPA was unable to compute the replica count: {}",
                    e.message
                ),
            ));
            write_status(
                st,
                hpa,
                json!({
                    "currentReplicas": status_replicas, "desiredReplicas": current,
                    "conditions": conditions,
                }),
            );
            return;
        }
        Some(p) if first_error.is_some() => p.replicas.max(current),
        Some(p) => p.replicas,
    };
    let best = best.expect("matched above");
    conditions.push(condition(
        "ScalingActive",
        true,
        "ValidMetricFound",
        &format!(
            "the HPA was able to successfully calculate a replica count from {}",
            best.name
        ),
    ));
    // Scale-down stabilization: the highest recommendation within the window wins.
    let window = spec
        .pointer("/behavior/scaleDown/stabilizationWindowSeconds")
        .and_then(Value::as_u64)
        .map(Duration::from_secs)
        .unwrap_or(config.hpa_downscale_stabilization);
    let now_i = Instant::now();
    // Like the real controller's recordInitialRecommendation: an HPA first seen recommends the
    // current size, so a new HPA does not scale down before its window has passed.
    let recs = history
        .entry((ns.clone(), name.clone()))
        .or_insert_with(|| vec![(now_i, current)]);
    recs.retain(|(t, _)| now_i.duration_since(*t) <= window);
    recs.push((now_i, proposal));
    let highest = recs.iter().map(|(_, r)| *r).max().unwrap_or(proposal);
    let mut stabilized = proposal;
    let mut able = (
        "ReadyForNewScale",
        "recommended size matches current size".to_string(),
    );
    if proposal < current {
        stabilized = highest.min(current);
        if stabilized != proposal {
            able = ("ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation".into());
        }
    }
    // The default scale-up policies: 100 % or 4 pods per period, whichever is more.
    let up_limit = (current * 2).max(current + 4);
    let (mut desired, mut limited) = (stabilized, None);
    if desired > up_limit {
        desired = up_limit;
        limited = Some((
            "ScaleUpLimit",
            "the desired replica count is increasing faster than the maximum scale rate",
        ));
    }
    if desired > max {
        desired = max;
        limited = Some((
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count",
        ));
    } else if desired < min.max(1) {
        desired = min.max(1);
        limited = Some((
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count",
        ));
    }
    let mut status = json!({
        "observedGeneration": hpa["metadata"]["generation"],
        "currentReplicas": status_replicas,
        "desiredReplicas": desired,
        "currentMetrics": current_metrics,
    });
    if let Some(t) = hpa["status"].get("lastScaleTime") {
        status["lastScaleTime"] = t.clone();
    }
    if desired != current {
        let body = json!({"spec": {"replicas": desired}});
        let ctx = WriteCtx::internal(MANAGER);
        let target_name = target["name"].as_str().unwrap_or_default();
        match scale::update(st, &target_rt, &ns, target_name, body, &ctx) {
            Ok(_) => {
                let reason = if desired > current {
                    format!("{} above target", best.name)
                } else {
                    "All metrics below target".to_string()
                };
                event(
                    st,
                    hpa,
                    "Normal",
                    "SuccessfulRescale",
                    &format!("New size: {desired}; reason: {reason}"),
                );
                able = (
                    "SucceededRescale",
                    format!("the HPA controller was able to update the target scale to {desired}"),
                );
                status["lastScaleTime"] = json!(now());
            }
            Err(e) => {
                let message = format!("failed to rescale {}: {}", target_name, e.message);
                event(st, hpa, "Warning", "FailedRescale", &message);
                conditions[0] = condition(
                    "AbleToScale",
                    false,
                    "FailedUpdateScale",
                    &format!(
                        "the HPA controller was unable to update the target scale: {}",
                        e.message
                    ),
                );
                status["desiredReplicas"] = json!(current);
            }
        }
    }
    if conditions[0]["status"] == "True" {
        conditions[0] = condition("AbleToScale", true, able.0, &able.1);
    }
    conditions.push(match limited {
        Some((reason, message)) => condition("ScalingLimited", true, reason, message),
        None => condition(
            "ScalingLimited",
            false,
            "DesiredWithinRange",
            "the desired count is within the acceptable range",
        ),
    });
    status["conditions"] = json!(conditions);
    write_status(st, hpa, status);
}

/// The recommendation of one metric spec (`type: Resource` only).
fn propose(
    st: &State,
    usage: &Usage,
    config: &Config,
    ns: &str,
    selector: &str,
    current: i64,
    spec: &Value,
) -> Result<Proposal, MetricError> {
    if spec["type"] != "Resource" {
        return Err(MetricError {
            reason: "InvalidMetricSourceType",
            message: format!(
                "kube-sim's HPA controller computes Resource metrics only, not {}",
                spec["type"]
            ),
        });
    }
    let resource = spec["resource"]["name"].as_str().unwrap_or("cpu");
    let target = &spec["resource"]["target"];
    let fail = |message: String| MetricError {
        reason: "FailedGetResourceMetric",
        message,
    };
    let selector = LabelSelector::parse(selector).map_err(|e| fail(e.message))?;
    let pods: Vec<Value> = pods(st, ns)
        .into_iter()
        .filter(|p| selector.matches(p))
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Failed" | "Succeeded")))
        .collect();
    if !config.metrics_server {
        return Err(fail(format!(
            "failed to get {resource} utilization: unable to get metrics for resource {resource}: unable to fetch metrics from resource metrics API: the server could not find the requested resource (get pods.metrics.k8s.io)"
        )));
    }
    // Pod name → usage (base units: cores, bytes), summed over containers.
    let mut measured: BTreeMap<String, f64> = BTreeMap::new();
    let mut missing = Vec::new();
    for p in &pods {
        let name = p["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match metrics::pod_metrics(usage, p) {
            Some(pm) => {
                let total: f64 = pm["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["usage"][resource].as_str())
                    .filter_map(metrics::quantity)
                    .sum();
                measured.insert(name, total);
            }
            // Pending pods are "unready" for the real controller; with no metrics they count
            // like missing ones here.
            None => missing.push(name),
        }
    }
    if measured.is_empty() {
        return Err(fail(format!(
            "failed to get {resource} utilization: unable to get metrics for resource {resource}: no metrics returned from resource metrics API"
        )));
    }
    let utilization = target["type"] == "Utilization";
    let mut requests: BTreeMap<String, f64> = BTreeMap::new();
    if utilization {
        for p in &pods {
            let pod = p["metadata"]["name"].as_str().unwrap_or_default();
            let mut sum = 0.0;
            for c in p["spec"]["containers"].as_array().into_iter().flatten() {
                let req = c["resources"]["requests"][resource]
                    .as_str()
                    .and_then(crate::storage::quantity)
                    .or_else(|| c["resources"]["requests"][resource].as_f64());
                match req {
                    Some(r) => sum += r,
                    None => {
                        return Err(fail(format!(
                            "failed to get {resource} utilization: missing request for {resource} in container {} of Pod {pod}",
                            c["name"].as_str().unwrap_or_default()
                        )));
                    }
                }
            }
            requests.insert(pod.to_string(), sum);
        }
    }
    let target_value = if utilization {
        target["averageUtilization"].as_f64().unwrap_or(80.0)
    } else {
        target["averageValue"]
            .as_str()
            .and_then(crate::storage::quantity)
            .or_else(|| target["averageValue"].as_f64())
            .unwrap_or(1.0)
    };
    // (ratio, the current value shown in status)
    let ratio_of = |m: &BTreeMap<String, f64>| -> (f64, f64) {
        let used: f64 = m.values().sum();
        if utilization {
            let requested: f64 = m.keys().filter_map(|k| requests.get(k)).sum();
            let pct = if requested > 0.0 {
                (used * 100.0 / requested).floor()
            } else {
                0.0
            };
            (pct / target_value, pct)
        } else {
            let avg = used / m.len() as f64;
            (avg / target_value, avg)
        }
    };
    let (ratio, shown) = ratio_of(&measured);
    let ready = measured.len() as f64;
    let replicas = if missing.is_empty() {
        if (1.0 - ratio).abs() <= TOLERANCE {
            current
        } else {
            (ratio * ready).ceil() as i64
        }
    } else {
        // Missing pods: assumed at the target (100 % of request) on a scale-down, idle on a
        // scale-up, so neither direction is overdone.
        let mut filled = measured.clone();
        for pod in &missing {
            let assumed = match (ratio < 1.0, utilization) {
                (true, true) => requests.get(pod).copied().unwrap_or(0.0),
                (true, false) => target_value,
                (false, _) => 0.0,
            };
            filled.insert(pod.clone(), assumed);
        }
        let (new_ratio, _) = ratio_of(&filled);
        let flipped = (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0);
        if (1.0 - new_ratio).abs() <= TOLERANCE || flipped {
            current
        } else {
            let n = (new_ratio * filled.len() as f64).ceil() as i64;
            if (new_ratio < 1.0 && n > current) || (new_ratio > 1.0 && n < current) {
                current
            } else {
                n
            }
        }
    };
    let (current_metric, name) = if utilization {
        let avg_value = measured.values().sum::<f64>() / ready;
        (
            json!({"type": "Resource", "resource": {"name": resource, "current": {
                "averageUtilization": shown as i64, "averageValue": quantity_text(resource, avg_value)}}}),
            format!("{resource} resource utilization (percentage of request)"),
        )
    } else {
        (
            json!({"type": "Resource", "resource": {"name": resource, "current": {
                "averageValue": quantity_text(resource, shown)}}}),
            format!("{resource} resource"),
        )
    };
    Ok(Proposal {
        replicas,
        current: current_metric,
        name,
    })
}

/// `250m` for CPU, bytes for memory, as the HPA prints them.
fn quantity_text(resource: &str, v: f64) -> String {
    if resource == "cpu" {
        format!("{}m", (v * 1000.0).round() as i64)
    } else {
        format!("{}", v.round() as i64)
    }
}

fn pods(st: &State, ns: &str) -> Vec<Value> {
    let Some(rt) = st.catalog.find("", "v1", "pods") else {
        return vec![];
    };
    st.op_list(&rt, Some(ns), &Default::default())
        .ok()
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default()
}

/// Write the HPA's status when it changed; unchanged conditions keep their transition time.
fn write_status(st: &mut State, hpa: &Value, mut status: Value) {
    let Some(rt) = st
        .catalog
        .find("autoscaling", "v2", "horizontalpodautoscalers")
    else {
        return;
    };
    let (ns, name) = (
        hpa["metadata"]["namespace"].as_str().unwrap_or_default(),
        hpa["metadata"]["name"].as_str().unwrap_or_default(),
    );
    let Some(old) = st.get(&ObjKey::new(&rt, ns, name)).cloned() else {
        return;
    };
    if let Some(conds) = status["conditions"].as_array_mut() {
        for c in conds.iter_mut() {
            let before = old["status"]["conditions"]
                .as_array()
                .and_then(|o| o.iter().find(|o| o["type"] == c["type"]));
            if let Some(b) = before.filter(|b| b["status"] == c["status"]) {
                c["lastTransitionTime"] = b["lastTransitionTime"].clone();
            }
        }
    }
    if old["status"] == status {
        return;
    }
    let mut new = old.clone();
    new["status"] = status;
    let scope = if rt.status {
        Scope::Status
    } else {
        Scope::Main {
            status_separate: false,
        }
    };
    if let Err(e) = st.finish_write(
        &rt,
        &old,
        new,
        scope,
        Some(MANAGER),
        &WriteCtx::internal(MANAGER),
    ) {
        tracing::warn!(ns, name, message = %e.message, "HPA status write failed");
    }
}

/// A core/v1 Event about the HPA, counted up when the same reason and message repeat (the
/// event recorder's aggregation).
fn event(st: &mut State, hpa: &Value, type_: &str, reason: &str, message: &str) {
    let Some(rt) = st.catalog.find("", "v1", "events") else {
        return;
    };
    let ns = hpa["metadata"]["namespace"].as_str().unwrap_or_default();
    let uid = &hpa["metadata"]["uid"];
    let ctx = WriteCtx::internal(MANAGER);
    let existing = st
        .op_list(&rt, Some(ns), &Default::default())
        .ok()
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .find(|e| {
            e["involvedObject"]["uid"] == *uid && e["reason"] == reason && e["message"] == message
        });
    let t = now();
    if let Some(old) = existing {
        let mut new = old.clone();
        new["count"] = json!(old["count"].as_i64().unwrap_or(1) + 1);
        new["lastTimestamp"] = json!(t);
        let _ = st.finish_write(
            &rt,
            &old,
            new,
            Scope::Main {
                status_separate: false,
            },
            Some(MANAGER),
            &ctx,
        );
        return;
    }
    let name = format!(
        "{}.{}",
        hpa["metadata"]["name"].as_str().unwrap_or_default(),
        rand_suffix(16)
    );
    let ev = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": ns},
        "involvedObject": {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "name": hpa["metadata"]["name"], "namespace": ns, "uid": uid,
            "resourceVersion": hpa["metadata"]["resourceVersion"]},
        "reason": reason, "message": message, "type": type_,
        "source": {"component": "horizontal-pod-autoscaler"},
        "reportingComponent": "horizontal-pod-autoscaler",
        "firstTimestamp": t, "lastTimestamp": t, "count": 1,
    });
    let _ = st.op_create(&rt, ns, ev, &ctx, false);
}
