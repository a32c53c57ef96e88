//! One reconcile of one InferenceService: check the spec and its storage, apply the Deployment,
//! the Service (the gateway's route) and the HPA, then write what was observed into `status` and
//! record an Event when readiness changes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use super::config::OperatorConfig;
use super::error::Error;
use super::metrics::OperatorMetrics;
use super::resources;
use super::status::{self, Observed, Refusal};
use super::storage::{self, ModelSource};
use crate::crd::InferenceService;

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub config: OperatorConfig,
    pub metrics: OperatorMetrics,
    pub recorder: Recorder,
}

/// Reconcile one InferenceService; the controller calls this on every change of it or of an
/// object it owns.
pub async fn reconcile(isvc: Arc<InferenceService>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_inner(&isvc, &ctx).await;
    ctx.metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    let label = if result.is_ok() { "ok" } else { "error" };
    ctx.metrics
        .reconciliations
        .with_label_values(&[label])
        .inc();
    result
}

/// With an HPA the Deployment is applied without `spec.replicas` (the HPA's field). If this
/// operator still owns the field (the bounds were equal until now), dropping it from the apply
/// would delete it and the Deployment would fall back to one replica before the HPA acts; so a
/// second manager first applies the current count and keeps it until the HPA writes its own —
/// the "handover-to-hpa" step of the Kubernetes docs on server-side apply.
async fn hand_replicas_to_hpa(
    deployments: &Api<Deployment>,
    name: &str,
    manager: &str,
) -> Result<(), Error> {
    let Some(live) = deployments.get_opt(name).await? else {
        return Ok(());
    };
    let owned = live.metadata.managed_fields.iter().flatten().any(|e| {
        e.manager.as_deref() == Some(manager)
            && e.operation.as_deref() == Some("Apply")
            && e.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some())
    });
    let replicas = live.spec.and_then(|s| s.replicas);
    if let (true, Some(replicas)) = (owned, replicas) {
        let keep = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name}, "spec": {"replicas": replicas}});
        let handover = PatchParams::apply(&resources::handover_manager(manager));
        deployments
            .patch(name, &handover, &Patch::Apply(keep))
            .await?;
    }
    Ok(())
}

/// A failed reconcile is retried soon; the error is logged and counted.
pub fn error_policy(isvc: Arc<InferenceService>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(inferenceservice = %isvc.name_any(), %error, "reconcile failed; retrying");
    ctx.metrics
        .failures
        .with_label_values(&[error.metric_label()])
        .inc();
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile_inner(isvc: &InferenceService, ctx: &Context) -> Result<Action, Error> {
    if isvc.meta().deletion_timestamp.is_some() {
        // Owned objects go by garbage collection.
        return Ok(Action::await_change());
    }
    let ns = isvc.namespace().ok_or(Error::NoNamespace)?;
    let name = isvc.name_any();
    let apply = PatchParams::apply(&ctx.config.reporter).force();

    let (refusal, observed) = match check(isvc, ctx, &ns).await? {
        Err(refusal) => {
            ctx.metrics
                .refusals
                .with_label_values(&[refusal.reason.as_str()])
                .inc();
            (Some(refusal), Observed::default())
        }
        Ok(source) => {
            let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
            let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
            let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), &ns);
            if resources::autoscaled(isvc) {
                hand_replicas_to_hpa(&deployments, &name, &ctx.config.reporter).await?;
            }
            let deployment = deployments
                .patch(
                    &name,
                    &apply,
                    &Patch::Apply(resources::deployment(isvc, &source, &ctx.config)),
                )
                .await?;
            services
                .patch(
                    &name,
                    &apply,
                    &Patch::Apply(resources::service(isvc, &ctx.config)),
                )
                .await?;
            match resources::hpa(isvc) {
                Some(hpa) => {
                    hpas.patch(&name, &apply, &Patch::Apply(hpa)).await?;
                }
                None => match hpas.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                },
            }
            let waiting = match deployment.status.as_ref().and_then(|s| s.ready_replicas) {
                Some(ready) if ready > 0 => None,
                // Best effort: without it the status still says no replica is ready.
                _ => pod_waiting(ctx, &ns, &name).await.unwrap_or_else(|error| {
                    tracing::debug!(%error, "cannot list the model pods");
                    None
                }),
            };
            let observed = Observed {
                deployment: Some(deployment),
                service: true,
                route: format!("{name}:{}", ctx.config.model_port),
                waiting,
            };
            (None, observed)
        }
    };

    let previous = isvc.status.as_ref();
    let new = status::status(
        previous,
        isvc.meta().generation,
        refusal.as_ref(),
        &observed,
        &name,
        status::Endpoints {
            url: ctx.config.model_url(&name),
            grpc_address: ctx.config.grpc_address(&name),
        },
        isvc.spec.model.version,
    );
    if !status::same(previous, &new) {
        let isvcs: Api<InferenceService> = Api::namespaced(ctx.client.clone(), &ns);
        isvcs
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": new})),
            )
            .await?;
    }
    if status::ready_of(previous) != status::ready_of(Some(&new)) {
        record(ctx, isvc, &new).await;
    }
    Ok(match &refusal {
        // Nothing watched would change a missing claim: look again later.
        Some(r) if r.reason == "ClaimNotFound" => Action::requeue(ctx.config.retry_after),
        // Nor a pod's waiting reason (pods are not watched): look again soon while none is ready.
        None if observed.waiting.is_some() => Action::requeue(Duration::from_secs(15)),
        _ => Action::requeue(Duration::from_secs(300)),
    })
}

