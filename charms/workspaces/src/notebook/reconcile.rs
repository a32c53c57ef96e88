//! One reconcile of one Notebook: check it, create its workspace claim once, read whether its
//! server is idle (and stop it if so), apply its StatefulSet and Service, then write what
//! happened into `status` and record an Event when readiness changes.
//!
//! Nothing here deletes anything: the StatefulSet and the Service go with the Notebook by
//! garbage collection (their controller ownerReference), and the workspace claim, which has no
//! ownerReference, stays: it holds the user's files.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PodSpec};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::crd::{LAST_ACTIVITY_ANNOTATION, Notebook, STOPPED_ANNOTATION};
use super::culling;
use super::resources;
use super::status::{self, Observed};
use crate::error::Error;
use crate::profile::reconcile::Context;
use crate::profile::status::Verdict;

/// Reconcile one Notebook; the controller calls this on every change of it, its StatefulSet or
/// its Service, and again after the culling interval while its server runs.
pub async fn reconcile(notebook: Arc<Notebook>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_inner(&notebook, &ctx).await;
    ctx.metrics
        .notebook_duration
        .observe(started.elapsed().as_secs_f64());
    let label = if result.is_ok() { "ok" } else { "error" };
    ctx.metrics
        .notebook_reconciliations
        .with_label_values(&[label])
        .inc();
    result
}

/// A failed reconcile is retried soon; the error is logged and counted.
pub fn error_policy(notebook: Arc<Notebook>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(notebook = %notebook.name_any(), namespace = ?notebook.namespace(), %error, "reconcile failed; retrying");
    ctx.metrics
        .notebook_failures
        .with_label_values(&[error.metric_label()])
        .inc();
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile_inner(notebook: &Notebook, ctx: &Context) -> Result<Action, Error> {
    if notebook.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if notebook.uid().is_none() {
        return Err(Error::NoUid);
    }
    let name = notebook.name_any();
    let ns = notebook.namespace().unwrap_or_default();
    let config = &ctx.config.notebook;

    let (observed, ready_replicas) = match resources::check(notebook) {
        Err(refusal) => {
            ctx.metrics
                .refusals
                .with_label_values(&[refusal.reason])
                .inc();
            (
                Observed::Refused(Verdict::not(refusal.reason, refusal.message)),
                0,
            )
        }
        Ok(spec) => run(notebook, &spec, ctx).await?,
    };

    let previous = notebook.status.as_ref();
    let ready = status::verdict(&observed, &ns, &name);
    let url = (!matches!(observed, Observed::Refused(_)))
        .then(|| format!("{}/", super::crd::prefix(&ns, &name)));
    let new = status::status(
        previous,
        notebook.meta().generation,
        &ready,
        ready_replicas,
        url,
    );
    if !status::same(previous, &new) {
        let notebooks: Api<Notebook> = Api::namespaced(ctx.client.clone(), &ns);
        notebooks
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": new})),
            )
            .await?;
    }
    if status::ready_of(previous) != status::ready_of(Some(&new)) {
        record(ctx, notebook, &ready).await;
    }
    // A running server is looked at again when its idleness is to be read.
    Ok(match (&observed, config.cull_idle) {
        (Observed::Running, Some(_)) => Action::requeue(config.cull_check_interval),
        _ => Action::requeue(ctx.config.resync),
    })
}

