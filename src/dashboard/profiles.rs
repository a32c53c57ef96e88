//! The Profiles page: people's workspaces (Kubeflow's Profiles, the workspaces charm's), as
//! `wharf profile list|create|delete` shows and makes them — owner, namespace, state, links to
//! each profile's Notebooks, Tuning and Pipelines pages — read and written with the signed-in
//! user's rights.
//!
//! Who sees what is the cluster's answer, never the dashboard's own: a user who may list Profiles
//! (an administrator) sees them all. Profiles are cluster-scoped and a profile's owner holds
//! rights only inside its namespace (`edit`, bound there by the workspaces operator), so most
//! users may not list them; they still see their own: the profile the dashboard knows for them
//! (first login) or the name first login gives their email is read as the user — the Profile if
//! the cluster lets them, else its namespace, which their binding there lets them read (the
//! apiserver authorizes `get namespaces/NAME` in namespace NAME) and which names its Profile and
//! owner. Such a row has no Delete button: deleting a Profile needs rights on Profiles.
//!
//! Deleting a Profile deletes its namespace (the operator makes the Profile its controller owner,
//! so garbage collection takes it) and everything in it. The Delete button therefore leads to a
//! confirmation that lists, as far as the user may read them, the notebooks and volumes that go,
//! and the profile's name must be typed, as the CLI asks on a terminal.

use std::fmt::Write;
use std::time::Duration;

use axum::extract::{Query, State as Extract};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use serde::Deserialize;

use super::State;
use super::first_login::profile_name;
use super::html::{Confirm, Page, alert, confirm_delete, confirmed, esc, page};
use super::viewer::Viewer;
use crate::action::{notebook, profile};
use crate::kube::errors;

pub fn router() -> Router<State> {
    Router::new()
        .route("/profiles", get(list).post(create))
        .route("/profiles/delete", get(confirm_page).post(delete))
}

/// The label and annotation the workspaces operator puts on a profile's namespace
/// (`charms/workspaces/src/profile/resources.rs`).
const PROFILE_LABEL: &str = "wharf.dev/profile";
const OWNER_ANNOTATION: &str = "owner";

const NOT_SERVED: &str = "This cluster does not serve Profiles (kubeflow.org/v1): they come with \
                          the workspaces charm of the full bundle (`wharf deploy full`).";

/// One profile as the page shows it.
#[derive(Debug, PartialEq)]
struct Row {
    name: String,
    owner: String,
    /// `wharf profile list`'s READY and REASON.
    ready: String,
    reason: String,
    /// Whether the user could read the Profile itself (else only its namespace): only then is
    /// there a Delete button.
    readable: bool,
}

/// A Profile's row, with the words `wharf profile list` uses.
fn row(p: &DynamicObject) -> Row {
    let (ready, reason, _) = profile::condition(&p.data, "Ready")
        .unwrap_or_else(|| ("Unknown".into(), "Pending".into(), String::new()));
    Row {
        name: p.metadata.name.clone().unwrap_or_default(),
        owner: p.data["spec"]["owner"]["name"]
            .as_str()
            .unwrap_or_default()
            .into(),
        ready,
        reason,
        readable: true,
    }
}

/// A profile's row from its namespace, when the user may read that and not the Profile; `None`
/// for a namespace that is not a profile's.
fn row_from_namespace(name: &str, ns: &Namespace) -> Option<Row> {
    let labels = ns.metadata.labels.as_ref()?;
    if labels.get(PROFILE_LABEL).map(String::as_str) != Some(name) {
        return None;
    }
    let phase = ns
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Active".into());
    Some(Row {
        name: name.to_owned(),
        owner: ns
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(OWNER_ANNOTATION))
            .cloned()
            .unwrap_or_default(),
        ready: "Unknown".into(),
        reason: format!("namespace {phase}; you may not read the Profile itself"),
        readable: false,
    })
}

/// What the user may see of the Profiles.
enum Listing {
    /// They may list them all.
    All(Vec<Row>),
    /// They may not (the cluster's refusal); their own, as far as they may read them.
    Own {
        rows: Vec<Row>,
        refusal: String,
    },
    NotServed,
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(ae) => Some(ae.code),
        _ => None,
    }
}

fn profiles(viewer: &Viewer) -> Api<DynamicObject> {
    Api::all_with(viewer.cluster.client.clone(), &profile::resource())
}

