//! The Tuning page: a profile namespace's OptimizationJobs (the trainer charm's) — the same row
//! `wharf tuning list` prints, and per job the trials table of `wharf tuning show` with the best
//! trial marked — a form that starts one (the learning rate and batch size of a Fashion-MNIST
//! model, searched by TPE, random, grid or Hyperband), and a Delete that asks first. Every read
//! and write acts with the signed-in user's rights.

use std::fmt::Write;

use axum::extract::{Query, State as Extract};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use serde::Deserialize;
use serde_json::{Value, json};

use super::deletion::Deletion;
use super::html::{Page, alert, esc, namespace_form, page, table};
use super::viewer::Viewer;
use super::{State, Where, form, live};
use crate::action::tuning::{JOB_COLUMNS, job_row, trials};
use crate::kube::errors;

pub fn router() -> Router<State> {
    Router::new()
        .route("/tuning", get(tuning).post(create))
        .route("/tuning/delete", DELETION.routes())
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
    let body = render_page(&viewer, ns.as_deref(), &NewTuning::default(), &[]).await;
    page(Page::Tuning, &state, &body).into_response()
}

/// The page: a namespace chooser, the jobs there (or why not), the form with `problems` above it.
async fn render_page(
    viewer: &Viewer,
    ns: Option<&str>,
    values: &NewTuning,
    problems: &[String],
) -> String {
    let mut body = namespace_form("/tuning", ns);
    let Some(ns) = ns else {
        return body;
    };
    let not_served = "This cluster does not serve OptimizationJobs: they come with the \
                      trainer charm (`wharf deploy lite` or `full`).";
    match viewer.list_in(&resource(), ns, not_served).await {
        Ok(items) => body.push_str(&LIVE.region(ns, &items)),
        Err(why) => body.push_str(&alert(&why)),
    }
    body.push_str(&form_html(ns, values, problems));
    body
}

// --- the form -------------------------------------------------------------------------------

/// What the form posts; every field a string so a bad one gets a message naming it.
#[derive(Debug, Clone, Deserialize)]
struct NewTuning {
    namespace: String,
    name: String,
    model: String,
    algorithm: String,
    trials: String,
    parallel: String,
    lr_min: String,
    lr_max: String,
    batch_sizes: String,
    epochs: String,
    dataset: String,
    output: String,
}

impl Default for NewTuning {
    /// examples/tuning/fashion-mnist-tuning.yaml's search.
    fn default() -> Self {
        NewTuning {
            namespace: String::new(),
            name: String::new(),
            model: "mlp".into(),
            algorithm: "tpe".into(),
            trials: "12".into(),
            parallel: "2".into(),
            lr_min: "0.0001".into(),
            lr_max: "0.01".into(),
            batch_sizes: "32, 64, 128".into(),
            epochs: "5".into(),
            dataset: "file:///usr/share/datasets/fashion-mnist".into(),
            output: String::new(),
        }
    }
}

const ALGORITHMS: [(&str, &str); 4] = [
    ("tpe", "TPE (learns from the finished trials)"),
    ("random", "random"),
    ("grid", "grid"),
    ("hyperband", "Hyperband (stops lagging trials early)"),
];

