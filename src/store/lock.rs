//! The per-model lock: one Lease `wharf-lock` in the model namespace, held by `user@host pid N`
//! and renewed in the background while a command runs. A second run is refused with the holder's
//! name and the expiry; a run killed with SIGKILL stops renewing, so the next run takes the lock
//! over once it expires; `--force-unlock` takes it at once.
//!
//! The lock is not advisory: a run that loses it (another run took it over, or renewals failed
//! until it expired) learns so from its [`Guard`], which every write checks first, and stops
//! before its next write.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    guard: Guard,
}

/// What a run knows about its hold on the lock; cheap to clone and to check before each write.
#[derive(Clone, Debug)]
pub struct Guard {
    model: String,
    state: Arc<Mutex<Hold>>,
}

#[derive(Debug)]
struct Hold {
    /// Until when the last successful renewal holds the lock.
    valid_until: Instant,
    /// Why the lock is no longer ours, once the renewer found out.
    lost: Option<String>,
}

impl Guard {
    fn new(model: &str, seconds: i32) -> Guard {
        Guard {
            model: model.to_owned(),
            state: Arc::new(Mutex::new(Hold {
                valid_until: Instant::now() + Duration::from_secs(seconds as u64),
                lost: None,
            })),
        }
    }

    /// A guard that always holds: for commands that run without the lock (dry runs).
    pub fn unlocked() -> Guard {
        Guard::new("", i32::MAX / 4)
    }

    /// Ok while the lock is ours; otherwise why not, and what to do.
    pub fn check(&self) -> anyhow::Result<()> {
        let hold = self.state.lock().expect("lock state");
        let why = match &hold.lost {
            Some(why) => why.clone(),
            None if Instant::now() > hold.valid_until => {
                "it expired: renewing it failed for longer than its duration".to_string()
            }
            None => return Ok(()),
        };
        Err(anyhow!(
            "lost the lock of model `{}` ({why}); stopped before the next write. Another run may \
             be changing the model: check `wharf status`, then run the command again",
            self.model
        ))
    }

    fn renewed(&self, seconds: i32) {
        let mut hold = self.state.lock().expect("lock state");
        hold.valid_until = Instant::now() + Duration::from_secs(seconds as u64);
    }

    fn lose(&self, why: String) {
        self.state
            .lock()
            .expect("lock state")
            .lost
            .get_or_insert(why);
    }
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
        let guard = Guard::new(model, seconds);
        let renewer = tokio::spawn(renew(api.clone(), holder.clone(), seconds, guard.clone()));
        Ok(Lock {
            api,
            holder,
            renewer,
            guard,
        })
    }

    /// What the run's writes check first.
    pub fn guard(&self) -> Guard {
        self.guard.clone()
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

/// Renew the lease every third of its duration while the command runs; tell the guard when the
/// lease was taken over (then stop renewing).
async fn renew(api: Api<Lease>, holder: String, seconds: i32, guard: Guard) {
    let period = Duration::from_millis((seconds as u64 * 1000 / 3).max(200));
    loop {
        tokio::time::sleep(period).await;
        let mut lease = match api.get(LEASE_NAME).await {
            Ok(lease) => lease,
            Err(e) if errors::is_not_found(&e) => {
                guard.lose("its Lease was deleted".into());
                return;
            }
            Err(e) => {
                tracing::warn!("reading the model lock failed: {e}");
                continue;
            }
        };
        if holder_of(&lease).as_deref() != Some(holder.as_str()) {
            let other = holder_of(&lease).unwrap_or_else(|| "nobody".into());
            tracing::warn!("the model lock was taken over by {other}");
            guard.lose(format!("taken over by {other}"));
            return;
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        }
        match api
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => guard.renewed(seconds),
            Err(e) => tracing::warn!("renewing the model lock failed: {e}"),
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
    fn a_guard_fails_once_lost_or_expired() {
        let guard = Guard::new("m", 60);
        assert!(guard.check().is_ok());
        guard.lose("taken over by x@y pid 2".into());
        let e = guard.check().unwrap_err().to_string();
        assert!(
            e.contains("taken over by x@y") && e.contains("stopped before the next write"),
            "{e}"
        );
        let expired = Guard::new("m", 0);
        std::thread::sleep(Duration::from_millis(5));
        assert!(expired.check().unwrap_err().to_string().contains("expired"));
        assert!(Guard::unlocked().check().is_ok());
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
