//! The Models page: the model's InferenceServices (URL, readiness, replicas, and request rate and
//! p99 latency from Prometheus when the monitoring charm runs) and a try-it panel
//! that sends a Fashion-MNIST test image to a model's V2 endpoint (`status.url`, which the server
//! operator publishes) and shows the ten class probabilities as bars.
//!
//! The request goes from the dashboard, not the browser: `status.url` may be an in-cluster
//! address, and the browser would need the model's origin to allow it (CORS).
//!
//! Request rates are `wharf status`'s ([`status::request_rates`]: the monitoring charm's two
//! recording rules, the same columns and words). They are asked with the dashboard's own rights,
//! not the user's, and shown only beside the InferenceServices the user was allowed to list (the
//! page's list is gated on that). Why not the user's: Prometheus answers any query about every
//! namespace to whoever may reach it, so letting users `get services/proxy` on it would give each
//! of them all the platform's metrics — more than the dashboard's two fixed queries, filtered to
//! what the user may list, reveal. The dashboard charm's Role therefore grants `list services`
//! (to find Prometheus by its label) and `get services/proxy` in the model namespace.
//!
//! wharf does not link the server crate, so the few InferenceService fields read here are
//! declared again below; their names are the CRD's (`charms/server/src/crd.rs`).

use std::fmt::Write;

use axum::extract::{Path, State as Extract};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::assets::{CLASSES, sample};
use super::html::{Page, esc, page};
use super::viewer::Viewer;
use super::{State, live};
use crate::action::status::{self, MODEL_COLUMNS, ModelRow};
use crate::kube::{errors, prometheus};

