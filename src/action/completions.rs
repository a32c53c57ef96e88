//! `wharf completions SHELL`: the completion script for bash, zsh, fish and others, generated from
//! the command line's definition (which `main` hands over).

use super::Outcome;

pub fn run(shell: clap_complete::Shell, mut command: clap::Command) -> Outcome {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "wharf", &mut script);
    super::print_stdout(&String::from_utf8_lossy(&script))?;
    Ok(std::process::ExitCode::SUCCESS)
}
