//! `slipway plan`, `apply` and `destroy`: one operation over the stacks of one stage.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use slipway_core::Stage;
use slipway_engine::{Engine, Interrupt, locate_engine};

use super::ExitStatus;
use crate::cli::StageArgs;
use crate::credentials;
use crate::executor::{Executor, ExecutorSetup, Operation, Outcome, StackResult};
use crate::project::Workspace;

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
    let project = &workspace.project;
    let stage = find_stage(workspace, &args.stage)?;
    let selected = select(workspace, args, operation)?;
    if selected.is_empty() {
        eprintln!("nothing to do: the project has no stacks");
        return Ok((ExitStatus::Success, Vec::new()));
    }

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
        executor.progress.note(&format!(
            "reading outputs of {} for their dependents' inputs",
            needed.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
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

/// Per-invocation overrides of the project's execution settings.
#[derive(Debug, Default)]
pub struct ExecutorOptions {
    pub parallelism: Option<usize>,
    pub verbose: bool,
    pub step_timeout: Option<std::time::Duration>,
    /// Measure the blast radius of every apply, even where the stage has no policy, for
    /// commands that report what each apply changed.
    pub measure_applies: bool,
}

/// An executor for `stage` whose engine processes may work on `stacks`: the engine found,
/// credentials fetched, a run folder created, Ctrl-C wired to the interrupt.
pub fn executor_for(
    workspace: &Workspace,
    stage: &Stage,
    stacks: &BTreeSet<String>,
    options: &ExecutorOptions,
) -> Result<Arc<Executor>> {
    let project = &workspace.project;
    let data_dir = workspace.ensure_data_dir()?;
    let binary = locate_engine(
        project.engine,
        std::env::var("SLIPWAY_ENGINE").ok().as_deref(),
        std::env::var("PATH").ok().as_deref(),
    )?;
    let execution = &project.execution;
    let run_dir = data_dir.join("runs").join(run_id()).join(&stage.name);
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("cannot create {}", run_dir.display()))?;

    let (trigger, interrupt) = Interrupt::channel();
    let grace = execution.interrupt_grace;
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "\ninterrupt: asking running engine steps to stop and save their state (up to {} before they are killed)",
                humantime::format_duration(grace)
            );
            trigger.fire();
        }
    });

    let environment = credentials::stage_environment(
        project,
        stage,
        stacks,
        &workspace.root,
        &std::env::vars().collect(),
    )?;
    let engine = Engine::new(
        binary,
        &data_dir,
        environment.base.clone(),
        options.step_timeout.unwrap_or(execution.step_timeout),
        execution.interrupt_grace,
    );
    Ok(Arc::new(Executor::new(ExecutorSetup {
        root: workspace.root.clone(),
        data_dir,
        project: project.clone(),
        stage: stage.clone(),
        engine,
        run_dir,
        parallelism: options.parallelism.unwrap_or(execution.parallelism),
        verbose: options.verbose,
        interrupt,
        environment,
        measure_applies: options.measure_applies,
    })))
}

/// The stage named on the command line.
pub fn find_stage<'a>(workspace: &'a Workspace, name: &str) -> Result<&'a Stage> {
    let project = &workspace.project;
    project.stage(name).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown stage `{name}`\n  help: the stages in slipway.hcl are: {}",
            project.stage_names().join(", ")
        )
    })
}

/// The stack named on the command line.
pub fn check_stack(workspace: &Workspace, name: &str) -> Result<()> {
    let project = &workspace.project;
    if project.stack(name).is_none() {
        let known: Vec<&str> = project.stacks.iter().map(|s| s.name.as_str()).collect();
        bail!(
            "unknown stack `{name}`\n  help: the stacks are: {}",
            known.join(", ")
        );
    }
    Ok(())
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
            executor.progress.note(&format!(
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
    let failed = count(|o| matches!(o, Outcome::Failed { .. }));
    let skipped = count(|o| matches!(o, Outcome::Skipped { .. }));
    let interrupted: Vec<&StackResult> = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Interrupted { .. } | Outcome::NotStarted))
        .collect();
    let changes = count(|o| {
        matches!(
            o,
            Outcome::Planned { changes: true } | Outcome::Blocked { .. }
        )
    });
    for result in results {
        match &result.outcome {
            Outcome::Skipped { because } => eprintln!(
                "  {stage}/{}: skipped, because `{because}` did not succeed",
                result.stack
            ),
            Outcome::Failed { .. } => eprintln!(
                "failed: {stage}/{} after {:.1}s; log: {}",
                result.stack,
                result.elapsed.as_secs_f64(),
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

/// A sortable, unique-enough run id: UTC time plus the process id.
fn run_id() -> String {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let compact: String = stamp
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    format!("{compact}-{}", std::process::id())
}
