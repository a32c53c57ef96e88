//! The Training page's log tail: the last lines of a TrainJob's pod log (the trainer operator's
//! pod, labelled `wharf.dev/trainjob=<job>`, container `trainer`), read with the signed-in user's
//! rights (`list pods`, `get pods/log`: a refusal is shown as the cluster's 403).
//!
//! Each job's section on the page holds a placeholder linking to `/training/<job>/log` (a page of
//! its own: works without JavaScript); the script fills the placeholder with
//! `/training/<job>/log?part=1`, when the page loads and whenever the live update of the TrainJobs
//! re-renders the section. So a log is re-read when a job's status changes — an epoch ended, the
//! job finished — and never by a polling loop in the browser: the status is what says the log has
//! moved on, and a log between two epochs rarely says more than the epoch that follows.

use axum::Router;
use axum::extract::{Path, Query, State as Extract};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use serde::Deserialize;

use super::State;
use super::html::{Page, alert, esc, page};
use super::viewer::Viewer;
use crate::kube::errors;

/// How many of the log's last lines are shown.
pub const LOG_LINES: i64 = 100;
/// The trainer operator's label on a TrainJob's Job and pod (`charms/trainer/src/operator/job.rs`)
/// and the name of the container whose log it is.
const TRAINJOB_LABEL: &str = "wharf.dev/trainjob";
const CONTAINER: &str = "trainer";

pub fn router() -> Router<State> {
    Router::new().route("/training/{job}/log", get(log_tail))
}

/// What a job's section holds until the script fills it: a link to the log's own page.
pub fn placeholder(job: &str) -> String {
    let j = esc(job);
    format!(
        "<div class=\"log-tail\" data-log=\"/training/{j}/log?part=1\"><p>\
         <a href=\"/training/{j}/log\">The last {LOG_LINES} lines of {j}'s pod log</a></p></div>"
    )
}

#[derive(Debug, Default, Deserialize)]
struct Part {
    /// Set: only the fragment (for the script), not a whole page.
    part: Option<String>,
}

async fn log_tail(
    Extract(state): Extract<State>,
    viewer: Viewer,
    Path(job): Path<String>,
    Query(part): Query<Part>,
) -> Response {
    let (status, fragment) = fragment(&viewer, &state.model, &job).await;
    if part.part.is_some() {
        return (status, Html(fragment)).into_response();
    }
    let body = format!(
        "<h2>Log of TrainJob {j}</h2>{fragment}<p><a href=\"/training#job-{j}\">Back to \
         {j}</a></p>",
        j = esc(&job)
    );
    (status, page(Page::Training, &state, &body)).into_response()
}

/// The newest of the job's pods (a retried job has several).
fn newest(pods: Vec<Pod>) -> Option<Pod> {
    pods.into_iter().max_by(|a, b| {
        a.metadata
            .creation_timestamp
            .cmp(&b.metadata.creation_timestamp)
    })
}

/// The log tail of `job`'s pod in `ns` as HTML, with the status the page answers.
async fn fragment(viewer: &Viewer, ns: &str, job: &str) -> (StatusCode, String) {
    let server = &viewer.cluster.server;
    let pods: Api<Pod> = Api::namespaced(viewer.cluster.client.clone(), ns);
    let selector = ListParams::default().labels(&format!("{TRAINJOB_LABEL}={job}"));
    let listed = match pods.list(&selector).await {
        Ok(list) => list.items,
        Err(e) => {
            let what = format!("list the pods of TrainJob {job} in namespace {ns}");
            return (
                StatusCode::BAD_GATEWAY,
                alert(&errors::describe(&e, &what, server)),
            );
        }
    };
    let Some(pod) = newest(listed) else {
        return (
            StatusCode::OK,
            format!(
                "<p class=\"log-none\">TrainJob {} has no pod yet: the trainer operator starts \
                 one when the job runs.</p>",
                esc(job)
            ),
        );
    };
    let name = pod.metadata.name.unwrap_or_default();
    let params = LogParams {
        container: Some(CONTAINER.into()),
        tail_lines: Some(LOG_LINES),
        ..LogParams::default()
    };
    match pods.logs(&name, &params).await {
        Ok(text) => {
            let shown = if text.is_empty() {
                "(the container has printed nothing yet)".to_owned()
            } else {
                esc(&text)
            };
            (
                StatusCode::OK,
                format!(
                    "<figure class=\"log-tail\"><figcaption id=\"log-{j}-title\">The last \
                     {LOG_LINES} lines of the log of pod <code class=\"pod\">{p}</code></figcaption>\
                     <pre tabindex=\"0\" aria-labelledby=\"log-{j}-title\">{shown}</pre></figure>",
                    j = esc(job),
                    p = esc(&name),
                ),
            )
        }
        Err(e) => {
            let what = format!("read the log of pod {name} in namespace {ns}");
            (
                StatusCode::BAD_GATEWAY,
                alert(&errors::describe(&e, &what, server)),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_newest_pod_is_the_one_shown() {
        let pod = |name: &str, at: &str| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": name, "creationTimestamp": at}}))
                .unwrap()
        };
        let pods = vec![
            pod("a", "2026-01-01T10:00:00Z"),
            pod("b", "2026-01-01T11:00:00Z"),
            pod("c", "2026-01-01T09:00:00Z"),
        ];
        assert_eq!(newest(pods).unwrap().metadata.name.as_deref(), Some("b"));
        assert!(newest(Vec::new()).is_none());
        let p = placeholder("fashion");
        assert!(
            p.contains("data-log=\"/training/fashion/log?part=1\""),
            "{p}"
        );
        assert!(p.contains("<a href=\"/training/fashion/log\">"), "{p}");
    }
}
