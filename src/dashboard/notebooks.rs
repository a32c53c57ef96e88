//! The Notebooks page: the Jupyter servers (Kubeflow Notebooks, the workspaces charm) in a
//! namespace — the signed-in user's profile by default, `?namespace=` for another — with their
//! state and a link to each, a form that starts one and a button that stops and deletes one after
//! a confirmation (its workspace volume, the user's files, is kept, as `wharf notebook delete`
//! keeps it). Every read
//! and write acts with the user's rights: the profile's owner may, others get the cluster's 403.
//!
//! The Notebook body and its checks are `wharf notebook create`'s ([`crate::action::notebook`]).

use std::fmt::Write;
use std::time::Duration;

use axum::extract::{Query, State as Extract};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use kube::api::{Api, DynamicObject, PostParams};
use serde::Deserialize;

use super::deletion::Deletion;
use super::html::{Page, alert, esc, namespace_form, page};
use super::viewer::Viewer;
use super::{State, Where, live};
use crate::action::notebook::{self, CreateOptions};
use crate::kube::errors;

pub fn router() -> Router<State> {
    Router::new()
        .route("/notebooks", get(list).post(create))
        .route("/notebooks/delete", DELETION.routes())
        .route("/notebooks/events", get(events))
}

/// The live list: the notebooks table, kept up to date from a shared watch of the namespace.
static LIVE: std::sync::LazyLock<live::NamespacePage> =
    std::sync::LazyLock::new(|| live::NamespacePage {
        resource: notebook::resource(),
        what: "Notebooks (the workspaces charm)",
        event: "notebooks",
        path: "/notebooks",
        render: table,
    });

/// `GET /notebooks/events?namespace=NS`: the table on every change, for whoever may list there.
async fn events(
    Extract(state): Extract<State>,
    viewer: Viewer,
    Query(at): Query<Where>,
) -> Response {
    LIVE.events(&state, &viewer, at.namespace).await
}

#[derive(Debug, Deserialize)]
struct NewNotebook {
    namespace: String,
    name: String,
    image: String,
}

/// Delete… asks first: the server stops, the workspace volume (the user's files) stays.
static DELETION: Deletion = Deletion {
    page: Page::Notebooks,
    path: "/notebooks",
    what: "notebook",
    resource: notebook::resource,
    lost: |ns, name| {
        vec![format!(
            "the notebook server {name} in namespace {ns}: its pod stops, and whatever is not \
             saved in the workspace (running kernels, unsaved edits) is lost"
        )]
    },
    kept: |_, name| {
        vec![format!(
            "its workspace volume (your files): a notebook named {name} finds it again"
        )]
    },
};

fn api(viewer: &Viewer, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(viewer.cluster.client.clone(), ns, &notebook::resource())
}

/// The page: a namespace chooser, the notebooks there (or why not), the form.
async fn render(viewer: &Viewer, ns: Option<&str>, problems: &[String]) -> String {
    let mut out = namespace_form("/notebooks", ns);
    for p in problems {
        out.push_str(&alert(p));
    }
    let Some(ns) = ns else {
        return out;
    };
    let not_served = "This cluster does not serve Notebooks: they come with the workspaces \
                      charm of the full bundle (`wharf deploy full`).";
    match viewer.list_in(&notebook::resource(), ns, not_served).await {
        Ok(items) => out.push_str(&LIVE.region(ns, &items)),
        Err(why) => out.push_str(&alert(&why)),
    }
    let ns = esc(ns);
    let _ = write!(
        out,
        "<form method=\"post\" action=\"/notebooks\" id=\"new-notebook\"><fieldset>\
         <legend>Start a notebook server in {ns}</legend>\
         <input type=\"hidden\" name=\"namespace\" value=\"{ns}\">\
         <label for=\"nb-name\">Name</label> <input id=\"nb-name\" name=\"name\" required \
         pattern=\"[a-z]([-a-z0-9]*[a-z0-9])?\" maxlength=\"52\"> \
         <label for=\"nb-image\">Image</label> <select id=\"nb-image\" name=\"image\">\
         <option value=\"scipy\">scipy (Jupyter with NumPy, pandas, scikit-learn)</option>\
         <option value=\"minimal\">minimal (Jupyter only)</option></select> \
         <button type=\"submit\">Start</button></fieldset></form>"
    );
    out
}

