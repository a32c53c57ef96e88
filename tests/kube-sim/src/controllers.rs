//! Simulated controllers: a background task that reacts to stored changes the way the real
//! controllers would, after the configured delays. Deployments/StatefulSets/DaemonSets get Pods
//! and a ready status (never for `never_ready_image`), Jobs get one Pod that ends as the test said,
//! PVCs get Bound, LoadBalancer Services get an address from the pool, CRDs get Established.
//! Pods of Deployments are owned directly by the Deployment (no ReplicaSets are simulated).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::managed::Scope;
use crate::ops::{WriteCtx, now, rand_suffix};
use crate::store::{Event, ObjKey, State};
use crate::{Outcome, Shared};

const MANAGER: &str = "kube-controller-manager";
static POD_IPS: AtomicU32 = AtomicU32::new(10);

fn ctx() -> WriteCtx {
    WriteCtx::internal(MANAGER)
}

/// Runs until the event channel closes (the simulator shut down).
pub async fn run(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Arc<Event>>) {
    // (key, generation) already scheduled, so a burst of MODIFIED events schedules one reconcile.
    let scheduled: Arc<Mutex<HashSet<(ObjKey, i64)>>> = Arc::default();
    while let Some(ev) = rx.recv().await {
        if *shared.shutdown.borrow() {
            return;
        }
        if ev.key.plural == "pods" && ev.key.group.is_empty() {
            pod_claims_changed(&shared, &ev);
        }
        if ev.etype == "DELETED" {
            // A workload's pod deleted from outside: the workload controller replaces it.
            if let Some(owner) = workload_owner(&ev) {
                let (shared, scheduled) = (shared.clone(), scheduled.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(shared.config.readiness_delay).await;
                    let mut st = shared.lock();
                    let generation = st
                        .get(&owner)
                        .and_then(|o| o["metadata"]["generation"].as_i64());
                    let pending = generation.is_some_and(|g| {
                        scheduled
                            .lock()
                            .expect("scheduled set")
                            .contains(&(owner.clone(), g))
                    });
                    if let (Some(g), false) = (generation, pending) {
                        reconcile_workload(&mut st, &shared, &owner, g);
                    }
                });
            }
            continue;
        }
        let obj = &ev.object;
        let generation = obj["metadata"]["generation"].as_i64().unwrap_or(1);
        let deleting = !obj["metadata"]["deletionTimestamp"].is_null();
        match (ev.key.group.as_str(), ev.key.plural.as_str()) {
            ("apps", "deployments" | "statefulsets" | "daemonsets") if !deleting => {
                if obj["status"]["observedGeneration"].as_i64() == Some(generation) {
                    continue;
                }
                if !scheduled
                    .lock()
                    .expect("scheduled set")
                    .insert((ev.key.clone(), generation))
                {
                    continue;
                }
                let (shared, key, scheduled) = (shared.clone(), ev.key.clone(), scheduled.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(shared.config.readiness_delay).await;
                    scheduled
                        .lock()
                        .expect("scheduled set")
                        .remove(&(key.clone(), generation));
                    let mut st = shared.lock();
                    reconcile_workload(&mut st, &shared, &key, generation);
                });
            }
            // Started on creation, or when a suspended Job is resumed (start_job ignores started Jobs).
            ("batch", "jobs")
                if !deleting
                    && obj["spec"]["suspend"] != json!(true)
                    && obj["status"]["startTime"].is_null() =>
            {
                let pod_name = {
                    let mut st = shared.lock();
                    start_job(&mut st, &shared, &ev.key)
                };
                if let Some(pod) = pod_name {
                    let (shared, key) = (shared.clone(), ev.key.clone());
                    tokio::spawn(async move {
                        // A held Job (Outcome::Hold) is looked at again until a rule ends it.
                        loop {
                            tokio::time::sleep(shared.config.readiness_delay).await;
                            let mut st = shared.lock();
                            if finish_job(&mut st, &key, &pod) {
                                break;
                            }
                        }
                    });
                }
            }
            ("", "namespaces")
                if deleting
                    && ev
                        .old
                        .as_ref()
                        .is_some_and(|o| o["metadata"]["deletionTimestamp"].is_null()) =>
            {
                let (shared, name) = (shared.clone(), ev.key.name.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(shared.config.namespace_termination_delay).await;
                    shared.lock().purge_namespace(&name);
                });
            }
            // A pod made directly, without a controller: the scheduler and kubelet start it
            // once its claims are bound (a real kubelet cannot mount an unbound claim).
            ("", "pods")
                if ev.etype == "ADDED"
                    && !deleting
                    && obj["status"]["phase"].is_null()
                    && obj["metadata"]["ownerReferences"]
                        .as_array()
                        .is_none_or(|o| o.is_empty()) =>
            {
                let (shared, key) = (shared.clone(), ev.key.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(shared.config.readiness_delay).await;
                    let mut st = shared.lock();
                    let Some(pod) = st.get(&key).cloned() else {
                        return;
                    };
                    for c in crate::storage::claims_of(&pod) {
                        bind_pvc(&mut st, &crate::storage::claim_key(&key.namespace, &c));
                    }
                    let ready = !never_ready(&shared, &pod);
                    let status = pod_status(&shared, &pod, ready, &next_pod_ip());
                    write_status(&mut st, &key, status);
                });
            }
            ("", "persistentvolumeclaims") if deleting => {
                release_claim(&mut shared.lock(), &ev.key);
            }
            ("", "persistentvolumeclaims") if ev.etype == "ADDED" => {
                // WaitForFirstConsumer: the claim stays Pending until a pod uses it.
                let waits = {
                    let st = shared.lock();
                    st.class_of(obj)
                        .is_some_and(|c| c["volumeBindingMode"] == "WaitForFirstConsumer")
                        && !st.claim_in_use(&ev.key.namespace, &ev.key.name)
                };
                if !waits {
                    let (shared, key) = (shared.clone(), ev.key.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(shared.config.readiness_delay).await;
                        bind_pvc(&mut shared.lock(), &key);
                    });
                }
            }
            ("", "persistentvolumeclaims") if obj["status"]["phase"] == "Bound" => {
                // The resizer: a grown request becomes the capacity.
                let request = &obj["spec"]["resources"]["requests"]["storage"];
                if *request != obj["status"]["capacity"]["storage"] {
                    let (shared, key) = (shared.clone(), ev.key.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(shared.config.readiness_delay).await;
                        resize_pvc(&mut shared.lock(), &key);
                    });
                }
            }
            ("", "services") => {
                let is_lb = obj["spec"]["type"] == "LoadBalancer";
                let has_ip = obj["status"]["loadBalancer"]["ingress"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty());
                if is_lb && !has_ip && !deleting {
                    let mut st = shared.lock();
                    if let Some(ip) = st
                        .alloc
                        .lb_ip(obj["metadata"]["uid"].as_str().unwrap_or_default())
                    {
                        write_status(
                            &mut st,
                            &ev.key,
                            json!({"loadBalancer": {"ingress": [{"ip": ip.to_string(), "ipMode": "VIP"}]}}),
                        );
                    }
                }
            }
            ("apiextensions.k8s.io", "customresourcedefinitions")
                if deleting
                    && ev
                        .old
                        .as_ref()
                        .is_some_and(|o| o["metadata"]["deletionTimestamp"].is_null()) =>
            {
                // The CRD finalizer controller: delete the custom resources, then the CRD.
                let (shared, name) = (shared.clone(), ev.key.name.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(shared.config.crd_established_delay).await;
                    shared.lock().purge_crd(&name);
                });
            }
            ("apiextensions.k8s.io", "customresourcedefinitions") => {
                let established = obj["status"]["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["type"] == "Established"));
                if !established && ev.etype == "ADDED" {
                    let (shared, key) = (shared.clone(), ev.key.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(shared.config.crd_established_delay).await;
                        establish_crd(&mut shared.lock(), &key);
                    });
                }
            }
            _ => {}
        }
    }
}

