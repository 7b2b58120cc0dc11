//! `slipway recover --stage S`: brings a stage back after its cloud resources were lost.
//! First each stack instance's state is probed for what still exists (the runner's
//! `verify::recover`); a stack whose resources are all gone has its state set aside, kept as
//! a backup file, and is rebuilt from empty state as a drill rebuilds it, so no provider's
//! minutes-long retries of reads of missing resources stand in the way. Then every stack's
//! released artifact is applied again, in dependency order and in parallel where the graph
//! allows: on the others' own state, whose refresh finds what no longer exists, so only that
//! is recreated. A stage with no releases is recovered from the working tree, saying so. Then
//! the stacks' checks run; what was rebuilt per stack and how long it took are reported and
//! kept in the audit log.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Instant, SystemTime};

use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;
use serde_json::json;
use slipway_plan::ActionKind;
use slipway_runner::locks::HeldInstances;
use slipway_store::{AnyStore, RunStatus, Store as _};

use super::ExitStatus;
use super::deliver::RunOptions;
use crate::executor::{Operation, Outcome, StackResult};
use crate::project::Workspace;
use crate::project::find_stage;
use crate::record;
use crate::stage_executor::ExecutorOptions;
use crate::verify::checks::{CheckResult, run_all_checks};
use crate::verify::recover::{self, Loss, StackProbe};
use crate::verify::{instance, millis, released, seconds};

#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The stage to bring back.
    #[arg(long, short = 's', value_name = "STAGE")]
    pub stage: String,
    /// Stream the recovery's events as JSON lines on stdout, its result last (docs/events.md).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub options: RunOptions,
}

