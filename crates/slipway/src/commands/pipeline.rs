//! `slipway run` (the whole pipeline for the current commit), `approve`, `resume`, `reject`
//! and `resolve-interrupted`. See docs/pipeline.md.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use clap::Args;
use slipway_artifact::ArtifactStore as _;
use slipway_store::{
    AnyStore, AuditAction, NewRun, Run, RunStatus, StackRun, StackRunOutcome, StackRunStatus,
    StageRun, StageRunStatus, Store,
};

use super::ExitStatus;
use super::changed;
use super::deliver::RunOptions;
use crate::pipeline::deliver::{Deliverable, Delivery, SavedPlan, deliver, file_sha256};
use crate::pipeline::{artifacts, interrupted, short_commit, short_id};
use crate::project::Workspace;
use crate::record;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Compare from this commit (default: the commit last released to the first stage; with
    /// none, every stack counts as changed).
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,
    #[command(flatten)]
    pub options: RunOptions,
    #[command(flatten)]
    pub local: super::ci::LocalStateArgs,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The run awaiting approval.
    #[arg(value_name = "RUN")]
    pub run: i64,
    /// The stage whose plans are approved.
    #[arg(long, short = 's', value_name = "STAGE")]
    pub stage: String,
    /// Why the plans may be applied (kept in the audit log).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The approved run.
    #[arg(value_name = "RUN")]
    pub run: i64,
    #[command(flatten)]
    pub options: RunOptions,
}

#[derive(Debug, Args)]
pub struct RejectArgs {
    /// The run awaiting approval.
    #[arg(value_name = "RUN")]
    pub run: i64,
    /// The stage whose plans are rejected.
    #[arg(long, short = 's', value_name = "STAGE")]
    pub stage: String,
    /// Why (kept in the audit log).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// The stack run reported as interrupted.
    #[arg(value_name = "STACK_RUN")]
    pub stack_run: i64,
    /// What you found and did (kept in the record and the audit log).
    #[arg(long, value_name = "TEXT")]
    pub note: String,
}