/// Write `status` through the status path, as the controller manager.
fn write_status(st: &mut State, key: &ObjKey, status: Value) {
    let Some(rt) = st.catalog.any_version(&key.group, &key.plural) else {
        return;
    };
    let Some(old) = st.get(key).cloned() else {
        return;
    };
    let mut new = old.clone();
    new["status"] = keep_condition_times(&old["status"], status);
    let scope = if rt.status {
        Scope::Status
    } else {
        Scope::Main {
            status_separate: false,
        }
    };
    if let Err(e) = st.finish_write(&rt, &old, new, scope, Some(MANAGER), &ctx()) {
        tracing::warn!(?key, message = %e.message, "controller status write failed");
    }
}

/// Conditions whose status did not change keep their old timestamps (as real controllers do), so a
/// repeated reconcile that changes nothing writes nothing.
fn keep_condition_times(old: &Value, mut new: Value) -> Value {
    if let Some(conds) = new["conditions"].as_array_mut() {
        for c in conds.iter_mut() {
            let before = old["conditions"]
                .as_array()
                .and_then(|o| o.iter().find(|o| o["type"] == c["type"]));
            if let Some(b) =
                before.filter(|b| b["status"] == c["status"] && b["reason"] == c["reason"])
            {
                for k in ["lastTransitionTime", "lastUpdateTime", "lastProbeTime"] {
                    if !b[k].is_null() {
                        c[k] = b[k].clone();
                    }
                }
            }
        }
    }
    new
}

