//! The Pipelines page: a profile namespace's Argo Workflows (`wharf pipeline run`, the argo charm
//! of the full bundle) with their phase and steps, each linked to Argo's own page for it under the
//! gateway's `/pipelines/` — read with the signed-in user's rights. (The path is `/runs`: the
//! gateway gives `/pipelines/` to Argo's UI.)

use axum::Router;
use axum::extract::{Query, State as Extract};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kube::api::{ApiResource, DynamicObject};
use kube::core::GroupVersionKind;

use super::html::{Page, alert, esc, namespace_form, page};
use super::viewer::Viewer;
use super::{State, Where, live};
use crate::pipeline::{argo, progress::Snapshot};

pub fn router() -> Router<State> {
    Router::new()
        .route("/runs", get(runs))
        .route("/runs/events", get(events))
}

/// The live part: the runs table, kept up to date from a shared watch of the namespace.
static LIVE: std::sync::LazyLock<live::NamespacePage> =
    std::sync::LazyLock::new(|| live::NamespacePage {
        resource: resource(),
        what: "Argo Workflows (the argo charm)",
        event: "runs",
        path: "/runs",
        render,
    });

/// `GET /runs/events?namespace=NS`: the runs on every change, for whoever may list there.
async fn events(
    Extract(state): Extract<State>,
    viewer: Viewer,
    Query(at): Query<Where>,
) -> Response {
    LIVE.events(&state, &viewer, at.namespace).await
}

pub(super) fn resource() -> ApiResource {
    let (group, version) = argo::API_VERSION.split_once('/').expect("group/version");
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, argo::KIND),
        "workflows",
    )
}

async fn runs(Extract(state): Extract<State>, viewer: Viewer, Query(at): Query<Where>) -> Response {
    let ns = viewer.namespace(at.namespace);
    let mut body = namespace_form("/runs", ns.as_deref());
    if let Some(ns) = &ns {
        let not_served = "This cluster does not serve Argo Workflows: pipelines come with the \
                          argo charm of the full bundle (`wharf deploy full`).";
        match viewer.list_in(&resource(), ns, not_served).await {
            Ok(items) => body.push_str(&LIVE.region(ns, &items)),
            Err(why) => body.push_str(&alert(&why)),
        }
    }
    page(Page::Pipelines, &state, &body).into_response()
}

/// One row per Workflow, newest first: name (to Argo's page), phase, steps by phase, started,
/// finished, and the message when there is one.
fn render(ns: &str, items: &[DynamicObject]) -> String {
    if items.is_empty() {
        return format!(
            "<p id=\"no-workflows\">No pipeline runs in {} yet. Start one with <code>wharf \
             pipeline run examples/pipelines/fashion-mnist-train-predict.yaml -n {0} \
             --watch</code>.</p>",
            esc(ns)
        );
    }
    let mut items: Vec<&DynamicObject> = items.iter().collect();
    // Creation times have whole seconds: runs submitted together are ordered by their start.
    items.sort_by_key(|o| {
        let started = o.data["status"]["startedAt"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        std::cmp::Reverse((o.metadata.creation_timestamp.clone(), started))
    });
    let mut out = String::from(
        "<table id=\"workflows\"><caption>Pipeline runs (Argo Workflows)</caption><thead><tr>\
         <th scope=\"col\">Name</th><th scope=\"col\">Phase</th><th scope=\"col\">Steps</th>\
         <th scope=\"col\">Started</th><th scope=\"col\">Finished</th>\
         <th scope=\"col\">Message</th></tr></thead><tbody>",
    );
    for o in items {
        let name = o.metadata.name.clone().unwrap_or_default();
        let value = serde_json::to_value(o).unwrap_or_default();
        let snapshot = Snapshot::of(&value);
        let phase = if snapshot.phase.is_empty() {
            "Pending".to_owned()
        } else {
            snapshot.phase.clone()
        };
        let done = snapshot
            .steps
            .values()
            .filter(|s| s.phase == "Succeeded")
            .count();
        let time = |key: &str| o.data["status"][key].as_str().unwrap_or("").to_owned();
        out.push_str(&format!(
            "<tr data-workflow=\"{n}\"><th scope=\"row\"><a href=\"/pipelines/workflows/{ns}/{n}\">\
             {n}</a></th><td class=\"phase\">{}</td><td>{done} of {} succeeded</td><td>{}</td>\
             <td>{}</td><td>{}</td></tr>",
            esc(&phase),
            snapshot.steps.len(),
            esc(&time("startedAt")),
            esc(&time("finishedAt")),
            esc(&snapshot.message),
            n = esc(&name),
            ns = esc(ns),
        ));
    }
    out.push_str("</tbody></table>");
    out
}
