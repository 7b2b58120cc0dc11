//! `slipway unlock`: release a Terraform state lock, on an operator's word only.

use std::collections::BTreeSet;

use anyhow::Result;

use super::ExitStatus;
use crate::project::Workspace;
use crate::project::{check_stack, find_stage};
use crate::record;
use crate::stage_executor::{ExecutorOptions, executor_for};
use clap::Args;
use slipway_store::AuditAction;

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// The stage of the locked instance.
    #[arg(long, short = 's', value_name = "STAGE")]
    pub stage: String,
    /// The stack whose state is locked.
    #[arg(long, value_name = "STACK")]
    pub stack: String,
    /// The lock's id, as the error that reported it printed it.
    #[arg(value_name = "LOCK_ID")]
    pub lock_id: String,
}

pub async fn run(workspace: &Workspace, args: &UnlockArgs) -> Result<ExitStatus> {
    let stage = find_stage(workspace, &args.stage)?;
    check_stack(workspace, &args.stack)?;
    let stacks = BTreeSet::from([args.stack.clone()]);
    let executor = executor_for(workspace, stage, &stacks, &ExecutorOptions::default())?;
    let location = executor.backend.describe(&executor.instance, &args.stack);
    match executor.unlock(&args.stack, &args.lock_id).await {
        Ok(log) => {
            let store = record::open(workspace).await?;
            record::audit(
                workspace,
                &store,
                AuditAction::Unlock,
                &stage.name,
                &args.stack,
                None,
                serde_json::json!({ "engine_lock_id": args.lock_id, "state": location, "log": log }),
            )
            .await?;
            executor.events.ended(
                &args.stack,
                true,
                format!(
                    "released lock {} on {}/{} ({location})",
                    args.lock_id, stage.name, args.stack
                ),
            );
            Ok(ExitStatus::Success)
        }
        Err(error) => {
            eprintln!(
                "error: could not release lock {} on {}/{}: {error:#}",
                args.lock_id, stage.name, args.stack
            );
            Ok(ExitStatus::Failure)
        }
    }
}