/// The workload (Deployment/StatefulSet/DaemonSet) a deleted pod belonged to, if it still exists.
fn workload_owner(ev: &Event) -> Option<ObjKey> {
    if !ev.key.group.is_empty() || ev.key.plural != "pods" {
        return None;
    }
    let r = ev.object["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == json!(true))?;
    let plural = match r["kind"].as_str()? {
        "Deployment" => "deployments",
        "StatefulSet" => "statefulsets",
        "DaemonSet" => "daemonsets",
        _ => return None,
    };
    Some(ObjKey {
        group: "apps".into(),
        plural: plural.into(),
        namespace: ev.key.namespace.clone(),
        name: r["name"].as_str()?.to_string(),
    })
}

fn condition(kind: &str, status: bool, reason: &str, message: &str) -> Value {
    let t = now();
    json!({"type": kind, "status": if status { "True" } else { "False" }, "reason": reason, "message": message,
           "lastTransitionTime": t, "lastUpdateTime": t})
}

fn images(template: &Value) -> Vec<String> {
    ["containers", "initContainers"]
        .iter()
        .flat_map(|k| template["spec"][*k].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["image"].as_str().map(str::to_string))
        .collect()
}

fn never_ready(shared: &Shared, template: &Value) -> bool {
    let images = images(template);
    shared
        .config
        .never_ready_image
        .as_ref()
        .is_some_and(|re| images.iter().any(|i| re.is_match(i)))
        || images.iter().any(|i| !present(shared, i))
}

/// The registry no kubelet can pull from: wharf's own images exist on a node only once imported.
pub const LOCAL_REGISTRY: &str = "wharf.local/";

/// Whether the node has `image` or can pull it (see `Config::node_images`).
fn present(shared: &Shared, image: &str) -> bool {
    let Some(store) = crate::node::stored_images(shared) else {
        return true;
    };
    // A registry nobody serves: only what was imported; any other image pulls.
    !image.starts_with(LOCAL_REGISTRY) || store.contains_key(image)
}

fn template_hash(template: &Value) -> String {
    let digest = Sha256::digest(template.to_string().as_bytes());
    digest.iter().take(5).map(|b| format!("{b:02x}")).collect()
}

fn next_pod_ip() -> String {
    let n = POD_IPS.fetch_add(1, Ordering::Relaxed);
    format!("10.1.{}.{}", (n >> 8) & 0xff, n & 0xff)
}

fn owner_ref(owner: &Value) -> Value {
    json!([{
        "apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true
    }])
}

/// A pod's status: running and ready, or stuck pulling its image.
fn pod_status(shared: &Shared, template: &Value, ready: bool, ip: &str) -> Value {
    let t = now();
    let containers: Vec<Value> = template["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let state = if ready {
                json!({"running": {"startedAt": t}})
            } else {
                json!({"waiting": {"reason": "ImagePullBackOff", "message": format!("Back-off pulling image \"{}\"", c["image"].as_str().unwrap_or_default())}})
            };
            // The kubelet knows the image's ID once it has the image (pulled or imported).
            let image = c["image"].as_str().unwrap_or_default();
            let id = if ready { crate::node::image_id(shared, image) } else { String::new() };
            json!({"name": c["name"], "image": c["image"], "imageID": id, "ready": ready, "started": ready, "restartCount": 0, "state": state})
        })
        .collect();
    let cond = |k: &str, s: bool| json!({"type": k, "status": if s { "True" } else { "False" }, "lastTransitionTime": t});
    json!({
        "phase": if ready { "Running" } else { "Pending" },
        "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "10.0.0.10", "startTime": t, "qosClass": "BestEffort",
        "conditions": [cond("PodScheduled", true), cond("Initialized", true), cond("ContainersReady", ready), cond("Ready", ready)],
        "containerStatuses": containers,
    })
}

