//! The per-model lock: one Lease `wharf-lock` in the model namespace, held by `user@host pid N`
//! and renewed in the background while a command runs. A second run is refused with the holder's
//! name and the expiry; a run killed with SIGKILL stops renewing, so the next run takes the lock
//! over once it expires; `--force-unlock` takes it at once.

use std::time::Duration;

use anyhow::anyhow;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use tokio::task::JoinHandle;

use crate::kube::errors;

pub const LEASE_NAME: &str = "wharf-lock";
/// How long a lock outlives its last renewal. `WHARF_LOCK_SECONDS` overrides it (tests use a
/// short one so a killed run's lock expires quickly).
const DEFAULT_SECONDS: i32 = 15;

pub struct Lock {
    api: Api<Lease>,
    holder: String,
    renewer: JoinHandle<()>,
}

/// Who holds the lock: `user@host pid N`.
pub fn identity() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid{}", nix::unistd::getuid()));
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown-host".into());
    format!("{user}@{host} pid {}", std::process::id())
}

fn lease_seconds() -> i32 {
    std::env::var("WHARF_LOCK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_SECONDS)
}

/// When a lease expires: its last renewal (or acquisition) plus its duration.
pub fn expiry(lease: &Lease) -> Option<jiff::Timestamp> {
    let spec = lease.spec.as_ref()?;
    let last = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?.0;
    let secs = i64::from(spec.lease_duration_seconds.unwrap_or(DEFAULT_SECONDS));
    last.checked_add(jiff::SignedDuration::from_secs(secs)).ok()
}

fn holder_of(lease: &Lease) -> Option<String> {
    lease
        .spec
        .as_ref()?
        .holder_identity
        .clone()
        .filter(|h| !h.is_empty())
}

fn spec(holder: &str, seconds: i32) -> LeaseSpec {
    let now = MicroTime(jiff::Timestamp::now());
    LeaseSpec {
        holder_identity: Some(holder.to_owned()),
        lease_duration_seconds: Some(seconds),
        acquire_time: Some(now.clone()),
        renew_time: Some(now),
        ..LeaseSpec::default()
    }
}

impl Lock {
    /// Take the lock of `model` or explain who has it. `force` takes it even if it is held.
    pub async fn acquire(
        client: &Client,
        model: &str,
        server: &str,
        force: bool,
    ) -> anyhow::Result<Lock> {
        let api: Api<Lease> = Api::namespaced(client.clone(), model);
        let holder = identity();
        let seconds = lease_seconds();
        let describe =
            |e: kube::Error| anyhow!(errors::describe(&e, "take the model lock", server));
        match api.get_opt(LEASE_NAME).await.map_err(describe)? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(LEASE_NAME.into()),
                        labels: Some(
                            [(super::OWNER_LABEL.to_string(), super::OWNER.to_string())].into(),
                        ),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec(&holder, seconds)),
                };
                match api.create(&PostParams::default(), &lease).await {
                    Ok(_) => {}
                    Err(e) if errors::is_conflict(&e) => {
                        // Someone created it between our read and our create.
                        let current = api.get(LEASE_NAME).await.map_err(describe)?;
                        return Err(refusal(model, &current));
                    }
                    Err(e) => return Err(describe(e)),
                }
            }
            Some(mut current) => {
                let expired = expiry(&current).is_none_or(|t| t <= jiff::Timestamp::now());
                if !expired && !force && holder_of(&current).is_some() {
                    return Err(refusal(model, &current));
                }
                if let Some(previous) = holder_of(&current).filter(|_| !expired) {
                    tracing::warn!(
                        "--force-unlock: taking the lock of model {model} from {previous}"
                    );
                }
                current.spec = Some(spec(&holder, seconds));
                // Replace carries the resourceVersion we read: if another run took the expired
                // lock meanwhile, this fails with 409 instead of both runs holding it.
                match api
                    .replace(LEASE_NAME, &PostParams::default(), &current)
                    .await
                {
                    Ok(_) => {}
                    Err(e) if errors::is_conflict(&e) => {
                        let current = api.get(LEASE_NAME).await.map_err(describe)?;
                        return Err(refusal(model, &current));
                    }
                    Err(e) => return Err(describe(e)),
                }
            }
        }
        let renewer = tokio::spawn(renew(api.clone(), holder.clone(), seconds));
        Ok(Lock {
            api,
            holder,
            renewer,
        })
    }

    /// Stop renewing and delete the lease if it is still ours.
    pub async fn release(self) {
        self.renewer.abort();
        if let Ok(Some(lease)) = self.api.get_opt(LEASE_NAME).await
            && holder_of(&lease).as_deref() == Some(self.holder.as_str())
        {
            let _ = self.api.delete(LEASE_NAME, &DeleteParams::default()).await;
        }
    }
}

fn refusal(model: &str, lease: &Lease) -> anyhow::Error {
    let holder = holder_of(lease).unwrap_or_else(|| "an unknown run".into());
    let when = match expiry(lease) {
        Some(t) => {
            let left = t.duration_since(jiff::Timestamp::now()).as_secs().max(0);
            format!("its lock expires at {t} (in {left}s) unless that run renews it")
        }
        None => "its lock has no expiry".into(),
    };
    anyhow!(
        "model `{model}` is locked by {holder}; {when}. Wait for that run to finish, or if it was \
         killed, retry after the expiry or pass --force-unlock"
    )
}

/// Renew the lease every third of its duration while the command runs.
async fn renew(api: Api<Lease>, holder: String, seconds: i32) {
    let period = Duration::from_millis((seconds as u64 * 1000 / 3).max(200));
    loop {
        tokio::time::sleep(period).await;
        let Ok(mut lease) = api.get(LEASE_NAME).await else {
            continue;
        };
        if holder_of(&lease).as_deref() != Some(holder.as_str()) {
            tracing::warn!("the model lock was taken over by {:?}", holder_of(&lease));
            return;
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        }
        if let Err(e) = api
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await
        {
            tracing::warn!("renewing the model lock failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_last_renewal_plus_duration() {
        let t: jiff::Timestamp = "2026-11-22T23:00:00Z".parse().unwrap();
        let lease = Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some("a@b pid 1".into()),
                lease_duration_seconds: Some(15),
                acquire_time: Some(MicroTime(t)),
                renew_time: Some(MicroTime(
                    t.checked_add(jiff::SignedDuration::from_secs(10)).unwrap(),
                )),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        };
        assert_eq!(expiry(&lease).unwrap().to_string(), "2026-11-22T23:00:25Z");
        let msg = refusal("wharf", &lease).to_string();
        assert!(
            msg.contains("locked by a@b pid 1") && msg.contains("--force-unlock"),
            "{msg}"
        );
    }

    #[test]
    fn identity_names_user_host_and_pid() {
        let id = identity();
        assert!(
            id.contains('@') && id.ends_with(&format!("pid {}", std::process::id())),
            "{id}"
        );
    }
}