/// The notebooks of `ns` as a table: name (a link to the server), ready, reason, and a delete
/// button per row.
fn table(ns: &str, items: &[DynamicObject]) -> String {
    if items.is_empty() {
        return "<p id=\"no-notebooks\">No notebooks here yet. Start one with the form below.</p>"
            .into();
    }
    let mut out = String::from(
        "<table id=\"notebooks\"><caption>Notebooks</caption><thead><tr>\
         <th scope=\"col\">Name</th><th scope=\"col\">Ready</th><th scope=\"col\">Reason</th>\
         <th scope=\"col\">Actions</th></tr></thead><tbody>",
    );
    for nb in items {
        let name = nb.metadata.name.clone().unwrap_or_default();
        let (ready, reason, message) = notebook::ready(&nb.data).unwrap_or_default();
        let _ = write!(
            out,
            "<tr data-notebook=\"{n}\"><th scope=\"row\"><a href=\"/notebook/{ns}/{n}/\">{n}</a></th>\
             <td class=\"ready\">{}</td><td class=\"reason\" title=\"{}\">{}</td><td>\
             <form method=\"get\" action=\"/notebooks/delete\">\
             <input type=\"hidden\" name=\"namespace\" value=\"{ns}\">\
             <input type=\"hidden\" name=\"name\" value=\"{n}\">\
             <button type=\"submit\" aria-label=\"Delete notebook {n} (asks first; its workspace \
             is kept)\">Delete…</button></form></td></tr>",
            esc(&ready),
            esc(&message),
            esc(&reason),
            n = esc(&name),
            ns = esc(ns),
        );
    }
    out.push_str(
        "</tbody></table><p class=\"note\">Deleting a notebook stops its server; its workspace \
         volume (your files) is kept and a notebook of the same name finds it again.</p>",
    );
    out
}

async fn list(Extract(state): Extract<State>, viewer: Viewer, Query(at): Query<Where>) -> Response {
    let ns = viewer.namespace(at.namespace);
    let body = render(&viewer, ns.as_deref(), &[]).await;
    page(Page::Notebooks, &state, &body).into_response()
}

async fn create(
    Extract(state): Extract<State>,
    viewer: Viewer,
    Form(form): Form<NewNotebook>,
) -> Response {
    let ns = form.namespace.trim().to_owned();
    let name = form.name.trim().to_owned();
    let refuse = async |status: StatusCode, problem: String| {
        let body = render(&viewer, Some(&ns), &[problem]).await;
        (status, page(Page::Notebooks, &state, &body)).into_response()
    };
    if let Err(e) = notebook::check_name(&name) {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).await;
    }
    if !matches!(form.image.as_str(), "scipy" | "minimal") {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("image `{}`: choose scipy or minimal", form.image),
        )
        .await;
    }
    let options = CreateOptions {
        name: name.clone(),
        namespace: ns.clone(),
        image: form.image.clone(),
        cpu: None,
        memory: None,
        service_account: "default-editor".into(),
        timeout: Duration::ZERO,
    };
    let object: DynamicObject =
        serde_json::from_value(notebook::body(&options)).expect("a Notebook body");
    match api(&viewer, &ns)
        .create(&PostParams::default(), &object)
        .await
    {
        Ok(_) => Redirect::to(&format!("/notebooks?namespace={ns}")).into_response(),
        Err(e) => {
            let what = format!("create notebook {name} in namespace {ns}");
            refuse(
                StatusCode::BAD_GATEWAY,
                errors::describe(&e, &what, &state.cluster.server),
            )
            .await
        }
    }
}