/// One stack's part in a recovery.
#[derive(Debug, Default, Serialize)]
struct StackRecovery {
    /// The released artifact applied; none when the working tree was.
    artifact_id: Option<String>,
    /// What the probe found before anything was applied.
    found: Option<Loss>,
    /// Where its state was set aside before it was rebuilt from empty state (lost stacks).
    state_backup: Option<String>,
    recovered: bool,
    /// Addresses recreated (they were gone), replaced and updated (they had drifted).
    created: Vec<String>,
    replaced: Vec<String>,
    updated: Vec<String>,
    ms: u64,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct Recovery {
    stage: String,
    /// `released artifacts` or `working tree` (nothing was released to the stage).
    source: String,
    stacks: BTreeMap<String, StackRecovery>,
    recovery_ms: u64,
    /// The part of the recovery time spent establishing what is gone.
    probe_ms: u64,
    /// Things worth knowing that did not stop the recovery.
    notes: Vec<String>,
    checks: Vec<CheckResult>,
    problems: Vec<String>,
    succeeded: bool,
}

/// `slipway recover`.
pub async fn run(workspace: &Workspace, args: &RecoverArgs) -> Result<ExitStatus> {
    let project = &workspace.project;
    let stage = find_stage(workspace, &args.stage)?;
    // The report names what each stack recreated, so every apply is measured.
    let options = ExecutorOptions {
        measure_applies: true,
        ..args.options.executor()
    };
    let store = record::open(workspace).await?;
    refuse_while_locked(&store, &stage.name).await?;
    let all: BTreeSet<String> = project.stacks.iter().map(|s| s.name.clone()).collect();
    let released = released::fetch(workspace, &store, &stage.name, &all).await?;
    let source = if released.artifacts.is_empty() {
        eprintln!(
            "nothing was released to {}: recovering it from the working tree",
            stage.name
        );
        "working tree"
    } else {
        if !released.unreleased.is_empty() {
            eprintln!(
                "no release in {} of {}: those come from the working tree",
                stage.name,
                released
                    .unreleased
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        "released artifacts"
    };
    eprintln!(
        "recovering {} from its {source}, on its own state",
        stage.name
    );
    // An emergency rebuild recreates what the stage had; its blast radius policy is written
    // for changes of the code, and must not stand between a stage and its recovery.
    let executor = instance::executor(
        workspace,
        stage,
        &stage.name,
        &all,
        &options,
        released.code(),
    )?;
    // Checked above for a clear refusal; taken here so that nothing starts on the stage
    // between that check and the walk.
    let locks = HeldInstances::acquire(workspace, &store, "recover", &stage.name, &all).await?;
    let started = Instant::now();
    let (probes, notes) =
        establish_losses(workspace, stage, &all, &options, &executor, &released).await;
    let probe_ms = millis(started.elapsed());
    let results = executor.walk(&all, Operation::Apply).await;
    let elapsed = started.elapsed();
    locks
        .release(if results.iter().all(|r| !r.outcome.is_failure()) {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        })
        .await;
    let mut recovery = Recovery {
        stage: stage.name.clone(),
        source: source.to_owned(),
        stacks: BTreeMap::new(),
        recovery_ms: millis(elapsed),
        probe_ms,
        notes,
        checks: Vec::new(),
        problems: Vec::new(),
        succeeded: false,
    };
    for result in &results {
        let mut part = stack_recovery(result, released.artifacts.get(&result.stack).cloned());
        if let Some(probe) = probes.get(&result.stack) {
            part.found = Some(probe.loss);
            part.state_backup = probe.backup.as_ref().map(|p| p.display().to_string());
            if part.recovered
                && result.report.is_none()
                && let Some(backup) = &probe.backup
            {
                part.created = std::fs::read(backup)
                    .map(|state| {
                        slipway_engine::state::state_instances(&state)
                            .into_iter()
                            .map(|i| i.address)
                            .collect()
                    })
                    .unwrap_or_default();
            }
        }
        if let Some(error) = &part.error {
            recovery.problems.push(format!("{}: {error}", result.stack));
        }
        recovery.stacks.insert(result.stack.clone(), part);
    }
    if recovery.problems.is_empty() {
        recovery.checks = run_all_checks(&executor, &project.stacks, &mut recovery.problems).await;
    }
    recovery.succeeded = recovery.problems.is_empty();
    let rebuilt: usize = recovery
        .stacks
        .values()
        .map(|s| s.created.len() + s.replaced.len())
        .sum();
    record::audit(
        workspace,
        &store,
        slipway_store::AuditAction::Recover,
        &stage.name,
        "",
        None,
        json!({
            "succeeded": recovery.succeeded,
            "source": source,
            "recovery_ms": recovery.recovery_ms,
            "probe_ms": recovery.probe_ms,
            "notes": recovery.notes,
            "rebuilt": rebuilt,
            "stacks": recovery.stacks,
            "problems": recovery.problems,
        }),
    )
    .await?;
    if args.json {
        super::stream_report(workspace, "recovery", &recovery)?;
    } else {
        print(&recovery, rebuilt);
    }
    Ok(if recovery.succeeded {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

/// Probes every stack instance of the stage for what still exists, and sets aside the state
/// of each one found lost (kept as a backup file), so its apply builds it from zero. Returns
/// the probes, and notes on anything that did not go to plan (the stack is then applied on
/// its own state, which is slower but as correct).
async fn establish_losses(
    workspace: &Workspace,
    stage: &slipway_core::Stage,
    all: &BTreeSet<String>,
    options: &ExecutorOptions,
    executor: &crate::executor::Executor,
    released: &released::Released,
) -> (BTreeMap<String, StackProbe>, Vec<String>) {
    let mut notes = Vec::new();
    let prober =
        match instance::executor(workspace, stage, &stage.name, all, options, released.code()) {
            Ok(prober) => prober,
            Err(error) => {
                notes.push(format!("what is gone was not established: {error:#}"));
                return (BTreeMap::new(), notes);
            }
        };
    let mut probes = recover::probe_instance(&prober, all).await;
    let stamp = recover::stamp(SystemTime::now());
    for (stack, probe) in &mut probes {
        if let Some(error) = &probe.error {
            notes.push(format!(
                "{stack}: what is gone was not established: {error}"
            ));
        }
        if probe.loss != Loss::Lost {
            continue;
        }
        match recover::set_aside(executor, stack, &stamp).await {
            Ok(backup) => {
                // Rebuilt from empty state, it creates everything it had: the report says
                // so from the state set aside, with no `show -json` before its apply.
                executor.leave_unmeasured(stack);
                probe.backup = Some(backup);
            }
            Err(error) => {
                probe.loss = Loss::Unknown;
                notes.push(format!(
                    "{stack}: its state could not be set aside ({error:#}): recovered on its own state"
                ));
            }
        }
    }
    (probes, notes)
}

/// A recovery re-applies every stack of the stage, so it must not start while a run holds
/// any of them (nor after one died holding them: what it left must be looked at first).
async fn refuse_while_locked(store: &AnyStore, stage: &str) -> Result<()> {
    let held: Vec<String> = store
        .instance_locks()
        .await?
        .into_iter()
        .filter(|held| held.lock.instance == stage)
        .map(|held| format!("  {held}"))
        .collect();
    if !held.is_empty() {
        bail!(
            "cannot recover {stage} while its stack instances are locked:\n{}\n  help: wait for that run to finish; if its process is gone, `slipway status` names the interrupted apply and `slipway resolve-interrupted` frees its lock",
            held.join("\n")
        );
    }
    Ok(())
}

fn stack_recovery(result: &StackResult, artifact_id: Option<String>) -> StackRecovery {
    let mut part = StackRecovery {
        artifact_id,
        found: None,
        state_backup: None,
        ms: millis(result.elapsed),
        ..StackRecovery::default()
    };
    if let Some(report) = &result.report {
        let addresses = &report.blast_radius.addresses;
        let of = |kind: ActionKind| addresses.get(&kind).cloned().unwrap_or_default();
        part.created = of(ActionKind::Create);
        part.replaced = of(ActionKind::Replace);
        part.updated = of(ActionKind::Update);
    }
    match &result.outcome {
        Outcome::Applied { .. } => part.recovered = true,
        Outcome::Failed { error } => part.error = Some(result.failure_reason(error)),
        Outcome::Skipped { because } => {
            part.error = Some(format!("not recovered: `{because}` did not recover"));
        }
        Outcome::Interrupted { .. } => part.error = Some("interrupted".to_owned()),
        other => part.error = Some(format!("{other:?}")),
    }
    part
}

fn print(recovery: &Recovery, rebuilt: usize) {
    println!(
        "recovery of {} from its {}: {}",
        recovery.stage,
        recovery.source,
        if recovery.succeeded {
            "succeeded"
        } else {
            "FAILED"
        }
    );
    for (stack, part) in &recovery.stacks {
        let found = part
            .found
            .map(|loss| format!("{}; ", loss.describe()))
            .unwrap_or_default();
        let what = if !part.recovered {
            "not recovered".to_owned()
        } else if part.created.is_empty() && part.replaced.is_empty() && part.updated.is_empty() {
            format!("intact ({})", seconds(part.ms))
        } else {
            let mut counts = Vec::new();
            for (n, word) in [
                (part.created.len(), "recreated"),
                (part.replaced.len(), "replaced"),
                (part.updated.len(), "updated"),
            ] {
                if n > 0 {
                    counts.push(format!("{n} {word}"));
                }
            }
            format!("{} in {}", counts.join(", "), seconds(part.ms))
        };
        println!("  {stack:<16} {found}{what}");
        if let Some(backup) = &part.state_backup {
            println!("    state set aside (kept) in {backup}");
        }
        for address in part
            .created
            .iter()
            .chain(&part.replaced)
            .chain(&part.updated)
        {
            println!("    {address}");
        }
        if let Some(error) = &part.error {
            println!("    why: {error}");
        }
    }
    println!(
        "recovery time: {} ({rebuilt} resource{} rebuilt, {} of {} stacks recovered; {} of it establishing what was gone)",
        seconds(recovery.recovery_ms),
        if rebuilt == 1 { "" } else { "s" },
        recovery.stacks.values().filter(|s| s.recovered).count(),
        recovery.stacks.len(),
        seconds(recovery.probe_ms),
    );
    for note in &recovery.notes {
        println!("  note: {note}");
    }
    for check in &recovery.checks {
        println!("{check}");
    }
    if !recovery.succeeded {
        eprintln!("recovery failed:");
        for problem in &recovery.problems {
            eprintln!("  {problem}");
        }
        eprintln!(
            "  help: fix what is named above and run `slipway recover --stage {}` again: stacks already back are left as they are",
            recovery.stage
        );
    }
}