/// `slipway run`.
pub async fn run(workspace: &Workspace, args: &RunArgs) -> Result<ExitStatus> {
    let store = record::open(workspace).await?;
    interrupted::report(workspace, &store).await?;
    let commit = artifacts::resolve_commit(workspace, "HEAD")?;
    let detected = changed::detect(&workspace.root, args.base.clone(), commit.commit_hash())?;
    let to_run: BTreeSet<String> = detected
        .set
        .stacks_to_run()
        .map(str::to_owned)
        .filter(|s| workspace.project.stack(s).is_some())
        .collect();
    let base = detected
        .base
        .as_ref()
        .map_or_else(|| "none".to_owned(), |b| short_commit(&b.commit).to_owned());
    if let Some(because) = &detected.set.all_changed_because {
        eprintln!("every stack counts as changed: {because}");
    }
    if to_run.is_empty() {
        eprintln!(
            "nothing to deliver: no stack changed between {base} and {}",
            short_commit(commit.commit_hash())
        );
        return Ok(ExitStatus::Success);
    }
    eprintln!(
        "changed since {base}: {}",
        to_run.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    let artifact_store = artifacts::open(workspace)?;
    let built = artifacts::build(workspace, &store, &artifact_store, &commit, &to_run).await?;
    let deliverables: BTreeMap<String, Deliverable> = built
        .into_iter()
        .map(|(stack, b)| {
            eprintln!("  artifact {stack}: {}", short_id(&b.id.to_string()));
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
            actor: record::actor(),
        })
        .await?;
    eprintln!(
        "run {}: commit {}",
        run.id,
        short_commit(commit.commit_hash())
    );
    // From zero and from latest, side by side, before anything reaches a stage.
    let verified = crate::verify::paths::before_first_stage(
        workspace,
        &store,
        &artifact_store,
        run.id,
        &deliverables,
        args.options.executor(),
    )
    .await;
    if !verified.unwrap_or_else(|error| {
        eprintln!("error: verification could not run: {error:#}");
        false
    }) {
        store.finish_run(run.id, RunStatus::Failed).await?;
        return Ok(ExitStatus::Failure);
    }
    let pipeline = Pipeline {
        workspace,
        store: &store,
        artifacts: &artifact_store,
        run: &run,
        deliverables: &deliverables,
        options: &args.options,
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
    options: &'a RunOptions,
}

/// An approved stage to apply first: its stage run, stack runs and saved plans.
struct Approved {
    stage_run_id: i64,
    stack_runs: BTreeMap<String, i64>,
    saved_plans: BTreeMap<String, SavedPlan>,
}

impl Pipeline<'_> {
    async fn stages_from(
        &self,
        start: usize,
        mut approved: Option<Approved>,
    ) -> Result<ExitStatus> {
        let run_id = self.run.id;
        for stage in self.workspace.project.stages.iter().skip(start) {
            let resumed = approved.take();
            let plan_only = stage.approval && resumed.is_none();
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
                options: self.options.executor(),
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
                eprintln!(
                    "\nrun {run_id} failed at stage {}; later stages were not started",
                    stage.name
                );
                return Ok(ExitStatus::Failure);
            }
            if plan_only {
                let runs = self.store.stack_runs(run_id).await?;
                eprintln!(
                    "\nrun {run_id} is awaiting approval at stage {}. Saved plans:",
                    stage.name
                );
                for sr in runs.iter().filter(|r| r.stage == stage.name) {
                    let summary = plan_summary(sr);
                    let hash = summary.get("sha256").and_then(|h| h.as_str()).unwrap_or(
                        "(planned on resume: inputs unknown until its dependencies apply)",
                    );
                    eprintln!("  {:<16} {hash}", sr.stack);
                }
                eprintln!(
                    "  approve: slipway approve {run_id} --stage {} --reason \"...\"\n  then:    slipway resume {run_id}\n  or:      slipway reject {run_id} --stage {} --reason \"...\"",
                    stage.name, stage.name
                );
                return Ok(ExitStatus::Success);
            }
        }
        self.store.finish_run(run_id, RunStatus::Succeeded).await?;
        eprintln!("\nrun {run_id} delivered to every stage");
        Ok(ExitStatus::Success)
    }
}

