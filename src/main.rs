//! `wharf`: parse the command line and hand it to the action that does the work.

use clap::Parser;
use wharf::action;
use wharf::cli::{Cli, Command};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    wharf::logging::init(cli.global.verbose);
    let global = cli.global.global();
    let result = match cli.command {
        Command::Check(args) => action::check::run(&global, &args.options()),
        Command::Render(args) => action::render::run(&global, &args.options()),
        Command::Deploy(args) => action::deploy::run(&global, &args.options()),
        Command::Config(args) => action::config::run(&global, &args.options()),
        Command::History(args) => action::history::run(
            &global,
            &action::history::Options {
                app: args.app,
                max: args.max,
            },
        ),
        Command::Upgrade(args) => match &args.kubernetes {
            Some(target) => action::kubernetes::run(&args.kubernetes_options(&cli.global, target)),
            None => action::upgrade::run(&global, &args.options()),
        },
        Command::Rollback(args) => action::rollback::run(&global, &args.options()),
        Command::Status(args) => action::status::run(&global, &args.options()),
        Command::Backup(command) => action::backup::run(&global, &command.options()),
        Command::Restore(args) => action::restore::run(&global, &args.options()),
        Command::Remove(args) => action::remove::run(&global, &args.options()),
        Command::Up(args) => action::up::run(&global, &args.options()),
        Command::Cluster(command) => action::cluster::run(&global, &command.options()),
        Command::Images(command) => action::images::run(&global, &command.options()),
        Command::Profile(command) => action::profile::run(&global, &command.options()),
        Command::Notebook(command) => action::notebook::run(&global, &command.options()),
        Command::Pipeline(command) => action::pipeline::run(&global, &command.options()),
        Command::Tuning(command) => action::tuning::run(&global, &command.options()),
        Command::Dashboard(args) => action::dashboard::run(&global, &args.options()),
        Command::Completions { shell } => {
            action::completions::run(shell, <Cli as clap::CommandFactory>::command())
        }
    };
    action::exit(result)
}