async fn listing(viewer: &Viewer, model: &str) -> Result<Listing, String> {
    let describe = |e: &kube::Error, what: &str| errors::describe(e, what, &viewer.cluster.server);
    let refusal = match profiles(viewer).list(&ListParams::default()).await {
        Ok(list) => {
            let mut rows: Vec<Row> = list.items.iter().map(row).collect();
            rows.sort_by(|a, b| a.name.cmp(&b.name));
            return Ok(Listing::All(rows));
        }
        Err(e) if api_code(&e) == Some(404) => return Ok(Listing::NotServed),
        Err(e) if api_code(&e) == Some(403) => describe(&e, "list profiles"),
        Err(e) => return Err(describe(&e, "list profiles")),
    };
    // The profile the dashboard knows for the user, and the name first login gives them.
    let mut names: Vec<String> = viewer.profile.iter().cloned().collect();
    if let Some(user) = &viewer.user {
        names.push(profile_name(user, model));
    }
    names.dedup();
    let namespaces: Api<Namespace> = Api::all(viewer.cluster.client.clone());
    let mut rows = Vec::new();
    for name in names {
        match profiles(viewer).get_opt(&name).await {
            Ok(Some(p)) => rows.push(row(&p)),
            Ok(None) => {}
            // Not allowed to read the Profile: its namespace, if the user may read that.
            Err(_) => {
                if let Ok(Some(ns)) = namespaces.get_opt(&name).await
                    && let Some(r) = row_from_namespace(&name, &ns)
                {
                    rows.push(r);
                }
            }
        }
    }
    Ok(Listing::Own { rows, refusal })
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "<table id=\"profiles\"><caption>Profiles</caption><thead><tr>\
         <th scope=\"col\">Profile</th><th scope=\"col\">Owner</th>\
         <th scope=\"col\">Namespace</th><th scope=\"col\">Ready</th>\
         <th scope=\"col\">Reason</th><th scope=\"col\">Pages</th>\
         <th scope=\"col\">Actions</th></tr></thead><tbody>",
    );
    for r in rows {
        let n = esc(&r.name);
        let action = if r.readable {
            format!(
                "<form method=\"get\" action=\"/profiles/delete\">\
                 <input type=\"hidden\" name=\"name\" value=\"{n}\">\
                 <button type=\"submit\" aria-label=\"Delete profile {n} (asks first)\">Delete…\
                 </button></form>"
            )
        } else {
            String::new()
        };
        let _ = write!(
            out,
            "<tr data-profile=\"{n}\"><th scope=\"row\">{n}</th><td class=\"owner\">{}</td>\
             <td class=\"namespace\">{n}</td><td class=\"ready\">{}</td>\
             <td class=\"reason\">{}</td><td>\
             <a href=\"/notebooks?namespace={n}\" aria-label=\"Notebooks of {n}\">Notebooks</a> \
             <a href=\"/tuning?namespace={n}\" aria-label=\"Tuning of {n}\">Tuning</a> \
             <a href=\"/runs?namespace={n}\" aria-label=\"Pipelines of {n}\">Pipelines</a>\
             </td><td>{action}</td></tr>",
            esc(&r.owner),
            esc(&r.ready),
            esc(&r.reason),
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// What the create form posts; every field a string so a bad one gets a message naming it.
#[derive(Debug, Default, Deserialize)]
struct NewProfile {
    name: String,
    owner: String,
    #[serde(default)]
    cpu: String,
    #[serde(default)]
    memory: String,
}

/// `wharf profile create`'s options from the form, or one message per bad field (naming it),
/// with the CLI's checks.
fn options(form: &NewProfile) -> Result<profile::CreateOptions, Vec<String>> {
    let mut problems = Vec::new();
    let name = form.name.trim().to_owned();
    if let Err(e) = profile::check_name(&name) {
        problems.push(format!("Name: {e}"));
    }
    let owner = form.owner.trim().to_owned();
    if let Err(e) = profile::check_owner("Owner", &owner) {
        problems.push(e.to_string());
    }
    let mut quantity = |label: &str, text: &str| {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        if let Err(e) = profile::check_quantity(label, text) {
            problems.push(e.to_string());
        }
        Some(text.to_owned())
    };
    let cpu = quantity("CPU quota", &form.cpu);
    let memory = quantity("Memory quota", &form.memory);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(profile::CreateOptions {
        name,
        owner,
        cpu,
        memory,
        timeout: Duration::ZERO,
    })
}

fn form_html(values: &NewProfile, problems: &[String]) -> String {
    let mut out = String::from(
        "<form method=\"post\" action=\"/profiles\" id=\"new-profile\"><fieldset>\
         <legend>Create a profile</legend>",
    );
    if !problems.is_empty() {
        out.push_str("<div role=\"alert\" class=\"error\" id=\"form-errors\"><ul>");
        for p in problems {
            let _ = write!(out, "<li>{}</li>", esc(p));
        }
        out.push_str("</ul></div>");
    }
    let _ = write!(
        out,
        "<p><label for=\"pf-name\">Name</label> <input id=\"pf-name\" name=\"name\" value=\"{}\" \
         required pattern=\"[a-z0-9]([-a-z0-9]*[a-z0-9])?\" maxlength=\"63\" \
         aria-describedby=\"pf-name-hint\"><small id=\"pf-name-hint\">also the namespace's name: \
         lower-case letters, digits and '-'</small></p>\
         <p><label for=\"pf-owner\">Owner</label> <input id=\"pf-owner\" name=\"owner\" \
         value=\"{}\" required aria-describedby=\"pf-owner-hint\"><small id=\"pf-owner-hint\">the \
         email the owner logs in with</small></p>\
         <p><label for=\"pf-cpu\">CPU quota</label> <input id=\"pf-cpu\" name=\"cpu\" value=\"{}\" \
         aria-describedby=\"pf-cpu-hint\"><small id=\"pf-cpu-hint\">empty: none; e.g. 2 or \
         500m</small></p>\
         <p><label for=\"pf-memory\">Memory quota</label> <input id=\"pf-memory\" name=\"memory\" \
         value=\"{}\" aria-describedby=\"pf-memory-hint\"><small id=\"pf-memory-hint\">empty: \
         none; e.g. 4Gi</small></p>\
         <p><button type=\"submit\">Create profile</button></p></fieldset></form>",
        esc(&values.name),
        esc(&values.owner),
        esc(&values.cpu),
        esc(&values.memory),
    );
    out
}

/// The page: a status line, the profiles the user may see (or why not), the create form.
async fn render(
    viewer: &Viewer,
    model: &str,
    done: Option<String>,
    values: &NewProfile,
    problems: &[String],
) -> String {
    let mut out = String::new();
    if let Some(done) = done {
        let _ = write!(out, "<p role=\"status\" id=\"done\">{}</p>", esc(&done));
    }
    match listing(viewer, model).await {
        Ok(Listing::NotServed) => return out + &alert(NOT_SERVED),
        Ok(Listing::All(rows)) if rows.is_empty() => out
            .push_str("<p id=\"no-profiles\">No profiles yet. Create one with the form below.</p>"),
        Ok(Listing::All(rows)) => out.push_str(&table(&rows)),
        Ok(Listing::Own { rows, refusal }) => {
            let _ = write!(
                out,
                "<p class=\"note\" id=\"own-only\">You may not list every profile ({}); these are \
                 the ones you can reach.</p>",
                esc(&refusal)
            );
            if rows.is_empty() {
                out.push_str("<p id=\"no-profiles\">No profile of yours was found.</p>");
            } else {
                out.push_str(&table(&rows));
            }
        }
        Err(why) => out.push_str(&alert(&why)),
    }
    out.push_str(&form_html(values, problems));
    out
}

#[derive(Debug, Default, Deserialize)]
struct Done {
    created: Option<String>,
    deleted: Option<String>,
}

async fn list(
    Extract(state): Extract<State>,
    viewer: Viewer,
    Query(done): Query<Done>,
) -> Response {
    let done = match (done.created, done.deleted) {
        (Some(n), _) => Some(format!(
            "Profile {n} created: the workspaces operator makes its namespace."
        )),
        (None, Some(n)) => Some(format!(
            "Profile {n} deleted, with its namespace and everything in it."
        )),
        (None, None) => None,
    };
    let values = NewProfile {
        owner: viewer.user.clone().unwrap_or_default(),
        ..NewProfile::default()
    };
    let body = render(&viewer, &state.model, done, &values, &[]).await;
    page(Page::Profiles, &state, &body).into_response()
}

/// Create the Profile with the user's rights (`wharf profile create`'s checks first, nothing
/// written when they fail), then show the list (POST-redirect-GET).
async fn create(
    Extract(state): Extract<State>,
    viewer: Viewer,
    Form(form): Form<NewProfile>,
) -> Response {
    let refuse = async |status: StatusCode, problems: Vec<String>| {
        let body = render(&viewer, &state.model, None, &form, &problems).await;
        (status, page(Page::Profiles, &state, &body)).into_response()
    };
    let options = match options(&form) {
        Ok(o) => o,
        Err(problems) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, problems).await,
    };
    let object: DynamicObject =
        serde_json::from_value(profile::body(&options)).expect("a Profile body");
    let name = &options.name;
    match profiles(&viewer)
        .create(&PostParams::default(), &object)
        .await
    {
        Ok(_) => Redirect::to(&format!("/profiles?created={name}")).into_response(),
        Err(e) if api_code(&e) == Some(409) => {
            let problem = format!("Name: profile {name} already exists; choose another name");
            refuse(StatusCode::CONFLICT, vec![problem]).await
        }
        Err(e) if api_code(&e) == Some(404) => {
            refuse(StatusCode::BAD_GATEWAY, vec![NOT_SERVED.to_owned()]).await
        }
        Err(e) => {
            let why =
                errors::describe(&e, &format!("create profile {name}"), &state.cluster.server);
            refuse(StatusCode::BAD_GATEWAY, vec![why]).await
        }
    }
}

/// What deleting profile `name` takes, read as the user: (lost, kept). `Err` (status, reason)
/// when the Profile cannot be read at all: then there is nothing to confirm.
async fn consequences(
    viewer: &Viewer,
    name: &str,
) -> Result<(Vec<String>, Vec<String>), (StatusCode, String)> {
    let server = &viewer.cluster.server;
    let profile = match profiles(viewer).get_opt(name).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return Err((
                StatusCode::NOT_FOUND,
                format!("There is no profile {name}: nothing to delete."),
            ));
        }
        Err(e) if api_code(&e) == Some(404) => {
            return Err((StatusCode::NOT_FOUND, NOT_SERVED.to_owned()));
        }
        Err(e) => {
            let why = errors::describe(&e, &format!("read profile {name}"), server);
            return Err((StatusCode::BAD_GATEWAY, why));
        }
    };
    let mut lost = vec![format!(
        "the profile {name} (owner {})",
        profile.data["spec"]["owner"]["name"]
            .as_str()
            .unwrap_or("unknown")
    )];
    let mut kept = Vec::new();
    let uid = profile.metadata.uid.clone().unwrap_or_default();
    let namespaces: Api<Namespace> = Api::all(viewer.cluster.client.clone());
    match namespaces.get_opt(name).await {
        Ok(None) => {
            kept.push(format!("no namespace {name} exists: the profile has none"));
            return Ok((lost, kept));
        }
        Ok(Some(ns))
            if !ns
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid) =>
        {
            kept.push(format!(
                "the namespace {name}: it is not the profile's, and stays with all in it"
            ));
            return Ok((lost, kept));
        }
        Ok(Some(_)) => lost.push(format!(
            "the namespace {name} and everything in it: notebooks, TrainJobs, \
             InferenceServices, pipeline runs, secrets"
        )),
        Err(e) => lost.push(format!(
            "the namespace {name} and everything in it, if it is the profile's (you may not read \
             it to say more: {})",
            errors::describe(&e, &format!("read namespace {name}"), server)
        )),
    }
    match viewer
        .list_in(&notebook::resource(), name, "Notebooks are not served")
        .await
    {
        Ok(items) if items.is_empty() => {}
        Ok(items) => {
            let names: Vec<&str> = items
                .iter()
                .filter_map(|n| n.metadata.name.as_deref())
                .collect();
            lost.push(format!("its notebooks: {}", names.join(", ")));
        }
        Err(why) => lost.push(format!("its notebooks, if any ({why})")),
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(viewer.cluster.client.clone(), name);
    match claims.list(&ListParams::default()).await {
        Ok(list) if list.items.is_empty() => {}
        Ok(list) => {
            let volumes: Vec<String> = list
                .items
                .iter()
                .map(|c| {
                    let size = c
                        .spec
                        .as_ref()
                        .and_then(|s| s.resources.as_ref())
                        .and_then(|r| r.requests.as_ref())
                        .and_then(|r| r.get("storage"))
                        .map(|q| format!(" ({})", q.0))
                        .unwrap_or_default();
                    format!("{}{size}", c.metadata.name.clone().unwrap_or_default())
                })
                .collect();
            lost.push(format!(
                "its volumes and the files on them (notebook workspaces: your files): {}",
                volumes.join(", ")
            ));
        }
        Err(e) => lost.push(format!(
            "its volumes and the files on them, if any ({})",
            errors::describe(&e, &format!("list volumes in namespace {name}"), server)
        )),
    }
    Ok((lost, kept))
}

