//! One reconcile of one Profile: check it, make sure its namespace exists and is its own (never
//! adopting someone else's), apply the owner's RoleBinding, the quota, the limits, the network
//! policies, the workflow ServiceAccount (with pipelines) and the S3 credentials into it, then write what happened into `status` and record an
//! Event when readiness changes.
//!
//! Nothing here deletes a namespace: deleting a Profile deletes its namespace by garbage
//! collection (the namespace's controller ownerReference), so only the namespaces this operator
//! created, and only when their own Profile goes. The one delete is a ResourceQuota the spec no
//! longer asks for, inside the profile's own namespace.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

use super::crd::{Profile, ProfileStatus};
use super::resources::{self, Refusal};
use super::status::{self, Verdict};
use crate::config::OperatorConfig;
use crate::error::Error;
use crate::metrics::OperatorMetrics;

/// What every reconcile shares (the Notebook controller's too).
pub struct Context {
    pub client: Client,
    pub config: OperatorConfig,
    pub metrics: OperatorMetrics,
    pub recorder: Recorder,
    /// For Jupyter's status (notebook culling).
    pub http: reqwest::Client,
}

/// Reconcile one Profile; the controller calls this on every change of it or of its namespace.
pub async fn reconcile(profile: Arc<Profile>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_inner(&profile, &ctx).await;
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

/// A failed reconcile is retried soon; the error is logged and counted.
pub fn error_policy(profile: Arc<Profile>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(profile = %profile.name_any(), %error, "reconcile failed; retrying");
    ctx.metrics
        .failures
        .with_label_values(&[error.metric_label()])
        .inc();
    Action::requeue(Duration::from_secs(5))
}

/// Where the profile's namespace stands.
enum NamespaceState {
    /// Created by this Profile (now or before): safe to fill.
    Owned,
    /// Exists and is not this Profile's: never touched.
    Foreign(Refusal),
    /// Being deleted (an earlier Profile of the same name, usually): wait until it is gone.
    Terminating,
}

async fn reconcile_inner(profile: &Profile, ctx: &Context) -> Result<Action, Error> {
    if profile.meta().deletion_timestamp.is_some() {
        // The namespace goes by garbage collection.
        return Ok(Action::await_change());
    }
    if profile.uid().is_none() {
        return Err(Error::NoUid);
    }
    let name = profile.name_any();
    let waiting = || {
        Verdict::not(
            "NamespaceNotReady",
            "the credentials are copied once the namespace is ready",
        )
    };
    let (namespace, credentials, retry) = match resources::check(profile) {
        Err(refusal) => (refused(ctx, &refusal), waiting(), false),
        Ok(()) => match ensure_namespace(profile, ctx).await? {
            NamespaceState::Foreign(refusal) => (refused(ctx, &refusal), waiting(), false),
            NamespaceState::Terminating => (
                Verdict::not(
                    "NamespaceTerminating",
                    format!(
                        "namespace {name} is being deleted (an earlier profile of this name?); \
                         it is created again once it is gone"
                    ),
                ),
                waiting(),
                true,
            ),
            NamespaceState::Owned => {
                apply_policies(profile, ctx).await?;
                let credentials = copy_credentials(profile, ctx).await?;
                let retry = !credentials.ok;
                let owner = &profile.spec.owner.name;
                let namespace = Verdict::ok(
                    "Created",
                    format!(
                        "namespace {name} is ready; {owner} has the {} role there",
                        ctx.config.owner_role
                    ),
                );
                (namespace, credentials, retry)
            }
        },
    };

    let previous = profile.status.as_ref();
    let new = status::status(
        previous,
        profile.meta().generation,
        &namespace,
        &credentials,
    );
    if !status::same(previous, &new) {
        let profiles: Api<Profile> = Api::all(ctx.client.clone());
        profiles
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": new})),
            )
            .await?;
    }
    if status::ready_of(previous) != status::ready_of(Some(&new)) {
        record(ctx, profile, &new).await;
    }
    Ok(if retry {
        Action::requeue(ctx.config.retry_after)
    } else {
        Action::requeue(ctx.config.resync)
    })
}

fn refused(ctx: &Context, refusal: &Refusal) -> Verdict {
    ctx.metrics
        .refusals
        .with_label_values(&[refusal.reason])
        .inc();
    Verdict::not(refusal.reason, refusal.message.clone())
}

