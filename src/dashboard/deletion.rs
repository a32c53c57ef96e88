//! Deleting one namespaced object from a page, the same way on every page: the list's Delete…
//! leads (GET, which changes nothing) to a confirmation saying what goes and what stays; only
//! the confirmation's POST deletes, with the signed-in user's rights. A refusal (the cluster's
//! 403 …) comes back on the confirmation, naming why.

use axum::Form;
use axum::extract::{Query, State as Extract};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject};
use serde::Deserialize;

use super::State;
use super::html::{Confirm, Page, confirm_delete, confirmed, page};
use super::viewer::Viewer;
use crate::kube::errors;

/// One page's deletion: what it deletes and what it tells the user first.
pub struct Deletion {
    pub page: Page,
    /// The list page (`/notebooks`); the confirmation is at `{path}/delete`.
    pub path: &'static str,
    /// How the object is called in the heading, the button and messages (`notebook`).
    pub what: &'static str,
    pub resource: fn() -> ApiResource,
    /// What goes for good and what stays, given the namespace and the name.
    pub lost: fn(&str, &str) -> Vec<String>,
    pub kept: fn(&str, &str) -> Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Which {
    namespace: String,
    name: String,
}

#[derive(Debug, Deserialize)]
struct Gone {
    namespace: String,
    name: String,
    /// The confirmation form's `yes`; without it nothing is deleted.
    confirm: Option<String>,
}

impl Deletion {
    /// `GET` the confirmation, `POST` it to delete: the route at `{path}/delete`.
    pub fn routes(&'static self) -> MethodRouter<State> {
        // The viewer is asked for so that a request without the gateway's login is refused on
        // the confirmation too.
        get(
            move |Extract(state): Extract<State>, _viewer: Viewer, Query(w): Query<Which>| async move {
                self.confirmation(&state, StatusCode::OK, w.namespace.trim(), w.name.trim(), None)
            },
        )
        .post(
            move |Extract(state): Extract<State>, viewer: Viewer, Form(gone): Form<Gone>| async move {
                self.delete(&state, &viewer, gone).await
            },
        )
    }

    /// The confirmation page (and, with `problem`, the same page again).
    fn confirmation(
        &self,
        state: &State,
        status: StatusCode,
        ns: &str,
        name: &str,
        problem: Option<&str>,
    ) -> Response {
        let what = format!("{} {name}", self.what);
        let action = format!("{}/delete", self.path);
        let cancel = format!("{}?namespace={ns}", self.path);
        let c = Confirm {
            what: &what,
            action: &action,
            fields: &[("namespace", ns), ("name", name)],
            lost: &(self.lost)(ns, name),
            kept: &(self.kept)(ns, name),
            typed: None,
            cancel: &cancel,
        };
        let body = confirm_delete(&c, problem);
        (status, page(self.page, state, &body)).into_response()
    }

    /// Deletes only when confirmed; what the object owns goes with it (background propagation).
    async fn delete(&self, state: &State, viewer: &Viewer, gone: Gone) -> Response {
        let (ns, name) = (gone.namespace.trim(), gone.name.trim());
        if !confirmed(None, gone.confirm.as_deref()) {
            let problem = "Not confirmed: nothing was deleted. Press Delete below to confirm.";
            return self.confirmation(
                state,
                StatusCode::UNPROCESSABLE_ENTITY,
                ns,
                name,
                Some(problem),
            );
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(viewer.cluster.client.clone(), ns, &(self.resource)());
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => Redirect::to(&format!("{}?namespace={ns}", self.path)).into_response(),
            Err(e) => {
                let what = format!("delete {} {name} in namespace {ns}", self.what);
                let problem = errors::describe(&e, &what, &state.cluster.server);
                self.confirmation(state, StatusCode::BAD_GATEWAY, ns, name, Some(&problem))
            }
        }
    }
}
