//! `slipway status` (the release matrix: which artifact each stage runs of each stack) and
//! `slipway history` (runs and releases over time). Both read the record only.

use std::collections::BTreeMap;

use anyhow::Result;
use clap::Args;
use serde::Serialize;
use slipway_runner::history::{History, HistoryQuery};
use slipway_store::{Release, StackRun, Store, UnixMillis, human_duration};

use super::ExitStatus;
use crate::pipeline::{interrupted, short_commit, short_id};
use crate::project::Workspace;
use crate::project::{check_stack, find_stage};
use crate::record;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only this stack.
    #[arg(long, value_name = "STACK")]
    pub stack: Option<String>,
    /// Only this stage.
    #[arg(long, short = 's', value_name = "STAGE")]
    pub stage: Option<String>,
    /// How many runs to show, newest first.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Cell<'a> {
    artifact_id: &'a str,
    short_id: &'a str,
    commit: &'a str,
    released_at: String,
    age_seconds: u64,
    released_by: &'a str,
    run_id: Option<i64>,
}

#[derive(Debug, Serialize)]
struct Row<'a> {
    stack: &'a str,
    /// Stage name -> its current release; stages without one are absent.
    stages: BTreeMap<&'a str, Cell<'a>>,
    /// True when the stages that run the stack do not all run the same artifact, or some
    /// stage does not run it yet.
    differs: bool,
}

/// `slipway status`.
pub async fn status(workspace: &Workspace, args: &StatusArgs) -> Result<ExitStatus> {
    let store = record::open(workspace).await?;
    let releases = store.current_releases().await?;
    let now = UnixMillis::now();
    let stage_names = workspace.project.stage_names();
    let rows: Vec<Row> = workspace
        .project
        .graph
        .topological_order()
        .into_iter()
        .map(|stack| {
            let stages: BTreeMap<&str, Cell> = releases
                .iter()
                .filter(|r| r.stack == stack)
                .map(|r| (r.stage.as_str(), cell(r, now)))
                .collect();
            let first = stages.values().next().map(|c| c.artifact_id);
            let differs = stages.len() != stage_names.len()
                || stages.values().any(|c| Some(c.artifact_id) != first);
            Row {
                stack,
                stages,
                differs,
            }
        })
        .collect();
    if args.json {
        let doc = serde_json::json!({ "stages": stage_names, "stacks": rows });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitStatus::Success);
    }
    let width = rows.iter().map(|r| r.stack.len()).max().unwrap_or(5).max(5);
    let mut header = format!("{:<width$}", "STACK");
    for stage in &stage_names {
        header.push_str(&format!("  {stage:<32}"));
    }
    println!("{}", header.trim_end());
    for row in &rows {
        let mut line = format!("{:<width$}", row.stack);
        for stage in &stage_names {
            let text = row.stages.get(stage).map_or_else(
                || "-".to_owned(),
                |c| {
                    format!(
                        "{} {} {}",
                        c.short_id,
                        short_commit(c.commit),
                        age(c.age_seconds)
                    )
                },
            );
            line.push_str(&format!("  {text:<32}"));
        }
        if row.differs {
            line.push_str("  (stages differ)");
        }
        println!("{}", line.trim_end());
    }
    interrupted::report(workspace, &store).await?;
    Ok(ExitStatus::Success)
}

fn cell(release: &Release, now: UnixMillis) -> Cell<'_> {
    Cell {
        artifact_id: &release.artifact_id,
        short_id: short_id(&release.artifact_id),
        commit: &release.commit,
        released_at: release.released_at.to_rfc3339(),
        age_seconds: now.since(release.released_at).as_secs(),
        released_by: &release.released_by,
        run_id: release.run_id,
    }
}

fn age(seconds: u64) -> String {
    format!(
        "{} ago",
        human_duration(std::time::Duration::from_secs(seconds))
    )
}

/// A stack run's plan as `+add ~change -destroy`, the way the engine counts it.
fn plan_counts(stack_run: &StackRun) -> String {
    let counts = stack_run
        .plan_summary
        .as_deref()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .and_then(|summary| summary.get("counts").cloned());
    let Some(counts) = counts else {
        return String::new();
    };
    let count = |key: &str| counts.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
    format!(
        "+{} ~{} -{}",
        count("add"),
        count("change"),
        count("destroy")
    )
}

/// `slipway history`.
pub async fn history(workspace: &Workspace, args: &HistoryArgs) -> Result<ExitStatus> {
    if let Some(stage) = &args.stage {
        find_stage(workspace, stage)?;
    }
    if let Some(stack) = &args.stack {
        check_stack(workspace, stack)?;
    }
    let History { runs, releases } = slipway_runner::history::history(
        workspace,
        &HistoryQuery {
            stage: args.stage.clone(),
            stack: args.stack.clone(),
            limit: args.limit,
        },
    )
    .await?;
    if args.json {
        let doc = serde_json::json!({ "runs": runs, "releases": releases });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitStatus::Success);
    }
    println!("runs (newest first):");
    for entry in &runs {
        let run = &entry.run;
        println!(
            "  run {}  {}  {}  commit {}  by {}  {}",
            run.id,
            run.started_at.to_rfc3339(),
            run.trigger,
            short_commit(&run.commit),
            run.actor,
            match &entry.rejected {
                Some(r) => format!(
                    "rejected by {}{}",
                    r.by,
                    r.reason
                        .as_deref()
                        .map(|why| format!(": {why}"))
                        .unwrap_or_default()
                ),
                None => run.status.to_string(),
            }
        );
        for stage in &entry.stages {
            println!("    {:<10} {}", stage.stage, stage.status);
            for stack in entry.stacks.iter().filter(|s| s.stage == stage.stage) {
                println!(
                    "      {:<16} {:<12} {:<14} {}",
                    stack.stack,
                    stack.status.to_string(),
                    stack.artifact_id.as_deref().map(short_id).unwrap_or("-"),
                    plan_counts(stack)
                );
                if let Some(why) = &stack.failure_reason {
                    println!("        why: {why}");
                }
            }
        }
    }
    println!("releases (newest first):");
    for r in &releases {
        println!(
            "  {}  {}/{}  {}  commit {}  by {}{}",
            r.released_at.to_rfc3339(),
            r.stage,
            r.stack,
            short_id(&r.artifact_id),
            short_commit(&r.commit),
            r.released_by,
            r.run_id.map(|id| format!("  run {id}")).unwrap_or_default()
        );
    }
    Ok(ExitStatus::Success)
}