/// The namespace: created when missing (a create, never an apply, so that a namespace someone
/// made meanwhile is not adopted: the create fails with 409 and the check below refuses it),
/// updated only when it is this Profile's.
async fn ensure_namespace(profile: &Profile, ctx: &Context) -> Result<NamespaceState, Error> {
    let name = profile.name_any();
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let mut current = namespaces.get_opt(&name).await?;
    if current.is_none() {
        let desired: Namespace = serde_json::from_value(resources::namespace(profile))
            .expect("the namespace body is a Namespace");
        match namespaces.create(&PostParams::default(), &desired).await {
            Ok(created) => {
                tracing::info!(profile = %name, "created the namespace");
                current = Some(created);
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                current = Some(namespaces.get(&name).await?);
            }
            Err(e) => return Err(e.into()),
        }
    }
    let current = current.expect("read or created above");
    if current.meta().deletion_timestamp.is_some() {
        return Ok(NamespaceState::Terminating);
    }
    if !resources::owned_by(&current, profile) {
        return Ok(NamespaceState::Foreign(Refusal {
            reason: "NamespaceConflict",
            message: format!(
                "namespace {name} already exists and does not belong to this profile; wharf never \
                 adopts or deletes a namespace it did not create: delete this profile and choose \
                 another name (or, if namespace {name} is unused, delete it yourself and the \
                 profile takes the name)"
            ),
        }));
    }
    // Owned: keep its labels and owner annotation current (the owner may have changed).
    namespaces
        .patch(
            &name,
            &apply_params(ctx),
            &Patch::Apply(resources::namespace(profile)),
        )
        .await?;
    Ok(NamespaceState::Owned)
}

fn apply_params(ctx: &Context) -> PatchParams {
    PatchParams::apply(&ctx.config.reporter).force()
}

/// Server-side apply of one namespaced object of the profile's namespace.
async fn apply(ctx: &Context, ns: &str, object: Value) -> Result<(), Error> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &resource);
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    api.patch(name, &apply_params(ctx), &Patch::Apply(&object))
        .await?;
    Ok(())
}

/// The owner's RoleBinding, the editor account and its binding, the quota (or its removal), the
/// LimitRange, the NetworkPolicies and, with pipelines, the workflow ServiceAccount and its
/// executor binding.
async fn apply_policies(profile: &Profile, ctx: &Context) -> Result<(), Error> {
    let ns = profile.name_any();
    apply(ctx, &ns, resources::owner_binding(profile, &ctx.config)).await?;
    apply(ctx, &ns, resources::editor_account(profile)).await?;
    apply(ctx, &ns, resources::editor_binding(profile, &ctx.config)).await?;
    match resources::quota(profile) {
        Some(quota) => apply(ctx, &ns, quota).await?,
        None => {
            let quotas: Api<k8s_openapi::api::core::v1::ResourceQuota> =
                Api::namespaced(ctx.client.clone(), &ns);
            match quotas
                .delete(resources::QUOTA, &DeleteParams::default())
                .await
            {
                Ok(_) => tracing::info!(profile = %ns, "removed the quota the spec dropped"),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    apply(ctx, &ns, resources::limit_range(profile, &ctx.config)).await?;
    for policy in resources::network_policies(profile, &ctx.config) {
        apply(ctx, &ns, policy).await?;
    }
    if let Some(executor) = &ctx.config.workflow_executor {
        for object in resources::workflow_executor(profile, executor) {
            apply(ctx, &ns, object).await?;
        }
    }
    Ok(())
}

/// The platform's S3 Secret, copied into the namespace. A missing source is reported, not an
/// error: MinIO may not be deployed yet, and the rest of the profile is usable without it.
async fn copy_credentials(profile: &Profile, ctx: &Context) -> Result<Verdict, Error> {
    let Some(secret) = &ctx.config.s3_secret else {
        return Ok(Verdict::ok(
            "NotConfigured",
            "no S3 Secret is configured for profiles (s3-credentials-secret is empty)",
        ));
    };
    let source_ns = &ctx.config.namespace;
    let sources: Api<Secret> = Api::namespaced(ctx.client.clone(), source_ns);
    let Some(source) = sources.get_opt(secret).await? else {
        return Ok(Verdict::not(
            "SourceSecretMissing",
            format!(
                "Secret {secret} does not exist in namespace {source_ns} (is the minio \
                 application deployed?); it is copied once it exists"
            ),
        ));
    };
    let ns = profile.name_any();
    apply(
        ctx,
        &ns,
        resources::credentials(profile, &source, source_ns),
    )
    .await?;
    Ok(Verdict::ok(
        "Copied",
        format!("Secret {secret} is copied from namespace {source_ns}"),
    ))
}

/// An Event on the Profile for a change of its Ready condition. Best effort: a failure is logged.
async fn record(ctx: &Context, profile: &Profile, status: &ProfileStatus) {
    let Some(ready) = status
        .conditions
        .iter()
        .find(|c| c.type_ == super::crd::CONDITION_READY)
    else {
        return;
    };
    let event = Event {
        type_: if ready.status == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        },
        reason: ready.reason.clone(),
        note: Some(ready.message.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &profile.object_ref(&())).await {
        tracing::warn!(profile = %profile.name_any(), %error, "cannot record an event");
    }
}
