//! `slipway plan`, `apply` and `destroy`: one operation over the stacks of one stage.

use std::collections::BTreeSet;

use anyhow::Result;
use slipway_core::Stage;
use slipway_runner::locks::HeldInstances;
use slipway_store::RunStatus;

use super::ExitStatus;
use super::approval::ApprovalArgs;
use crate::executor::{Executor, Operation, Outcome, StackResult};
use crate::project::{Workspace, check_stack, find_stage};
use crate::record;
use crate::stage_executor::{ExecutorOptions, executor_for};
use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct StageArgs {
    /// The stage to work on (as named in slipway.hcl).
    #[arg(long, short = 's', value_name = "STAGE")]
    pub stage: String,
    /// Only these stacks (repeatable), plus the stacks they depend on unless --only is given.
    #[arg(long = "stack", value_name = "STACK")]
    pub stacks: Vec<String>,
    /// With --stack: do not pull in dependencies; their outputs are read from their current state.
    #[arg(long, requires = "stacks")]
    pub only: bool,
    /// How many stacks may run at once (default: `parallelism` in slipway.hcl, else 4).
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub parallelism: Option<u16>,
    /// Stream the engine's own output (prefixed with the stack) instead of progress lines.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Longest one engine step may run before it is interrupted, e.g. "20m" (default: `step_timeout` in slipway.hcl, else 1h).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub step_timeout: Option<std::time::Duration>,
    #[command(flatten)]
    pub events: super::EventsArgs,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub stage: StageArgs,
    #[command(flatten)]
    pub approval: ApprovalArgs,
    #[command(flatten)]
    pub local: super::ci::LocalStateArgs,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub stage: StageArgs,
    /// Confirm the destroy; without it slipway refuses.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub approval: ApprovalArgs,
}

/// Runs `operation`, which changes the stage, once the stage's approval (if it requires one)
/// is given and recorded.
pub async fn run_approved(
    workspace: &Workspace,
    args: &StageArgs,
    approval: &ApprovalArgs,
    operation: Operation,
) -> Result<ExitStatus> {
    let command = match operation {
        Operation::Destroy => "destroy",
        _ => "apply",
    };
    let stage = find_stage(workspace, &args.stage)?;
    if let Some(approval) = approval.check(stage, command)? {
        approval
            .record(
                &workspace.settings.actor,
                &record::open(workspace).await?,
                None,
            )
            .await?;
    }
    run(workspace, args, operation).await
}

/// Runs `operation` for the stage and stacks named in `args`.
pub async fn run(
    workspace: &Workspace,
    args: &StageArgs,
    operation: Operation,
) -> Result<ExitStatus> {
    Ok(run_with_results(workspace, args, operation).await?.0)
}

/// As [`run`], also returning each stack's result (with its blast radius report).
pub async fn run_with_results(
    workspace: &Workspace,
    args: &StageArgs,
    operation: Operation,
) -> Result<(ExitStatus, Vec<StackResult>)> {
    let stage = find_stage(workspace, &args.stage)?;
    let selected = select(workspace, args, operation)?;
    if selected.is_empty() {
        eprintln!("nothing to do: the project has no stacks");
        return Ok((ExitStatus::Success, Vec::new()));
    }

    // What this command may change is locked for it up front, all or none, so it never runs
    // beside a pipeline run (or another apply) of the same instances.
    let locks = match operation {
        Operation::Apply | Operation::Destroy => {
            let store = record::open(workspace).await?;
            let command = if operation == Operation::Apply {
                "apply"
            } else {
                "destroy"
            };
            Some(HeldInstances::acquire(workspace, &store, command, &stage.name, &selected).await?)
        }
        _ => None,
    };
    let walked = walk_selected(workspace, stage, args, operation, &selected).await;
    if let Some(locks) = locks {
        let status = match &walked {
            Ok((_, results))
                if results
                    .iter()
                    .any(|r| matches!(r.outcome, Outcome::Interrupted { .. })) =>
            {
                RunStatus::Interrupted
            }
            Ok((ExitStatus::Success, _)) => RunStatus::Succeeded,
            _ => RunStatus::Failed,
        };
        locks.release(status).await;
    }
    walked
}

