//! `wharf`: parse the command line and hand it to the action that does the work.

use clap::Parser;
use wharf::cli::{Cli, Command};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    wharf::logging::init(cli.global.verbose);
    let result = match cli.command {
        Command::Check(args) => wharf::action::check::run(&cli.global, &args),
        Command::Render(args) => wharf::action::render::run(&cli.global, &args),
        Command::Deploy(args) => wharf::action::deploy::run(&cli.global, &args),
        Command::Status(args) => wharf::action::status::run(&cli.global, &args),
        Command::Remove(args) => wharf::action::remove::run(&cli.global, &args),
        Command::Up(args) => wharf::action::up::run(&cli.global, &args),
        Command::Cluster(command) => wharf::action::cluster::run(&cli.global, &command),
        Command::Completions { shell } => wharf::action::completions::run(shell),
    };
    wharf::action::exit(result)
}
