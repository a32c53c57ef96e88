//! The Pipelines page: a profile namespace's Argo Workflows (`wharf pipeline run`, the argo charm
//! of the full bundle) with their phase and steps, each linked to Argo's own page for it under the
//! gateway's `/pipelines/` — a form that runs a compiled KFP pipeline (`wharf pipeline run`'s
//! compiler and parameter checks), and a Delete that asks first. Every read and write acts with
//! the signed-in user's rights. (The path is `/runs`: the gateway gives `/pipelines/` to Argo's
//! UI.)

use axum::extract::{Query, State as Extract};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use serde::Deserialize;

use super::deletion::Deletion;
use super::html::{Page, alert, esc, namespace_form, page};
use super::viewer::Viewer;
use super::{State, Where, form, live};
use crate::kube::errors;
use crate::pipeline::{self, argo, progress::Snapshot};

pub fn router() -> Router<State> {
    Router::new()
        .route("/runs", get(runs).post(run))
        .route("/runs/delete", DELETION.routes())
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
    let body = render_page(&viewer, ns.as_deref(), &NewRun::default(), &[]).await;
    page(Page::Pipelines, &state, &body).into_response()
}

/// The page: a namespace chooser, the runs there (or why not), the form with `problems` above it.
async fn render_page(
    viewer: &Viewer,
    ns: Option<&str>,
    values: &NewRun,
    problems: &[String],
) -> String {
    let mut body = namespace_form("/runs", ns);
    let Some(ns) = ns else {
        return body;
    };
    let not_served = "This cluster does not serve Argo Workflows: pipelines come with the \
                      argo charm of the full bundle (`wharf deploy full`).";
    match viewer.list_in(&resource(), ns, not_served).await {
        Ok(items) => body.push_str(&LIVE.region(ns, &items)),
        Err(why) => body.push_str(&alert(&why)),
    }
    body.push_str(&form_html(ns, values, problems));
    body
}

// --- run --------------------------------------------------------------------------------------

/// What the form posts: the compiled pipeline's YAML and `NAME=VALUE` lines.
#[derive(Debug, Clone, Default, Deserialize)]
struct NewRun {
    namespace: String,
    pipeline: String,
    #[serde(default)]
    params: String,
}

/// How messages name the pasted pipeline.
const PASTED: &str = "the pasted pipeline";

fn form_html(ns: &str, values: &NewRun, problems: &[String]) -> String {
    format!(
        "<form id=\"new-run\" method=\"post\" action=\"/runs\" \
         aria-labelledby=\"new-run-title\"><h2 id=\"new-run-title\">Run a pipeline in {ns}</h2>{}\
         <input type=\"hidden\" name=\"namespace\" value=\"{ns}\">\
         <p><label for=\"pipeline\">Pipeline (YAML)</label>\
         <textarea id=\"pipeline\" name=\"pipeline\" rows=\"12\" cols=\"80\" required \
         spellcheck=\"false\" aria-describedby=\"pipeline-hint\">{}</textarea>\
         <small id=\"pipeline-hint\">the file <code>kfp dsl compile</code> writes, e.g. \
         examples/pipelines/fashion-mnist-train-predict.yaml; it is compiled to an Argo \
         Workflow as <code>wharf pipeline run</code> does</small></p>\
         <p><label for=\"params\">Parameters</label>\
         <textarea id=\"params\" name=\"params\" rows=\"3\" cols=\"80\" spellcheck=\"false\" \
         aria-describedby=\"params-hint\">{}</textarea>\
         <small id=\"params-hint\">one NAME=VALUE per line; empty: the pipeline's \
         defaults</small></p><p><button type=\"submit\">Run</button></p></form>",
        form::problems(problems),
        esc(&values.pipeline),
        esc(&values.params),
        ns = esc(ns),
    )
}

/// Compiles and submits the pipeline with the user's rights, then shows the runs
/// (POST-redirect-GET). A pipeline the compiler refuses is a 422 naming what it refused.
async fn run(Extract(state): Extract<State>, viewer: Viewer, Form(f): Form<NewRun>) -> Response {
    let ns = f.namespace.trim().to_owned();
    let refuse = async |status: StatusCode, problem: String| {
        let body = render_page(&viewer, Some(&ns), &f, &[problem]).await;
        (status, page(Page::Pipelines, &state, &body)).into_response()
    };
    let params: Vec<String> = f
        .params
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let compiled = pipeline::parse(PASTED, &f.pipeline).and_then(|p| {
        let mut workflow = pipeline::compile(&p)?;
        pipeline::set_parameters(&p, &mut workflow, &params)?;
        Ok(workflow)
    });
    let workflow = match compiled {
        Ok(w) => w,
        Err(e) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).await,
    };
    let object: DynamicObject = serde_json::to_value(&workflow)
        .and_then(serde_json::from_value)
        .expect("a Workflow body");
    match api(&viewer, &ns)
        .create(&PostParams::default(), &object)
        .await
    {
        Ok(_) => Redirect::to(&format!("/runs?namespace={ns}")).into_response(),
        Err(e) => {
            let what = format!(
                "submit the Workflow {}… to namespace {ns}",
                workflow.metadata.generate_name
            );
            let problem = errors::describe(&e, &what, &state.cluster.server);
            refuse(StatusCode::BAD_GATEWAY, problem).await
        }
    }
}

fn api(viewer: &Viewer, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(viewer.cluster.client.clone(), ns, &resource())
}

// --- delete ---------------------------------------------------------------------------------

/// Delete… asks first, saying what goes and what stays.
static DELETION: Deletion = Deletion {
    page: Page::Pipelines,
    path: "/runs",
    what: "pipeline run",
    resource,
    lost: |ns, name| {
        vec![
            format!("the Argo Workflow {name} in namespace {ns}, its record of the steps"),
            "its step pods: a run still going stops".to_owned(),
        ]
    },
    kept: |_, _| {
        vec!["the artifacts and archived logs in the platform's object storage (MinIO)".to_owned()]
    },
};

/// One row per Workflow, newest first: name (to Argo's page), phase, steps by phase, started,
/// finished, and the message when there is one.
fn render(ns: &str, items: &[DynamicObject]) -> String {
    if items.is_empty() {
        return format!(
            "<p id=\"no-workflows\">No pipeline runs in {} yet. Start one with the form below, \
             or <code>wharf pipeline run examples/pipelines/fashion-mnist-train-predict.yaml -n {0} \
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
         <th scope=\"col\">Message</th><th scope=\"col\">Actions</th></tr></thead><tbody>",
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
             <td>{}</td><td>{}</td><td><form method=\"get\" action=\"/runs/delete\">\
             <input type=\"hidden\" name=\"namespace\" value=\"{ns}\">\
             <input type=\"hidden\" name=\"name\" value=\"{n}\">\
             <button type=\"submit\" aria-label=\"Delete pipeline run {n} (asks first)\">\
             Delete…</button></form></td></tr>",
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