/// The workspace, the culling decision, the StatefulSet and the Service; what was observed of
/// the server.
async fn run(notebook: &Notebook, spec: &PodSpec, ctx: &Context) -> Result<(Observed, i32), Error> {
    let name = notebook.name_any();
    let ns = notebook.namespace().unwrap_or_default();
    if !resources::brings_own_home(spec) {
        ensure_workspace(notebook, ctx).await?;
    }
    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
    let ready_replicas = statefulsets
        .get_opt(&name)
        .await?
        .and_then(|s| s.status)
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);

    let mut stopped_since = notebook.annotations().get(STOPPED_ANNOTATION).cloned();
    if stopped_since.is_none()
        && ready_replicas > 0
        && let Some(idle_after) = ctx.config.notebook.cull_idle
    {
        stopped_since = cull_if_idle(notebook, ctx, idle_after).await?;
    }
    // The StatefulSet from the Notebook as it now stands (stopped by the culler included).
    let mut current = notebook.clone();
    if let Some(since) = &stopped_since {
        current
            .annotations_mut()
            .insert(STOPPED_ANNOTATION.into(), since.clone());
    }
    let params = PatchParams::apply(&ctx.config.reporter).force();
    statefulsets
        .patch(
            &name,
            &params,
            &Patch::Apply(resources::statefulset(&current, spec, &ctx.config.notebook)),
        )
        .await?;
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(ctx.client.clone(), &ns);
    services
        .patch(&name, &params, &Patch::Apply(resources::service(notebook)))
        .await?;

    let observed = match stopped_since {
        Some(since) => Observed::Stopped { since },
        None if ready_replicas > 0 => Observed::Running,
        None => Observed::Starting,
    };
    let ready_replicas = if matches!(observed, Observed::Stopped { .. }) {
        0
    } else {
        ready_replicas
    };
    Ok((observed, ready_replicas))
}

/// The workspace claim, created when missing (a create, never an apply: an existing claim, the
/// user's files, is never changed).
async fn ensure_workspace(notebook: &Notebook, ctx: &Context) -> Result<(), Error> {
    let ns = notebook.namespace().unwrap_or_default();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let claim_name = resources::workspace_name(notebook);
    if claims.get_opt(&claim_name).await?.is_some() {
        return Ok(());
    }
    let claim: PersistentVolumeClaim =
        serde_json::from_value(resources::workspace(notebook, &ctx.config.notebook))
            .expect("the workspace body is a PersistentVolumeClaim");
    match claims.create(&PostParams::default(), &claim).await {
        Ok(_) => {
            tracing::info!(notebook = %notebook.name_any(), namespace = %ns, claim = %claim_name, "created the workspace");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Reads Jupyter's last activity; records it, and stops an idle server (the annotation's value:
/// when). An unreadable status is logged and culls nothing.
async fn cull_if_idle(
    notebook: &Notebook,
    ctx: &Context,
    idle_after: Duration,
) -> Result<Option<String>, Error> {
    let name = notebook.name_any();
    let ns = notebook.namespace().unwrap_or_default();
    let url = culling::status_url(ctx.config.notebook.jupyter_url_base.as_deref(), &ns, &name);
    let last = match culling::last_activity(&ctx.http, &url).await {
        Ok(last) => last,
        Err(error) => {
            tracing::info!(notebook = %name, namespace = %ns, %error, "cannot read the server's activity; not culling it");
            return Ok(None);
        }
    };
    let now = Timestamp::now();
    let idle = culling::is_idle(last, now, idle_after);
    let mut annotations = serde_json::Map::new();
    let last_text = last.to_string();
    if notebook.annotations().get(LAST_ACTIVITY_ANNOTATION) != Some(&last_text) {
        annotations.insert(LAST_ACTIVITY_ANNOTATION.into(), json!(last_text));
    }
    let stopped = idle.then(|| now.to_string());
    if let Some(since) = &stopped {
        annotations.insert(STOPPED_ANNOTATION.into(), json!(since));
        ctx.metrics.notebooks_culled.inc();
        tracing::info!(notebook = %name, namespace = %ns, last_activity = %last, "stopping the idle server");
    }
    if !annotations.is_empty() {
        // A merge patch of the two annotations only: the user's own stay as they are.
        let notebooks: Api<Notebook> = Api::namespaced(ctx.client.clone(), &ns);
        notebooks
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": annotations}})),
            )
            .await?;
    }
    Ok(stopped)
}

/// An Event on the Notebook for a change of its Ready condition. Best effort: a failure is logged.
async fn record(ctx: &Context, notebook: &Notebook, ready: &Verdict) {
    let event = Event {
        type_: if ready.ok || ready.reason == "Stopped" || ready.reason == "Starting" {
            EventType::Normal
        } else {
            EventType::Warning
        },
        reason: ready.reason.clone(),
        note: Some(ready.message.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(error) = ctx
        .recorder
        .publish(&event, &notebook.object_ref(&()))
        .await
    {
        tracing::warn!(notebook = %notebook.name_any(), %error, "cannot record an event");
    }
}
