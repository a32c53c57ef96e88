//! `wharf config APP` shows each option of an application (value, where it comes from,
//! description); `wharf config APP KEY=VALUE …` type-checks the values, keeps them in the model,
//! and makes a new revision of that application and of every application whose rendered objects
//! change through the relations (Dex's public URL reaches the gatekeeper and the gateway), then
//! waits and prints what changed. Secret values can be typed at a prompt (`KEY=-`) or read from a
//! file (`--from-file KEY=FILE`), so they need not appear in the process list or shell history.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use serde::Serialize;
use serde_json::Value;

use super::converge;
use super::{Global, Outcome, OutputFormat, Session};
use crate::charm::config::OptionType;
use crate::engine::{Prune, RunOptions};
use crate::store::inputs::{Changes, Inputs};

#[derive(Debug, Clone)]
pub struct Options {
    pub app: String,
    /// `KEY=VALUE`; `KEY=-` asks on the terminal.
    pub settings: Vec<String>,
    /// `KEY=FILE`.
    pub from_file: Vec<String>,
    pub reset: Vec<String>,
    pub dry_run: bool,
    pub charms_dir: Option<PathBuf>,
    pub run: RunOptions,
}

pub fn run(global: &Global, options: &Options) -> Outcome {
    super::runtime()?.block_on(config(global, options))
}

async fn config(global: &Global, options: &Options) -> Outcome {
    let session = Session::open(global).await?;
    let stored = Inputs::load(session.client(), &session.model, session.server()).await?;
    let texts = stored.texts(&session.model)?;
    let spec = stored.bundle.clone().unwrap_or_default();
    let showing =
        options.settings.is_empty() && options.from_file.is_empty() && options.reset.is_empty();
    if showing {
        let resolution = converge::resolve(
            &session,
            &spec,
            texts,
            options.charms_dir.as_deref(),
            &Changes::default(),
        )
        .await?;
        return show(&session, &resolution, &options.app, global.output);
    }

    let changes = Changes {
        set: settings(&options.app, &options.settings, &options.from_file)?,
        reset: options
            .reset
            .iter()
            .map(|k| format!("{}.{k}", options.app))
            .collect(),
        ..Changes::default()
    };
    let resolution = converge::resolve(
        &session,
        &spec,
        texts,
        options.charms_dir.as_deref(),
        &changes,
    )
    .await?;
    if !resolution
        .resolved
        .bundle
        .applications
        .contains_key(&options.app)
    {
        bail!(
            "model `{}` has no application `{}`",
            session.model,
            options.app
        );
    }
    for note in &resolution.notes {
        eprintln!("note: {note}");
    }
    let mut rendered = converge::render(&session, &resolution).await?;
    let keys: Vec<String> = options
        .settings
        .iter()
        .chain(&options.from_file)
        .filter_map(|s| s.split_once('=').map(|(k, _)| k.to_owned()))
        .chain(options.reset.iter().cloned())
        .collect();
    for d in &mut rendered.desired {
        d.description = if d.name() == options.app {
            format!("config: {}", keys.join(", "))
        } else {
            format!("config of {}: {}", options.app, keys.join(", "))
        };
    }
    let prepared =
        converge::prepare_and_gate(&session, rendered.desired.clone(), Prune::default()).await?;
    let changes = converge::option_changes(&prepared);
    if prepared.is_noop() && resolution.inputs == resolution.stored {
        eprintln!(
            "nothing to change: `{}` already has these values",
            options.app
        );
        global
            .output
            .document(&serde_json::json!({"model": session.model, "applications": []}))?;
        return Ok(ExitCode::SUCCESS);
    }
    if options.dry_run {
        let report = converge::plan_report(&session.model, &prepared);
        match global.output {
            OutputFormat::Text => {
                print_changes(&changes);
                super::print_stdout(&converge::plan_text(&report))?;
            }
            format => format.document(&report)?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    let progress = converge::progress(global.output);
    let performed = converge::commit(
        &session,
        &prepared,
        &resolution,
        &rendered,
        &options.run,
        &progress,
    )
    .await?;
    match global.output {
        OutputFormat::Text => {
            for (app, revision) in &performed.revisions {
                let what = changes
                    .get(app)
                    .map(|c| c.join("; "))
                    .unwrap_or_else(|| "rendered objects changed through its relations".into());
                println!("{app}: revision {revision}: {what}");
            }
        }
        format => format.document(&converge::run_report(&session.model, &performed, &changes))?,
    }
    converge::conclude(&session.model, &performed, &progress)
}

fn print_changes(changes: &BTreeMap<String, Vec<String>>) {
    for (app, lines) in changes {
        println!("{app}:");
        for line in lines {
            println!("  {line}");
        }
    }
}

/// `KEY=VALUE`, `KEY=-` (asked) and `--from-file KEY=FILE` as `APP.KEY=VALUE` expressions.
fn settings(app: &str, settings: &[String], files: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for setting in settings {
        let (key, value) = setting.split_once('=').ok_or_else(|| {
            anyhow!(
                "`{setting}`: expected KEY=VALUE, for example public-url=http://10.64.140.43.nip.io"
            )
        })?;
        let value = if value == "-" {
            prompt(app, key)?
        } else {
            value.to_owned()
        };
        out.push(format!("{app}.{key}={value}"));
    }
    for file in files {
        let (key, path) = file
            .split_once('=')
            .ok_or_else(|| anyhow!("--from-file {file}: expected KEY=FILE"))?;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--from-file {key}={path}: cannot read the file"))?;
        // A trailing newline from `echo x > file` is not part of a password.
        let value = text.strip_suffix('\n').unwrap_or(&text);
        out.push(format!("{app}.{key}={value}"));
    }
    Ok(out)
}

fn prompt(app: &str, key: &str) -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "{key}=-: the value is asked on a terminal, and there is none; use --from-file {key}=FILE"
        );
    }
    Ok(dialoguer::Password::new()
        .with_prompt(format!("{app} {key}"))
        .with_confirmation("Repeat it", "The two values differ; try again")
        .interact()?)
}

