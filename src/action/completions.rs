//! `wharf completions SHELL`: the completion script for bash, zsh, fish and others.

use clap::CommandFactory;

use super::Outcome;
use crate::cli::Cli;

pub fn run(shell: clap_complete::Shell) -> Outcome {
    clap_complete::generate(shell, &mut Cli::command(), "wharf", &mut std::io::stdout());
    Ok(std::process::ExitCode::SUCCESS)
}
