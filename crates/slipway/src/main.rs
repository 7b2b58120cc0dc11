//! The `slipway` command-line tool: parses arguments, opens the project, dispatches to a
//! command and turns its result into an exit code. Errors are rendered here and only here.

mod aws;
mod cli;
mod commands;
mod events;

// The runner's modules under the names the commands have always used for them.
use slipway_runner::{
    analysis, credentials, executor, pipeline, project, record, stage_executor, verify,
};

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use slipway_runner::events::Observer;

use cli::{Cli, Command};
use commands::ExitStatus;
use executor::Operation;

/// Loading tens of thousands of stack.hcl files is allocation-bound: mimalloc's per-thread
/// free lists cut its time by about 14% against the system allocator (docs/benchmarks.md).
/// It is built without transparent huge pages (the `no_thp` feature): on a machine whose
/// memory is fragmented, faulting in huge pages made reading a 92 MB plan twice as slow
/// (315 ms instead of 171 ms) and held a third more memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_t` (the same index in its v2 and v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Memory freed goes back to the system after 1 ms rather than mimalloc's default delay
/// (100 ms for large blocks). Reading a plan of hundreds of megabytes frees its growing list
/// of changes several times within the default delay, which held the peak at 1.1x to 1.3x
/// the plan's size instead of 0.75x (`cargo bench -p slipway-plan`); purging at once (0 ms)
/// made loading 50,000 stacks 15% slower, faulting the same pages in again.
fn return_freed_memory_soon() {
    // SAFETY: sets one integer option, which mimalloc reads atomically.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1);
    }
}

fn main() -> ExitCode {
    return_freed_memory_soon();
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
    // The only place the process environment is read; the runner gets it as settings.
    let settings = match slipway_runner::Settings::from_environment(std::env::vars().collect()) {
        Ok(settings) => settings,
        Err(error) => {
            report(&error);
            return ExitCode::from(ExitStatus::Failure.code());
        }
    };
    if let Some(host) = &settings.host {
        slipway_store::name_this_host(host);
    }
    let json = cli.command.streams_json();
    let observer = events::observer(json);
    let (code, error) = match runtime.block_on(run(cli, settings, Arc::clone(&observer))) {
        Ok(status) => (status.code(), None),
        Err(error) => {
            report(&error);
            (ExitStatus::Failure.code(), Some(format!("{error:#}")))
        }
    };
    if json {
        observer.observe(&slipway_runner::events::Event::Finished {
            exit_code: code,
            error,
        });
    }
    ExitCode::from(code)
}

async fn run(
    cli: Cli,
    settings: slipway_runner::Settings,
    observer: Arc<dyn Observer>,
) -> anyhow::Result<ExitStatus> {
    // The only place the CI marker is read; commands get it as a setting.
    let ci = commands::ci::Setting::from_ci_variable(std::env::var("CI").ok().as_deref());
    let refuse_local =
        |workspace: &project::Workspace, args: &commands::ci::LocalStateArgs, command: &str| {
            commands::ci::refuse_local_state(workspace, ci, args, command)
        };
    // `changed` reads commits, not the working tree: it must not pay for loading it.
    if let Command::Changed(args) = &cli.command {
        return commands::changed::run(cli.global.project_dir.as_deref(), &settings, args);
    }
    // `analyze` works outside a project too.
    if let Command::Analyze(args) = &cli.command {
        return commands::analyze::run(cli.global.project_dir.as_deref(), settings, args);
    }
    // `init` makes the project, so there is none to open yet.
    if let Command::Init(args) = &cli.command {
        return commands::init::run(cli.global.project_dir.as_deref(), args);
    }
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    // `serve --repo URL` serves a clone of its own, made (or found) in the current folder's
    // data folder, rather than a project that is already here.
    // `worker --repo URL` likewise, one clone per job slot.
    let worker_checkouts = match &cli.command {
        Command::Worker(args) => commands::worker::checkouts(args, &cwd)?,
        _ => Vec::new(),
    };
    let project_dir = match &cli.command {
        Command::Serve(args) if args.repo.is_some() => Some(commands::serve::clone_repository(
            args.repo.as_deref().unwrap_or_default(),
            &cwd,
        )?),
        Command::Worker(_) if !worker_checkouts.is_empty() => Some(worker_checkouts[0].clone()),
        _ => cli.global.project_dir.clone(),
    };
    let workspace = project::open(project_dir.as_deref(), &cwd, settings)?;
    let grace = workspace.project.execution.interrupt_grace;
    let workspace = workspace
        .observed_by(Arc::clone(&observer))
        .interrupted_by(events::ctrl_c(observer, grace));
    match &cli.command {
        Command::Changed(_) | Command::Init(_) | Command::Analyze(_) => {
            unreachable!("dispatched before the project is opened")
        }
        Command::New(args) => match &args.command {
            commands::new_stack::NewCommand::Stack(args) => {
                commands::new_stack::run(&workspace, args)
            }
        },
        Command::Advise(args) => commands::advise::run(&workspace, args).await,
        Command::Drill(args) => commands::drill::drill(&workspace, args).await,
        Command::Drills(args) => commands::drill::drills(&workspace, args).await,
        Command::Dora(args) => commands::dora::run(&workspace, args).await,
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
        Command::Events(args) => commands::pipeline::events(&workspace, args).await,
        Command::Serve(args) => commands::serve::run(&workspace, args).await,
        Command::Worker(args) => {
            commands::worker::run(&workspace, args, worker_checkouts.clone()).await
        }
        Command::Token(args) => commands::token::run(&workspace, args).await,
        Command::User(args) => commands::user::run(&workspace, args).await,
    }
}

/// Prints an error and its causes; configuration errors print as their own diagnostics.
fn report(error: &anyhow::Error) {
    if let Some(config) = error.downcast_ref::<project::ConfigErrors>() {
        eprintln!("{config}");
        return;
    }
    eprintln!("{}", slipway_runner::help::render(error));
}
