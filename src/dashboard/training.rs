//! The Training page: the model's TrainJobs (state, duration, accuracy), per job a live
//! loss/accuracy chart from `status.epochs` with its numbers as a table, and a form that creates
//! a TrainJob with the user's rights; per job the pod's log tail ([`super::logtail`]).
//!
//! wharf does not link the trainer crate (it brings candle), so the few TrainJob fields read here
//! are declared again below; their names are the CRD's (`charms/trainer/src/crd.rs`).

use std::fmt::Write;

use axum::extract::State as Extract;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use kube::api::{Api, DynamicObject, PostParams};
use serde::Deserialize;
use serde_json::{Value, json};

use super::chart::{Series, line_chart, short};
use super::html::{Page, esc, page};
use super::viewer::Viewer;
use super::{State, form, live};
use crate::kube::errors;

pub fn router() -> Router<State> {
    Router::new()
        .route("/training", get(training).post(create))
        .route("/training/events", get(events))
}

// --- what the page reads of a TrainJob ------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Spec {
    model: Option<String>,
    trainer: Option<Value>,
    epochs: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Status {
    state: Option<String>,
    start_time: Option<String>,
    completion_time: Option<String>,
    metrics: Option<Metrics>,
    epochs: Vec<Epoch>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Metrics {
    test_accuracy: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Epoch {
    epoch: u32,
    loss: Option<f64>,
    accuracy: Option<f64>,
    train_accuracy: Option<f64>,
}

/// One TrainJob as the page shows it.
struct Job {
    name: String,
    state: String,
    model: String,
    duration: String,
    accuracy: String,
    planned_epochs: Option<u32>,
    epochs: Vec<Epoch>,
}

fn job(obj: &DynamicObject, now: jiff::Timestamp) -> Job {
    let spec: Spec = serde_json::from_value(obj.data["spec"].clone()).unwrap_or_default();
    let status: Status = serde_json::from_value(obj.data["status"].clone()).unwrap_or_default();
    let model = match (&spec.model, &spec.trainer) {
        (Some(m), _) => m.clone(),
        (None, Some(t)) => t["image"].as_str().unwrap_or("container").to_owned(),
        (None, None) => String::new(),
    };
    // The final accuracy once known, else the latest epoch's.
    let accuracy = status
        .metrics
        .as_ref()
        .and_then(|m| m.test_accuracy)
        .or_else(|| status.epochs.iter().rev().find_map(|e| e.accuracy));
    Job {
        name: obj.metadata.name.clone().unwrap_or_default(),
        state: status.state.clone().unwrap_or_else(|| "Pending".into()),
        model,
        duration: duration(
            status.start_time.as_deref(),
            status.completion_time.as_deref(),
            now,
        ),
        accuracy: accuracy.map(short).unwrap_or_default(),
        planned_epochs: spec.epochs,
        epochs: status.epochs,
    }
}

/// From the start to the completion (or to now while it runs), in whole seconds.
fn duration(start: Option<&str>, end: Option<&str>, now: jiff::Timestamp) -> String {
    let parse = |t: Option<&str>| t.and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let Some(start) = parse(start) else {
        return String::new();
    };
    let end = parse(end).unwrap_or(now);
    let secs = end.as_second().saturating_sub(start.as_second()).max(0) as u64;
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

// --- rendering ------------------------------------------------------------------------------

/// The live part of the page: the jobs table and each job's charts (re-sent on every change).
fn jobs_fragment(kind: &live::Kind) -> String {
    let now = jiff::Timestamp::now();
    let jobs: Vec<Job> = kind.objects().iter().map(|o| job(o, now)).collect();
    let mut out = String::new();
    if let Some(problem) = kind.error() {
        let _ = write!(
            out,
            "<p role=\"alert\" class=\"error\">{}</p>",
            esc(&problem)
        );
    }
    if jobs.is_empty() {
        out.push_str("<p id=\"no-trainjobs\">No TrainJobs yet. Start one with the form below.</p>");
        return out;
    }
    out.push_str(
        "<table id=\"trainjobs\"><caption>TrainJobs</caption><thead><tr>\
         <th scope=\"col\">Name</th><th scope=\"col\">State</th><th scope=\"col\">Model</th>\
         <th scope=\"col\">Duration</th><th scope=\"col\">Accuracy</th><th scope=\"col\">Epochs</th>\
         </tr></thead><tbody>",
    );
    for j in &jobs {
        let planned = j
            .planned_epochs
            .map(|n| format!(" of {n}"))
            .unwrap_or_default();
        let _ = write!(
            out,
            "<tr data-job=\"{name}\"><th scope=\"row\"><a href=\"#job-{name}\">{name}</a></th>\
             <td class=\"state\">{}</td><td>{}</td><td>{}</td><td class=\"accuracy\">{}</td>\
             <td class=\"epochs\">{}{planned}</td></tr>",
            esc(&j.state),
            esc(&j.model),
            esc(&j.duration),
            esc(&j.accuracy),
            j.epochs.len(),
            name = esc(&j.name),
        );
    }
    out.push_str("</tbody></table>");
    for j in &jobs {
        out.push_str(&job_section(j));
    }
    out
}

/// A job's two charts (loss; held-out and training accuracy) and the numbers behind them.
fn job_section(j: &Job) -> String {
    let name = esc(&j.name);
    let loss = Series {
        class: "loss",
        title: "Loss",
        points: j
            .epochs
            .iter()
            .filter_map(|e| Some((e.epoch, e.loss?)))
            .collect(),
        y_max: None,
    };
    let accuracy = Series {
        class: "accuracy",
        title: "Accuracy",
        points: j
            .epochs
            .iter()
            .filter_map(|e| Some((e.epoch, e.accuracy?)))
            .collect(),
        y_max: Some(1.0),
    };
    let summary = match j.epochs.last() {
        Some(e) => format!(
            "{} epochs; last loss {}, accuracy {}",
            j.epochs.len(),
            e.loss.map(short).unwrap_or_else(|| "not reported".into()),
            e.accuracy
                .map(short)
                .unwrap_or_else(|| "not reported".into())
        ),
        None => "no epochs reported yet".into(),
    };
    let mut rows = String::new();
    for e in &j.epochs {
        let cell = |v: Option<f64>| v.map(short).unwrap_or_default();
        let _ = write!(
            rows,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.epoch,
            cell(e.loss),
            cell(e.accuracy),
            cell(e.train_accuracy)
        );
    }
    format!(
        "<section class=\"job\" id=\"job-{name}\" aria-labelledby=\"job-{name}-title\">\
         <h2 id=\"job-{name}-title\">{name}</h2><p class=\"summary\">{summary}</p>\
         <div class=\"charts\">{}{}</div>\
         <details><summary>Epochs of {name} as a table</summary>\
         <table class=\"epochs\"><caption>Per-epoch metrics of {name}</caption><thead><tr>\
         <th scope=\"col\">Epoch</th><th scope=\"col\">Loss</th><th scope=\"col\">Accuracy</th>\
         <th scope=\"col\">Training accuracy</th></tr></thead><tbody>{rows}</tbody></table>\
         </details>{log}</section>",
        line_chart(&loss, &format!("Loss per epoch of {}: {summary}", j.name)),
        line_chart(
            &accuracy,
            &format!("Accuracy per epoch of {}: {summary}", j.name)
        ),
        summary = esc(&summary),
        log = super::logtail::placeholder(&j.name),
    )
}

// --- the form -------------------------------------------------------------------------------

/// What the form posts; every field a string so a bad one gets a message naming it.
#[derive(Debug, Clone, Deserialize)]
pub struct NewJob {
    name: String,
    model: String,
    epochs: String,
    batch_size: String,
    learning_rate: String,
    dataset: String,
    output: String,
}

impl Default for NewJob {
    fn default() -> Self {
        NewJob {
            name: String::new(),
            model: "mlp".into(),
            epochs: "5".into(),
            batch_size: String::new(),
            learning_rate: String::new(),
            dataset: "file:///usr/share/datasets/fashion-mnist".into(),
            output: String::new(),
        }
    }
}

/// The TrainJob the form describes, or one message per bad field (naming the field and the fix).
fn trainjob(form: &NewJob) -> Result<Value, Vec<String>> {
    let mut problems = Vec::new();
    let name = form::name(&form.name, &mut problems);
    let model = form::model(&form.model, &mut problems);
    let epochs = form::whole("Epochs", &form.epochs, &mut problems).map(Value::from);
    let batch_size = form::whole("Batch size", &form.batch_size, &mut problems).map(Value::from);
    let learning_rate =
        form::positive("Learning rate", &form.learning_rate, &mut problems).map(Value::from);
    let dataset = form::location("Dataset", &form.dataset, &mut problems);
    let output = if form.output.trim().is_empty() {
        format!("pvc://models/{name}")
    } else {
        form::location("Output", &form.output, &mut problems)
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut spec = json!({
        "model": model,
        "dataset": {"uri": dataset},
        "output": {"uri": output},
    });
    for (key, value) in [
        ("epochs", epochs),
        ("batchSize", batch_size),
        ("learningRate", learning_rate),
    ] {
        if let Some(v) = value {
            spec[key] = v;
        }
    }
    Ok(json!({
        "apiVersion": "wharf.dev/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": name},
        "spec": spec,
    }))
}

fn form_html(values: &NewJob, problems: &[String]) -> String {
    let mut out = String::from(
        "<form id=\"new-trainjob\" method=\"post\" action=\"/training\" \
         aria-labelledby=\"new-trainjob-title\"><h2 id=\"new-trainjob-title\">Start a TrainJob</h2>",
    );
    out.push_str(&form::problems(problems));
    let field = form::field;
    out.push_str(&field(
        "name",
        "Name",
        &values.name,
        " required pattern=\"[a-z0-9]([-a-z0-9]*[a-z0-9])?\" maxlength=\"63\"",
        "lower-case letters, digits and '-'",
    ));
    let selected = |m: &str| if values.model == m { " selected" } else { "" };
    let _ = write!(
        out,
        "<p><label for=\"model\">Model</label> <select id=\"model\" name=\"model\">\
         <option value=\"mlp\"{}>mlp (fast)</option><option value=\"cnn\"{}>cnn (more accurate)</option>\
         </select></p>",
        selected("mlp"),
        selected("cnn")
    );
    out.push_str(&field(
        "epochs",
        "Epochs",
        &values.epochs,
        " type=\"number\" min=\"1\"",
        "",
    ));
    out.push_str(&field(
        "batch_size",
        "Batch size",
        &values.batch_size,
        " type=\"number\" min=\"1\"",
        "empty: the trainer's default (mlp 32, cnn 64)",
    ));
    out.push_str(&field(
        "learning_rate",
        "Learning rate",
        &values.learning_rate,
        " inputmode=\"decimal\"",
        "empty: the trainer's default (mlp 0.001, cnn 0.002)",
    ));
    out.push_str(&field(
        "dataset",
        "Dataset",
        &values.dataset,
        " required",
        "pvc://, s3:// or file:// location of the Fashion-MNIST files",
    ));
    out.push_str(&field(
        "output",
        "Output",
        &values.output,
        "",
        "empty: pvc://models/<name>",
    ));
    out.push_str("<p><button type=\"submit\">Start training</button></p></form>");
    out
}

/// The TrainJobs fragment as `viewer` may see it: the shared watch's, or why not.
async fn jobs_for(state: &State, viewer: &Viewer) -> String {
    match viewer.denied(&live::trainjobs(), &state.model).await {
        Some(reason) => live::denied_fragment(&reason),
        None => jobs_fragment(&state.live.trainjobs),
    }
}

fn render_page(jobs: &str, values: &NewJob, problems: &[String], created: Option<&str>) -> String {
    let mut body = String::new();
    if let Some(name) = created {
        let _ = write!(
            body,
            "<p role=\"status\" id=\"created\">TrainJob {} created.</p>",
            esc(name)
        );
    }
    let _ = write!(
        body,
        "<div id=\"live-training\" data-live=\"/training/events\" data-event=\"training\" \
         aria-live=\"polite\">{}</div>{}",
        jobs,
        form_html(values, problems)
    );
    body
}

#[derive(Deserialize)]
struct Created {
    created: Option<String>,
}

async fn training(
    Extract(state): Extract<State>,
    viewer: Viewer,
    axum::extract::Query(q): axum::extract::Query<Created>,
) -> Response {
    let jobs = jobs_for(&state, &viewer).await;
    let body = render_page(&jobs, &NewJob::default(), &[], q.created.as_deref());
    page(Page::Training, &state, &body).into_response()
}

/// Create the TrainJob (with the user's rights: a 403 is shown as such), then show the list
/// (POST-redirect-GET, so a reload does not post again).
async fn create(
    Extract(state): Extract<State>,
    viewer: Viewer,
    Form(form): Form<NewJob>,
) -> Response {
    let jobs = jobs_for(&state, &viewer).await;
    let refuse = |status: StatusCode, problems: Vec<String>| {
        let body = render_page(&jobs, &form, &problems, None);
        (status, page(Page::Training, &state, &body)).into_response()
    };
    let object = match trainjob(&form) {
        Ok(o) => o,
        Err(problems) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, problems),
    };
    let object: DynamicObject = match serde_json::from_value(object) {
        Ok(o) => o,
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, vec![e.to_string()]),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(
        viewer.cluster.client.clone(),
        &state.model,
        &live::trainjobs(),
    );
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Redirect::to(&format!(
            "/training?created={}#job-{}",
            form.name.trim(),
            form.name.trim()
        ))
        .into_response(),
        Err(e) => {
            let what = format!(
                "create TrainJob {} in namespace {}",
                form.name.trim(),
                state.model
            );
            refuse(
                StatusCode::BAD_GATEWAY,
                vec![errors::describe(&e, &what, &state.cluster.server)],
            )
        }
    }
}

/// The user's rights are checked when the stream opens (the browser reopens it after a drop).
async fn events(Extract(state): Extract<State>, viewer: Viewer) -> impl IntoResponse {
    let changes = state.live.trainjobs.changes.clone();
    let denied = viewer.denied(&live::trainjobs(), &state.model).await;
    live::events(changes, "training", move || match &denied {
        Some(reason) => live::denied_fragment(reason),
        None => jobs_fragment(&state.live.trainjobs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(name: &str) -> NewJob {
        NewJob {
            name: name.into(),
            ..NewJob::default()
        }
    }

    #[test]
    fn the_form_becomes_a_trainjob_with_only_the_fields_given() {
        let mut f = form("fashion");
        f.learning_rate = "0.002".into();
        let tj = trainjob(&f).unwrap();
        assert_eq!(tj["metadata"]["name"], "fashion");
        assert_eq!(tj["spec"]["model"], "mlp");
        assert_eq!(tj["spec"]["epochs"], 5);
        assert_eq!(tj["spec"]["learningRate"], 0.002);
        assert!(tj["spec"].get("batchSize").is_none(), "{tj}");
        assert_eq!(tj["spec"]["output"]["uri"], "pvc://models/fashion");
    }

    #[test]
    fn each_bad_field_is_named_with_its_fix() {
        let f = NewJob {
            name: "Bad_Name".into(),
            model: "gpt".into(),
            epochs: "0".into(),
            batch_size: "x".into(),
            learning_rate: "-1".into(),
            dataset: "/data".into(),
            output: "http://x".into(),
        };
        let problems = trainjob(&f).unwrap_err();
        let fields: Vec<&str> = problems
            .iter()
            .map(|p| p.split(':').next().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "Name",
                "Model",
                "Epochs",
                "Batch size",
                "Learning rate",
                "Dataset",
                "Output"
            ]
        );
        assert!(problems[5].contains("pvc://<claim>/<path>"), "{problems:?}");
    }

    #[test]
    fn a_job_shows_state_duration_and_the_latest_accuracy() {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "wharf.dev/v1alpha1", "kind": "TrainJob",
            "metadata": {"name": "j"},
            "spec": {"model": "cnn", "epochs": 3},
            "status": {"state": "Running", "startTime": "2026-01-01T10:00:00Z",
                "epochs": [{"epoch": 1, "loss": 0.9, "accuracy": 0.7},
                           {"epoch": 2, "loss": 0.5, "accuracy": 0.8}]}
        }))
        .unwrap();
        let now: jiff::Timestamp = "2026-01-01T10:01:30Z".parse().unwrap();
        let j = job(&obj, now);
        assert_eq!(
            (
                j.state.as_str(),
                j.model.as_str(),
                j.duration.as_str(),
                j.accuracy.as_str()
            ),
            ("Running", "cnn", "1m 30s", "0.8")
        );
        let section = job_section(&j);
        assert_eq!(
            section.matches("<circle").count(),
            4,
            "two charts of two points"
        );
        assert!(
            section.contains("<tr><th scope=\"row\">2</th><td>0.5</td><td>0.8</td><td></td></tr>")
        );
    }
}
