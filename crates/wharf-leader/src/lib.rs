//! Leader election with a coordination.k8s.io Lease, for more than one operator replica: a
//! replica waits until the Lease is free or expired, takes it, and renews it; if it cannot renew
//! before the Lease expires it stops, so that two replicas never reconcile at once (the kubelet
//! restarts it as a standby).
//!
//! Shared by every wharf operator (trainer, server, workspaces), whose replicas must not reconcile
//! the same objects at once; `metrics` serves their Prometheus and health endpoint, `process` sets
//! up their logging and waits for their SIGTERM.

pub mod metrics;
pub mod process;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};

/// Leadership was lost: another replica holds the Lease, or renewing failed for longer than it lasts.
#[derive(Debug)]
pub struct LostLease(pub String);

impl std::fmt::Display for LostLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "lost the leader Lease {}; exiting so that a standby takes over",
            self.0
        )
    }
}

impl std::error::Error for LostLease {}

/// How long a Lease holds without renewal.
pub const LEASE_SECONDS: i32 = 15;
/// How often the holder renews, and how often a standby retries.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);

pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
}

impl Elector {
    pub fn new(client: kube::Client, namespace: &str, name: &str, identity: &str) -> Elector {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
        }
    }

    /// Takes or renews the Lease; true when this replica holds it afterwards.
    ///
    /// Writes carry the resourceVersion read just before, so two replicas racing for an expired
    /// Lease cannot both win: the loser gets 409 Conflict and stays a standby.
    pub async fn try_acquire(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, now, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let mine = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        let renewed = spec.renew_time.as_ref().map(|t| t.0).unwrap_or_default();
        let duration = i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS));
        let expired = renewed + SignedDuration::from_secs(duration) < now;
        let free = spec.holder_identity.as_deref().is_none_or(str::is_empty);
        if !(mine || expired || free) {
            return Ok(false);
        }
        let (acquired, transitions) = if mine {
            (
                spec.acquire_time.map(|t| t.0).unwrap_or(now),
                spec.lease_transitions.unwrap_or(0),
            )
        } else {
            (now, spec.lease_transitions.unwrap_or(0) + 1)
        };
        lease.spec = Some(self.spec(acquired, now, transitions));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn spec(&self, acquired: Timestamp, renewed: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(LEASE_SECONDS),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Waits until this replica leads.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire().await {
                Ok(true) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "became the leader");
                    return;
                }
                Ok(false) => tracing::debug!(lease = %self.name, "another replica leads; waiting"),
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "could not read or take the Lease")
                }
            }
            tokio::time::sleep(RENEW_EVERY).await;
        }
    }

    /// Renews until a renewal fails for longer than the Lease lasts; then returns (leadership lost).
    pub async fn hold(&self) {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            match self.try_acquire().await {
                Ok(true) => last_ok = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::error!(lease = %self.name, "another replica took the Lease");
                    return;
                }
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "renewing the Lease failed");
                    if last_ok.elapsed() >= Duration::from_secs(LEASE_SECONDS as u64) {
                        return;
                    }
                }
            }
        }
    }

    /// Gives the Lease up if this replica holds it, so that a standby takes over at its next try
    /// (within [`RENEW_EVERY`]) rather than after the Lease expires. For a clean shutdown; best
    /// effort, since expiry covers a failure.
    pub async fn release(&self) {
        let mut lease = match self.api.get_opt(&self.name).await {
            Ok(Some(lease)) => lease,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(lease = %self.name, error = %e, "could not read the Lease to release it");
                return;
            }
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.acquire_time = None;
        spec.renew_time = None;
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.name, "released the Lease"),
            Err(e) => tracing::warn!(lease = %self.name, error = %e, "could not release the Lease"),
        }
    }

    /// Runs `work` while this replica holds the Lease (call [`Elector::acquire`] first), then
    /// releases it. If the Lease is lost before `work` ends, `work` is dropped, so that two
    /// replicas never act at once.
    pub async fn while_leading<T>(&self, work: impl Future<Output = T>) -> Result<T, LostLease> {
        let output = tokio::select! {
            output = work => output,
            () = self.hold() => return Err(LostLease(self.name.clone())),
        };
        self.release().await;
        Ok(output)
    }
}
