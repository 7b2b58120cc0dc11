//! Delivering artifacts to one stage: the step shared by `deploy`, `promote`, `rollback`,
//! `run` and `resume`. It verifies and extracts each artifact before any engine command,
//! walks the stage's stacks from those extracted trees, and keeps the record: a stage run,
//! a stack run per stack, the instance lock around each apply, "applying" said durably
//! before the engine changes anything, then releases and audit entries for what succeeded.
//!
//! With `plan_only` (a stage that needs approval) it plans instead, and keeps each saved
//! plan with its SHA-256 for `slipway approve` and `slipway resume`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use slipway_artifact::ArtifactStore as _;
use slipway_core::Stage;
use slipway_engine::Interrupt;
use slipway_store::{
    AnyStore, AuditAction, EngineProcess, Fence, InstanceLock, LockOwner, NewRelease, NewStackRun,
    StackRunOutcome, StackRunStatus, StageRunStatus, Store, StoreError,
};

use super::artifacts;
use crate::events::{Event, FailedStack};
use crate::executor::{ApplyHooks, CodeSource, HookError, HookFuture};
use crate::executor::{Operation, Outcome, StackResult};
use crate::locks::{Heartbeat, acquire_instance};
use crate::project::Workspace;
use crate::record;
use crate::stage_executor::{ExecutorOptions, executor_for};
use slipway_engine::driver::PlanSummary;

/// One stack's artifact to deliver.
#[derive(Debug, Clone)]
pub struct Deliverable {
    /// `sha256:<hex>`.
    pub artifact_id: String,
    /// The commit the artifact was built (or released) from.
    pub commit: String,
}

/// A plan approved to be applied as it is.
#[derive(Debug, Clone)]
pub struct SavedPlan {
    pub path: PathBuf,
    pub sha256: String,
}

/// What to deliver where.
#[derive(Debug)]
pub struct Delivery<'a> {
    pub workspace: &'a Workspace,
    pub store: &'a AnyStore,
    pub artifacts: &'a slipway_artifact::Store,
    pub run_id: i64,
    pub stage: &'a Stage,
    /// A stage run already in the record (resuming after approval); else one is started.
    pub stage_run_id: Option<i64>,
    /// Stack runs already in the record, by stack; the others are added.
    pub stack_runs: BTreeMap<String, i64>,
    pub selected: BTreeMap<String, Deliverable>,
    pub saved_plans: BTreeMap<String, SavedPlan>,
    /// What the audit log calls a successful apply here: apply, promote or rollback.
    pub action: AuditAction,
    pub plan_only: bool,
    /// Applies one stack as a step job of a stage another process delivers (see
    /// [`super::spread`]): the stage run's status and end are that process's.
    pub one_step: bool,
    pub options: ExecutorOptions,
}

/// How a stage delivery ended.
#[derive(Debug)]
pub struct StageDelivered {
    pub succeeded: bool,
}

