//! Idle culling: Jupyter's `GET <base>/api/status` says when the server last saw activity
//! (`last_activity`, kernels and terminals included); a server idle longer than the configured
//! time is stopped with Kubeflow's `kubeflow-resource-stopped` annotation (the reconcile then
//! scales it to 0; removing the annotation starts it again, with the workspace as it was).
//!
//! [`is_idle`] and [`parse_status`] are pure; [`last_activity`] is the one HTTP call, bounded by
//! a timeout. A server that does not answer is never culled: an unreachable status is no proof
//! of idleness.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// How long one status request may take.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// Jupyter's status URL of a notebook: under its base URL (NB_PREFIX), through its Service or
/// the configured base.
pub fn status_url(base: Option<&str>, namespace: &str, name: &str) -> String {
    let base = match base {
        Some(base) => base.to_owned(),
        None => format!("http://{name}.{namespace}.svc.cluster.local"),
    };
    format!("{base}{}/api/status", super::crd::prefix(namespace, name))
}

/// `last_activity` of Jupyter's `/api/status` answer
/// (`{"started": …, "last_activity": "2026-01-01T10:00:00.123456Z", "connections": …, "kernels": …}`).
pub fn parse_status(body: &str) -> Result<Timestamp, String> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("the status is not JSON: {e}"))?;
    let text = value["last_activity"]
        .as_str()
        .ok_or("the status has no last_activity")?;
    text.parse::<Timestamp>()
        .map_err(|e| format!("last_activity `{text}` is not a time: {e}"))
}

/// Whether a server last active at `last` is idle at `now` after `idle_after`. A last activity in
/// the future (clock skew) is activity now.
pub fn is_idle(last: Timestamp, now: Timestamp, idle_after: Duration) -> bool {
    let idle_for = now.duration_since(last);
    idle_for >= SignedDuration::try_from(idle_after).unwrap_or(SignedDuration::MAX)
}

/// Reads the server's last activity.
pub async fn last_activity(http: &reqwest::Client, url: &str) -> Result<Timestamp, String> {
    let response = http
        .get(url)
        .timeout(STATUS_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("GET {url}: HTTP {status}"));
    }
    let body = response
        .text()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    parse_status(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jupyters_status_gives_the_last_activity() {
        let body = r#"{"started": "2026-01-01T08:00:00.000000Z",
            "last_activity": "2026-01-01T10:00:00.123456Z", "connections": 0, "kernels": 1}"#;
        let last = parse_status(body).unwrap();
        assert_eq!(last.to_string(), "2026-01-01T10:00:00.123456Z");
        assert!(parse_status("{}").unwrap_err().contains("no last_activity"));
        assert!(parse_status("<html>").unwrap_err().contains("not JSON"));
        assert!(
            parse_status(r#"{"last_activity": "yesterday"}"#)
                .unwrap_err()
                .contains("not a time")
        );
    }

    #[test]
    fn idle_means_no_activity_for_the_whole_time() {
        let last: Timestamp = "2026-01-01T10:00:00Z".parse().unwrap();
        let hour = Duration::from_secs(3600);
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert!(!is_idle(last, at("2026-01-01T10:59:59Z"), hour));
        assert!(is_idle(last, at("2026-01-01T11:00:00Z"), hour));
        assert!(
            !is_idle(last, at("2026-01-01T09:00:00Z"), hour),
            "clock skew"
        );
    }

    #[test]
    fn the_status_is_asked_through_the_service_unless_a_base_is_given() {
        assert_eq!(
            status_url(None, "alice", "nb"),
            "http://nb.alice.svc.cluster.local/notebook/alice/nb/api/status"
        );
        assert_eq!(
            status_url(Some("http://127.0.0.1:9"), "alice", "nb"),
            "http://127.0.0.1:9/notebook/alice/nb/api/status"
        );
    }
}
