//! Waiting until applied objects are ready, by polling each one (a GET per object, from every 25 ms backing off to every second)
//! and reading its status with `readiness::assess`. On timeout the reason names the object that
//! is not ready and, for workloads, what its Pods say (ImagePullBackOff, CrashLoopBackOff, …).

use std::time::Duration;

use anyhow::anyhow;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde_json::Value;
use tokio::time::Instant;

use super::progress::AppProgress;
use super::readiness::{Readiness, assess, pod_problem};
use super::{Catalog, INSTANCE_LABEL, ObjectRef, errors};

/// Polling starts fast (objects on small clusters and the simulator are often ready within
/// milliseconds) and slows down to once a second for long rollouts.
const FIRST_POLL: Duration = Duration::from_millis(25);
const MAX_POLL: Duration = Duration::from_secs(1);

/// Wait until every object is ready or `deadline` passes. Ok(()) when all are ready,
/// Err(reason) otherwise.
pub async fn until_ready(
    client: &Client,
    server: &str,
    catalog: &Catalog,
    objects: &[ObjectRef],
    app: Option<&str>,
    deadline: Instant,
    progress: Option<&AppProgress>,
) -> anyhow::Result<()> {
    let mut pending: Vec<ObjectRef> = objects.to_vec();
    let mut poll = FIRST_POLL;
    loop {
        let mut still = Vec::new();
        let mut first_wait: Option<(ObjectRef, String)> = None;
        for r in &pending {
            let api = catalog.api_for(client, r)?;
            let live = api
                .get_opt(&r.name)
                .await
                .map_err(|e| anyhow!(errors::describe(&e, &format!("read {r}"), server)))?;
            let state = match live {
                None => Readiness::Waiting("does not exist".into()),
                Some(obj) => assess(&r.kind, &serde_json::to_value(obj)?),
            };
            match state {
                Readiness::Ready => {}
                Readiness::Failed(why) => return Err(anyhow!("{r}: {why}")),
                Readiness::Waiting(why) => {
                    if first_wait.is_none() {
                        first_wait = Some((r.clone(), why));
                    }
                    still.push(r.clone());
                }
            }
        }
        pending = still;
        let Some((r, why)) = first_wait else {
            return Ok(());
        };
        if let Some(p) = progress {
            p.set(&format!("waiting for {r}: {why}"));
        }
        if Instant::now() >= deadline {
            let pods = match (app, r.namespace.as_deref()) {
                (Some(app), Some(ns)) => pod_problems(client, ns, app).await,
                _ => String::new(),
            };
            return Err(anyhow!("timed out waiting for {r}: {why}{pods}"));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(poll.min(left).max(Duration::from_millis(5))).await;
        poll = (poll * 3 / 2).min(MAX_POLL);
    }
}

/// "; pod x: ImagePullBackOff: …" for each not-ready Pod of an application (one LIST).
pub async fn pod_problems(client: &Client, namespace: &str, app: &str) -> String {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &ApiResource::erase::<Pod>(&()));
    let lp = ListParams::default().labels(&format!("{INSTANCE_LABEL}={app}"));
    let Ok(list) = api.list(&lp).await else {
        return String::new();
    };
    list.items
        .iter()
        .filter_map(|p| {
            let v: Value = serde_json::to_value(p).ok()?;
            let problem = pod_problem(&v)?;
            Some(format!(
                "; pod {}: {problem}",
                p.metadata.name.as_deref().unwrap_or("?")
            ))
        })
        .collect()
}

/// What keeps a terminating namespace, from the namespace controller's conditions
/// (`Some content in the namespace has finalizers remaining: …`), or what it is doing.
pub fn namespace_holdup(ns: &k8s_openapi::api::core::v1::Namespace) -> String {
    let conditions = ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten();
    let mut held: Vec<String> = Vec::new();
    for c in conditions {
        let reports = matches!(
            c.type_.as_str(),
            "NamespaceFinalizersRemaining"
                | "NamespaceContentRemaining"
                | "NamespaceDeletionContentFailure"
                | "NamespaceDeletionDiscoveryFailure"
        );
        if reports && c.status == "True" {
            held.push(errors::one_line(c.message.as_deref().unwrap_or(&c.type_)));
        }
    }
    if held.is_empty() {
        "its contents are being deleted".into()
    } else {
        held.join("; ")
    }
}

/// Wait until namespace `name` is gone (the namespace controller deletes its contents first, which
/// takes a while on a real cluster), saying every few seconds what holds it.
pub async fn until_namespace_gone(
    client: &Client,
    server: &str,
    name: &str,
    timeout: Duration,
    mut say: impl FnMut(&str),
) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Namespace;
    let api: Api<Namespace> = Api::all(client.clone());
    let started = Instant::now();
    let mut said: Option<Instant> = None;
    let mut poll = FIRST_POLL;
    loop {
        let ns = api.get_opt(name).await.map_err(|e| {
            anyhow!(errors::describe(
                &e,
                &format!("read namespace {name}"),
                server
            ))
        })?;
        let Some(ns) = ns else { return Ok(()) };
        let why = namespace_holdup(&ns);
        if started.elapsed() >= timeout {
            return Err(anyhow!(
                "namespace {name} is still terminating after {}s: {why}; see \
                 `kubectl get namespace {name} -o yaml` and what is left in it",
                timeout.as_secs()
            ));
        }
        if said.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
            say(&format!("namespace {name} is terminating: {why}"));
            said = Some(Instant::now());
        }
        tokio::time::sleep(poll).await;
        poll = (poll * 2).min(MAX_POLL);
    }
}

/// What keeps a terminating CRD: its `Terminating` condition (the CRD finalizer controller's
/// `could not confirm zero CustomResources remaining: …`), or that its resources are going.
pub fn crd_holdup(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> String {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Terminating" && c.status == "True")
        .and_then(|c| c.message.as_deref())
        .map(errors::one_line)
        .unwrap_or_else(|| "its custom resources are being deleted".into())
}

/// Wait until CRD `name` is gone: the apiserver keeps a deleted CRD (finalizer
/// `customresourcecleanup.apiextensions.k8s.io`) until every custom resource of its kind is
/// deleted, and each one with finalizers waits for them (for its operator) first. Says what
/// holds it every few seconds and whenever that changes.
pub async fn until_crd_gone(
    client: &Client,
    server: &str,
    name: &str,
    timeout: Duration,
    mut say: impl FnMut(&str),
) -> anyhow::Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let started = Instant::now();
    let mut said: Option<Instant> = None;
    let mut last_why = String::new();
    let mut poll = FIRST_POLL;
    loop {
        let crd = api
            .get_opt(name)
            .await
            .map_err(|e| anyhow!(errors::describe(&e, &format!("read CRD {name}"), server)))?;
        let Some(crd) = crd else { return Ok(()) };
        let why = crd_holdup(&crd);
        if started.elapsed() >= timeout {
            return Err(anyhow!(
                "CRD {name} is still terminating after {}s: {why}; a custom resource whose \
                 finalizer no running operator removes holds it: see `kubectl get {name} -A` \
                 and remove the finalizer only if its operator is gone for good",
                timeout.as_secs()
            ));
        }
        // Every 5 s, and whenever what holds it changes (resources going → a finalizer left).
        if said.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) || last_why != why {
            say(&format!("CRD {name} is terminating: {why}"));
            said = Some(Instant::now());
            last_why = why;
        }
        tokio::time::sleep(poll).await;
        poll = (poll * 2).min(MAX_POLL);
    }
}
