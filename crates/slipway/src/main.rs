//! The `slipway` command-line tool: parses arguments, opens the project, dispatches to a
//! command and turns its result into an exit code. Errors are rendered here and only here.

mod cli;
mod commands;
mod credentials;
mod executor;
mod progress;
mod project;
mod record;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use commands::ExitStatus;
use executor::Operation;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(status) => ExitCode::from(status.code()),
        Err(error) => {
            report(&error);
            ExitCode::from(ExitStatus::Failure.code())
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitStatus> {
    // `changed` reads commits, not the working tree: it must not pay for loading it.
    if let Command::Changed(args) = &cli.command {
        return commands::changed::run(cli.global.project_dir.as_deref(), args);
    }
    let workspace = project::open(cli.global.project_dir.as_deref())?;
    match &cli.command {
        Command::Changed(_) => unreachable!("dispatched before the project is opened"),
        Command::Stacks(args) => commands::stacks::run(&workspace, args),
        Command::Graph(args) => commands::graph::run(&workspace, args),
        Command::Plan(args) => commands::stage::run(&workspace, args, Operation::Plan).await,
        Command::Apply(args) => {
            commands::stage::run(&workspace, &args.stage, Operation::Apply).await
        }
        Command::Unlock(args) => commands::unlock::run(&workspace, args).await,
        Command::State(args) => commands::state::run(&workspace, args).await,
        Command::Destroy(args) => {
            if !args.yes {
                anyhow::bail!(
                    "destroy needs confirmation\n  help: run `slipway destroy --stage {} --yes` to destroy the selected stacks",
                    args.stage.stage
                );
            }
            commands::stage::run(&workspace, &args.stage, Operation::Destroy).await
        }
    }
}

/// Prints an error and its causes; configuration errors print as their own diagnostics.
fn report(error: &anyhow::Error) {
    if let Some(config) = error.downcast_ref::<project::ConfigErrors>() {
        eprintln!("{config}");
        return;
    }
    eprintln!("error: {error}");
    for cause in error.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}