/// The OptimizationJob the form describes: maximize held-out accuracy over a log-uniform
/// learning rate and a categorical batch size; or one message per bad field.
fn optimization_job(f: &NewTuning) -> Result<Value, Vec<String>> {
    let mut problems = Vec::new();
    let name = form::name(&f.name, &mut problems);
    let model = form::model(&f.model, &mut problems);
    let algorithm = f.algorithm.trim();
    if !ALGORITHMS.iter().any(|(a, _)| *a == algorithm) {
        problems.push(format!(
            "Algorithm: `{algorithm}` is not one of tpe, random, grid and hyperband"
        ));
    }
    let required = |n: Option<u32>, field: &str, problems: &mut Vec<String>| {
        if n.is_none() && !problems.iter().any(|p| p.starts_with(field)) {
            problems.push(format!("{field}: required, a whole number of at least 1"));
        }
        n
    };
    let trials = form::whole("Trials", &f.trials, &mut problems);
    let trials = required(trials, "Trials", &mut problems);
    let parallel = form::whole("At a time", &f.parallel, &mut problems);
    let parallel = required(parallel, "At a time", &mut problems);
    let epochs = form::whole("Epochs", &f.epochs, &mut problems);
    let epochs = required(epochs, "Epochs", &mut problems);
    let lr_min = form::positive("Learning rate from", &f.lr_min, &mut problems);
    let lr_max = form::positive("Learning rate to", &f.lr_max, &mut problems);
    match (lr_min, lr_max) {
        (Some(min), Some(max)) if min >= max => problems.push(format!(
            "Learning rate to: {max} is not above the lower end {min}; the search needs a range"
        )),
        (None, _) | (_, None) if !problems.iter().any(|p| p.starts_with("Learning rate")) => {
            problems.push("Learning rate from/to: both ends are required".into())
        }
        _ => {}
    }
    let mut batch_sizes = Vec::new();
    for part in f
        .batch_sizes
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        match part.parse::<u32>() {
            Ok(n) if n >= 1 => batch_sizes.push(n),
            _ => problems.push(format!(
                "Batch sizes: `{part}` is not a whole number of at least 1; write e.g. 32, 64, 128"
            )),
        }
    }
    if batch_sizes.is_empty() && !problems.iter().any(|p| p.starts_with("Batch sizes")) {
        problems.push("Batch sizes: write at least one, e.g. 32, 64, 128".into());
    }
    let dataset = form::location("Dataset", &f.dataset, &mut problems);
    let output = if f.output.trim().is_empty() {
        format!("pvc://models/{name}")
    } else {
        form::location("Output", &f.output, &mut problems)
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(json!({
        "apiVersion": "wharf.dev/v1alpha1",
        "kind": "OptimizationJob",
        "metadata": {"name": name},
        "spec": {
            "objectives": [{"metric": "accuracy", "direction": "maximize"}],
            "searchAlgorithm": {"name": algorithm},
            "parameters": [
                {"name": "learningRate", "distribution": "logUniform",
                 "min": lr_min, "max": lr_max},
                {"name": "batchSize", "distribution": "categorical", "values": batch_sizes},
            ],
            "numTrials": trials,
            "parallelTrials": parallel,
            "maxFailedTrials": 3,
            "trainJobTemplate": {
                "model": model,
                "epochs": epochs,
                "dataset": {"uri": dataset},
                "output": {"uri": output},
            },
        },
    }))
}

fn form_html(ns: &str, values: &NewTuning, problems: &[String]) -> String {
    let mut out = format!(
        "<form id=\"new-tuning\" method=\"post\" action=\"/tuning\" \
         aria-labelledby=\"new-tuning-title\"><h2 id=\"new-tuning-title\">Tune a model in {ns}</h2>\
         <p>Trains the model several times, searching the learning rate (log-uniform between the \
         two ends) and the batch size (one of the list), and keeps the trial with the best \
         held-out accuracy. Each trial is a TrainJob writing under the output location.</p>{}\
         <input type=\"hidden\" name=\"namespace\" value=\"{ns}\">",
        form::problems(problems),
        ns = esc(ns),
    );
    out.push_str(&form::field(
        "name",
        "Name",
        &values.name,
        " required pattern=\"[a-z0-9]([-a-z0-9]*[a-z0-9])?\" maxlength=\"63\"",
        "lower-case letters, digits and '-'",
    ));
    let selected = |is: bool| if is { " selected" } else { "" };
    let _ = write!(
        out,
        "<p><label for=\"model\">Model</label> <select id=\"model\" name=\"model\">\
         <option value=\"mlp\"{}>mlp (fast)</option><option value=\"cnn\"{}>cnn (more accurate)</option>\
         </select></p><p><label for=\"algorithm\">Algorithm</label> \
         <select id=\"algorithm\" name=\"algorithm\">",
        selected(values.model == "mlp"),
        selected(values.model == "cnn"),
    );
    for (value, label) in ALGORITHMS {
        let _ = write!(
            out,
            "<option value=\"{value}\"{}>{label}</option>",
            selected(values.algorithm == value)
        );
    }
    out.push_str("</select></p>");
    let number = " type=\"number\" min=\"1\" required";
    out.push_str(&form::field("trials", "Trials", &values.trials, number, ""));
    out.push_str(&form::field(
        "parallel",
        "At a time",
        &values.parallel,
        number,
        "trials running together",
    ));
    let decimal = " inputmode=\"decimal\" required";
    out.push_str(&form::field(
        "lr_min",
        "Learning rate from",
        &values.lr_min,
        decimal,
        "",
    ));
    out.push_str(&form::field(
        "lr_max",
        "Learning rate to",
        &values.lr_max,
        decimal,
        "",
    ));
    out.push_str(&form::field(
        "batch_sizes",
        "Batch sizes",
        &values.batch_sizes,
        " required",
        "comma-separated, e.g. 32, 64, 128",
    ));
    out.push_str(&form::field(
        "epochs",
        "Epochs",
        &values.epochs,
        number,
        "per trial",
    ));
    out.push_str(&form::field(
        "dataset",
        "Dataset",
        &values.dataset,
        " required",
        "pvc://, s3:// or file:// location of the Fashion-MNIST files",
    ));
    out.push_str(&form::field(
        "output",
        "Output",
        &values.output,
        "",
        "empty: pvc://models/<name>; each trial writes under it",
    ));
    out.push_str("<p><button type=\"submit\">Start tuning</button></p></form>");
    out
}

