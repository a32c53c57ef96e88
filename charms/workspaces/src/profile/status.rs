//! What the operator reports in a Profile's `status`: NamespaceReady (the namespace is the
//! profile's and its binding, quota, limits and policies are applied), CredentialsReady (the S3
//! Secret is copied) and Ready (both). Pure functions of what the reconcile observed, so the
//! rules are tested without a cluster.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::crd::{
    CONDITION_CREDENTIALS_READY, CONDITION_NAMESPACE_READY, CONDITION_READY, ProfileStatus,
};

/// One condition's value before timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    pub reason: String,
    pub message: String,
}

impl Verdict {
    pub fn ok(reason: &str, message: impl Into<String>) -> Verdict {
        Verdict {
            ok: true,
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn not(reason: &str, message: impl Into<String>) -> Verdict {
        Verdict {
            ok: false,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// The whole status. `previous` keeps the transition times of conditions that did not change.
pub fn status(
    previous: Option<&ProfileStatus>,
    generation: Option<i64>,
    namespace: &Verdict,
    credentials: &Verdict,
) -> ProfileStatus {
    let ready = if !namespace.ok {
        namespace.clone()
    } else if !credentials.ok {
        credentials.clone()
    } else {
        Verdict::ok("Ready", namespace.message.clone())
    };
    let old = previous.map(|s| s.conditions.as_slice()).unwrap_or(&[]);
    ProfileStatus {
        conditions: vec![
            condition(old, CONDITION_READY, &ready, generation),
            condition(old, CONDITION_NAMESPACE_READY, namespace, generation),
            condition(old, CONDITION_CREDENTIALS_READY, credentials, generation),
        ],
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

/// The Ready condition's (status, reason): an Event is recorded when it changes.
pub fn ready_of(status: Option<&ProfileStatus>) -> Option<(String, String)> {
    status?
        .conditions
        .iter()
        .find(|c| c.type_ == CONDITION_READY)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// Whether two statuses say the same thing (transition times aside).
pub fn same(a: Option<&ProfileStatus>, b: &ProfileStatus) -> bool {
    let Some(a) = a else { return false };
    let strip = |s: &ProfileStatus| {
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

    fn find<'a>(s: &'a ProfileStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn ready_needs_the_namespace_and_the_credentials() {
        let ns = Verdict::ok("Created", "namespace alice is ready");
        let creds = Verdict::ok("Copied", "copied");
        let s = status(None, Some(1), &ns, &creds);
        assert_eq!(find(&s, "Ready").status, "True");
        assert_eq!(find(&s, "Ready").observed_generation, Some(1));

        let missing = Verdict::not("SourceSecretMissing", "no minio-credentials");
        let s = status(None, Some(1), &ns, &missing);
        assert_eq!(find(&s, "Ready").reason, "SourceSecretMissing");
        assert_eq!(find(&s, "NamespaceReady").status, "True");
    }

    #[test]
    fn a_refused_namespace_is_why_the_profile_is_not_ready() {
        let conflict = Verdict::not("NamespaceConflict", "namespace alice exists");
        let waiting = Verdict::not("NamespaceNotReady", "waiting for the namespace");
        let s = status(None, None, &conflict, &waiting);
        assert_eq!(find(&s, "Ready").reason, "NamespaceConflict");
        assert_eq!(find(&s, "Ready").message, "namespace alice exists");
    }

    #[test]
    fn an_unchanged_condition_keeps_its_transition_time() {
        let ns = Verdict::ok("Created", "ok");
        let mut first = status(None, Some(1), &ns, &ns);
        first.conditions[0].last_transition_time = Time(Timestamp::UNIX_EPOCH);
        let second = status(Some(&first), Some(1), &ns, &ns);
        assert_eq!(
            second.conditions[0].last_transition_time,
            Time(Timestamp::UNIX_EPOCH)
        );
        assert!(same(Some(&first), &second));
        let third = status(Some(&first), Some(1), &Verdict::not("X", "y"), &ns);
        assert!(!same(Some(&first), &third));
        assert_ne!(ready_of(Some(&first)), ready_of(Some(&third)));
    }
}
