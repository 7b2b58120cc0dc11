//! A stage's stack applies (and plans) spread over workers: each ready stack instance
//! becomes a job of its own (`step`), which any worker carrying the stage's labels may take.
//!
//! The worker delivering the run (the *delivering* worker) records the stage run and its
//! stack runs as any delivery does, then walks the stack graph through the queue instead of
//! applying itself: a stack whose dependencies have succeeded is queued as a step job, and
//! the step's end in the record decides what becomes ready next. While it waits, the
//! delivering worker takes its own run's queued steps one at a time, so a run progresses on
//! one worker as on many; other workers take the rest.
//!
//! A step job ([`super::step::apply_step`]) is one stack's delivery: it fetches and verifies the stack's
//! artifact, reads its dependencies' outputs from their state, takes the instance lock,
//! confirms its own claim, applies (an approved stage's saved plan, fetched from the
//! artifact store and checked against the approved hash), and records the stack run, the
//! release and the audit entry, exactly as a whole-stage delivery records each stack.
//!
//! A stage that asks for approval is planned the same way: each step plans one stack and
//! keeps its plan (in the artifact store, under its hash) and its blast radius report with
//! the stack run. A dependent whose inputs read outputs a dependency's plan changes is not
//! planned but recorded blocked, as a walk on one machine records it: the delivering worker
//! reads that from the dependency's recorded report.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result};
use slipway_core::Stage;
use slipway_core::schedule::{DependencyQueue, Status, Walk};
use slipway_store::{AnyStore, StackRunOutcome, StackRunStatus, StageRunStatus, Store};

use crate::events::{Event, FailedStack};
use crate::executor::Outcome;
use crate::project::{StepQueue, StepRequest, Workspace};

/// How often the delivering worker looks for its steps' ends in the record.
const STEP_POLL: Duration = Duration::from_millis(250);

/// How long the record may refuse the delivering worker (a database restarting) before the
/// stage is given up; its steps go on meanwhile.
const RECORD_PATIENCE: Duration = Duration::from_secs(120);

/// Runs `attempt` again (1 s apart, then 2 s, up to 10 s) while the record refuses it, for up
/// to [`RECORD_PATIENCE`]; says so once.
async fn patiently<'a, T>(
    events: &crate::events::Reporter,
    mut attempt: impl FnMut() -> crate::project::StepFuture<'a, Result<T>>,
) -> Result<T> {
    let deadline = tokio::time::Instant::now() + RECORD_PATIENCE;
    let mut pause = Duration::from_secs(1);
    let mut warned = false;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if tokio::time::Instant::now() < deadline => {
                if !warned {
                    warned = true;
                    events.warning(
                        None,
                        format!("warning: the record does not answer ({error:#}); trying again"),
                    );
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(10));
            }
            Err(error) => return Err(error),
        }
    }
}

/// A stage whose stack runs are recorded, to be delivered through step jobs.
pub(crate) struct Spread<'a> {
    pub workspace: &'a Workspace,
    pub store: &'a AnyStore,
    pub steps: &'a dyn StepQueue,
    pub run_id: i64,
    pub stage: &'a Stage,
    pub stage_run_id: i64,
    /// Plans for an approval instead of applying.
    pub plan_only: bool,
    /// The stacks to apply (or plan), in graph order.
    pub order: &'a [String],
    pub stack_runs: &'a BTreeMap<String, i64>,
}

/// What a stack's step came to, read from the record once its job ended.
struct StepResult {
    succeeded: bool,
    outcome: Outcome,
    /// A plan's blast radius report, as recorded with the plan.
    report: Option<slipway_plan::InstanceReport>,
}

impl StepResult {
    /// A stack whose step never ran: the delivering worker stopped before queueing it, or
    /// withdrew it before anyone took it.
    fn not_started() -> Self {
        Self {
            succeeded: false,
            outcome: Outcome::NotStarted,
            report: None,
        }
    }
}

