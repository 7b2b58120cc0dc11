//! `slipway drill --stage S` and `slipway drills`: a disaster-recovery drill rebuilds every
//! stack of a stage from zero into a fresh ephemeral instance, using only the artifact store
//! and the release record (no checkout of the repository is read), in dependency order and
//! in parallel where the graph allows. It times each stack and the whole (the recovery
//! time), compares the rebuilt instance with the stage (resource types and counts per
//! stack), runs the stacks' checks, tears the instance down unless `--keep`, and records the
//! result.

use anyhow::Result;
use clap::Args;
use slipway_core::Stage;
use slipway_store::VerificationRecord as _;

use super::ExitStatus;
use super::deliver::RunOptions;
use crate::project::Workspace;
use crate::project::find_stage;
use crate::record;
use crate::verify::drill::{DrillReport, drill_stage};
use crate::verify::{millis, seconds};

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// The stage to rebuild (from its released artifacts).
    #[arg(long, short = 's', value_name = "STAGE")]
    pub stage: String,
    /// Leave the rebuilt instance in place (destroy it later with `slipway gc`).
    #[arg(long)]
    pub keep: bool,
    /// Stream the drill's events as JSON lines on stdout, its result last (docs/events.md).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub options: RunOptions,
}

#[derive(Debug, Args)]
pub struct DrillsArgs {
    /// Only drills of this stage.
    #[arg(long, short = 's', value_name = "STAGE")]
    pub stage: Option<String>,
    /// How many drills to list, newest first.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `slipway drill`.
pub async fn drill(workspace: &Workspace, args: &DrillArgs) -> Result<ExitStatus> {
    let stage = find_stage(workspace, &args.stage)?;
    let report = drill_stage(workspace, stage, &args.options.executor(), args.keep).await?;
    if args.json {
        super::stream_report(workspace, "drill", &report.recorded)?;
    } else {
        print_drill(stage, &report);
    }
    Ok(if report.succeeded() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

fn print_drill(stage: &Stage, run: &DrillReport) {
    let instance = &run.instance;
    let succeeded = run.succeeded();
    println!(
        "drill of {} into {instance}: {}",
        stage.name,
        if succeeded { "succeeded" } else { "FAILED" }
    );
    for (stack, part) in &run.stacks {
        let resources: Vec<String> = part
            .rebuilt_resources
            .iter()
            .map(|(kind, n)| format!("{kind} x{n}"))
            .collect();
        let state = if part.rebuilt {
            format!("rebuilt in {}", seconds(part.ms))
        } else {
            "not rebuilt".to_owned()
        };
        println!("  {stack:<16} {state:<18} {}", resources.join(", "));
        if let Some(error) = &part.error {
            println!("    why: {error}");
        }
        for difference in &part.differences {
            println!("    differs from {}: {difference}", stage.name);
        }
    }
    println!(
        "recovery time: {} ({} of {} stacks rebuilt)",
        seconds(millis(run.recovery)),
        run.stacks.values().filter(|s| s.rebuilt).count(),
        run.stacks.len()
    );
    if let (Some(own), Some(probe)) = (run.own_state_recovery(), run.own_state_probe) {
        println!(
            "recovery on {}'s own state (`slipway recover`): about {} ({} to establish what is gone, then the rebuild)",
            stage.name,
            seconds(millis(own)),
            seconds(millis(probe))
        );
    }
    for check in &run.checks {
        println!("{check}");
        if !check.passed && !check.output.is_empty() {
            for line in check.output.lines() {
                println!("    | {line}");
            }
        }
    }
    match &run.teardown {
        Some(t) if t.succeeded() => {
            println!("teardown: destroyed in {}", seconds(millis(t.elapsed)))
        }
        Some(_) => println!(
            "teardown: FAILED; the instance stays on record\n  help: run `slipway gc` to destroy what is left"
        ),
        None if run.kept => println!(
            "kept: `{instance}` stays up\n  help: run `slipway gc` to destroy it when you are done"
        ),
        None => {}
    }
    if !succeeded {
        eprintln!("drill failed:");
        for problem in &run.problems {
            eprintln!("  {problem}");
        }
    }
}
/// `slipway drills`.
pub async fn drills(workspace: &Workspace, args: &DrillsArgs) -> Result<ExitStatus> {
    if let Some(stage) = &args.stage {
        find_stage(workspace, stage)?;
    }
    let store = record::open(workspace).await?;
    let drills = store.drills(args.stage.as_deref(), args.limit).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&drills)?);
        return Ok(ExitStatus::Success);
    }
    if drills.is_empty() {
        eprintln!("no drills on record\n  help: run `slipway drill --stage STAGE`");
        return Ok(ExitStatus::Success);
    }
    println!(
        "{:<5} {:<8} {:<12} {:<10} {:>9}  STARTED",
        "ID", "STAGE", "INSTANCE", "RESULT", "RECOVERY"
    );
    for drill in &drills {
        println!(
            "{:<5} {:<8} {:<12} {:<10} {:>9}  {}",
            drill.id,
            drill.stage,
            drill.instance,
            drill.status,
            drill.total_ms.map_or_else(|| "-".to_owned(), seconds),
            drill.started_at.to_rfc3339()
        );
    }
    Ok(ExitStatus::Success)
}