/// The first reason a model pod's container cannot start (`REASON: message`), leaving out the
/// states every pod passes through on its way to running.
async fn pod_waiting(ctx: &Context, ns: &str, name: &str) -> Result<Option<String>, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let pods = pods
        .list(&ListParams::default().labels(&format!("{}={name}", resources::ISVC_LABEL)))
        .await?;
    let waiting = pods
        .items
        .iter()
        .filter_map(|pod| pod.status.as_ref()?.container_statuses.as_ref())
        .flatten()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
        .find(|w| {
            !matches!(
                w.reason.as_deref(),
                None | Some("ContainerCreating" | "PodInitializing")
            )
        });
    Ok(waiting.map(|w| {
        let reason = w.reason.as_deref().unwrap_or_default();
        match w.message.as_deref() {
            Some(message) if !message.is_empty() => format!("{reason}: {message}"),
            _ => reason.to_owned(),
        }
    }))
}

/// The spec's own rules (the CRD's CEL rules catch these at the API, but a CRD applied without
/// them, or an older one, must not make the operator create nonsense), then the storage.
async fn check(
    isvc: &InferenceService,
    ctx: &Context,
    ns: &str,
) -> Result<Result<ModelSource, Refusal>, Error> {
    let spec = &isvc.spec;
    let refuse = |reason: &str, message: String| {
        Ok(Err(Refusal {
            reason: reason.into(),
            message,
        }))
    };
    if spec.min_replicas > spec.max_replicas {
        return refuse(
            "InvalidSpec",
            format!(
                "spec.minReplicas ({}) is greater than spec.maxReplicas ({}): lower minReplicas or raise maxReplicas",
                spec.min_replicas, spec.max_replicas
            ),
        );
    }
    if spec.min_replicas < 0 || spec.max_replicas < 1 {
        return refuse(
            "InvalidSpec",
            format!(
                "spec.minReplicas must be at least 0 and spec.maxReplicas at least 1 (got {} and {})",
                spec.min_replicas, spec.max_replicas
            ),
        );
    }
    let source = match storage::parse(&spec.model.storage_uri) {
        Ok(source) => source,
        Err(e) => return refuse(e.reason(), e.to_string()),
    };
    if let ModelSource::Pvc { claim, .. } = &source {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
        if claims.get_opt(claim).await?.is_none() {
            return refuse(
                "ClaimNotFound",
                format!(
                    "PersistentVolumeClaim '{claim}' (from storageUri '{}') does not exist in namespace '{ns}'",
                    spec.model.storage_uri
                ),
            );
        }
    }
    Ok(Ok(source))
}

/// An Event on the InferenceService for a change of its Ready condition. Failing to record is
/// logged, never fatal: Events are best effort.
async fn record(
    ctx: &Context,
    isvc: &InferenceService,
    status: &crate::crd::InferenceServiceStatus,
) {
    let Some(ready) = status
        .conditions
        .iter()
        .find(|c| c.type_ == crate::crd::CONDITION_READY)
    else {
        return;
    };
    let refused = status.model_state == Some(crate::crd::ModelState::FailedToLoad);
    let event = Event {
        type_: if refused {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: ready.reason.clone(),
        note: Some(ready.message.chars().take(1000).collect()),
        action: if ready.status == "True" {
            "Serve".into()
        } else {
            "Reconcile".into()
        },
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &isvc.object_ref(&())).await {
        tracing::warn!(inferenceservice = %isvc.name_any(), %error, "cannot record an event");
    }
}