fn plan_summary(stack_run: &StackRun) -> serde_json::Value {
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

/// The approval of a stage of a run, from the audit log: the plan hashes it names.
async fn approval(
    store: &AnyStore,
    run_id: i64,
    stage: &str,
) -> Result<Option<BTreeMap<String, String>>> {
    let entries = store.audit_log(None, u32::MAX).await?;
    Ok(entries
        .into_iter()
        .rev()
        .find(|e| {
            e.action == AuditAction::Approve
                && e.run_id == Some(run_id)
                && e.stage.as_deref() == Some(stage)
        })
        .map(|e| {
            e.details
                .get("plans")
                .and_then(|p| p.as_object())
                .map(|plans| {
                    plans
                        .iter()
                        .filter_map(|(k, v)| v.as_str().map(|h| (k.clone(), h.to_owned())))
                        .collect()
                })
                .unwrap_or_default()
        }))
}

/// `slipway approve`.
pub async fn approve(workspace: &Workspace, args: &ApproveArgs) -> Result<ExitStatus> {
    let store = record::open(workspace).await?;
    let (_, stage_run) = awaiting(&store, args.run, Some(&args.stage)).await?;
    let mut plans = serde_json::Map::new();
    for sr in store
        .stack_runs(args.run)
        .await?
        .iter()
        .filter(|r| r.stage == stage_run.stage)
    {
        if let Some(hash) = plan_summary(sr).get("sha256").and_then(|h| h.as_str()) {
            plans.insert(sr.stack.clone(), serde_json::Value::String(hash.to_owned()));
        }
    }
    audit_run(
        &store,
        AuditAction::Approve,
        &stage_run.stage,
        args.run,
        serde_json::json!({ "reason": args.reason, "plans": plans }),
    )
    .await?;
    eprintln!(
        "approved run {} at stage {} ({} saved plan{}) by {}\n  next: slipway resume {}",
        args.run,
        stage_run.stage,
        plans.len(),
        if plans.len() == 1 { "" } else { "s" },
        record::actor(),
        args.run
    );
    Ok(ExitStatus::Success)
}

/// `slipway reject`.
pub async fn reject(workspace: &Workspace, args: &RejectArgs) -> Result<ExitStatus> {
    let store = record::open(workspace).await?;
    let (_, stage_run) = awaiting(&store, args.run, Some(&args.stage)).await?;
    audit_run(
        &store,
        AuditAction::Reject,
        &stage_run.stage,
        args.run,
        serde_json::json!({ "reason": args.reason }),
    )
    .await?;
    end_stage(&store, args.run, &stage_run, StackRunStatus::Skipped).await?;
    eprintln!(
        "rejected run {} at stage {}; the run is over",
        args.run, stage_run.stage
    );
    Ok(ExitStatus::Success)
}

async fn end_stage(
    store: &AnyStore,
    run_id: i64,
    stage_run: &StageRun,
    status: StackRunStatus,
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
    store.finish_run(run_id, RunStatus::Failed).await?;
    Ok(())
}

/// `slipway resume`.
pub async fn resume(workspace: &Workspace, args: &ResumeArgs) -> Result<ExitStatus> {
    let store = record::open(workspace).await?;
    interrupted::report(workspace, &store).await?;
    let (run, stage_run) = awaiting(&store, args.run, None).await?;
    let Some(approved) = approval(&store, run.id, &stage_run.stage).await? else {
        bail!(
            "run {} is awaiting approval at stage {}, and nobody approved it yet\n  help: slipway approve {} --stage {} --reason \"...\"",
            run.id,
            stage_run.stage,
            run.id,
            stage_run.stage
        );
    };
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
        end_stage(&store, run.id, &stage_run, StackRunStatus::Failed).await?;
        bail!(
            "approval void: the plans changed after run {} was approved at stage {}; nothing was applied\n{}\n  help: start a new run (`slipway run`) to plan again and ask for a new approval",
            run.id,
            stage_run.stage,
            void.join("\n")
        );
    }
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
    eprintln!("resuming run {} at stage {}", run.id, stage_run.stage);
    let pipeline = Pipeline {
        workspace,
        store: &store,
        artifacts: &artifact_store,
        run: &run,
        deliverables: &deliverables,
        options: &args.options,
    };
    pipeline
        .stages_from(
            index,
            Some(Approved {
                stage_run_id: stage_run.id,
                stack_runs: stack_runs.iter().map(|r| (r.stack.clone(), r.id)).collect(),
                saved_plans,
            }),
        )
        .await
}

/// Where the saved plan of a stack run is on this machine. The process that planned kept it
/// in its data folder and in the artifact store; another clone (the next CI job) fetches it
/// from the store into its own data folder. A plan found nowhere yields the recorded path,
/// which then reads as "(missing)" and voids the approval.
async fn find_saved_plan(
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
    eprintln!(
        "fetched the saved plan of `{}` from {}",
        stack_run.stack,
        artifact_store.location()
    );
    Ok(local)
}

/// An audit entry about a whole stage of a run (approve, reject).
async fn audit_run(
    store: &AnyStore,
    action: AuditAction,
    stage: &str,
    run_id: i64,
    details: serde_json::Value,
) -> Result<()> {
    store
        .append_audit(&slipway_store::NewAuditEntry {
            actor: record::actor(),
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

/// `slipway resolve-interrupted`.
pub async fn resolve(workspace: &Workspace, args: &ResolveArgs) -> Result<ExitStatus> {
    interrupted::resolve(workspace, args.stack_run, &args.note).await?;
    Ok(ExitStatus::Success)
}
