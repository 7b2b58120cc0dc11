//! `slipway build`, `deploy`, `promote` and `rollback`: artifacts built at a commit, and
//! delivered to a stage as they are (see docs/pipeline.md).

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use clap::Args;
use slipway_store::{AnyStore, AuditAction, NewRun, RunStatus, Store};

use super::ExitStatus;
use super::approval::{Approval, ApprovalArgs};
use crate::pipeline::deliver::{Deliverable, Delivery, deliver};
use crate::pipeline::{artifacts, interrupted, short_commit, short_id};
use crate::project::Workspace;
use crate::project::{check_stack, chosen_stacks, find_stage, with_dependencies};
use crate::record;
use crate::stage_executor::ExecutorOptions;

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The commit to build from (a hash, branch or tag).
    #[arg(long, value_name = "REF", default_value = "HEAD")]
    pub commit: String,
    /// Only these stacks (repeatable); default: every stack.
    #[arg(long = "stack", value_name = "STACK")]
    pub stacks: Vec<String>,
}

/// Execution settings shared by the commands that apply.
#[derive(Debug, Clone, Args)]
pub struct RunOptions {
    /// How many stacks may run at once (default: `parallelism` in slipway.hcl, else 4).
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub parallelism: Option<u16>,
    /// Stream the engine's own output instead of progress lines.
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

impl RunOptions {
    pub fn executor(&self) -> ExecutorOptions {
        ExecutorOptions {
            parallelism: self.parallelism.map(usize::from),
            verbose: self.verbose,
            step_timeout: None,
            ..ExecutorOptions::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The stage to deploy to.
    #[arg(long, short = 's', value_name = "STAGE")]
    pub stage: String,
    /// The commit whose artifacts are deployed (built when missing).
    #[arg(long, value_name = "REF", default_value = "HEAD")]
    pub commit: String,
    /// Only these stacks (repeatable) and what they depend on; default: every stack.
    #[arg(long = "stack", value_name = "STACK")]
    pub stacks: Vec<String>,
    #[command(flatten)]
    pub approval: ApprovalArgs,
    #[command(flatten)]
    pub options: RunOptions,
    #[command(flatten)]
    pub events: super::EventsArgs,
    #[command(flatten)]
    pub local: super::ci::LocalStateArgs,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The stage whose released artifacts are promoted.
    #[arg(long, value_name = "STAGE")]
    pub from: String,
    /// The stage they are applied to.
    #[arg(long, value_name = "STAGE")]
    pub to: String,
    /// Only these stacks (repeatable); default: every stack released in --from.
    #[arg(long = "stack", value_name = "STACK")]
    pub stacks: Vec<String>,
    #[command(flatten)]
    pub approval: ApprovalArgs,
    #[command(flatten)]
    pub options: RunOptions,
    #[command(flatten)]
    pub events: super::EventsArgs,
    #[command(flatten)]
    pub local: super::ci::LocalStateArgs,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The stage to roll back.
    #[arg(long, short = 's', value_name = "STAGE")]
    pub stage: String,
    /// The stack to roll back (its dependents are not re-applied).
    #[arg(long, value_name = "STACK")]
    pub stack: String,
    /// The artifact to go back to (full id or its 12-digit short form); default: the release
    /// before the current one.
    #[arg(long, value_name = "ARTIFACT")]
    pub to: Option<String>,
    #[command(flatten)]
    pub approval: ApprovalArgs,
    #[command(flatten)]
    pub options: RunOptions,
}

/// `slipway build`.
pub async fn build(workspace: &Workspace, args: &BuildArgs) -> Result<ExitStatus> {
    let stacks = chosen_stacks(workspace, &args.stacks)?;
    let store = record::open(workspace).await?;
    let artifact_store = artifacts::open(workspace)?;
    let commit = artifacts::resolve_commit(workspace, &args.commit)?;
    let built = artifacts::build(workspace, &store, &artifact_store, &commit, &stacks).await?;
    println!(
        "commit {}  store {}",
        short_commit(commit.commit_hash()),
        slipway_artifact::ArtifactStore::location(&artifact_store)
    );
    for (stack, b) in &built {
        println!(
            "{stack:<20} {}  {:>8} bytes  {}",
            short_id(&b.id.to_string()),
            b.size,
            if b.new { "built" } else { "already stored" }
        );
    }
    Ok(ExitStatus::Success)
}

/// `slipway deploy`.
pub async fn deploy(workspace: &Workspace, args: &DeployArgs) -> Result<ExitStatus> {
    let stage = find_stage(workspace, &args.stage)?;
    let approval = args.approval.check(stage, "deploy")?;
    let named = chosen_stacks(workspace, &args.stacks)?;
    let selected = with_dependencies(&workspace.project, &named);
    let store = record::open(workspace).await?;
    interrupted::report(workspace, &store).await?;
    let artifact_store = artifacts::open(workspace)?;
    let commit = artifacts::resolve_commit(workspace, &args.commit)?;
    let built = artifacts::build(workspace, &store, &artifact_store, &commit, &selected).await?;
    let deliverables: BTreeMap<String, Deliverable> = built
        .into_iter()
        .map(|(stack, b)| {
            (
                stack,
                Deliverable {
                    artifact_id: b.id.to_string(),
                    commit: commit.commit_hash().to_owned(),
                },
            )
        })
        .collect();
    deliver_once(
        workspace,
        &store,
        &artifact_store,
        stage,
        commit.commit_hash(),
        "deploy",
        deliverables,
        AuditAction::Apply,
        approval,
        &args.options,
    )
    .await
}

/// `slipway promote`.
pub async fn promote(workspace: &Workspace, args: &PromoteArgs) -> Result<ExitStatus> {
    find_stage(workspace, &args.from)?;
    let to = find_stage(workspace, &args.to)?;
    let approval = args.approval.check(to, "promote")?;
    let wanted = chosen_stacks(workspace, &args.stacks)?;
    let store = record::open(workspace).await?;
    interrupted::report(workspace, &store).await?;
    let mut deliverables = BTreeMap::new();
    for stack in &wanted {
        match store.current_release(&args.from, stack).await? {
            Some(release) => {
                deliverables.insert(
                    stack.clone(),
                    Deliverable {
                        artifact_id: release.artifact_id,
                        commit: release.commit,
                    },
                );
            }
            None if !args.stacks.is_empty() => bail!(
                "stack `{stack}` has no release in {}\n  help: deploy it there first: `slipway deploy --stage {} --stack {stack}`",
                args.from,
                args.from
            ),
            None => {}
        }
    }
    if deliverables.is_empty() {
        bail!(
            "nothing is released in {} yet\n  help: `slipway deploy --stage {}` first",
            args.from,
            args.from
        );
    }
    let commit = deliverables
        .values()
        .map(|d| d.commit.clone())
        .max()
        .unwrap_or_default();
    let artifact_store = artifacts::open(workspace)?;
    deliver_once(
        workspace,
        &store,
        &artifact_store,
        to,
        &commit,
        "promote",
        deliverables,
        AuditAction::Promote,
        approval,
        &args.options,
    )
    .await
}

/// `slipway rollback`.
pub async fn rollback(workspace: &Workspace, args: &RollbackArgs) -> Result<ExitStatus> {
    let stage = find_stage(workspace, &args.stage)?;
    check_stack(workspace, &args.stack)?;
    let approval = args.approval.check(stage, "rollback")?;
    let store = record::open(workspace).await?;
    interrupted::report(workspace, &store).await?;
    let history = store
        .release_history(&args.stage, &args.stack, 1000)
        .await?;
    let target = match &args.to {
        None => store
            .previous_release(&args.stage, &args.stack)
            .await?
            .with_context(|| {
                format!(
                    "{}/{} has no earlier release to go back to\n  help: `slipway history --stage {} --stack {}` shows its releases",
                    args.stage, args.stack, args.stage, args.stack
                )
            })?,
        Some(wanted) => {
            let wanted = wanted.strip_prefix("sha256:").unwrap_or(wanted);
            history
                .iter()
                .find(|r| short_id(&r.artifact_id) == wanted || r.artifact_id.ends_with(wanted) && wanted.len() == 64)
                .cloned()
                .with_context(|| {
                    format!(
                        "artifact {wanted} was never released to {}/{}\n  help: `slipway history --stage {} --stack {}` lists the artifacts it ran",
                        args.stage, args.stack, args.stage, args.stack
                    )
                })?
        }
    };
    eprintln!(
        "rolling {}/{} back to {} (commit {}, released {})",
        args.stage,
        args.stack,
        short_id(&target.artifact_id),
        short_commit(&target.commit),
        target.released_at.to_rfc3339()
    );
    let deliverables = BTreeMap::from([(
        args.stack.clone(),
        Deliverable {
            artifact_id: target.artifact_id.clone(),
            commit: target.commit.clone(),
        },
    )]);
    let artifact_store = artifacts::open(workspace)?;
    deliver_once(
        workspace,
        &store,
        &artifact_store,
        stage,
        &target.commit,
        "rollback",
        deliverables,
        AuditAction::Rollback,
        approval,
        &args.options,
    )
    .await
}

/// One run of one stage.
#[allow(clippy::too_many_arguments)]
async fn deliver_once(
    workspace: &Workspace,
    store: &AnyStore,
    artifact_store: &slipway_artifact::Store,
    stage: &slipway_core::Stage,
    commit: &str,
    trigger: &str,
    selected: BTreeMap<String, Deliverable>,
    action: AuditAction,
    approval: Option<Approval>,
    options: &RunOptions,
) -> Result<ExitStatus> {
    let run = store
        .create_run(&NewRun {
            commit: commit.to_owned(),
            trigger: trigger.to_owned(),
            actor: workspace.settings.actor.clone(),
        })
        .await?;
    eprintln!("run {}: {trigger} to {}", run.id, stage.name);
    if let Some(approval) = approval {
        approval
            .record(&workspace.settings.actor, store, Some(run.id))
            .await?;
    }
    let delivered = deliver(Delivery {
        workspace,
        store,
        artifacts: artifact_store,
        run_id: run.id,
        stage,
        stage_run_id: None,
        stack_runs: BTreeMap::new(),
        selected,
        saved_plans: BTreeMap::new(),
        action,
        plan_only: false,
        one_step: false,
        options: options.executor(),
    })
    .await;
    let status = match &delivered {
        Ok(d) if d.succeeded => RunStatus::Succeeded,
        _ => RunStatus::Failed,
    };
    store.finish_run(run.id, status).await?;
    let delivered = delivered?;
    Ok(if delivered.succeeded {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}