/// Walks the selected stacks, reading first the outputs of the stacks they depend on.
async fn walk_selected(
    workspace: &Workspace,
    stage: &Stage,
    args: &StageArgs,
    operation: Operation,
    selected: &BTreeSet<String>,
) -> Result<(ExitStatus, Vec<StackResult>)> {
    let project = &workspace.project;
    let selected = selected.clone();
    let involved: BTreeSet<String> = selected
        .iter()
        .flat_map(|s| project.graph.dependencies(s).into_iter().map(str::to_owned))
        .chain(selected.iter().cloned())
        .collect();
    let options = ExecutorOptions {
        parallelism: args.parallelism.map(usize::from),
        verbose: args.verbose,
        step_timeout: args.step_timeout,
        ..ExecutorOptions::default()
    };
    let executor = executor_for(workspace, stage, &involved, &options)?;
    let run_dir = executor.run_dir.clone();
    if matches!(operation, Operation::Plan | Operation::Apply) {
        // A missing or broken Rego module stops the command before any stack runs.
        executor.analysis.check()?;
    }
    if matches!(operation, Operation::Apply | Operation::Destroy) {
        warn_about_interrupted_applies(&executor, &selected);
    }

    // Stacks outside the selection whose outputs the selection reads.
    let needed: BTreeSet<String> = match operation {
        Operation::Destroy => selected
            .iter()
            .flat_map(|s| project.graph.dependencies(s))
            .chain(selected.iter().map(String::as_str))
            .map(str::to_owned)
            .collect(),
        _ => selected
            .iter()
            .flat_map(|s| project.graph.dependencies(s))
            .filter(|d| !selected.contains(*d))
            .map(str::to_owned)
            .collect(),
    };
    let mut results: Vec<StackResult> = Vec::new();
    if !needed.is_empty() {
        executor.events.note(
            None,
            format!(
                "reading outputs of {} for their dependents' inputs",
                needed.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        );
        let read = executor.walk(&needed, Operation::ReadOutputs).await;
        let failed: Vec<&StackResult> = read.iter().filter(|r| r.outcome.is_failure()).collect();
        if !failed.is_empty() {
            results.extend(failed.into_iter().cloned());
            let status = summarize(&stage.name, &run_dir, operation, &results);
            return Ok((status, results));
        }
    }
    results.extend(executor.walk(&selected, operation).await);
    let status = summarize(&stage.name, &run_dir, operation, &results);
    Ok((status, results))
}

/// The stacks an operation covers.
fn select(
    workspace: &Workspace,
    args: &StageArgs,
    operation: Operation,
) -> Result<BTreeSet<String>> {
    let project = &workspace.project;
    if args.stacks.is_empty() {
        return Ok(project.stacks.iter().map(|s| s.name.clone()).collect());
    }
    let mut named: Vec<&str> = Vec::new();
    for name in &args.stacks {
        check_stack(workspace, name)?;
        named.push(name);
    }
    let selected = match (args.only, operation) {
        (true, _) => named.into_iter().collect(),
        // Destroying a stack breaks whatever reads its outputs: those go first.
        (false, Operation::Destroy) => project.graph.with_dependents(&named),
        (false, _) => project.graph.with_dependencies(&named),
    };
    Ok(selected.into_iter().map(str::to_owned).collect())
}

fn warn_about_interrupted_applies(executor: &Executor, selected: &BTreeSet<String>) {
    for stack in selected {
        let marker = executor.applying_marker(stack);
        if let Ok(text) = std::fs::read_to_string(&marker) {
            executor.events.warning(Some(stack), format!(
                "warning: {}/{stack} was left mid-apply by an earlier run ({text}); its state may be partial.\n  \
                 slipway plans from the state as it is; inspect it with the engine's `state list` if anything looks wrong.",
                executor.stage.name
            ));
            let _ = std::fs::remove_file(marker);
        }
    }
}

fn summarize(
    stage: &str,
    run_dir: &std::path::Path,
    operation: Operation,
    results: &[StackResult],
) -> ExitStatus {
    let count = |f: fn(&Outcome) -> bool| results.iter().filter(|r| f(&r.outcome)).count();
    let failed = count(|o| {
        matches!(
            o,
            Outcome::Failed { .. } | Outcome::PolicyBlocked { .. } | Outcome::ApprovalVoid { .. }
        )
    });
    let skipped = count(|o| matches!(o, Outcome::Skipped { .. }));
    let interrupted: Vec<&StackResult> = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Interrupted { .. } | Outcome::NotStarted))
        .collect();
    let changes = count(|o| {
        matches!(
            o,
            Outcome::Planned { changes: true } | Outcome::InputsUnknown { .. }
        )
    });
    for result in results {
        match &result.outcome {
            Outcome::Skipped { because } => eprintln!(
                "  {stage}/{}: skipped, because `{because}` did not succeed",
                result.stack
            ),
            Outcome::Failed { .. }
            | Outcome::PolicyBlocked { .. }
            | Outcome::ApprovalVoid { .. } => eprintln!(
                "failed: {stage}/{} after {:.1}s: {}\n    log: {}",
                result.stack,
                result.elapsed.as_secs_f64(),
                result.why().unwrap_or_default(),
                result
                    .log
                    .as_deref()
                    .map_or_else(|| "none".to_owned(), |p| p.display().to_string())
            ),
            _ => {}
        }
    }
    let mid_apply: Vec<&str> = results
        .iter()
        .filter(|r| r.outcome == Outcome::Interrupted { mid_apply: true })
        .map(|r| r.stack.as_str())
        .collect();
    if !mid_apply.is_empty() {
        eprintln!(
            "\nleft mid-apply: {}\n  their state was saved by the engine where it could be; the next `slipway apply --stage {stage}` plans from it.",
            mid_apply
                .iter()
                .map(|s| format!("{stage}/{s}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let verb = match operation {
        Operation::Plan => "planned",
        Operation::Apply => "applied",
        Operation::Destroy => "destroyed",
        Operation::ReadOutputs => "read",
    };
    let ok = results.len() - failed - skipped - interrupted.len();
    eprintln!(
        "\n{stage}: {ok} of {} stack{} {verb}{}{}{}; logs in {}",
        results.len(),
        if results.len() == 1 { "" } else { "s" },
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        },
        if skipped > 0 {
            format!(", {skipped} skipped")
        } else {
            String::new()
        },
        if interrupted.is_empty() {
            String::new()
        } else {
            format!(", {} interrupted", interrupted.len())
        },
        run_dir.display()
    );
    if failed + skipped > 0 || !interrupted.is_empty() {
        ExitStatus::Failure
    } else if operation == Operation::Plan && changes > 0 {
        ExitStatus::ChangesPending
    } else {
        ExitStatus::Success
    }
}