/// The sha256 of a file, hex.
pub fn file_sha256(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hex(&Sha256::digest(&bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Delivers `delivery.selected` to the stage.
pub async fn deliver(delivery: Delivery<'_>) -> Result<StageDelivered> {
    let Delivery {
        workspace,
        store,
        artifacts,
        run_id,
        stage,
        stage_run_id,
        mut stack_runs,
        selected,
        saved_plans,
        action,
        plan_only,
        one_step,
        options,
    } = delivery;
    let project = &workspace.project;
    let stage_run_id = match stage_run_id {
        Some(id) if one_step => id,
        Some(id) => {
            store
                .set_stage_run_status(id, slipway_store::StageRunStatus::Running)
                .await?;
            id
        }
        None => store.start_stage_run(run_id, &stage.name).await?.id,
    };
    let order: Vec<String> = project
        .graph
        .order_of(selected.keys().map(String::as_str))
        .into_iter()
        .map(str::to_owned)
        .collect();
    for name in &order {
        if !stack_runs.contains_key(name) {
            let added = store
                .add_stack_run(&NewStackRun {
                    run_id,
                    stage: stage.name.clone(),
                    instance: stage.name.clone(),
                    stack: name.clone(),
                    artifact_id: Some(selected[name].artifact_id.clone()),
                })
                .await?;
            stack_runs.insert(name.clone(), added.id);
        }
    }
    if let (Some(steps), false) = (&workspace.steps, one_step) {
        let succeeded = super::spread::deliver_spread(super::spread::Spread {
            workspace,
            store,
            steps: steps.as_ref(),
            run_id,
            stage,
            stage_run_id,
            plan_only,
            order: &order,
            stack_runs: &stack_runs,
        })
        .await?;
        return Ok(StageDelivered { succeeded });
    }

    // Every artifact is verified and extracted before any engine command runs.
    let data_dir = workspace.ensure_data_dir()?;
    let mut roots = BTreeMap::new();
    for name in &order {
        match artifacts::fetch(&data_dir, artifacts, name, &selected[name].artifact_id).await {
            Ok(root) => {
                roots.insert(name.clone(), root);
            }
            Err(error) => {
                fail_all(store, &stack_runs, (!one_step).then_some(stage_run_id)).await;
                return Err(error);
            }
        }
    }

    let involved: BTreeSet<String> = order
        .iter()
        .flat_map(|s| project.graph.dependencies(s).into_iter().map(str::to_owned))
        .chain(order.iter().cloned())
        .collect();
    let executor = executor_for(workspace, stage, &involved, &options)?;
    let mut executor = Arc::try_unwrap(executor)
        .map_err(|_| anyhow::anyhow!("internal error: the executor is shared too early"))?;
    executor.code = CodeSource::Artifacts(roots);
    let owner = LockOwner::current(run_id);
    let locked = Arc::new(Mutex::new(BTreeSet::new()));
    // Applies can take longer than the lease other hosts judge a holder by: keep saying so.
    let heartbeat = (!plan_only).then(|| {
        Heartbeat::start(
            store.clone(),
            stage.name.clone(),
            owner.clone(),
            Arc::clone(&locked),
            workspace.settings.lock_heartbeat,
        )
    });
    let hooks = Arc::new(RecordHooks {
        store: store.clone(),
        instance: stage.name.clone(),
        owner,
        stack_runs: stack_runs.clone(),
        saved: saved_plans.clone(),
        locked,
        grants: Mutex::new(BTreeMap::new()),
        heartbeat,
        actor: workspace.settings.actor.clone(),
        claim: workspace.claim.clone(),
    });
    if !plan_only {
        executor.hooks = Some(hooks.clone() as Arc<dyn ApplyHooks>);
    }
    let executor = Arc::new(executor);
    let run_dir = executor.run_dir.clone();

    let selected_set: BTreeSet<String> = order.iter().cloned().collect();
    let needed: BTreeSet<String> = order
        .iter()
        .flat_map(|s| project.graph.dependencies(s))
        .filter(|d| !selected_set.contains(*d))
        .map(str::to_owned)
        .collect();
    let mut results = Vec::new();
    let mut ok = true;
    if !needed.is_empty() {
        executor.events.note(
            None,
            format!(
                "reading outputs of {} (unchanged here) for their dependents' inputs",
                needed.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        );
        let read = executor.walk(&needed, Operation::ReadOutputs).await;
        if read.iter().any(|r| r.outcome.is_failure()) {
            ok = false;
            results.extend(read.into_iter().filter(|r| r.outcome.is_failure()));
        }
    }
    let operation = if plan_only {
        Operation::Plan
    } else {
        Operation::Apply
    };
    if ok {
        results.extend(executor.walk(&selected_set, operation).await);
    }

    // Keep the record: stack runs, releases, audit entries. The locks go back whatever
    // happens while keeping it: an error here must not leave the instances locked.
    let kept: Result<bool> = async {
        for result in &results {
            let Some(&stack_run_id) = stack_runs.get(&result.stack) else {
                ok = false;
                continue;
            };
            let log_path = result.log.as_ref().map(|p| p.display().to_string());
            let status = match &result.outcome {
                Outcome::Applied { .. } => StackRunStatus::Succeeded,
                // The engine was stopped while it changed the instance: the stack run stays
                // "applying" and the lock stays taken, as after a crash, until a person has
                // looked at the state and said so (`slipway resolve-interrupted`).
                Outcome::Interrupted { mid_apply: true } => {
                    ok = false;
                    hooks.keep_locked(&result.stack);
                    continue;
                }
                Outcome::Planned { .. } | Outcome::InputsUnknown { .. } if plan_only => {
                    let mut summary = keep_plan(
                        &data_dir,
                        artifacts,
                        run_id,
                        stage,
                        workspace,
                        &result.stack,
                        &result.outcome,
                    )
                    .await?;
                    if let Some(summary) = summary.as_object_mut() {
                        if let Some(counts) = result.plan {
                            summary.insert("counts".to_owned(), serde_json::json!(counts));
                        }
                        // What an approver reads before approving: the plan's blast radius
                        // report, kept with the plan it describes.
                        if let Some(report) = &result.report {
                            summary.insert("report".to_owned(), serde_json::to_value(report)?);
                        }
                    }
                    store
                        .record_plan(stack_run_id, &summary.to_string())
                        .await?;
                    continue;
                }
                Outcome::Skipped { .. } | Outcome::NotStarted => StackRunStatus::Skipped,
                _ => StackRunStatus::Failed,
            };
            if status != StackRunStatus::Succeeded {
                ok = false;
            }
            if let Some(log) = &result.log {
                keep_log(
                    artifacts,
                    &executor.events,
                    run_id,
                    &stage.name,
                    stack_run_id,
                    log,
                )
                .await;
            }
            store
                .finish_stack_run(
                    stack_run_id,
                    &StackRunOutcome {
                        status,
                        // An approved plan's stack run already holds its summary and hash.
                        plan_summary: if saved_plans.contains_key(&result.stack) {
                            None
                        } else {
                            plan_summary(result)
                        },
                        log_path,
                        failure_reason: result.why(),
                    },
                )
                .await?;
            if status == StackRunStatus::Succeeded {
                let deliverable = &selected[&result.stack];
                // A worker whose job was taken meanwhile releases nothing: whoever holds
                // the job now decides what the stage runs.
                if let Some(claim) = &workspace.claim {
                    if !claim.confirm().await {
                        anyhow::bail!(
                            "this worker's job was taken from it while it worked (its lease ran out); the release of `{}` to {} is not recorded",
                            result.stack,
                            stage.name
                        );
                    }
                }
                store
                    .record_release(&NewRelease {
                        stage: stage.name.clone(),
                        stack: result.stack.clone(),
                        artifact_id: deliverable.artifact_id.clone(),
                        commit: deliverable.commit.clone(),
                        released_by: workspace.settings.actor.clone(),
                        run_id: Some(run_id),
                        fence: hooks.fence(&result.stack),
                    })
                    .await?;
                record::audit(
                    workspace,
                    store,
                    action,
                    &stage.name,
                    &result.stack,
                    Some(run_id),
                    serde_json::json!({
                        "artifact_id": deliverable.artifact_id,
                        "commit": deliverable.commit,
                        "changed": matches!(result.outcome, Outcome::Applied { changed: true }),
                    }),
                )
                .await?;
            }
        }
        Ok(ok)
    }
    .await;
    hooks.release_locks().await;
    let ok = kept?;
    if one_step {
        return Ok(StageDelivered { succeeded: ok });
    }
    let stage_status = match (ok, plan_only) {
        (true, true) => StageRunStatus::AwaitingApproval,
        (true, false) => StageRunStatus::Succeeded,
        (false, _) => StageRunStatus::Failed,
    };
    store
        .set_stage_run_status(stage_run_id, stage_status)
        .await?;
    executor.events.emit(Event::StageFinished {
        stage: stage.name.clone(),
        planned_only: plan_only,
        succeeded: results.iter().filter(|r| !r.outcome.is_failure()).count(),
        total: results.len(),
        run_dir,
        failed: results
            .iter()
            .filter(|r| r.outcome.is_failure())
            .map(|r| FailedStack {
                stack: r.stack.clone(),
                outcome: r.outcome.clone(),
                elapsed_ms: crate::verify::millis(r.elapsed),
                log: r.log.clone(),
            })
            .collect(),
    });
    Ok(StageDelivered { succeeded: ok })
}

/// What the applied plan changed, for the stack run: the engine's own counts, or the blast
/// radius counts where the engine printed none.
fn plan_summary(result: &StackResult) -> Option<String> {
    let counts = result.plan.or_else(|| {
        let counts = &result.report.as_ref()?.blast_radius.counts;
        // Counted as the engine counts: a replacement is one add and one destroy.
        Some(PlanSummary {
            add: counts.create + counts.replace,
            change: counts.update,
            destroy: counts.delete + counts.replace,
            import: counts.import,
        })
    })?;
    Some(serde_json::json!({ "counts": counts }).to_string())
}

/// The key of a stack run's log in the artifact store.
pub fn log_key(run_id: i64, stage: &str, stack_run_id: i64) -> String {
    format!("logs/run-{run_id}/{stage}/stack-run-{stack_run_id}.log")
}

/// Copies a stack run's log into a remote (S3) artifact store, where the servers read it
/// when the run ran on a worker's machine. A copy that fails is reported and costs the run
/// nothing: the log's lines are in the run's events anyway.
async fn keep_log(
    artifacts: &slipway_artifact::Store,
    events: &crate::events::Reporter,
    run_id: i64,
    stage: &str,
    stack_run_id: i64,
    log: &Path,
) {
    if !matches!(artifacts, slipway_artifact::Store::S3(_)) {
        return;
    }
    let key = log_key(run_id, stage, stack_run_id);
    let kept = match tokio::fs::read(log).await {
        Ok(bytes) => artifacts
            .put_file(&key, &bytes)
            .await
            .map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    };
    if let Err(error) = kept {
        events.warning(
            None,
            format!(
                "the log {} was not copied to {}: {error}",
                log.display(),
                artifacts.location()
            ),
        );
    }
}

/// The key of a plan saved for approval in the artifact store.
pub fn plan_key(run_id: i64, stage: &str, stack: &str) -> String {
    format!("plans/run-{run_id}/{stage}/{stack}.tfplan")
}

/// Where a plan saved for approval is kept in the data folder.
pub fn plan_path(data_dir: &Path, run_id: i64, stage: &str, stack: &str) -> PathBuf {
    data_dir.join(plan_key(run_id, stage, stack))
}

/// Copies a plan saved in the working copy next to the run, and into the artifact store
/// (so `resume` finds it from another clone, such as the next CI job), and returns the
/// summary to keep in the stack run: where the plan is and its SHA-256, which an approval
/// names.
async fn keep_plan(
    data_dir: &Path,
    artifacts: &slipway_artifact::Store,
    run_id: i64,
    stage: &Stage,
    workspace: &Workspace,
    stack: &str,
    outcome: &Outcome,
) -> Result<serde_json::Value> {
    let Outcome::Planned { changes } = outcome else {
        let reason = match outcome {
            Outcome::InputsUnknown { reason } => reason.clone(),
            _ => String::new(),
        };
        return Ok(serde_json::json!({ "blocked": reason }));
    };
    let dir = workspace
        .project
        .stack(stack)
        .map(|s| s.dir.clone())
        .unwrap_or_default();
    let planned = data_dir
        .join("work")
        .join(&stage.name)
        .join(stack)
        .join("tree")
        .join(dir)
        .join(slipway_engine::working_copy::PLAN_FILE);
    let kept = plan_path(data_dir, run_id, &stage.name, stack);
    if let Some(parent) = kept.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(&planned, &kept)
        .with_context(|| format!("cannot keep the plan {}", planned.display()))?;
    let key = plan_key(run_id, &stage.name, stack);
    let bytes = std::fs::read(&kept).with_context(|| format!("cannot read {}", kept.display()))?;
    artifacts.put_file(&key, &bytes).await.with_context(|| {
        format!(
            "cannot keep the plan of `{stack}` in the artifact store {}",
            artifacts.location()
        )
    })?;
    Ok(serde_json::json!({
        "plan_file": kept.display().to_string(),
        "plan_key": key,
        "sha256": file_sha256(&kept)?,
        "changes": changes,
    }))
}

async fn fail_all(store: &AnyStore, stack_runs: &BTreeMap<String, i64>, stage_run_id: Option<i64>) {
    for id in stack_runs.values() {
        let _ = store
            .finish_stack_run(
                *id,
                &StackRunOutcome {
                    status: StackRunStatus::Failed,
                    plan_summary: None,
                    log_path: None,
                    failure_reason: None,
                },
            )
            .await;
    }
    if let Some(stage_run_id) = stage_run_id {
        let _ = store
            .set_stage_run_status(stage_run_id, StageRunStatus::Failed)
            .await;
    }
}

/// The record's part in each stack's apply.
#[derive(Debug)]
struct RecordHooks {
    store: AnyStore,
    instance: String,
    owner: LockOwner,
    stack_runs: BTreeMap<String, i64>,
    saved: BTreeMap<String, SavedPlan>,
    locked: Arc<Mutex<BTreeSet<String>>>,
    /// The grants taken, whose fencing tokens the record's writes carry.
    grants: Mutex<BTreeMap<String, InstanceLock>>,
    heartbeat: Option<Heartbeat>,
    /// Who acts, for the audit entry of a stale lock taken over.
    actor: String,
    /// The front end's claim on this work, confirmed before each apply.
    claim: Option<Arc<dyn crate::project::WorkClaim>>,
}

impl std::fmt::Debug for dyn crate::project::WorkClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkClaim")
    }
}

impl RecordHooks {
    fn grant(&self, stack: &str) -> Option<InstanceLock> {
        self.grants.lock().ok()?.get(stack).cloned()
    }

    fn fence(&self, stack: &str) -> Option<Fence> {
        self.grant(stack).map(|lock| lock.fence())
    }

    /// Leaves `stack`'s lock taken when the others are released.
    fn keep_locked(&self, stack: &str) {
        if let Ok(mut locked) = self.locked.lock() {
            locked.remove(stack);
        }
    }

    async fn release_locks(&self) {
        // Emptied first, so the heartbeat stops renewing what is being released.
        let locked: Vec<String> = self
            .locked
            .lock()
            .map(|mut l| std::mem::take(&mut *l).into_iter().collect())
            .unwrap_or_default();
        for stack in locked {
            let _ = self
                .store
                .release_instance_lock(&stack, &self.instance, &self.owner)
                .await;
        }
    }
}

impl ApplyHooks for RecordHooks {
    fn start<'a>(&'a self, stack: &'a str) -> HookFuture<'a, Result<(), HookError>> {
        Box::pin(async move {
            match acquire_instance(&self.store, stack, &self.instance, &self.owner, &self.actor)
                .await
            {
                Ok(lock) => {
                    if let Ok(mut locked) = self.locked.lock() {
                        locked.insert(stack.to_owned());
                    }
                    if let Ok(mut grants) = self.grants.lock() {
                        grants.insert(stack.to_owned(), lock);
                    }
                    Ok(())
                }
                Err(StoreError::InstanceLocked(held)) => Err(HookError::InstanceLocked {
                    stale: held.stale.is_some(),
                    held: held.to_string(),
                }),
                Err(error) => Err(HookError::Record {
                    what: "cannot take the instance lock".to_owned(),
                    source: error.into(),
                }),
            }
        })
    }

    fn saved_plan(&self, stack: &str) -> Option<PathBuf> {
        self.saved.get(stack).map(|s| s.path.clone())
    }

    fn before_apply<'a>(
        &'a self,
        stack: &'a str,
        plan_file: &'a Path,
    ) -> HookFuture<'a, Result<(), HookError>> {
        Box::pin(async move {
            if let Some(claim) = &self.claim {
                if !claim.confirm().await {
                    return Err(HookError::ClaimLost {
                        stack: stack.to_owned(),
                    });
                }
            }
            if self.heartbeat.as_ref().is_some_and(|h| h.lost(stack)) {
                return Err(HookError::LockLost {
                    stack: stack.to_owned(),
                    instance: self.instance.clone(),
                });
            }
            if let Some(saved) = self.saved.get(stack) {
                let actual = file_sha256(plan_file).map_err(|source| HookError::Record {
                    what: format!("cannot hash the saved plan {}", plan_file.display()),
                    source,
                })?;
                if actual != saved.sha256 {
                    return Err(HookError::ApprovalVoid {
                        plan_file: plan_file.to_path_buf(),
                        approved: saved.sha256.clone(),
                        actual,
                    });
                }
            }
            let (Some(&id), Some(lock)) = (self.stack_runs.get(stack), self.grant(stack)) else {
                return Err(HookError::Record {
                    what: format!("no stack run or lock for `{stack}`"),
                    source: anyhow::anyhow!("internal error"),
                });
            };
            match self.store.mark_applying(id, &lock).await {
                Ok(_) => Ok(()),
                Err(StoreError::LockLost { .. }) => Err(HookError::LockLost {
                    stack: stack.to_owned(),
                    instance: self.instance.clone(),
                }),
                Err(e) => Err(HookError::Record {
                    what: format!("cannot record that `{stack}` is applying"),
                    source: e.into(),
                }),
            }
        })
    }

    fn lock_lost(&self, stack: &str) -> Option<Interrupt> {
        self.heartbeat
            .as_ref()
            .map(|heartbeat| heartbeat.interrupt_on_loss(stack))
    }

    fn engine_started(&self, stack: &str, pid: u32) {
        let Some(&id) = self.stack_runs.get(stack) else {
            return;
        };
        // Read now, while the process is surely the one just started.
        let engine = EngineProcess::here(pid);
        let store = self.store.clone();
        // Best effort: the record learns the engine's pid while Terraform starts up; should
        // the write fail, liveness falls back to slipway's own process.
        tokio::spawn(async move {
            let _ = store.record_engine_process(id, &engine).await;
        });
    }
}
