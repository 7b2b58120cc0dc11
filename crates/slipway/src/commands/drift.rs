//! `slipway drift --stage S`: per stack, whether the real infrastructure still matches the
//! state (a refresh-only plan), listing the drifted resources and attributes. The result is
//! recorded (`drift_checks`). Exit codes: 0 in sync, 2 drift found, 1 when a stack could not
//! be checked (a failure outranks drift: the answer is incomplete).

use anyhow::Result;
use clap::Args;

use super::ExitStatus;
use super::deliver::RunOptions;
use crate::project::Workspace;
use crate::project::{chosen_stacks, find_stage};
use crate::verify::drift::{DriftStatus, StackDrift, check_stage};

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
    let stage = find_stage(workspace, &args.stage)?;
    let selected = chosen_stacks(workspace, &args.stacks)?;
    let drift = check_stage(workspace, stage, &selected, &args.options.executor()).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&drift.recorded)?);
    } else {
        print(&stage.name, &drift.results);
    }
    Ok(if drift.failed() {
        ExitStatus::Failure
    } else if drift.drifted() > 0 {
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
