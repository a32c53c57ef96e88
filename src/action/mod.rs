//! One module per verb. A verb reads like the steps a user would list; the mechanics live in
//! `bundle`, `charm`, `render`, `host`.

pub mod check;
pub mod cluster;
pub mod completions;
pub mod deploy;
pub mod remove;
pub mod render;
pub mod status;
pub mod up;

use std::process::ExitCode;

/// What a verb returns: the exit code it wants, or an error to print.
pub type Outcome = anyhow::Result<ExitCode>;

/// Print an error with its causes, one per line, and turn the outcome into the process exit code.
pub fn exit(outcome: Outcome) -> ExitCode {
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