/// The confirmation (again with `problem`, e.g. a wrong name typed), or why there is none.
async fn confirmation(
    state: &State,
    viewer: &Viewer,
    status: StatusCode,
    name: &str,
    problem: Option<&str>,
) -> Response {
    let body = match consequences(viewer, name).await {
        Ok((lost, kept)) => {
            let what = format!("profile {name}");
            let c = Confirm {
                what: &what,
                action: "/profiles/delete",
                fields: &[("name", name)],
                lost: &lost,
                kept: &kept,
                typed: Some(name),
                cancel: "/profiles",
            };
            (status, confirm_delete(&c, problem))
        }
        Err((status, why)) => (
            status,
            alert(&why) + "<p><a href=\"/profiles\">Back to the profiles</a></p>",
        ),
    };
    (body.0, page(Page::Profiles, state, &body.1)).into_response()
}

#[derive(Debug, Deserialize)]
struct Which {
    name: String,
}

/// A GET: shows what would go, changes nothing.
async fn confirm_page(
    Extract(state): Extract<State>,
    viewer: Viewer,
    Query(which): Query<Which>,
) -> Response {
    confirmation(&state, &viewer, StatusCode::OK, which.name.trim(), None).await
}

#[derive(Debug, Deserialize)]
struct Gone {
    name: String,
    /// The typed name; anything else deletes nothing.
    confirm: Option<String>,
}