/// Delivers the stage through step jobs; see the module's documentation.
/// Returns whether every stack succeeded.
pub(crate) async fn deliver_spread(spread: Spread<'_>) -> Result<bool> {
    let Spread {
        workspace,
        store,
        steps,
        run_id,
        stage,
        stage_run_id,
        plan_only,
        order,
        stack_runs,
    } = spread;
    let step_name = if plan_only { "plan" } else { "apply" };
    // Planning: stacks whose inputs read outputs a dependency's plan changes, with why; they
    // are recorded blocked instead of planned, as a walk on one machine records them.
    let mut blocked: BTreeMap<String, String> = BTreeMap::new();
    let events = workspace.reporter(&stage.name);
    let names: BTreeSet<&str> = order.iter().map(String::as_str).collect();
    let mut queue = DependencyQueue::new(&workspace.project.graph, &names, Walk::Forward);
    let mut waiting: BTreeMap<i64, String> = BTreeMap::new();
    let mut results: BTreeMap<String, StepResult> = BTreeMap::new();
    let mut stopped: Option<String> = None;
    let interrupt = workspace.interrupts.interrupt();
    // The step this worker runs itself, if any; `false` until the queue had none to give.
    let mut own: Option<crate::project::LocalFuture<'_, Result<Option<i64>>>> = None;
    let mut own_found_none = false;
    loop {
        if stopped.is_none() && interrupt.is_set() {
            stopped = Some("interrupted: no further stack is queued".to_owned());
        }
        while stopped.is_none() {
            let ready = queue.take_ready(usize::MAX);
            if ready.is_empty() {
                break;
            }
            for name in ready {
                // A worker whose job was taken from it queues nothing more: whoever holds
                // the job now decides what the stage runs.
                let still_ours = match &workspace.claim {
                    Some(claim) => claim.confirm().await,
                    None => true,
                };
                if !still_ours {
                    stopped = Some(
                        "this worker's job was taken from it while it worked (its lease ran out); no further stack is queued"
                            .to_owned(),
                    );
                }
                if stopped.is_some() {
                    queue.finish(&name, false);
                    results.insert(name, StepResult::not_started());
                    continue;
                }
                if let Some(reason) = blocked.get(&name).cloned() {
                    let id = stack_run_of(stack_runs, &name)?;
                    let summary = serde_json::json!({ "blocked": reason }).to_string();
                    patiently(&events, || {
                        Box::pin(async {
                            store.record_plan(id, &summary).await?;
                            Ok(())
                        })
                    })
                    .await?;
                    let outcome = Outcome::InputsUnknown { reason };
                    events.emit(Event::StackFinished {
                        stage: stage.name.clone(),
                        instance: stage.name.clone(),
                        stack: name.clone(),
                        outcome: outcome.clone(),
                        elapsed_ms: 0,
                        log: None,
                        plan: None,
                    });
                    queue.finish(&name, true);
                    results.insert(
                        name,
                        StepResult {
                            succeeded: true,
                            outcome,
                            report: None,
                        },
                    );
                    continue;
                }
                let request = StepRequest {
                    run: run_id,
                    stage: stage.name.clone(),
                    stack: name.clone(),
                    labels: stage.worker_labels.clone(),
                };
                let job = patiently(&events, || steps.queue(&request))
                    .await
                    .with_context(|| format!("cannot queue the {step_name} of `{name}`"))?;
                events.note(
                    Some(&name),
                    format!("{}/{name}: {step_name} queued as job {job}", stage.name),
                );
                waiting.insert(job, name);
            }
        }
        if stopped.is_some() {
            // Steps nobody took yet are not left for anyone: only those running are waited
            // for (a worker that stops must not wait on a queue it no longer serves).
            for (job, name) in waiting.clone() {
                if patiently(&events, || steps.withdraw(job)).await? {
                    waiting.remove(&job);
                    queue.finish(&name, false);
                    results.insert(name, StepResult::not_started());
                }
            }
        }
        if waiting.is_empty() && own.is_none() {
            break;
        }
        if own.is_none() && !own_found_none && stopped.is_none() {
            own = Some(steps.run_one_of(run_id));
        }
        let ran_own = tokio::select! {
            ran = async {
                match own.as_mut() {
                    Some(running) => running.await,
                    None => std::future::pending().await,
                }
            } => Some(ran),
            () = tokio::time::sleep(STEP_POLL) => None,
        };
        match ran_own {
            Some(ran) => {
                own = None;
                own_found_none = matches!(ran, Ok(None));
                if let Err(error) = ran {
                    events.warning(
                        None,
                        format!("warning: a step could not be run here: {error:#}"),
                    );
                    own_found_none = true;
                }
            }
            None => own_found_none = false,
        }
        for (job, name) in waiting.clone() {
            let Some(end) = patiently(&events, || steps.ended(job)).await? else {
                continue;
            };
            waiting.remove(&job);
            let result = patiently(&events, || {
                Box::pin(step_result(
                    store, run_id, &name, stack_runs, &end, plan_only,
                ))
            })
            .await?;
            if let Some(report) = &result.report {
                for (reader, reason) in
                    crate::executor::inputs_changed_by(&name, &stage.name, report)
                {
                    blocked.entry(reader).or_insert(reason);
                }
            }
            queue.finish(&name, result.succeeded);
            results.insert(name, result);
        }
    }

    // Stacks never queued: skipped after a failure upstream, or left when the work stopped.
    for (name, status) in queue.status() {
        if results.contains_key(name) {
            continue;
        }
        let outcome = match status {
            Status::Skipped { because } => Outcome::Skipped {
                because: because.clone(),
            },
            _ => Outcome::NotStarted,
        };
        results.insert(
            name.clone(),
            StepResult {
                succeeded: false,
                outcome,
                report: None,
            },
        );
    }
    for (name, result) in &results {
        if !matches!(
            result.outcome,
            Outcome::Skipped { .. } | Outcome::NotStarted
        ) {
            continue;
        }
        if let Some(&id) = stack_runs.get(name) {
            let skipped = StackRunOutcome {
                status: StackRunStatus::Skipped,
                plan_summary: None,
                log_path: None,
                failure_reason: stopped.clone(),
            };
            patiently(&events, || {
                Box::pin(async {
                    store.finish_stack_run(id, &skipped).await?;
                    Ok(())
                })
            })
            .await?;
        }
        events.emit(Event::StackFinished {
            stage: stage.name.clone(),
            instance: stage.name.clone(),
            stack: name.clone(),
            outcome: result.outcome.clone(),
            elapsed_ms: 0,
            log: None,
            plan: None,
        });
    }
    let ok = stopped.is_none() && results.values().all(|r| r.succeeded);
    let status = match (ok, plan_only) {
        (true, true) => StageRunStatus::AwaitingApproval,
        (true, false) => StageRunStatus::Succeeded,
        (false, _) => StageRunStatus::Failed,
    };
    patiently(&events, || {
        Box::pin(async {
            store.set_stage_run_status(stage_run_id, status).await?;
            Ok(())
        })
    })
    .await?;
    events.emit(Event::StageFinished {
        stage: stage.name.clone(),
        planned_only: plan_only,
        succeeded: results.values().filter(|r| r.succeeded).count(),
        total: results.len(),
        run_dir: workspace.data_dir().join("runs"),
        failed: order
            .iter()
            .filter_map(|name| {
                let result = results.get(name)?;
                (!result.succeeded).then(|| FailedStack {
                    stack: name.clone(),
                    outcome: result.outcome.clone(),
                    elapsed_ms: 0,
                    log: None,
                })
            })
            .collect(),
    });
    Ok(ok)
}

