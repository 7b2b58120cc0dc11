//! A run through the stages, as `slipway run`, `approve`, `reject` and `resume` drive it:
//! the changed stacks' artifacts built, verified from zero and from latest, then delivered
//! stage by stage, stopping at a stage that asks for approval; an approval recorded with the
//! hashes of the plans it approves; a resume that applies exactly those plans. What happens is
//! reported as events; the functions return how the run stands. See docs/pipeline.md.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use slipway_artifact::ArtifactStore as _;
use slipway_store::{
    AnyStore, AuditAction, NewApproval, NewRun, Run, RunStatus, StackRun, StackRunOutcome,
    StackRunStatus, StageRun, StageRunStatus, Store,
};

use super::deliver::{Deliverable, Delivery, SavedPlan, deliver, file_sha256};
use super::{artifacts, interrupted, short_id};
use crate::changes;
use crate::events::{Event, PlannedStack, Severity};
use crate::help::with_help;
use crate::project::Workspace;
use crate::record::{self, RunRecorder};
use crate::stage_executor::ExecutorOptions;

/// How a run stands when a pipeline command returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// No stack changed between the base and the head: no run was started.
    NothingToDeliver,
    /// Delivered to every stage.
    Delivered { run: i64 },
    /// Planned at `stage`, which waits for an approval of its saved plans.
    AwaitingApproval { run: i64, stage: String },
    /// Reached `stage`, whose work needs a worker carrying `labels` that this process is not
    /// (see [`crate::Settings::worker_labels`]); `resume` continues it there.
    HandedOn {
        run: i64,
        stage: String,
        labels: slipway_core::Labels,
    },
    /// Stopped: verification failed (`stage` is `None`) or a stage did not succeed.
    Failed { run: i64, stage: Option<String> },
}

impl RunOutcome {
    pub fn succeeded(&self) -> bool {
        !matches!(self, RunOutcome::Failed { .. })
    }
}

/// `slipway run`: the pipeline for the head commit, from `base` (default: the commit last
/// released to the last stage, so that changes an earlier run left half-way are delivered
/// too).
pub async fn start(
    workspace: &Workspace,
    base: Option<String>,
    options: &ExecutorOptions,
) -> Result<RunOutcome> {
    recording(workspace, async |recorded, store, recorder| {
        start_recorded(recorded, store, recorder, base, options).await
    })
    .await
}

/// Runs `work` with the run's events going to the record as well (the run's id is bound by
/// `work` once it is known), and waits until they are all written.
pub(crate) async fn recording<T>(
    workspace: &Workspace,
    work: impl AsyncFnOnce(&Workspace, AnyStore, &RunRecorder) -> Result<T>,
) -> Result<T> {
    let store = record::open(workspace).await?;
    let recorder = RunRecorder::new(store.clone());
    let recorded = workspace.observed_also(recorder.observer());
    let outcome = work(&recorded, store, &recorder).await;
    recorder.finish().await;
    outcome
}