/// Create a Pod and set its status (pods' status is a subresource, so create drops it).
fn create_pod(st: &mut State, ns: &str, pod: Value, status: Value) -> Option<ObjKey> {
    let rt = st.catalog.find("", "v1", "pods")?;
    match st.op_create(&rt, ns, pod, &ctx(), false) {
        Ok(created) => {
            let key = ObjKey::of(&rt, &created);
            write_status(st, &key, status);
            Some(key)
        }
        Err(e) => {
            tracing::warn!(message = %e.message, "controller could not create a pod");
            None
        }
    }
}

fn owned_pods(st: &State, ns: &str, uid: &str) -> Vec<(ObjKey, Value)> {
    st.scan("", "pods", Some(ns))
        .filter(|(_, p)| {
            p["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|r| r.iter().any(|o| o["uid"] == uid))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Bring a workload's pods to the wanted count and template, then report status.
fn reconcile_workload(st: &mut State, shared: &Shared, key: &ObjKey, generation: i64) {
    let Some(obj) = st.get(key).cloned() else {
        return;
    };
    if obj["metadata"]["generation"].as_i64().unwrap_or(1) != generation
        || !obj["metadata"]["deletionTimestamp"].is_null()
    {
        return;
    }
    let kind = obj["kind"].as_str().unwrap_or_default().to_string();
    let name = key.name.clone();
    let uid = obj["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let template = obj["spec"]["template"].clone();
    let wanted = if kind == "DaemonSet" {
        1
    } else {
        obj["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize
    };
    let ready = !never_ready(shared, &template);
    let hash = template_hash(&template);
    let hash_label = if kind == "Deployment" {
        "pod-template-hash"
    } else {
        "controller-revision-hash"
    };
    let revision = if kind == "Deployment" {
        hash.clone()
    } else {
        format!("{name}-{hash}")
    };

    if kind == "StatefulSet" {
        claims_for_statefulset(st, key, &obj, wanted);
    }

    // Replace pods of an older template, and trim extras.
    let mut current = Vec::new();
    for (k, p) in owned_pods(st, &key.namespace, &uid) {
        if p["metadata"]["labels"][hash_label] == revision.as_str() && current.len() < wanted {
            current.push(k);
        } else {
            st.delete_now(&k);
        }
    }
    for i in 0..wanted {
        let pod_name = match kind.as_str() {
            "StatefulSet" => format!("{name}-{i}"),
            "Deployment" => format!("{name}-{hash}-{}", rand_suffix(5)),
            _ => format!("{name}-{}", rand_suffix(5)),
        };
        if kind == "StatefulSet" && current.iter().any(|k: &ObjKey| k.name == pod_name) {
            continue;
        }
        if kind != "StatefulSet" && current.len() >= wanted {
            break;
        }
        let mut labels = template["metadata"]["labels"].clone();
        if !labels.is_object() {
            labels = json!({});
        }
        labels[hash_label] = json!(revision);
        if kind == "StatefulSet" {
            labels["statefulset.kubernetes.io/pod-name"] = json!(pod_name);
        }
        let mut spec = template["spec"].clone();
        spec["nodeName"] = json!(crate::node::NODE_NAME);
        if kind == "StatefulSet" {
            // The StatefulSet controller mounts each pod's claims from volumeClaimTemplates.
            for t in obj["spec"]["volumeClaimTemplates"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let tmpl = t["metadata"]["name"].as_str().unwrap_or("data");
                let volume = json!({"name": tmpl, "persistentVolumeClaim": {"claimName": format!("{tmpl}-{name}-{i}")}});
                match spec["volumes"].as_array_mut() {
                    Some(v) => v.push(volume),
                    None => spec["volumes"] = json!([volume]),
                }
            }
        }
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name, "labels": labels, "ownerReferences": owner_ref(&obj)}, "spec": spec});
        if let Some(k) = create_pod(
            st,
            &key.namespace,
            pod,
            pod_status(shared, &template, ready, &next_pod_ip()),
        ) {
            current.push(k);
        }
    }
    let n = wanted as i64;
    let r = if ready { n } else { 0 };
    let status = match kind.as_str() {
        "Deployment" => {
            let mut s = json!({"observedGeneration": generation, "replicas": n, "updatedReplicas": n, "readyReplicas": r, "availableReplicas": r});
            s["conditions"] = if ready {
                json!([
                    condition(
                        "Available",
                        true,
                        "MinimumReplicasAvailable",
                        "Deployment has minimum availability."
                    ),
                    condition(
                        "Progressing",
                        true,
                        "NewReplicaSetAvailable",
                        &format!("ReplicaSet \"{name}-{hash}\" has successfully progressed.")
                    )
                ])
            } else {
                s["unavailableReplicas"] = json!(n);
                json!([
                    condition(
                        "Available",
                        n == 0,
                        "MinimumReplicasUnavailable",
                        "Deployment does not have minimum availability."
                    ),
                    condition(
                        "Progressing",
                        true,
                        "ReplicaSetUpdated",
                        &format!("ReplicaSet \"{name}-{hash}\" is progressing.")
                    )
                ])
            };
            s
        }
        "StatefulSet" => {
            json!({"observedGeneration": generation, "replicas": n, "readyReplicas": r, "currentReplicas": n,
            "updatedReplicas": n, "availableReplicas": r, "currentRevision": revision, "updateRevision": revision, "collisionCount": 0})
        }
        _ => {
            json!({"observedGeneration": generation, "desiredNumberScheduled": 1, "currentNumberScheduled": 1, "numberReady": r,
            "numberAvailable": r, "updatedNumberScheduled": 1, "numberMisscheduled": 0, "numberUnavailable": 1 - r})
        }
    };
    write_status(st, key, status);
}

/// `<template>-<statefulset>-<ordinal>` PVCs for `volumeClaimTemplates`, as the StatefulSet
/// controller makes them: not owned by the StatefulSet, so they outlive it (retention Retain).
fn claims_for_statefulset(st: &mut State, key: &ObjKey, sts: &Value, wanted: usize) {
    let Some(rt) = st.catalog.find("", "v1", "persistentvolumeclaims") else {
        return;
    };
    let templates = sts["spec"]["volumeClaimTemplates"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for i in 0..wanted {
        for t in &templates {
            let name = format!(
                "{}-{}-{i}",
                t["metadata"]["name"].as_str().unwrap_or("data"),
                key.name
            );
            if st.get(&ObjKey::new(&rt, &key.namespace, &name)).is_some() {
                continue;
            }
            let mut labels = sts["spec"]["selector"]["matchLabels"].clone();
            if !labels.is_object() {
                labels = json!({});
            }
            if let Some(extra) = t["metadata"]["labels"].as_object() {
                for (k, v) in extra {
                    labels[k] = v.clone();
                }
            }
            let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": name, "labels": labels}, "spec": t["spec"]});
            if let Err(e) = st.op_create(&rt, &key.namespace, pvc, &ctx(), false) {
                tracing::warn!(message = %e.message, "controller could not create a StatefulSet claim");
            }
        }
    }
}

/// Create the Job's pod and mark the Job started; returns the pod name.
fn start_job(st: &mut State, shared: &Shared, key: &ObjKey) -> Option<String> {
    let job = st.get(key).cloned()?;
    if !job["status"]["startTime"].is_null() {
        return None;
    }
    let template = job["spec"]["template"].clone();
    let ready = !never_ready(shared, &template);
    let pod_name = format!("{}-{}", key.name, rand_suffix(5));
    let mut spec = template["spec"].clone();
    spec["nodeName"] = json!(crate::node::NODE_NAME);
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod_name, "labels": template["metadata"]["labels"], "ownerReferences": owner_ref(&job)}, "spec": spec});
    create_pod(
        st,
        &key.namespace,
        pod,
        pod_status(shared, &template, ready, &next_pod_ip()),
    )?;
    write_status(
        st,
        key,
        json!({"startTime": now(), "active": 1, "ready": if ready { 1 } else { 0 }}),
    );
    ready.then_some(pod_name)
}

/// End the Job's pod per the test's rules (default: succeed) and set the Job's final status.
/// False while the rule is `Outcome::Hold` (the pod keeps running); true when the Job ended or is gone.
fn finish_job(st: &mut State, key: &ObjKey, pod_name: &str) -> bool {
    let Some(job) = st.get(key).cloned() else {
        return true;
    };
    let outcome = st
        .job_rules
        .iter()
        .rev()
        .find(|r| r.namespace == key.namespace && r.pattern.is_match(&key.name))
        .map(|r| r.outcome.clone())
        .unwrap_or(Outcome::Succeed {
            message: String::new(),
        });
    let t = now();
    let (ok, message, reason) = match &outcome {
        Outcome::Succeed { message } => (true, message.clone(), "Completed".to_string()),
        Outcome::Fail { message, reason } => (false, message.clone(), reason.clone()),
        Outcome::Hold => return false,
    };
    let pod_key = ObjKey {
        group: String::new(),
        plural: "pods".into(),
        namespace: key.namespace.clone(),
        name: pod_name.into(),
    };
    if let Some(pod) = st.get(&pod_key).cloned() {
        let mut status = pod["status"].clone();
        status["phase"] = json!(if ok { "Succeeded" } else { "Failed" });
        let started = job["status"]["startTime"].clone();
        if let Some(cs) = status["containerStatuses"].as_array_mut() {
            for c in cs.iter_mut() {
                c["ready"] = json!(false);
                c["started"] = json!(false);
                c["state"] = json!({"terminated": {"exitCode": if ok { 0 } else { 1 }, "reason": if ok { "Completed" } else { "Error" },
                    "message": message, "startedAt": started, "finishedAt": t}});
            }
        }
        if let Some(conds) = status["conditions"].as_array_mut() {
            for c in conds
                .iter_mut()
                .filter(|c| c["type"] == "Ready" || c["type"] == "ContainersReady")
            {
                c["status"] = json!("False");
                c["reason"] = json!("PodCompleted");
            }
        }
        write_status(st, &pod_key, status);
    }
    let mut status = job["status"].clone();
    status["active"] = json!(0);
    status["ready"] = json!(0);
    if ok {
        status["succeeded"] = json!(1);
        status["completionTime"] = json!(t);
        status["conditions"] = json!([
            {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastProbeTime": t, "lastTransitionTime": t},
            {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastProbeTime": t, "lastTransitionTime": t}
        ]);
    } else {
        status["failed"] = json!(1);
        let msg = if reason == "BackoffLimitExceeded" {
            "Job has reached the specified backoff limit".to_string()
        } else {
            message
        };
        status["conditions"] = json!([
            {"type": "FailureTarget", "status": "True", "reason": reason, "message": msg, "lastProbeTime": t, "lastTransitionTime": t},
            {"type": "Failed", "status": "True", "reason": reason, "message": msg, "lastProbeTime": t, "lastTransitionTime": t}
        ]);
    }
    write_status(st, key, status);
    true
}

fn bind_pvc(st: &mut State, key: &ObjKey) {
    let Some(pvc) = st.get(key).cloned() else {
        return;
    };
    if pvc["status"]["phase"] == "Bound" {
        return;
    }
    if let Some(rt) = st.catalog.find("", "v1", "persistentvolumeclaims") {
        let mut new = pvc.clone();
        new["spec"]["volumeName"] = json!(format!(
            "pvc-{}",
            pvc["metadata"]["uid"].as_str().unwrap_or_default()
        ));
        new["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] = json!("yes");
        let _ = st.finish_write(
            &rt,
            &pvc,
            new,
            Scope::Main {
                status_separate: true,
            },
            Some(MANAGER),
            &ctx(),
        );
    }
    let Some(pvc) = st.get(key).cloned() else {
        return;
    };
    write_status(
        st,
        key,
        json!({"phase": "Bound", "accessModes": pvc["spec"]["accessModes"], "capacity": {"storage": pvc["spec"]["resources"]["requests"]["storage"]}}),
    );
}

/// A pod came, finished or went: bind the WaitForFirstConsumer claims it mounts, and let a
/// terminating claim no pod uses any more go (the pvc-protection controller).
fn pod_claims_changed(shared: &Arc<Shared>, ev: &Event) {
    let claims = crate::storage::claims_of(&ev.object);
    if claims.is_empty() {
        return;
    }
    let ns = ev.key.namespace.clone();
    let gone = ev.etype == "DELETED"
        || matches!(
            ev.object["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        );
    if gone {
        let mut st = shared.lock();
        for c in &claims {
            release_claim(&mut st, &crate::storage::claim_key(&ns, c));
        }
    } else if ev.etype == "ADDED" {
        let shared = shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(shared.config.readiness_delay).await;
            let mut st = shared.lock();
            for c in &claims {
                bind_pvc(&mut st, &crate::storage::claim_key(&ns, c));
            }
        });
    }
}

/// Remove the protection finalizer of a terminating claim that no pod uses.
fn release_claim(st: &mut State, key: &ObjKey) {
    let Some(pvc) = st.get(key).cloned() else {
        return;
    };
    let protected = pvc["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.iter().any(|f| f == crate::storage::PROTECTION));
    if pvc["metadata"]["deletionTimestamp"].is_null()
        || !protected
        || st.claim_in_use(&key.namespace, &key.name)
    {
        return;
    }
    let Some(rt) = st.catalog.find("", "v1", "persistentvolumeclaims") else {
        return;
    };
    let mut new = pvc.clone();
    if let Some(f) = new["metadata"]["finalizers"].as_array_mut() {
        f.retain(|f| f != crate::storage::PROTECTION);
    }
    let main = Scope::Main {
        status_separate: true,
    };
    if let Err(e) = st.finish_write(&rt, &pvc, new, main, Some(MANAGER), &ctx()) {
        tracing::warn!(?key, message = %e.message, "could not release a claim");
    }
}

/// The volume grew: report the new capacity.
fn resize_pvc(st: &mut State, key: &ObjKey) {
    let Some(pvc) = st.get(key).cloned() else {
        return;
    };
    let mut status = pvc["status"].clone();
    status["capacity"]["storage"] = pvc["spec"]["resources"]["requests"]["storage"].clone();
    write_status(st, key, status);
}

fn establish_crd(st: &mut State, key: &ObjKey) {
    let Some(crd) = st.get(key).cloned() else {
        return;
    };
    let t = now();
    let stored: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == json!(true))
        .map(|v| v["name"].clone())
        .collect();
    write_status(
        st,
        key,
        json!({
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": t},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": t}
            ],
            "acceptedNames": crd["spec"]["names"],
            "storedVersions": stored
        }),
    );
}
