//! `wharf history [APP]`: each application's revisions — REVISION, UPDATED, STATUS, CHARM VERSION,
//! DESCRIPTION — like `helm history`; `--output json|yaml` adds the images each revision ran, by
//! digest. A record that cannot be read is listed as `unreadable` with the reason, never an
//! error: one damaged Secret must not hide the rest.

use std::process::ExitCode;

use anyhow::bail;
use serde::Serialize;

use super::{Global, Outcome, OutputFormat, Session};
use crate::store::record::RunningImage;

#[derive(Debug, Clone)]
pub struct Options {
    pub app: Option<String>,
    pub max: Option<usize>,
}

#[derive(Debug, Serialize)]
struct Row {
    app: String,
    revision: u32,
    updated: String,
    status: String,
    charm: String,
    charm_version: String,
    description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// The backup made before this revision (`wharf upgrade`).
    #[serde(skip_serializing_if = "Option::is_none")]
    backup: Option<String>,
    /// What the workloads ran, by digest (`--output json|yaml` only: too wide for the table).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    images: Vec<RunningImage>,
}

pub fn run(global: &Global, options: &Options) -> Outcome {
    super::runtime()?.block_on(history(global, options))
}

async fn history(global: &Global, options: &Options) -> Outcome {
    let session = Session::open(global).await?;
    let history = session.releases.list().await?;
    let mut rows: Vec<Row> = Vec::new();
    for (app, records) in &history.apps {
        for r in records {
            rows.push(Row {
                app: app.clone(),
                revision: r.revision,
                updated: r.finished.clone().unwrap_or_else(|| r.started.clone()),
                status: r.status.as_str().into(),
                charm: r.charm.clone(),
                charm_version: r.charm_version.clone(),
                description: r.description.clone(),
                reason: r.reason.clone(),
                backup: r.backup.clone(),
                images: r.images.clone(),
            });
        }
    }
    for u in &history.unreadable {
        rows.push(Row {
            app: u.app.clone(),
            revision: u.revision,
            updated: String::new(),
            status: "unreadable".into(),
            charm: String::new(),
            charm_version: String::new(),
            description: format!("Secret {} cannot be read", u.name),
            reason: Some(u.why.clone()),
            backup: None,
            images: Vec::new(),
        });
    }
    if let Some(app) = &options.app {
        rows.retain(|r| &r.app == app);
        if rows.is_empty() {
            let known: Vec<&String> = history.apps.keys().collect();
            bail!(
                "model `{}` has no revisions of `{app}`{}; it has: {}",
                session.model,
                crate::bundle::did_you_mean(app, history.apps.keys()),
                if known.is_empty() {
                    "none (nothing deployed yet)".to_string()
                } else {
                    known
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            );
        }
    }
    rows.sort_by(|a, b| (&a.app, a.revision).cmp(&(&b.app, b.revision)));
    if let Some(max) = options.max {
        let mut kept = Vec::new();
        let mut by_app: std::collections::BTreeMap<String, Vec<Row>> = Default::default();
        for row in rows {
            by_app.entry(row.app.clone()).or_default().push(row);
        }
        for (_, mut app_rows) in by_app {
            let skip = app_rows.len().saturating_sub(max);
            kept.extend(app_rows.drain(skip..));
        }
        rows = kept;
    }
    match global.output {
        OutputFormat::Text => super::print_stdout(&table(&rows, options.app.is_none()))?,
        format => format.document(&rows)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn table(rows: &[Row], with_app: bool) -> String {
    let mut lines: Vec<Vec<String>> = vec![];
    let mut header = vec![];
    if with_app {
        header.push("APP".to_string());
    }
    header.extend(
        [
            "REVISION",
            "UPDATED",
            "STATUS",
            "CHARM VERSION",
            "DESCRIPTION",
        ]
        .map(String::from),
    );
    lines.push(header);
    for r in rows {
        let mut line = vec![];
        if with_app {
            line.push(r.app.clone());
        }
        let mut description = r.description.clone();
        if let Some(reason) = &r.reason {
            description = format!("{description} — {reason}");
        }
        line.extend([
            r.revision.to_string(),
            r.updated.split('.').next().unwrap_or_default().to_string(),
            r.status.clone(),
            if r.charm.is_empty() {
                String::new()
            } else {
                format!("{} {}", r.charm, r.charm_version)
            },
            description,
        ]);
        lines.push(line);
    }
    let columns = lines[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in lines {
        let cells: Vec<String> = line
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                if c + 1 == columns {
                    cell.clone()
                } else {
                    format!("{cell:<w$}", w = widths[c])
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