async fn start_recorded(
    workspace: &Workspace,
    store: AnyStore,
    recorder: &RunRecorder,
    base: Option<String>,
    options: &ExecutorOptions,
) -> Result<RunOutcome> {
    let events = &workspace.observer;
    interrupted::report(workspace, &store).await?;
    let commit = artifacts::resolve_commit(workspace, "HEAD")?;
    let detected = changes::detect(
        &workspace.root,
        &workspace.settings,
        base,
        commit.commit_hash(),
        changes::DefaultBase::LastStage,
    )?;
    let to_run: BTreeSet<String> = detected
        .set
        .stacks_to_run()
        .map(str::to_owned)
        .filter(|s| workspace.project.stack(s).is_some())
        .collect();
    events.observe(&Event::ChangesDetected {
        base: detected.base.as_ref().map(|b| b.commit.clone()),
        head: commit.commit_hash().to_owned(),
        all_changed_because: detected.set.all_changed_because.clone(),
        stacks: to_run.iter().cloned().collect(),
    });
    if to_run.is_empty() {
        return Ok(RunOutcome::NothingToDeliver);
    }
    let artifact_store = artifacts::open(workspace)?;
    let built = artifacts::build(workspace, &store, &artifact_store, &commit, &to_run).await?;
    let deliverables: BTreeMap<String, Deliverable> = built
        .into_iter()
        .map(|(stack, b)| {
            events.observe(&Event::ArtifactBuilt {
                stack: stack.clone(),
                artifact: b.id.to_string(),
                short: short_id(&b.id.to_string()).to_owned(),
                new: b.new,
            });
            (
                stack,
                Deliverable {
                    artifact_id: b.id.to_string(),
                    commit: commit.commit_hash().to_owned(),
                },
            )
        })
        .collect();
    let run = store
        .create_run(&NewRun {
            commit: commit.commit_hash().to_owned(),
            trigger: "run".to_owned(),
            actor: workspace.settings.actor.clone(),
        })
        .await?;
    recorder.bind(run.id);
    events.observe(&Event::RunStarted {
        run: run.id,
        commit: commit.commit_hash().to_owned(),
    });
    // From zero and from latest, side by side, before anything reaches a stage.
    let verified = crate::verify::paths::before_first_stage(
        workspace,
        &store,
        &artifact_store,
        run.id,
        &deliverables,
        options.clone(),
    )
    .await;
    if !verified.unwrap_or_else(|error| {
        events.observe(&Event::Note {
            severity: Severity::Error,
            stage: None,
            stack: None,
            message: format!("error: verification could not run: {error:#}"),
        });
        false
    }) {
        store.finish_run(run.id, RunStatus::Failed).await?;
        events.observe(&Event::RunFinished {
            run: run.id,
            delivered: false,
            stage: None,
        });
        return Ok(RunOutcome::Failed {
            run: run.id,
            stage: None,
        });
    }
    let pipeline = Pipeline {
        workspace,
        store: &store,
        artifacts: &artifact_store,
        run: &run,
        deliverables: &deliverables,
        options,
    };
    pipeline.stages_from(0, None).await
}

/// The stages of one run, from a given one on.
struct Pipeline<'a> {
    workspace: &'a Workspace,
    store: &'a AnyStore,
    artifacts: &'a slipway_artifact::Store,
    run: &'a Run,
    deliverables: &'a BTreeMap<String, Deliverable>,
    options: &'a ExecutorOptions,
}

/// A stage already in the record to deliver first: one approved (its saved plans are
/// applied as they are), or one handed on to this worker (planned as any stage).
struct Resumed {
    stage_run_id: i64,
    stack_runs: BTreeMap<String, i64>,
    /// Empty for a handed-on stage.
    saved_plans: BTreeMap<String, SavedPlan>,
    approved: bool,
}