/// The stack run recorded for stack `name`.
fn stack_run_of(stack_runs: &BTreeMap<String, i64>, name: &str) -> Result<i64> {
    stack_runs
        .get(name)
        .copied()
        .with_context(|| format!("no stack run for `{name}`"))
}

/// What stack `name`'s step came to: its stack run as the step recorded it (a plan: still
/// pending, with its plan kept). A step that ended without recording its stack run (it
/// failed before the apply or plan, or its worker was lost) leaves it failed here, with the
/// queue's words, unless it was mid-apply: that stays `applying` for a person to resolve, as
/// after any crash.
async fn step_result(
    store: &AnyStore,
    run_id: i64,
    name: &str,
    stack_runs: &BTreeMap<String, i64>,
    end: &crate::project::StepEnd,
    plan_only: bool,
) -> Result<StepResult> {
    let id = stack_run_of(stack_runs, name)?;
    let recorded = store
        .stack_runs(run_id)
        .await?
        .into_iter()
        .find(|r| r.id == id)
        .with_context(|| format!("stack run {id} of `{name}` is gone from the record"))?;
    let planned = recorded
        .plan_summary
        .as_deref()
        .filter(|_| plan_only && recorded.status == StackRunStatus::Pending)
        .and_then(|summary| serde_json::from_str::<serde_json::Value>(summary).ok());
    if let Some(summary) = planned {
        let outcome = match summary.get("blocked").and_then(|b| b.as_str()) {
            Some(reason) => Outcome::InputsUnknown {
                reason: reason.to_owned(),
            },
            None => Outcome::Planned {
                changes: summary
                    .get("changes")
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(true),
            },
        };
        return Ok(StepResult {
            succeeded: true,
            outcome,
            report: summary
                .get("report")
                .and_then(|r| serde_json::from_value(r.clone()).ok()),
        });
    }
    let result = match recorded.status {
        StackRunStatus::Succeeded => StepResult {
            succeeded: true,
            outcome: Outcome::Applied { changed: true },
            report: None,
        },
        StackRunStatus::Applying | StackRunStatus::Interrupted => StepResult {
            succeeded: false,
            outcome: Outcome::Interrupted { mid_apply: true },
            report: None,
        },
        StackRunStatus::Pending => {
            let reason = format!(
                "its step job ended without {}: {}",
                if plan_only { "planning" } else { "applying" },
                end.outcome
            );
            store
                .finish_stack_run(
                    id,
                    &StackRunOutcome {
                        status: StackRunStatus::Failed,
                        plan_summary: None,
                        log_path: None,
                        failure_reason: Some(reason.clone()),
                    },
                )
                .await?;
            StepResult {
                succeeded: false,
                outcome: Outcome::Failed { error: reason },
                report: None,
            }
        }
        StackRunStatus::Failed | StackRunStatus::Skipped => StepResult {
            succeeded: false,
            outcome: Outcome::Failed {
                error: recorded
                    .failure_reason
                    .clone()
                    .unwrap_or_else(|| end.outcome.clone()),
            },
            report: None,
        },
    };
    Ok(result)
}
