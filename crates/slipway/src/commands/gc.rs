//! `slipway gc`: destroys ephemeral instances left on record by runs and drills that did not
//! finish their teardown (a failed destroy, a killed process). An instance whose process is
//! still alive on this host is in use and left alone.

use anyhow::Result;
use clap::Args;
use slipway_store::{ProcessState, VerificationRecord as _, probe_process, this_host};

use super::ExitStatus;
use super::deliver::RunOptions;
use crate::executor::CodeSource;
use crate::project::Workspace;
use crate::record;
use crate::verify::instance;

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only list what would be destroyed.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub options: RunOptions,
}

/// `slipway gc`.
pub async fn run(workspace: &Workspace, args: &GcArgs) -> Result<ExitStatus> {
    let store = record::open(workspace).await?;
    let live = store.live_instances().await?;
    if live.is_empty() {
        eprintln!("nothing to collect: no ephemeral instance is left on record");
        return Ok(ExitStatus::Success);
    }
    let host = this_host();
    let mut failed = 0;
    for leftover in live {
        let name = &leftover.name;
        let in_use = leftover.owner_host == host
            && leftover.owner_pid != std::process::id()
            && matches!(
                probe_process(leftover.owner_pid),
                ProcessState::Running { .. }
            );
        if in_use {
            eprintln!(
                "kept {name}: still in use by process {} (a {} of {})",
                leftover.owner_pid, leftover.purpose, leftover.stage
            );
            continue;
        }
        let Some(stage) = workspace.project.stage(&leftover.stage) else {
            eprintln!(
                "cannot collect {name}: its stage `{}` is no longer in slipway.hcl\n  help: destroy its resources by hand; its state is under the instance name `{name}`",
                leftover.stage
            );
            failed += 1;
            continue;
        };
        if args.dry_run {
            println!("{name}\t{}\t{}", leftover.purpose, leftover.stage);
            continue;
        }
        eprintln!(
            "destroying {name} (a {} of {}, made {})",
            leftover.purpose,
            leftover.stage,
            leftover.created_at.to_rfc3339()
        );
        // Destroying needs the providers and the variables, not the exact code that was
        // applied: what the state holds is destroyed either way.
        let teardown = instance::teardown(
            workspace,
            &store,
            stage,
            name,
            CodeSource::WorkingTree,
            &args.options.executor(),
        )
        .await?;
        if teardown.succeeded() {
            println!("destroyed {name}");
        } else {
            failed += 1;
            eprintln!("could not destroy all of {name}:");
            for failure in teardown.failures() {
                eprintln!("  {failure}");
            }
        }
    }
    Ok(if failed == 0 {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}