impl Pipeline<'_> {
    async fn stages_from(&self, start: usize, mut resuming: Option<Resumed>) -> Result<RunOutcome> {
        let run_id = self.run.id;
        for stage in self.workspace.project.stages.iter().skip(start) {
            let resumed = resuming.take();
            if resumed.is_none() {
                if let Some(carried) = &self.workspace.settings.worker_labels {
                    if !carried.satisfy(&stage.worker_labels) {
                        return self.hand_on(stage).await;
                    }
                }
            }
            let plan_only = stage.approval && !resumed.as_ref().is_some_and(|r| r.approved);
            let (stage_run_id, stack_runs, saved_plans) = match resumed {
                Some(a) => (Some(a.stage_run_id), a.stack_runs, a.saved_plans),
                None => (None, BTreeMap::new(), BTreeMap::new()),
            };
            let delivered = deliver(Delivery {
                workspace: self.workspace,
                store: self.store,
                artifacts: self.artifacts,
                run_id,
                stage,
                stage_run_id,
                stack_runs,
                selected: self.deliverables.clone(),
                saved_plans,
                action: AuditAction::Apply,
                plan_only,
                one_step: false,
                options: self.options.clone(),
            })
            .await;
            let delivered = match delivered {
                Ok(d) => d,
                Err(error) => {
                    self.store.finish_run(run_id, RunStatus::Failed).await?;
                    return Err(
                        error.context(format!("run {run_id} stopped at stage {}", stage.name))
                    );
                }
            };
            if !delivered.succeeded {
                self.store.finish_run(run_id, RunStatus::Failed).await?;
                self.workspace.observer.observe(&Event::RunFinished {
                    run: run_id,
                    delivered: false,
                    stage: Some(stage.name.clone()),
                });
                return Ok(RunOutcome::Failed {
                    run: run_id,
                    stage: Some(stage.name.clone()),
                });
            }
            if plan_only {
                let runs = self.store.stack_runs(run_id).await?;
                self.workspace.observer.observe(&Event::AwaitingApproval {
                    run: run_id,
                    stage: stage.name.clone(),
                    plans: runs
                        .iter()
                        .filter(|r| r.stage == stage.name)
                        .map(|r| PlannedStack {
                            stack: r.stack.clone(),
                            sha256: plan_summary(r)
                                .get("sha256")
                                .and_then(|h| h.as_str())
                                .map(str::to_owned),
                        })
                        .collect(),
                });
                return Ok(RunOutcome::AwaitingApproval {
                    run: run_id,
                    stage: stage.name.clone(),
                });
            }
        }
        self.store.finish_run(run_id, RunStatus::Succeeded).await?;
        self.workspace.observer.observe(&Event::RunFinished {
            run: run_id,
            delivered: true,
            stage: None,
        });
        Ok(RunOutcome::Delivered { run: run_id })
    }

    /// Leaves `stage` to a worker carrying its labels: the stage run and its stack runs are
    /// recorded pending, with the artifacts they will deliver, for `resume` to pick up.
    async fn hand_on(&self, stage: &slipway_core::Stage) -> Result<RunOutcome> {
        let run_id = self.run.id;
        let stage_run = self.store.start_stage_run(run_id, &stage.name).await?;
        self.store
            .set_stage_run_status(stage_run.id, StageRunStatus::Pending)
            .await?;
        for (stack, deliverable) in self.deliverables {
            self.store
                .add_stack_run(&slipway_store::NewStackRun {
                    run_id,
                    stage: stage.name.clone(),
                    instance: stage.name.clone(),
                    stack: stack.clone(),
                    artifact_id: Some(deliverable.artifact_id.clone()),
                })
                .await?;
        }
        self.workspace.observer.observe(&Event::HandedOn {
            run: run_id,
            stage: stage.name.clone(),
            labels: stage.worker_labels.to_string(),
        });
        Ok(RunOutcome::HandedOn {
            run: run_id,
            stage: stage.name.clone(),
            labels: stage.worker_labels.clone(),
        })
    }
}