/// Deletes the Profile (and so its namespace) with the user's rights, only when its name was
/// typed.
async fn delete(
    Extract(state): Extract<State>,
    viewer: Viewer,
    Form(gone): Form<Gone>,
) -> Response {
    let name = gone.name.trim();
    if !confirmed(Some(name), gone.confirm.as_deref()) {
        let problem = format!(
            "Not confirmed: type the profile's name, {name}, exactly. Nothing was deleted."
        );
        return confirmation(
            &state,
            &viewer,
            StatusCode::UNPROCESSABLE_ENTITY,
            name,
            Some(&problem),
        )
        .await;
    }
    match profiles(&viewer)
        .delete(name, &DeleteParams::background())
        .await
    {
        Ok(_) => Redirect::to(&format!("/profiles?deleted={name}")).into_response(),
        Err(e) => {
            let status = if api_code(&e) == Some(404) {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::BAD_GATEWAY
            };
            let why =
                errors::describe(&e, &format!("delete profile {name}"), &state.cluster.server);
            let body = alert(&why) + "<p><a href=\"/profiles\">Back to the profiles</a></p>";
            (status, page(Page::Profiles, &state, &body)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_profile_row_says_what_wharf_profile_list_says() {
        let p: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "kubeflow.org/v1", "kind": "Profile", "metadata": {"name": "alice"},
            "spec": {"owner": {"kind": "User", "name": "alice@example.com"}},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready"}]}
        }))
        .unwrap();
        let r = row(&p);
        assert_eq!(
            (r.owner.as_str(), r.ready.as_str(), r.reason.as_str()),
            ("alice@example.com", "True", "Ready")
        );
        let html = table(&[r]);
        assert!(
            html.contains("<a href=\"/notebooks?namespace=alice\""),
            "{html}"
        );
        assert!(html.contains("action=\"/profiles/delete\""), "{html}");
    }

    #[test]
    fn only_a_profiles_namespace_stands_for_it() {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "bob",
            "labels": {"wharf.dev/profile": "bob"}, "annotations": {"owner": "bob@example.com"}},
            "status": {"phase": "Active"}}))
        .unwrap();
        let r = row_from_namespace("bob", &ns).unwrap();
        assert_eq!(r.owner, "bob@example.com");
        assert!(!r.readable && r.reason.starts_with("namespace Active"));
        assert!(!table(&[r]).contains("/profiles/delete"));
        let plain: Namespace =
            serde_json::from_value(json!({"metadata": {"name": "bob"}})).unwrap();
        assert_eq!(row_from_namespace("bob", &plain), None);
    }

    #[test]
    fn each_bad_field_is_named_and_quotas_are_optional() {
        let bad = NewProfile {
            name: "Bad_Name".into(),
            owner: "two words".into(),
            cpu: "lots".into(),
            memory: "4 GB".into(),
        };
        let problems = options(&bad).unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(
            problems[0].starts_with("Name: profile name `Bad_Name`"),
            "{problems:?}"
        );
        assert!(problems[1].starts_with("Owner `two words`"), "{problems:?}");
        assert!(problems[2].starts_with("CPU quota `lots`"), "{problems:?}");
        assert!(
            problems[3].starts_with("Memory quota `4 GB`"),
            "{problems:?}"
        );
        let good = options(&NewProfile {
            name: "team".into(),
            owner: "ana@example.com".into(),
            ..NewProfile::default()
        })
        .unwrap();
        assert_eq!((good.cpu, good.memory), (None, None));
    }
}
