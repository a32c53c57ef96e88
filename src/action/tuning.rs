//! `wharf tuning list|show`: read-only views of hyperparameter tuning. An OptimizationJob
//! (`wharf.dev/v1alpha1`, served by the trainer charm) runs trials as TrainJobs and records each in
//! its status; `list` prints one line per OptimizationJob, `show` its trials table and the best
//! trial. Users create them with `kubectl apply` (see `examples/tuning/`); wharf only reads.

use std::process::ExitCode;

use anyhow::bail;
use kube::api::{Api, DynamicObject};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use serde::Serialize;
use serde_json::Value;

use super::{Global, Outcome, Session};

/// What the command line asked for.
#[derive(Debug, Clone)]
pub enum Options {
    /// All namespaces unless one is named.
    List {
        namespace: Option<String>,
    },
    Show {
        name: String,
        namespace: String,
    },
}

/// The OptimizationJob resource (the trainer charm's CRD; namespaced).
fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("wharf.dev", "v1alpha1", "OptimizationJob"),
        "optimizationjobs",
    )
}

pub fn run(global: &Global, options: &Options) -> Outcome {
    super::runtime()?.block_on(async {
        let session = Session::open(global).await?;
        let client = session.client().clone();
        match options {
            Options::List { namespace } => {
                let api = match namespace {
                    Some(ns) => Api::namespaced_with(client, ns, &resource()),
                    None => Api::all_with(client, &resource()),
                };
                list(&session, &api).await
            }
            Options::Show { name, namespace } => {
                let api = Api::namespaced_with(client, namespace, &resource());
                show(&session, &api, name, namespace).await
            }
        }
    })
}

fn not_served() -> anyhow::Error {
    anyhow::anyhow!(
        "this cluster does not serve OptimizationJobs (wharf.dev/v1alpha1): deploy the trainer \
         charm (`wharf deploy lite` or `full`)"
    )
}