pub(crate) fn plan_summary(stack_run: &StackRun) -> serde_json::Value {
    stack_run
        .plan_summary
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// The run and its stage awaiting approval.
async fn awaiting(store: &AnyStore, run_id: i64, stage: Option<&str>) -> Result<(Run, StageRun)> {
    let run = store.run(run_id).await?.with_context(|| {
        format!("run {run_id} is not in the record\n  help: `slipway history` lists runs")
    })?;
    let stage_runs = store.stage_runs(run_id).await?;
    let found = stage_runs.into_iter().find(|s| {
        s.status == StageRunStatus::AwaitingApproval && stage.is_none_or(|w| w == s.stage)
    });
    match found {
        Some(stage_run) if run.status == RunStatus::Running => Ok((run, stage_run)),
        _ => bail!(
            "run {run_id} has no stage awaiting approval{}\n  help: `slipway history` shows where each run stands",
            stage.map(|s| format!(" named `{s}`")).unwrap_or_default()
        ),
    }
}

/// The latest approval of a stage of a run: the plan hashes it names.
pub(crate) async fn approval(
    store: &AnyStore,
    run_id: i64,
    stage: &str,
) -> Result<Option<BTreeMap<String, String>>> {
    Ok(store
        .approvals(run_id)
        .await?
        .into_iter()
        .rev()
        .find(|a| a.stage == stage)
        .map(|a| a.plans))
}

/// A run newer than `run` that delivered to `stage` since: it voids `run`'s approval there,
/// whose plans were made against what that stage ran before.
async fn newer_delivery(store: &AnyStore, run: &Run, stage: &str) -> Result<Option<i64>> {
    Ok(store
        .current_releases()
        .await?
        .into_iter()
        .filter(|r| r.stage == stage)
        .filter_map(|r| r.run_id)
        .filter(|&id| id > run.id)
        .max())
}

/// An approval of a run's stage: who approved how many saved plans.
#[derive(Debug, Clone)]
pub struct Approval {
    pub stage: String,
    pub plans: usize,
}

/// `slipway approve`: records the approval of `stage` of run `run_id`, with the hashes of the
/// saved plans it approves.
pub async fn approve(
    workspace: &Workspace,
    run_id: i64,
    stage: &str,
    reason: &str,
) -> Result<Approval> {
    let store = record::open(workspace).await?;
    let (_, stage_run) = awaiting(&store, run_id, Some(stage)).await?;
    let mut plans = serde_json::Map::new();
    for sr in store
        .stack_runs(run_id)
        .await?
        .iter()
        .filter(|r| r.stage == stage_run.stage)
    {
        if let Some(hash) = plan_summary(sr).get("sha256").and_then(|h| h.as_str()) {
            plans.insert(sr.stack.clone(), serde_json::Value::String(hash.to_owned()));
        }
    }
    let count = plans.len();
    store
        .record_approval(&NewApproval {
            run_id,
            stage: stage_run.stage.clone(),
            actor: workspace.settings.actor.clone(),
            reason: reason.to_owned(),
            plans: plans
                .iter()
                .filter_map(|(stack, hash)| Some((stack.clone(), hash.as_str()?.to_owned())))
                .collect(),
        })
        .await?;
    audit_run(
        &workspace.settings.actor,
        &store,
        AuditAction::Approve,
        &stage_run.stage,
        run_id,
        serde_json::json!({ "reason": reason, "plans": plans }),
    )
    .await?;
    Ok(Approval {
        stage: stage_run.stage,
        plans: count,
    })
}

/// `slipway reject`: ends run `run_id` at its stage awaiting approval; returns the stage.
pub async fn reject(
    workspace: &Workspace,
    run_id: i64,
    stage: &str,
    reason: &str,
) -> Result<String> {
    let store = record::open(workspace).await?;
    let (_, stage_run) = awaiting(&store, run_id, Some(stage)).await?;
    audit_run(
        &workspace.settings.actor,
        &store,
        AuditAction::Reject,
        &stage_run.stage,
        run_id,
        serde_json::json!({ "reason": reason }),
    )
    .await?;
    end_stage(
        &store,
        run_id,
        &stage_run,
        StackRunStatus::Skipped,
        RunStatus::Rejected,
    )
    .await?;
    Ok(stage_run.stage)
}

async fn end_stage(
    store: &AnyStore,
    run_id: i64,
    stage_run: &StageRun,
    status: StackRunStatus,
    run_status: RunStatus,
) -> Result<()> {
    for sr in store.stack_runs(run_id).await? {
        if sr.stage == stage_run.stage && sr.status == StackRunStatus::Pending {
            store
                .finish_stack_run(
                    sr.id,
                    &StackRunOutcome {
                        status,
                        plan_summary: None,
                        log_path: None,
                        failure_reason: None,
                    },
                )
                .await?;
        }
    }
    store
        .set_stage_run_status(stage_run.id, StageRunStatus::Failed)
        .await?;
    store.finish_run(run_id, run_status).await?;
    Ok(())
}

/// Ends a stage whose approval is void, and its run, as failed.
async fn void_stage(store: &AnyStore, run_id: i64, stage_run: &StageRun) -> Result<()> {
    end_stage(
        store,
        run_id,
        stage_run,
        StackRunStatus::Failed,
        RunStatus::Failed,
    )
    .await
}

/// `slipway resume`.
pub async fn resume(
    workspace: &Workspace,
    run_id: i64,
    options: &ExecutorOptions,
) -> Result<RunOutcome> {
    recording(workspace, async |recorded, store, recorder| {
        resume_recorded(recorded, store, recorder, run_id, options).await
    })
    .await
}

async fn resume_recorded(
    workspace: &Workspace,
    store: AnyStore,
    recorder: &RunRecorder,
    run_id: i64,
    options: &ExecutorOptions,
) -> Result<RunOutcome> {
    interrupted::report(workspace, &store).await?;
    if let Some((run, stage_run)) = handed_on(&store, run_id).await? {
        recorder.bind(run.id);
        return continue_handed_on(workspace, store, run, stage_run, options).await;
    }
    let (run, stage_run) = awaiting(&store, run_id, None).await?;
    recorder.bind(run.id);
    let Some(approved) = approval(&store, run.id, &stage_run.stage).await? else {
        bail!(
            "run {} is awaiting approval at stage {}, and nobody approved it yet\n  help: slipway approve {} --stage {} --reason \"...\"",
            run.id,
            stage_run.stage,
            run.id,
            stage_run.stage
        );
    };
    if let Some(newer) = newer_delivery(&store, &run, &stage_run.stage).await? {
        void_stage(&store, run.id, &stage_run).await?;
        return Err(with_help(
            anyhow::anyhow!(
                "approval void: run {newer} delivered to {} after run {} planned it; the approved plans were made against what {} ran before, so nothing was applied",
                stage_run.stage,
                run.id,
                stage_run.stage
            ),
            "start a new run (`slipway run`) to plan on top of what the stage runs now, and ask for a new approval",
        ));
    }
    let stack_runs: Vec<StackRun> = store
        .stack_runs(run.id)
        .await?
        .into_iter()
        .filter(|r| r.stage == stage_run.stage)
        .collect();
    let artifact_store = artifacts::open(workspace)?;
    let mut saved_plans = BTreeMap::new();
    let mut void = Vec::new();
    for sr in &stack_runs {
        let summary = plan_summary(sr);
        let Some(path) = summary.get("plan_file").and_then(|p| p.as_str()) else {
            continue;
        };
        let path = find_saved_plan(workspace, &artifact_store, sr, path, &summary).await?;
        let path = path.display().to_string();
        let approved_hash = approved.get(&sr.stack).cloned().unwrap_or_default();
        let actual =
            file_sha256(std::path::Path::new(&path)).unwrap_or_else(|_| "(missing)".to_owned());
        if actual != approved_hash {
            void.push(format!(
                "  {}: the saved plan {path} hashes to {actual}, but {approved_hash} was approved",
                sr.stack
            ));
        }
        saved_plans.insert(
            sr.stack.clone(),
            SavedPlan {
                path: path.into(),
                sha256: approved_hash,
            },
        );
    }
    if !void.is_empty() {
        void_stage(&store, run.id, &stage_run).await?;
        bail!(
            "approval void: the plans changed after run {} was approved at stage {}; nothing was applied\n{}\n  help: start a new run (`slipway run`) to plan again and ask for a new approval",
            run.id,
            stage_run.stage,
            void.join("\n")
        );
    }
    continue_at(
        workspace,
        &store,
        &artifact_store,
        &run,
        &stage_run,
        &stack_runs,
        Some(saved_plans),
        options,
    )
    .await
}

/// Delivers a run from `stage_run`'s stage on, with the artifacts and stack runs already
/// recorded there: applying `approved` plans as they are, or (`None`, a stage handed on)
/// planning as any stage.
#[allow(clippy::too_many_arguments)]
async fn continue_at(
    workspace: &Workspace,
    store: &AnyStore,
    artifact_store: &slipway_artifact::Store,
    run: &Run,
    stage_run: &StageRun,
    stack_runs: &[StackRun],
    approved: Option<BTreeMap<String, SavedPlan>>,
    options: &ExecutorOptions,
) -> Result<RunOutcome> {
    let deliverables: BTreeMap<String, Deliverable> = stack_runs
        .iter()
        .filter_map(|sr| {
            sr.artifact_id.as_ref().map(|id| {
                (
                    sr.stack.clone(),
                    Deliverable {
                        artifact_id: id.clone(),
                        commit: run.commit.clone(),
                    },
                )
            })
        })
        .collect();
    let index = workspace
        .project
        .stages
        .iter()
        .position(|s| s.name == stage_run.stage)
        .with_context(|| format!("stage `{}` is no longer in slipway.hcl", stage_run.stage))?;
    workspace.observer.observe(&Event::RunResumed {
        run: run.id,
        stage: stage_run.stage.clone(),
    });
    let pipeline = Pipeline {
        workspace,
        store,
        artifacts: artifact_store,
        run,
        deliverables: &deliverables,
        options,
    };
    pipeline
        .stages_from(
            index,
            Some(Resumed {
                stage_run_id: stage_run.id,
                stack_runs: stack_runs.iter().map(|r| (r.stack.clone(), r.id)).collect(),
                approved: approved.is_some(),
                saved_plans: approved.unwrap_or_default(),
            }),
        )
        .await
}

/// The run and its stage handed on to a worker with the stage's labels, if `run_id` waits
/// for one.
async fn handed_on(store: &AnyStore, run_id: i64) -> Result<Option<(Run, StageRun)>> {
    let run = store
        .run(run_id)
        .await?
        .with_context(|| format!("there is no run {run_id}"))?;
    if run.status != RunStatus::Running {
        return Ok(None);
    }
    let pending = store
        .stage_runs(run.id)
        .await?
        .into_iter()
        .find(|s| s.status == StageRunStatus::Pending);
    Ok(pending.map(|stage_run| (run, stage_run)))
}

/// Continues a handed-on run at its pending stage, with the artifacts recorded there.
async fn continue_handed_on(
    workspace: &Workspace,
    store: AnyStore,
    run: Run,
    stage_run: StageRun,
    options: &ExecutorOptions,
) -> Result<RunOutcome> {
    let stack_runs: Vec<StackRun> = store
        .stack_runs(run.id)
        .await?
        .into_iter()
        .filter(|r| r.stage == stage_run.stage)
        .collect();
    let artifact_store = artifacts::open(workspace)?;
    continue_at(
        workspace,
        &store,
        &artifact_store,
        &run,
        &stage_run,
        &stack_runs,
        None,
        options,
    )
    .await
}

/// Where the saved plan of a stack run is on this machine. The process that planned kept it
/// in its data folder and in the artifact store; another clone (the next CI job) fetches it
/// from the store into its own data folder. A plan found nowhere yields the recorded path,
/// which then reads as "(missing)" and voids the approval.
pub(crate) async fn find_saved_plan(
    workspace: &Workspace,
    artifact_store: &slipway_artifact::Store,
    stack_run: &StackRun,
    recorded: &str,
    summary: &serde_json::Value,
) -> Result<std::path::PathBuf> {
    let recorded = std::path::PathBuf::from(recorded);
    if recorded.is_file() {
        return Ok(recorded);
    }
    let Some(key) = summary.get("plan_key").and_then(|k| k.as_str()) else {
        return Ok(recorded);
    };
    let Some(bytes) = artifact_store.get_file(key).await.with_context(|| {
        format!(
            "cannot read the saved plan of `{}` from the artifact store",
            stack_run.stack
        )
    })?
    else {
        return Ok(recorded);
    };
    let local = workspace.ensure_data_dir()?.join(key);
    if let Some(parent) = local.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(&local, bytes).with_context(|| format!("cannot write {}", local.display()))?;
    workspace.observer.observe(&Event::SavedPlanFetched {
        stack: stack_run.stack.clone(),
        from: artifact_store.location(),
    });
    Ok(local)
}

/// An audit entry about a whole stage of a run (approve, reject).
async fn audit_run(
    actor: &str,
    store: &AnyStore,
    action: AuditAction,
    stage: &str,
    run_id: i64,
    details: serde_json::Value,
) -> Result<()> {
    store
        .append_audit(&slipway_store::NewAuditEntry {
            actor: actor.to_owned(),
            action,
            stage: Some(stage.to_owned()),
            stack: None,
            run_id: Some(run_id),
            details,
        })
        .await
        .context("cannot write the audit log")?;
    Ok(())
}