pub fn router() -> Router<State> {
    Router::new()
        .route("/models", get(models))
        .route("/models/events", get(events))
        .route("/models/{name}/try", post(try_it))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Spec {
    model: ModelRef,
    min_replicas: Option<i64>,
    max_replicas: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ModelRef {
    name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Status {
    url: Option<String>,
    conditions: Vec<Condition>,
    served_version: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Condition {
    #[serde(rename = "type")]
    type_: String,
    status: String,
    message: String,
}

/// One InferenceService as the page shows it.
struct Service {
    name: String,
    /// The model name in the V2 URLs (`spec.model.name`).
    model: String,
    url: Option<String>,
    ready: String,
    message: String,
    replicas: String,
    version: String,
}

fn service(obj: &DynamicObject) -> Service {
    let spec: Spec = serde_json::from_value(obj.data["spec"].clone()).unwrap_or_default();
    let status: Status = serde_json::from_value(obj.data["status"].clone()).unwrap_or_default();
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
    // The CRD's defaults: one replica at least and at most.
    let (min, max) = (
        spec.min_replicas.unwrap_or(1),
        spec.max_replicas.unwrap_or(1),
    );
    Service {
        name: obj.metadata.name.clone().unwrap_or_default(),
        model: spec.model.name,
        url: status.url.filter(|u| !u.is_empty()),
        ready: match ready.map(|c| c.status.as_str()) {
            Some("True") => "ready",
            Some("False") => "not ready",
            _ => "unknown",
        }
        .to_owned(),
        message: ready.map(|c| c.message.clone()).unwrap_or_default(),
        replicas: if min == max {
            min.to_string()
        } else {
            format!("{min} to {max}")
        },
        version: status
            .served_version
            .map(|v| v.to_string())
            .unwrap_or_default(),
    }
}

/// The live part: the services table. The try-it panel is outside it, so an update does not
/// reset the user's choice or move their focus.
fn services_fragment(kind: &live::Kind, model: &str, rates: &Rates) -> String {
    let services: Vec<Service> = kind.objects().iter().map(|o| service(o)).collect();
    let mut out = String::new();
    if let Some(problem) = kind.error() {
        let _ = write!(
            out,
            "<p role=\"alert\" class=\"error\">{}</p>",
            esc(&problem)
        );
    }
    if services.is_empty() {
        out.push_str("<p id=\"no-models\">No InferenceServices in this model.</p>");
        return out;
    }
    out.push_str(
        "<table id=\"inferenceservices\"><caption>InferenceServices</caption><thead><tr>\
         <th scope=\"col\">Name</th><th scope=\"col\">Model</th><th scope=\"col\">URL</th>\
         <th scope=\"col\">Ready</th><th scope=\"col\">Replicas</th><th scope=\"col\">Version</th>\
         <th scope=\"col\">Message</th>",
    );
    let _ = write!(
        out,
        "<th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
        MODEL_COLUMNS[2], MODEL_COLUMNS[3]
    );
    for s in &services {
        let (rate, p99) = rates.cells(model, &s.name);
        let _ = write!(
            out,
            "<tr data-service=\"{}\"><th scope=\"row\">{}</th><td>{}</td><td>{}</td>\
             <td class=\"ready\">{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"rate\">{}</td><td class=\"p99\">{}</td></tr>",
            esc(&s.name),
            esc(&s.name),
            esc(&s.model),
            esc(s.url.as_deref().unwrap_or("")),
            esc(&s.ready),
            esc(&s.replicas),
            esc(&s.version),
            esc(&s.message),
            esc(&rate),
            esc(&p99),
        );
    }
    out.push_str("</tbody></table>");
    match rates {
        Rates::NoPrometheus => out.push_str(
            "<p class=\"note\" id=\"rates-note\">No request rates: this model runs no \
             Prometheus (the monitoring charm, part of the full bundle).</p>",
        ),
        Rates::Failed(note) => {
            let _ = write!(out, "<p class=\"note\" id=\"rates-note\">{}</p>", esc(note));
        }
        Rates::Rows(_) => out.push_str(
            "<p class=\"note\" id=\"rates-note\">Req/s and p99 over the last 5 minutes, from \
             Prometheus (as `wharf status` shows them); - where it has no value.</p>",
        ),
    }
    out
}

/// The model's request rates, as far as there are any.
enum Rates {
    /// The model runs no Prometheus.
    NoPrometheus,
    /// It does, but the rates could not be read: `wharf status`'s note saying why.
    Failed(String),
    Rows(Vec<ModelRow>),
}

impl Rates {
    /// The Req/s and p99 cells of InferenceService `name` in namespace `model`: `wharf status`'s
    /// cells, `-` where Prometheus has no value.
    fn cells(&self, model: &str, name: &str) -> (String, String) {
        let say = |s: &str| (s.to_owned(), s.to_owned());
        match self {
            Rates::NoPrometheus => say("no Prometheus"),
            Rates::Failed(_) => say("unavailable"),
            Rates::Rows(rows) => rows
                .iter()
                .find(|r| r.namespace == model && r.inferenceservice == name)
                .map(|r| {
                    let mut cells = r.cells();
                    (cells.remove(2), cells.remove(2))
                })
                .unwrap_or_else(|| say("-")),
        }
    }
}

/// Ask the model's Prometheus (found by the label `wharf status` finds it by), with the
/// dashboard's rights (see the module's comment).
async fn rates(state: &State) -> Rates {
    let services: Api<DynamicObject> = Api::namespaced_with(
        state.cluster.client.clone(),
        &state.model,
        &ApiResource::erase::<k8s_openapi::api::core::v1::Service>(&()),
    );
    let selector = format!(
        "{}={}",
        prometheus::SERVES_LABEL,
        prometheus::SERVES_PROMETHEUS
    );
    let listed = match services
        .list(&ListParams::default().labels(&selector))
        .await
    {
        Ok(list) => list.items,
        Err(e) => {
            let what = format!("find Prometheus in namespace {}", state.model);
            return Rates::Failed(format!(
                "no request rates: {}",
                errors::describe(&e, &what, &state.cluster.server)
            ));
        }
    };
    let values: Vec<Value> = listed
        .iter()
        .filter_map(|o| serde_json::to_value(o).ok())
        .collect();
    let Some(svc) = prometheus::find(&values) else {
        return Rates::NoPrometheus;
    };
    match status::request_rates(&state.cluster.client, &svc).await {
        Ok(rows) => Rates::Rows(rows),
        Err(note) => Rates::Failed(note),
    }
}

/// The try-it panel: which service, which test image, a button; the answer as labelled bars.
fn try_it_panel(kind: &live::Kind) -> String {
    let mut services = String::new();
    for s in kind.objects().iter().map(|o| service(o)) {
        let _ = write!(services, "<option value=\"{0}\">{0}</option>", esc(&s.name));
    }
    let mut images = String::new();
    for (i, class) in CLASSES.iter().enumerate() {
        let _ = write!(
            images,
            "<option value=\"{i}\">test image of a {}</option>",
            esc(class)
        );
    }
    format!(
        "<form id=\"try-it\" aria-labelledby=\"try-it-title\"><h2 id=\"try-it-title\">Try a model</h2>\
         <p><label for=\"try-service\">InferenceService</label> <select id=\"try-service\" name=\"service\" required>{services}</select></p>\
         <p><label for=\"try-image\">Fashion-MNIST test image</label> <select id=\"try-image\" name=\"image\">{images}</select></p>\
         <canvas id=\"try-preview\" width=\"112\" height=\"112\" role=\"img\" aria-label=\"the chosen test image\"></canvas>\
         <p><button type=\"submit\">Send to the model</button></p>\
         <div id=\"try-result\" aria-live=\"polite\"></div></form>"
    )
}

async fn models(Extract(state): Extract<State>, viewer: Viewer) -> Response {
    let kind = &state.live.inferenceservices;
    let (list, panel) = match viewer
        .denied(&live::inferenceservices(), &state.model)
        .await
    {
        Some(reason) => (live::denied_fragment(&reason), String::new()),
        None => (
            services_fragment(kind, &state.model, &rates(&state).await),
            try_it_panel(kind),
        ),
    };
    let body = format!(
        "<div id=\"live-models\" data-live=\"/models/events\" data-event=\"models\" \
         aria-live=\"polite\">{list}</div>{panel}"
    );
    page(Page::Models, &state, &body).into_response()
}

/// The user's rights are checked when the stream opens (the browser reopens it after a drop).
async fn events(Extract(state): Extract<State>, viewer: Viewer) -> impl IntoResponse {
    let changes = state.live.inferenceservices.changes.clone();
    let denied = viewer
        .denied(&live::inferenceservices(), &state.model)
        .await;
    // The rates as the stream opens (5-minute averages): a change of the services re-renders
    // with them rather than asking Prometheus once per browser per change.
    let rates = match denied {
        Some(_) => Rates::NoPrometheus,
        None => rates(&state).await,
    };
    live::events(changes, "models", move || match &denied {
        Some(reason) => live::denied_fragment(reason),
        None => services_fragment(&state.live.inferenceservices, &state.model, &rates),
    })
}

#[derive(Deserialize)]
struct TryRequest {
    image: usize,
}

/// What the panel shows: the model's answer for the image, and the image's true class.
#[derive(Serialize)]
struct TryAnswer {
    classes: Vec<&'static str>,
    probabilities: Vec<f64>,
    label: &'static str,
    url: String,
}

/// Send test image `image` to the service's V2 endpoint as raw UINT8 pixels (the server scales
/// them as the model was trained).
async fn try_it(
    Extract(state): Extract<State>,
    viewer: Viewer,
    Path(name): Path<String>,
    Json(req): Json<TryRequest>,
) -> Response {
    let fail = |status: StatusCode, message: String| {
        (status, Json(json!({ "error": message }))).into_response()
    };
    if let Some(reason) = viewer
        .denied(&live::inferenceservices(), &state.model)
        .await
    {
        return fail(StatusCode::FORBIDDEN, reason);
    }
    let Some(pixels) = sample(req.image) else {
        return fail(
            StatusCode::BAD_REQUEST,
            format!("no test image {} (there are {})", req.image, CLASSES.len()),
        );
    };
    let found = state
        .live
        .inferenceservices
        .objects()
        .into_iter()
        .find(|o| o.metadata.name.as_deref() == Some(name.as_str()));
    let Some(obj) = found else {
        return fail(
            StatusCode::NOT_FOUND,
            format!("no InferenceService {name} in namespace {}", state.model),
        );
    };
    let svc = service(&obj);
    let Some(base) = svc.url else {
        return fail(
            StatusCode::CONFLICT,
            format!(
                "InferenceService {name} has no URL yet (is it ready? {})",
                svc.message
            ),
        );
    };
    let url = format!(
        "{}/v2/models/{}/infer",
        base.trim_end_matches('/'),
        svc.model
    );
    let body = json!({
        "inputs": [{"name": "input", "datatype": "UINT8", "shape": [1, 784], "data": pixels}]
    });
    let answer = async {
        let resp = state.http.post(&url).json(&body).send().await?;
        let status = resp.status();
        let value: Value = resp.json().await?;
        anyhow::Ok((status, value))
    }
    .await;
    match answer {
        Ok((status, value)) if status.is_success() => match probabilities(&value) {
            Some(probabilities) => Json(TryAnswer {
                classes: CLASSES.to_vec(),
                probabilities,
                label: CLASSES[req.image],
                url,
            })
            .into_response(),
            None => fail(
                StatusCode::BAD_GATEWAY,
                format!("{url} answered without a `probabilities` output: {value}"),
            ),
        },
        Ok((status, value)) => fail(
            StatusCode::BAD_GATEWAY,
            format!(
                "{url} answered {status}: {}",
                value["error"].as_str().unwrap_or(&value.to_string())
            ),
        ),
        Err(e) => fail(StatusCode::BAD_GATEWAY, format!("POST {url}: {e:#}")),
    }
}

/// The `probabilities` output of a V2 response, one row.
fn probabilities(v2: &Value) -> Option<Vec<f64>> {
    v2["outputs"]
        .as_array()?
        .iter()
        .find(|o| o["name"] == "probabilities")?["data"]
        .as_array()?
        .iter()
        .map(Value::as_f64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_shows_url_readiness_and_replicas() {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "wharf.dev/v1alpha1", "kind": "InferenceService",
            "metadata": {"name": "fashion"},
            "spec": {"model": {"name": "fm", "storageUri": "pvc://m/x"}, "minReplicas": 1, "maxReplicas": 3},
            "status": {"url": "http://fashion.kubeflow.svc.cluster.local:8080/", "servedVersion": 2,
                "conditions": [{"type": "Ready", "status": "True", "message": "serving"}]}
        }))
        .unwrap();
        let s = service(&obj);
        assert_eq!(
            (
                s.model.as_str(),
                s.ready.as_str(),
                s.replicas.as_str(),
                s.version.as_str()
            ),
            ("fm", "ready", "1 to 3", "2")
        );
    }

    #[test]
    fn rates_use_wharf_status_cells_and_say_when_there_are_none() {
        let rows = Rates::Rows(vec![ModelRow {
            inferenceservice: "fashion".into(),
            namespace: "ml".into(),
            requests_per_second: Some(12.5),
            p99_seconds: None,
        }]);
        assert_eq!(rows.cells("ml", "fashion"), ("12.50".into(), "-".into()));
        assert_eq!(rows.cells("other", "fashion"), ("-".into(), "-".into()));
        assert_eq!(rows.cells("ml", "quiet"), ("-".into(), "-".into()));
        assert_eq!(
            Rates::NoPrometheus.cells("ml", "fashion").0,
            "no Prometheus"
        );
        assert_eq!(
            Rates::Failed("x".into()).cells("ml", "fashion").1,
            "unavailable"
        );
    }

    #[test]
    fn the_probabilities_output_is_found_by_name() {
        let v2 = json!({"outputs": [
            {"name": "classes", "data": [3]},
            {"name": "probabilities", "data": [0.25, 0.75]}
        ]});
        assert_eq!(probabilities(&v2), Some(vec![0.25, 0.75]));
        assert_eq!(probabilities(&json!({"outputs": []})), None);
    }
}
