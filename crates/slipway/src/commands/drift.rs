//! `slipway drift --stage S`: per stack, whether the real infrastructure still matches the
//! state (a refresh-only plan), listing the drifted resources and attributes. The result is
//! recorded (`drift_checks`). Exit codes: 0 in sync, 2 drift found, 1 when a stack could not
//! be checked (a failure outranks drift: the answer is incomplete).

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use slipway_store::VerificationRecord as _;

use super::ExitStatus;
use super::deliver::RunOptions;
use crate::executor::Operation;
use crate::project::Workspace;
use crate::project::{chosen_stacks, find_stage, with_dependencies};
use crate::record;
use crate::verify::drift::{DriftStatus, StackDrift, check_stack as check_drift};
use crate::verify::{instance, released};

#[derive(Debug, Args)]
pub struct DriftArgs {
    /// The stage to check.
    #[arg(long, short = 's', value_name = "STAGE")]
    pub stage: String,
    /// Only these stacks (repeatable); default: every stack.
    #[arg(long = "stack", value_name = "STACK")]
    pub stacks: Vec<String>,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub options: RunOptions,
}

/// `slipway drift`.
pub async fn run(workspace: &Workspace, args: &DriftArgs) -> Result<ExitStatus> {
    let project = &workspace.project;
    let stage = find_stage(workspace, &args.stage)?;
    let selected = chosen_stacks(workspace, &args.stacks)?;
    let involved = with_dependencies(project, &selected);
    let store = record::open(workspace).await?;
    // The code the stage was given: its providers and variables are what the state was
    // written with.
    let code = released::fetch(workspace, &store, &stage.name, &involved).await?;
    let executor = instance::executor(
        workspace,
        stage,
        &stage.name,
        &involved,
        &args.options.executor(),
        code.code(),
    )?;
    // Variables come from the dependencies' outputs, read from their state.
    let dependencies: BTreeSet<String> = involved
        .iter()
        .filter(|s| {
            project
                .graph
                .dependents(s)
                .iter()
                .any(|d| involved.contains(*d))
        })
        .cloned()
        .collect();
    let mut results: Vec<StackDrift> = Vec::new();
    if !dependencies.is_empty() {
        for read in executor.walk(&dependencies, Operation::ReadOutputs).await {
            if read.outcome.is_failure() {
                eprintln!(
                    "warning: cannot read the outputs of `{}`: its dependents are not checked",
                    read.stack
                );
            }
        }
    }
    let limit = Arc::new(tokio::sync::Semaphore::new(executor.parallelism.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for stack in project.graph.order_of(selected.iter().map(String::as_str)) {
        let executor = Arc::clone(&executor);
        let limit = Arc::clone(&limit);
        let stack = stack.to_owned();
        tasks.spawn(async move {
            let _turn = limit.acquire_owned().await;
            check_drift(&executor, &stack).await
        });
    }
    while let Some(joined) = tasks.join_next().await {
        results.push(joined?);
    }
    let order = project.graph.order_of(selected.iter().map(String::as_str));
    results.sort_by_key(|r| order.iter().position(|s| *s == r.stack));

    let drifted: u64 = results.iter().map(|r| r.resources.len() as u64).sum();
    let details = json!({ "stacks": results });
    let recorded = store.record_drift(&stage.name, drifted, &details).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&recorded)?);
    } else {
        print(&stage.name, &results);
    }
    let failed = results
        .iter()
        .any(|r| matches!(r.status, DriftStatus::Failed));
    Ok(if failed {
        ExitStatus::Failure
    } else if drifted > 0 {
        ExitStatus::ChangesPending
    } else {
        ExitStatus::Success
    })
}

fn print(stage: &str, results: &[StackDrift]) {
    let drifted: usize = results.iter().map(|r| r.resources.len()).sum();
    println!(
        "drift in {stage}: {}",
        if drifted == 0 {
            "none found".to_owned()
        } else {
            format!(
                "{drifted} resource{} changed outside Terraform",
                if drifted == 1 { "" } else { "s" }
            )
        }
    );
    for result in results {
        let state = match result.status {
            DriftStatus::InSync => "in sync".to_owned(),
            DriftStatus::Drifted => "DRIFTED".to_owned(),
            DriftStatus::NotApplied => "not checked".to_owned(),
            DriftStatus::Failed => "FAILED".to_owned(),
        };
        println!("  {:<16} {state}", result.stack);
        for resource in &result.resources {
            let what = if resource.change == "delete" {
                "deleted outside Terraform".to_owned()
            } else if resource.attributes.is_empty() {
                "changed outside Terraform".to_owned()
            } else {
                format!("changed: {}", resource.attributes.join(", "))
            };
            println!("    {}: {what}", resource.address);
        }
        if let Some(error) = &result.error {
            println!("    why: {error}");
            if result.status == DriftStatus::Failed {
                println!("    log: {}", result.log);
            }
        }
    }
    if drifted > 0 {
        eprintln!(
            "help: `slipway apply --stage {stage}` puts the code's configuration back (recreating what was deleted); to keep a change made by hand, write it into the code first"
        );
    }
    if results.iter().any(|r| r.status == DriftStatus::Failed) {
        eprintln!("help: the logs named above say why a stack could not be checked");
    }
}
