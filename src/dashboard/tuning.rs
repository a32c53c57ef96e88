//! The Tuning page: a profile namespace's OptimizationJobs (the trainer charm's) — the same row
//! `wharf tuning list` prints, and per job the trials table of `wharf tuning show` with the best
//! trial marked — read with the signed-in user's rights.

use axum::Router;
use axum::extract::{Query, State as Extract};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kube::api::{ApiResource, DynamicObject};
use kube::core::GroupVersionKind;

use super::html::{Page, alert, esc, namespace_form, page, table};
use super::viewer::Viewer;
use super::{State, Where, live};
use crate::action::tuning::{JOB_COLUMNS, job_row, trials};

pub fn router() -> Router<State> {
    Router::new()
        .route("/tuning", get(tuning))
        .route("/tuning/events", get(events))
}

/// The live part: the jobs and their trials, kept up to date from a shared watch of the namespace.
static LIVE: std::sync::LazyLock<live::NamespacePage> =
    std::sync::LazyLock::new(|| live::NamespacePage {
        resource: resource(),
        what: "OptimizationJobs (the trainer charm)",
        event: "tuning",
        path: "/tuning",
        render,
    });

/// `GET /tuning/events?namespace=NS`: the jobs on every change, for whoever may list there.
async fn events(
    Extract(state): Extract<State>,
    viewer: Viewer,
    Query(at): Query<Where>,
) -> Response {
    LIVE.events(&state, &viewer, at.namespace).await
}

pub(super) fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("wharf.dev", "v1alpha1", "OptimizationJob"),
        "optimizationjobs",
    )
}

async fn tuning(
    Extract(state): Extract<State>,
    viewer: Viewer,
    Query(at): Query<Where>,
) -> Response {
    let ns = viewer.namespace(at.namespace);
    let mut body = namespace_form("/tuning", ns.as_deref());
    if let Some(ns) = &ns {
        let not_served = "This cluster does not serve OptimizationJobs: they come with the \
                          trainer charm (`wharf deploy lite` or `full`).";
        match viewer.list_in(&resource(), ns, not_served).await {
            Ok(items) => body.push_str(&LIVE.region(ns, &items)),
            Err(why) => body.push_str(&alert(&why)),
        }
    }
    page(Page::Tuning, &state, &body).into_response()
}

/// The jobs' table, then each job's trials.
fn render(ns: &str, items: &[DynamicObject]) -> String {
    if items.is_empty() {
        return format!(
            "<p id=\"no-optimizationjobs\">No OptimizationJobs in {} yet. Start one with \
             <code>kubectl apply -n {0} -f examples/tuning/fashion-mnist-tuning.yaml</code>.</p>",
            esc(ns)
        );
    }
    let mut items: Vec<&DynamicObject> = items.iter().collect();
    items.sort_by_key(|o| o.metadata.name.clone());
    let name = |o: &DynamicObject| o.metadata.name.clone().unwrap_or_default();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|o| job_row(ns, &name(o), &o.data).cells())
        .collect();
    let mut out = table("optimizationjobs", "OptimizationJobs", &JOB_COLUMNS, &rows);
    for o in items {
        let (header, rows) = trials(&o.data);
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        out.push_str(&format!(
            "<section id=\"job-{id}\"><h2>{id}</h2>{}</section>",
            table(
                &format!("trials-{}", name(o)),
                &format!("Trials of {} (the best marked *)", name(o)),
                &header,
                &rows
            ),
            id = esc(&name(o)),
        ));
    }
    out
}