#[derive(Debug, Serialize)]
struct OptionRow {
    key: String,
    #[serde(rename = "type")]
    kind: OptionType,
    value: Value,
    source: &'static str,
    description: String,
}

/// The options of `app`: value (secrets as `<set>`/`<unset>`), source and description.
fn show(
    session: &Session,
    resolution: &converge::Resolution,
    app: &str,
    output: OutputFormat,
) -> Outcome {
    let bundle = &resolution.resolved.bundle;
    let application = bundle.applications.get(app).ok_or_else(|| {
        anyhow!(
            "model `{}` has no application `{app}`{}; it has: {}",
            session.model,
            crate::bundle::did_you_mean(app, bundle.applications.keys()),
            bundle
                .applications
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let charm = &resolution.resolved.charms[&application.charm];
    let user = resolution.inputs.config.get(app);
    let mut rows = Vec::new();
    for (key, spec) in &charm.config.options {
        let stored = application
            .options
            .iter()
            .rev()
            .find_map(|(origin, values)| values.get(key).map(|v| (origin, v)));
        let (source, value) = match (user.and_then(|u| u.get(key)), stored) {
            (Some(v), _) => ("user", v.clone()),
            (None, Some((_, v))) => ("bundle", v.clone()),
            (None, None) => ("default", spec.default.clone().unwrap_or(Value::Null)),
        };
        let value = if spec.kind == OptionType::Secret {
            let set = value.as_str().is_some_and(|s| !s.is_empty());
            Value::String(if set { "<set>" } else { "<unset>" }.into())
        } else {
            value
        };
        rows.push(OptionRow {
            key: key.clone(),
            kind: spec.kind,
            value,
            source,
            description: spec.description.trim().replace('\n', " "),
        });
    }
    match output {
        OutputFormat::Text => {
            let width = rows.iter().map(|r| r.key.len()).max().unwrap_or(3).max(3);
            let vwidth = rows
                .iter()
                .map(|r| shown(&r.value).chars().count().min(40))
                .max()
                .unwrap_or(5)
                .max(5);
            let mut text = format!(
                "{:<width$}  {:<vwidth$}  {:<7}  DESCRIPTION\n",
                "KEY", "VALUE", "SOURCE"
            );
            for r in &rows {
                let mut desc = r.description.clone();
                if desc.chars().count() > 70 {
                    desc = desc.chars().take(67).collect::<String>() + "...";
                }
                text.push_str(&format!(
                    "{:<width$}  {:<vwidth$}  {:<7}  {desc}\n",
                    r.key,
                    shown(&r.value),
                    r.source
                ));
            }
            super::print_stdout(&text)?;
        }
        format => format.document(&serde_json::json!({"app": app, "options": rows}))?,
    }
    Ok(ExitCode::SUCCESS)
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) if s.is_empty() => "\"\"".into(),
        Value::String(s) => s.clone(),
        Value::Null => "<unset>".into(),
        other => other.to_string(),
    }
}