fn api(viewer: &Viewer, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(viewer.cluster.client.clone(), ns, &resource())
}

/// Creates the OptimizationJob with the user's rights (a 403 is shown as such), then shows the
/// list (POST-redirect-GET, so a reload does not post again).
async fn create(
    Extract(state): Extract<State>,
    viewer: Viewer,
    Form(f): Form<NewTuning>,
) -> Response {
    let ns = f.namespace.trim().to_owned();
    let refuse = async |status: StatusCode, problems: Vec<String>| {
        let body = render_page(&viewer, Some(&ns), &f, &problems).await;
        (status, page(Page::Tuning, &state, &body)).into_response()
    };
    let object = match optimization_job(&f) {
        Ok(o) => o,
        Err(problems) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, problems).await,
    };
    let object: DynamicObject = serde_json::from_value(object).expect("an OptimizationJob body");
    match api(&viewer, &ns)
        .create(&PostParams::default(), &object)
        .await
    {
        Ok(_) => {
            Redirect::to(&format!("/tuning?namespace={ns}#job-{}", f.name.trim())).into_response()
        }
        Err(e) => {
            let what = format!("create OptimizationJob {} in namespace {ns}", f.name.trim());
            let problem = errors::describe(&e, &what, &state.cluster.server);
            refuse(StatusCode::BAD_GATEWAY, vec![problem]).await
        }
    }
}

// --- delete ---------------------------------------------------------------------------------

/// Delete… asks first, saying what goes and what stays.
static DELETION: Deletion = Deletion {
    page: Page::Tuning,
    path: "/tuning",
    what: "OptimizationJob",
    resource,
    lost: |ns, name| {
        vec![
            format!("the OptimizationJob {name} in namespace {ns} and its record of the trials"),
            format!(
                "its trial TrainJobs ({name}-trial-…): the ones still running stop, and their \
                 per-epoch metrics go with them"
            ),
        ]
    },
    kept: |_, _| vec!["the models the trials wrote under the job's output location".to_owned()],
};

/// The jobs' table, then each job's trials.
fn render(ns: &str, items: &[DynamicObject]) -> String {
    if items.is_empty() {
        return format!(
            "<p id=\"no-optimizationjobs\">No OptimizationJobs in {} yet. Start one with the \
             form below, or <code>kubectl apply -n {0} -f \
             examples/tuning/fashion-mnist-tuning.yaml</code>.</p>",
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
            "<section id=\"job-{id}\"><h2>{id}</h2>{}\
             <form method=\"get\" action=\"/tuning/delete\">\
             <input type=\"hidden\" name=\"namespace\" value=\"{ns}\">\
             <input type=\"hidden\" name=\"name\" value=\"{id}\">\
             <button type=\"submit\" aria-label=\"Delete OptimizationJob {id} and its trials \
             (asks first)\">Delete…</button></form></section>",
            table(
                &format!("trials-{}", name(o)),
                &format!("Trials of {} (the best marked *)", name(o)),
                &header,
                &rows
            ),
            id = esc(&name(o)),
            ns = esc(ns),
        ));
    }
    out
}
