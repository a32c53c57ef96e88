//! `wharf check`: can this host carry the bundle? Gather the host's facts, judge them against the
//! bundle's `requirements:`, print the verdicts, and with `--fix` apply the safe fixes.
//! Exit code 0 when nothing fails (warnings are fine), 1 when something fails.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use super::Outcome;
use super::{Global, OutputFormat};
use crate::host::checks::{self, Check, Status};
use crate::host::facts::{HostFacts, HostRoot};
use crate::host::requirements::{self, Requirements};
use crate::host::runner::Runner;
use crate::host::sysctl;

/// The machine-readable report (`--output json|yaml`).
#[derive(Debug, Serialize)]
pub struct Report {
    pub bundle: String,
    pub verdict: Status,
    pub checks: Vec<Check>,
}

/// Which bundle's requirements, whether to fix, and where the host's files are.
#[derive(Debug, Clone)]
pub struct Options {
    pub bundle: String,
    pub fix: bool,
    pub yes: bool,
    pub host_root: std::path::PathBuf,
}

pub fn run(global: &Global, args: &Options) -> Outcome {
    let req = load_requirements(&args.bundle)?;
    let root = HostRoot::new(&args.host_root);
    let runner = Runner::new().default_timeout(Duration::from_secs(30));
    let mut checks = checks::run_all(&HostFacts::gather(&root, &runner), &req);

    if args.fix {
        let fixable: Vec<&Check> = checks
            .iter()
            .filter(|c| c.status == Status::Fail && c.name.starts_with("inotify-"))
            .collect();
        if fixable.is_empty() {
            eprintln!("--fix: nothing to fix that wharf can fix safely");
        } else {
            ensure_root(nix::unistd::geteuid().is_root())?;
            if consent(args.yes, std::io::stdin().is_terminal())? {
                sysctl::apply_inotify_fix(&root, &runner)?;
                eprintln!(
                    "--fix: wrote {} and ran `sysctl --system`",
                    root.path(sysctl::INOTIFY_CONF).display()
                );
                // Judge again so the report shows the host as it is now.
                checks = checks::run_all(&HostFacts::gather(&root, &runner), &req);
            } else {
                eprintln!("--fix: nothing changed");
            }
        }
    }

    let report = Report {
        bundle: args.bundle.clone(),
        verdict: checks::verdict(&checks),
        checks,
    };
    let rendered = match global.output {
        OutputFormat::Text => text_report(&report),
        OutputFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        OutputFormat::Yaml => serde_saphyr::to_string(&report)?,
    };
    write_stdout(&rendered)?;
    Ok(if report.verdict == Status::Fail {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Print to stdout; a reader that went away (`| head`) is not an error worth a panic.
fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// The bundle's requirements, from the bundle loader once it provides them.
fn load_requirements(bundle: &str) -> anyhow::Result<Requirements> {
    requirements::load_requirements(bundle)
        .with_context(|| format!("--bundle {bundle}: cannot read the bundle's requirements"))
}

fn ensure_root(is_root: bool) -> anyhow::Result<()> {
    if is_root {
        Ok(())
    } else {
        anyhow::bail!(
            "--fix writes {} and runs sysctl, which needs root: run `sudo wharf check --fix`",
            sysctl::INOTIFY_CONF
        )
    }
}

/// `--yes`, or a yes on a terminal; without a terminal and without `--yes` it is an error.
fn consent(yes: bool, terminal: bool) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    if !terminal {
        anyhow::bail!("--fix needs consent: pass --yes to apply it without a terminal");
    }
    let question = format!(
        "Raise the inotify limits (write {} and run `sysctl --system`)?",
        sysctl::INOTIFY_CONF
    );
    dialoguer::Confirm::new()
        .with_prompt(question)
        .default(true)
        .interact()
        .context("could not ask for consent; pass --yes instead")
}

/// The text table: check, verdict, detail, and the fix under any check that did not pass.
pub fn text_report(report: &Report) -> String {
    let width = report
        .checks
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(5)
        .max("CHECK".len());
    let mut out = format!("{:<width$}  VERDICT  DETAIL\n", "CHECK");
    for c in &report.checks {
        out += &format!(
            "{:<width$}  {:<7}  {}\n",
            c.name,
            c.status.label(),
            c.detail
        );
        if let Some(fix) = &c.fix {
            out += &format!("{:<width$}           fix: {fix}\n", "");
        }
    }
    let count = |s| report.checks.iter().filter(|c| c.status == s).count();
    out += &format!(
        "\n{}: {} passed, {} warned, {} failed (bundle {})\n",
        report.verdict.label(),
        count(Status::Pass),
        count(Status::Warn),
        count(Status::Fail),
        report.bundle
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fix_needs_root() {
        assert!(ensure_root(true).is_ok());
        let err = ensure_root(false).unwrap_err().to_string();
        assert!(err.contains("sudo wharf check --fix"), "{err}");
    }

    #[test]
    fn fix_without_terminal_needs_yes() {
        assert!(consent(true, false).unwrap());
        let err = consent(false, false).unwrap_err().to_string();
        assert!(err.contains("--yes"), "{err}");
    }

    #[test]
    fn text_report_shows_fixes_and_a_verdict_line() {
        let report = Report {
            bundle: "lite".into(),
            verdict: Status::Fail,
            checks: vec![
                Check {
                    name: "cpu".into(),
                    status: Status::Pass,
                    detail: "4 CPUs".into(),
                    fix: None,
                },
                Check {
                    name: "inotify-watches".into(),
                    status: Status::Fail,
                    detail: "too low".into(),
                    fix: Some("raise it".into()),
                },
            ],
        };
        let text = text_report(&report);
        assert!(
            text.contains("cpu              PASS     4 CPUs\n"),
            "{text}"
        );
        assert!(
            text.contains("inotify-watches  FAIL     too low\n"),
            "{text}"
        );
        assert!(text.contains("fix: raise it"), "{text}");
        assert!(
            text.ends_with("FAIL: 1 passed, 0 warned, 1 failed (bundle lite)\n"),
            "{text}"
        );
    }
}
