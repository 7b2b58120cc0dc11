//! A step job: one stack of a run's stage, applied for the worker delivering that stage
//! (see [`super::spread`]). It is that stack's delivery, recorded as a whole-stage delivery
//! records each stack; its events are the run's.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use slipway_core::Stage;
use slipway_store::{AnyStore, AuditAction, StackRunStatus, StageRunStatus, Store};

use super::deliver::{Deliverable, Delivery, SavedPlan, deliver, file_sha256};
use crate::project::Workspace;
use crate::stage_executor::ExecutorOptions;

/// How a step job ended, in words for the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepDone {
    /// Whether the stack was applied (or planned, at a stage awaiting approval).
    pub done: bool,
    pub summary: String,
}

/// What a step does: plan for an approval, or apply (an approved stage's saved plan).
enum StepWork {
    Plan,
    Apply(BTreeMap<String, SavedPlan>),
}

/// A step job: applies stack `stack` of run `run_id`'s stage `stage_name` (plans it, at a
/// stage that asks for approval and has none yet), whose stack run the delivering worker
/// recorded, and records what happened (see the module's documentation). Its events are
/// the run's.
pub async fn run_step(
    workspace: &Workspace,
    run_id: i64,
    stage_name: &str,
    stack: &str,
    options: &ExecutorOptions,
) -> Result<StepDone> {
    super::stages::recording(workspace, async |recorded, store, recorder| {
        recorder.bind(run_id);
        run_step_recorded(recorded, &store, run_id, stage_name, stack, options).await
    })
    .await
}

async fn run_step_recorded(
    workspace: &Workspace,
    store: &AnyStore,
    run_id: i64,
    stage_name: &str,
    stack: &str,
    options: &ExecutorOptions,
) -> Result<StepDone> {
    let run = store
        .run(run_id)
        .await?
        .with_context(|| format!("there is no run {run_id}"))?;
    let stage = workspace.project.stage(stage_name).with_context(|| {
        format!(
            "stage `{stage_name}` is not in slipway.hcl at {}",
            run.commit
        )
    })?;
    let stage_run = store
        .stage_runs(run_id)
        .await?
        .into_iter()
        .rev()
        .find(|s| s.stage == stage_name)
        .with_context(|| format!("run {run_id} has no stage run of {stage_name}"))?;
    if stage_run.status != StageRunStatus::Running {
        bail!(
            "run {run_id} is not delivering {stage_name} (its stage run is {}): `{stack}` is not applied",
            stage_run.status
        );
    }
    let stack_run = store
        .stack_runs(run_id)
        .await?
        .into_iter()
        .rev()
        .find(|r| r.stage == stage_name && r.stack == stack)
        .with_context(|| format!("run {run_id} has no stack run of `{stack}` in {stage_name}"))?;
    if stack_run.status != StackRunStatus::Pending {
        bail!(
            "the stack run of `{stack}` in {stage_name} is {} already: it is not applied again",
            stack_run.status
        );
    }
    let artifact_id = stack_run
        .artifact_id
        .clone()
        .with_context(|| format!("the stack run of `{stack}` names no artifact"))?;
    let artifact_store = super::artifacts::open(workspace)?;
    let (plan_only, saved_plans) =
        match step_work(workspace, store, &artifact_store, &stack_run, stage).await? {
            StepWork::Plan => (true, BTreeMap::new()),
            StepWork::Apply(saved) => (false, saved),
        };
    let delivered = deliver(Delivery {
        workspace,
        store,
        artifacts: &artifact_store,
        run_id,
        stage,
        stage_run_id: Some(stage_run.id),
        stack_runs: BTreeMap::from([(stack.to_owned(), stack_run.id)]),
        selected: BTreeMap::from([(
            stack.to_owned(),
            Deliverable {
                artifact_id,
                commit: run.commit.clone(),
            },
        )]),
        saved_plans,
        action: AuditAction::Apply,
        plan_only,
        one_step: true,
        options: options.clone(),
    })
    .await?;
    let what = match (plan_only, delivered.succeeded) {
        (true, true) => "planned",
        (true, false) => "not planned",
        (false, true) => "applied",
        (false, false) => "not applied",
    };
    Ok(StepDone {
        done: delivered.succeeded,
        summary: format!("{stage_name}/{stack} of run {run_id}: {what}"),
    })
}

/// What `stack_run`'s step does: at a stage that asks for approval and has none, plan;
/// else apply, an approved plan as it was saved: fetched into this worker's data folder and
/// checked against the approved hash.
async fn step_work(
    workspace: &Workspace,
    store: &AnyStore,
    artifact_store: &slipway_artifact::Store,
    stack_run: &slipway_store::StackRun,
    stage: &Stage,
) -> Result<StepWork> {
    if !stage.approval {
        return Ok(StepWork::Apply(BTreeMap::new()));
    }
    let Some(approved) = super::stages::approval(store, stack_run.run_id, &stage.name).await?
    else {
        return Ok(StepWork::Plan);
    };
    let summary = super::stages::plan_summary(stack_run);
    let Some(recorded) = summary.get("plan_file").and_then(|p| p.as_str()) else {
        // Planned on resume: its inputs were unknown until its dependencies applied.
        return Ok(StepWork::Apply(BTreeMap::new()));
    };
    let path =
        super::stages::find_saved_plan(workspace, artifact_store, stack_run, recorded, &summary)
            .await?;
    let approved_hash = approved.get(&stack_run.stack).cloned().unwrap_or_default();
    let actual = file_sha256(&path).unwrap_or_else(|_| "(missing)".to_owned());
    if actual != approved_hash {
        bail!(
            "approval void: the saved plan {} of `{}` hashes to {actual}, but {approved_hash} was approved; nothing was applied\n  help: start a new run (`slipway run`) to plan again and ask for a new approval",
            path.display(),
            stack_run.stack
        );
    }
    Ok(StepWork::Apply(BTreeMap::from([(
        stack_run.stack.clone(),
        SavedPlan {
            path,
            sha256: approved_hash,
        },
    )])))
}