/// One line of `wharf tuning list`.
#[derive(Debug, Serialize, PartialEq)]
pub struct JobRow {
    pub namespace: String,
    pub name: String,
    pub state: String,
    /// `finished/planned`.
    pub trials: String,
    pub algorithm: String,
    /// `accuracy (maximize)`.
    pub objective: String,
    pub best: Option<f64>,
    #[serde(rename = "bestTrial")]
    pub best_trial: Option<String>,
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The list line of one OptimizationJob, from its JSON.
pub fn job_row(namespace: &str, name: &str, data: &Value) -> JobRow {
    let objective = match (
        text(data, "/spec/objectives/0/metric"),
        text(data, "/spec/objectives/0/direction"),
    ) {
        ("", _) => String::new(),
        (metric, direction) => format!("{metric} ({direction})"),
    };
    JobRow {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        state: match text(data, "/status/state") {
            "" => "Pending".into(),
            s => s.into(),
        },
        trials: match text(data, "/status/progress") {
            "" => format!(
                "0/{}",
                data.pointer("/spec/numTrials")
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
            ),
            p => p.into(),
        },
        algorithm: text(data, "/spec/searchAlgorithm/name").into(),
        objective,
        best: data.pointer("/status/result/value").and_then(Value::as_f64),
        best_trial: data
            .pointer("/status/result/trialName")
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

/// A number as the tables print it: at most 4 significant digits after the point, no trailing
/// zeros, so 0.001 and 64 read as written.
fn number(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-3 {
        return format!("{v:.3e}");
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_owned()
}

async fn list(session: &Session, api: &Api<DynamicObject>) -> Outcome {
    let items = match api.list(&Default::default()).await {
        Ok(list) => list.items,
        Err(kube::Error::Api(e)) if e.code == 404 => return Err(not_served()),
        Err(e) => return Err(session.describe("listing OptimizationJobs")(e)),
    };
    let mut rows: Vec<JobRow> = items
        .iter()
        .map(|o| {
            job_row(
                o.metadata.namespace.as_deref().unwrap_or_default(),
                o.metadata.name.as_deref().unwrap_or_default(),
                &o.data,
            )
        })
        .collect();
    rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    if !session.output.is_text() {
        session.output.document(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        super::print_stdout(
            "no OptimizationJobs; start one with `kubectl apply -n NAMESPACE -f \
             examples/tuning/fashion-mnist-tuning.yaml`\n",
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let cells: Vec<Vec<String>> = rows.iter().map(JobRow::cells).collect();
    super::print_stdout(&super::status::table(&JOB_COLUMNS, &cells))?;
    Ok(ExitCode::SUCCESS)
}

/// The columns of `wharf tuning list` (and of the dashboard's Tuning page).
pub const JOB_COLUMNS: [&str; 8] = [
    "NAMESPACE",
    "NAME",
    "STATE",
    "TRIALS",
    "ALGORITHM",
    "OBJECTIVE",
    "BEST",
    "BEST TRIAL",
];

impl JobRow {
    /// The row's cells under [`JOB_COLUMNS`].
    pub fn cells(&self) -> Vec<String> {
        vec![
            self.namespace.clone(),
            self.name.clone(),
            self.state.clone(),
            self.trials.clone(),
            self.algorithm.clone(),
            self.objective.clone(),
            self.best.map(number).unwrap_or_else(|| "-".into()),
            self.best_trial.clone().unwrap_or_else(|| "-".into()),
        ]
    }
}

/// `wharf tuning show`'s table: one row per trial, one column per tuned parameter (in the spec's
/// order), then the objective's value, the epochs of its hyperband rungs and why it stopped.
pub fn trials_table(data: &Value) -> String {
    let (header, rows) = trials(data);
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    super::status::table(&header, &rows)
}

/// The header and rows of [`trials_table`] (the dashboard's Tuning page shows the same).
pub fn trials(data: &Value) -> (Vec<String>, Vec<Vec<String>>) {
    let parameters: Vec<&str> = data
        .pointer("/spec/parameters")
        .and_then(Value::as_array)
        .map(|ps| ps.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    let metric = match text(data, "/spec/objectives/0/metric") {
        "" => "VALUE".to_owned(),
        m => m.to_uppercase(),
    };
    let best = text(data, "/status/result/trialName");
    let mut header: Vec<String> = vec!["TRIAL".into(), "STATE".into()];
    header.extend(parameters.iter().map(|p| p.to_uppercase()));
    header.extend([metric, "BEST".into(), "MESSAGE".into()]);
    let rows: Vec<Vec<String>> = data
        .pointer("/status/trials")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|t| {
            let name = t["name"].as_str().unwrap_or_default();
            let mut row = vec![
                name.to_owned(),
                t["state"].as_str().unwrap_or_default().to_owned(),
            ];
            row.extend(parameters.iter().map(|p| {
                t["parameters"][*p]
                    .as_f64()
                    .map(number)
                    .unwrap_or_else(|| "-".into())
            }));
            row.push(
                t["value"]
                    .as_f64()
                    .map(number)
                    .unwrap_or_else(|| "-".into()),
            );
            row.push(if name == best {
                "*".into()
            } else {
                String::new()
            });
            row.push(t["message"].as_str().unwrap_or_default().to_owned());
            row
        })
        .collect();
    (header, rows)
}

async fn show(session: &Session, api: &Api<DynamicObject>, name: &str, ns: &str) -> Outcome {
    let job = match api.get_opt(name).await {
        Ok(Some(job)) => job,
        Ok(None) => bail!("no OptimizationJob {name} in {ns}; see `wharf tuning list -n {ns}`"),
        Err(kube::Error::Api(e)) if e.code == 404 => return Err(not_served()),
        Err(e) => {
            return Err(session
                .describe(&format!("reading OptimizationJob {ns}/{name}"))(
                e
            ));
        }
    };
    if !session.output.is_text() {
        // The record as the operator keeps it: the list line, the trials and the result.
        let row = job_row(ns, name, &job.data);
        let document = serde_json::json!({
            "namespace": row.namespace,
            "name": row.name,
            "state": row.state,
            "trials": row.trials,
            "algorithm": row.algorithm,
            "objective": job.data.pointer("/spec/objectives/0"),
            "result": job.data.pointer("/status/result"),
            "trialList": job.data.pointer("/status/trials").cloned().unwrap_or(Value::Array(vec![])),
        });
        session.output.document(&document)?;
        return Ok(ExitCode::SUCCESS);
    }
    let row = job_row(ns, name, &job.data);
    let mut out = format!(
        "OptimizationJob {ns}/{name}: {}, {} trials finished, {} by {}\n",
        row.state, row.trials, row.objective, row.algorithm
    );
    let condition = job
        .data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["status"] == "True"))
        .and_then(|c| c["message"].as_str())
        .filter(|m| !m.is_empty());
    if let Some(message) = condition {
        out.push_str(&format!("  {message}\n"));
    }
    out.push('\n');
    out.push_str(&trials_table(&job.data));
    if let Some(trial) = &row.best_trial {
        let uri = text(&job.data, "/status/result/modelUri");
        out.push_str(&format!(
            "\nbest: {trial} (TrainJob {trial} in {ns}){}\n",
            if uri.is_empty() {
                String::new()
            } else {
                format!(", model {uri}")
            }
        ));
    }
    super::print_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job() -> Value {
        json!({
            "spec": {"objectives": [{"metric": "accuracy", "direction": "maximize"}],
                "searchAlgorithm": {"name": "random", "seed": 1}, "numTrials": 3,
                "parameters": [{"name": "learningRate"}, {"name": "batchSize"}]},
            "status": {"state": "Running", "progress": "2/3",
                "result": {"trialName": "t-trial-1", "trainJob": "t-trial-1", "value": 0.87,
                    "parameters": {"learningRate": 0.003, "batchSize": 64.0}},
                "trials": [
                    {"name": "t-trial-0", "index": 0, "state": "Succeeded", "value": 0.81,
                        "parameters": {"learningRate": 0.0001, "batchSize": 32.0}},
                    {"name": "t-trial-1", "index": 1, "state": "Succeeded", "value": 0.87,
                        "parameters": {"learningRate": 0.003, "batchSize": 64.0}},
                    {"name": "t-trial-2", "index": 2, "state": "Running",
                        "parameters": {"learningRate": 0.02, "batchSize": 128.0}}
                ]}
        })
    }

    #[test]
    fn the_list_line_says_state_progress_objective_and_best() {
        let row = job_row("team-a", "t", &job());
        assert_eq!(
            row,
            JobRow {
                namespace: "team-a".into(),
                name: "t".into(),
                state: "Running".into(),
                trials: "2/3".into(),
                algorithm: "random".into(),
                objective: "accuracy (maximize)".into(),
                best: Some(0.87),
                best_trial: Some("t-trial-1".into()),
            }
        );
        let fresh = job_row("team-a", "t", &json!({"spec": {"numTrials": 5}}));
        assert_eq!(
            (fresh.state.as_str(), fresh.trials.as_str()),
            ("Pending", "0/5")
        );
    }

    #[test]
    fn the_trials_table_has_a_column_per_parameter_and_marks_the_best() {
        let table = trials_table(&job());
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            [
                "TRIAL",
                "STATE",
                "LEARNINGRATE",
                "BATCHSIZE",
                "ACCURACY",
                "BEST",
                "MESSAGE"
            ]
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["t-trial-0", "Succeeded", "1.000e-4", "32", "0.81"]
        );
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            ["t-trial-1", "Succeeded", "0.003", "64", "0.87", "*"]
        );
        assert_eq!(
            lines[3].split_whitespace().collect::<Vec<_>>(),
            ["t-trial-2", "Running", "0.02", "128", "-"]
        );
    }
}
