//! `slipway state migrate`: move every instance's local state into the configured remote
//! backend, verifying each by its resource count, and keep the local files as a backup.

use std::collections::BTreeSet;

use anyhow::{Result, bail};
use slipway_core::config::StateConfig;
use slipway_engine::StateBackend;

use super::ExitStatus;
use crate::project::Workspace;
use crate::record;
use crate::stage_executor::{ExecutorOptions, executor_for};
use clap::{Args, Subcommand};
use slipway_store::AuditAction;

#[derive(Debug, Args)]
pub struct StateArgs {
    #[command(subcommand)]
    pub command: StateCommand,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Copy every stage's local state into the backend configured in slipway.hcl and verify it.
    ///
    /// For each stack instance with a local state file, slipway initialises the new backend,
    /// refuses to overwrite a different remote state, pushes the local state, and compares
    /// resource counts before and after. Local files stay where they are, as a backup.
    Migrate(MigrateArgs),
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Only these stages (repeatable); default: every stage.
    #[arg(long = "stage", value_name = "STAGE")]
    pub stages: Vec<String>,
}

pub async fn run(workspace: &Workspace, args: &StateArgs) -> Result<ExitStatus> {
    match &args.command {
        StateCommand::Migrate(migrate) => run_migrate(workspace, &migrate.stages).await,
    }
}

async fn run_migrate(workspace: &Workspace, only_stages: &[String]) -> Result<ExitStatus> {
    let project = &workspace.project;
    if matches!(project.state, StateConfig::Local) {
        bail!(
            "the project's state is local; there is nowhere to migrate to\n  help: add a `state {{ backend = \"s3\" ... }}` block to slipway.hcl first (see docs/state-and-credentials.md)"
        );
    }
    let data_dir = workspace.data_dir();
    let store = record::open(workspace).await?;
    let mut migrated = 0usize;
    let mut failed = 0usize;
    for stage in &project.stages {
        if !only_stages.is_empty() && !only_stages.contains(&stage.name) {
            continue;
        }
        // Local state of this stage's long-lived instance, one file per stack.
        let stacks: BTreeSet<String> = project
            .stacks
            .iter()
            .filter(|s| StateBackend::local_state_path(&data_dir, &stage.name, &s.name).is_file())
            .map(|s| s.name.clone())
            .collect();
        if stacks.is_empty() {
            continue;
        }
        let executor = executor_for(workspace, stage, &stacks, &ExecutorOptions::default())?;
        for stack in &stacks {
            let local = StateBackend::local_state_path(&data_dir, &stage.name, stack);
            let target = executor.backend.describe(&stage.name, stack);
            match executor.migrate_state(stack, &local).await {
                Ok((before, after)) if before == after => {
                    migrated += 1;
                    record::audit(
                        workspace,
                        &store,
                        AuditAction::StateMigrate,
                        &stage.name,
                        stack,
                        None,
                        serde_json::json!({ "from": local, "to": target, "resources": after }),
                    )
                    .await?;
                    executor.events.ended(
                        stack,
                        true,
                        format!(
                            "{}/{stack}: {after} resources now in {target}; local copy kept at {}",
                            stage.name,
                            local.display()
                        ),
                    );
                }
                Ok((before, after)) => {
                    failed += 1;
                    executor.events.ended(
                        stack,
                        false,
                        format!(
                            "x {}/{stack}: {before} resources locally but {after} in {target} after the copy; the local file is untouched",
                            stage.name
                        ),
                    );
                }
                Err(error) => {
                    failed += 1;
                    executor.events.ended(
                        stack,
                        false,
                        format!("x {}/{stack}: {error:#}", stage.name),
                    );
                }
            }
        }
    }
    eprintln!(
        "\nstate migrate: {migrated} instance{} migrated{}",
        if migrated == 1 { "" } else { "s" },
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    );
    if migrated == 0 && failed == 0 {
        eprintln!(
            "no local state found under {}",
            data_dir.join("state").display()
        );
    }
    Ok(if failed > 0 {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}
