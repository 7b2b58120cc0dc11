//! The `slipway` command-line tool: parses arguments, opens the project, dispatches to a
//! command and turns its result into an exit code. Errors are rendered here and only here.

mod analysis;
mod aws;
mod cli;
mod commands;
mod credentials;
mod executor;
mod pipeline;
mod progress;
mod project;
mod record;
mod stage_executor;
mod verify;

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
    // The only place the CI marker is read; commands get it as a setting.
    let ci = commands::ci::Setting::from_ci_variable(std::env::var("CI").ok().as_deref());
    let refuse_local =
        |workspace: &project::Workspace, args: &commands::ci::LocalStateArgs, command: &str| {
            commands::ci::refuse_local_state(workspace, ci, args, command)
        };
    // `changed` reads commits, not the working tree: it must not pay for loading it.
    if let Command::Changed(args) = &cli.command {
        return commands::changed::run(cli.global.project_dir.as_deref(), args);
    }
    // `analyze` works outside a project too.
    if let Command::Analyze(args) = &cli.command {
        return commands::analyze::run(cli.global.project_dir.as_deref(), args);
    }
    // `init` makes the project, so there is none to open yet.
    if let Command::Init(args) = &cli.command {
        return commands::init::run(cli.global.project_dir.as_deref(), args);
    }
    let workspace = project::open(cli.global.project_dir.as_deref())?;
    match &cli.command {
        Command::Changed(_) | Command::Init(_) | Command::Analyze(_) => {
            unreachable!("dispatched before the project is opened")
        }
        Command::New(args) => match &args.command {
            commands::new_stack::NewCommand::Stack(args) => {
                commands::new_stack::run(&workspace, args)
            }
        },
        Command::Advise(args) => commands::advise::run(&workspace, args),
        Command::Drill(args) => commands::drill::drill(&workspace, args).await,
        Command::Drills(args) => commands::drill::drills(&workspace, args).await,
        Command::Gc(args) => commands::gc::run(&workspace, args).await,
        Command::Drift(args) => commands::drift::run(&workspace, args).await,
        Command::Recover(args) => commands::recover::run(&workspace, args).await,
        Command::Stacks(args) => commands::stacks::run(&workspace, args),
        Command::Graph(args) => commands::graph::run(&workspace, args),
        Command::Plan(args) => commands::plan::run(&workspace, args).await,
        Command::Apply(args) => {
            refuse_local(&workspace, &args.local, "apply")?;
            commands::stage::run_approved(&workspace, &args.stage, &args.approval, Operation::Apply)
                .await
        }
        Command::Bootstrap(args) => commands::bootstrap::run(&workspace, args).await,
        Command::Unlock(args) => commands::unlock::run(&workspace, args).await,
        Command::State(args) => commands::state::run(&workspace, args).await,
        Command::Destroy(args) => {
            if !args.yes {
                anyhow::bail!(
                    "destroy needs confirmation\n  help: run `slipway destroy --stage {} --yes` to destroy the selected stacks",
                    args.stage.stage
                );
            }
            commands::stage::run_approved(
                &workspace,
                &args.stage,
                &args.approval,
                Operation::Destroy,
            )
            .await
        }
        Command::Build(args) => commands::deliver::build(&workspace, args).await,
        Command::Deploy(args) => {
            refuse_local(&workspace, &args.local, "deploy")?;
            commands::deliver::deploy(&workspace, args).await
        }
        Command::Promote(args) => {
            refuse_local(&workspace, &args.local, "promote")?;
            commands::deliver::promote(&workspace, args).await
        }
        Command::Rollback(args) => commands::deliver::rollback(&workspace, args).await,
        Command::Status(args) => commands::status::status(&workspace, args).await,
        Command::History(args) => commands::status::history(&workspace, args).await,
        Command::Run(args) => {
            refuse_local(&workspace, &args.local, "run")?;
            commands::pipeline::run(&workspace, args).await
        }
        Command::Approve(args) => commands::pipeline::approve(&workspace, args).await,
        Command::Resume(args) => commands::pipeline::resume(&workspace, args).await,
        Command::Reject(args) => commands::pipeline::reject(&workspace, args).await,
        Command::ResolveInterrupted(args) => commands::pipeline::resolve(&workspace, args).await,
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
