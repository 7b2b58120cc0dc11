//! Applies that died half-way. Every command that applies first looks for stack runs still
//! "applying" whose process is gone and for stale instance locks, and reports them with
//! what they left (an `errored.tfstate`, a Terraform state lock) and the command that
//! resolves them. slipway never retries such an instance on its own: its lock stays held
//! until a person runs `slipway resolve-interrupted`, which is audited.

use std::path::PathBuf;

use anyhow::Result;
use slipway_store::{AnyStore, LockOwner, RunStatus, StageRunStatus, Store, human_duration};

use crate::events::Event;
use crate::project::Workspace;

/// Reports every interrupted apply and stale instance lock; returns how many were found.
pub async fn report(workspace: &Workspace, store: &AnyStore) -> Result<usize> {
    let interrupted = store.interrupted_stack_runs().await?;
    let now = slipway_store::UnixMillis::now();
    for run in &interrupted {
        workspace.observer.observe(&Event::InterruptedRunFound {
            stack_run: run.id,
            instance: run.instance.clone(),
            stack: run.stack.clone(),
            owner: run
                .owner
                .as_ref()
                .map_or_else(|| "an unknown process".to_owned(), ToString::to_string),
            since: run.started_at.map(|at| human_duration(now.since(at))),
            left_behind: leftovers(workspace, &run.instance, &run.stack),
        });
    }
    let locks = store.instance_locks().await?;
    let mut stale = 0;
    for held in locks.iter().filter(|l| l.stale.is_some()) {
        stale += 1;
        workspace.observer.observe(&Event::StaleLock {
            held: held.to_string(),
        });
    }
    Ok(interrupted.len() + stale)
}

/// Files an interrupted engine run may have left: Terraform's `errored.tfstate` (state it
/// could not save) and the local backend's lock info.
fn leftovers(workspace: &Workspace, instance: &str, stack: &str) -> Vec<PathBuf> {
    let data = workspace.data_dir();
    let mut candidates = vec![
        data.join("state")
            .join(instance)
            .join(stack)
            .join(".terraform.tfstate.lock.info"),
    ];
    if let Some(dir) = workspace.project.stack(stack).map(|s| s.dir.clone()) {
        let copy = data
            .join("work")
            .join(instance)
            .join(stack)
            .join("tree")
            .join(dir);
        candidates.push(copy.join("errored.tfstate"));
        candidates.push(copy.join(".terraform.tfstate.lock.info"));
    }
    candidates.into_iter().filter(|p| p.exists()).collect()
}

/// `slipway resolve-interrupted ID --note TEXT`: marks the stack run interrupted (audited by
/// the store) and frees the stale instance lock its run left.
pub async fn resolve(workspace: &Workspace, stack_run_id: i64, note: &str) -> Result<()> {
    let store = crate::record::open(workspace).await?;
    let actor = workspace.settings.actor.clone();
    let resolved = store
        .resolve_interrupted(stack_run_id, &actor, note)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "{e}\n  help: `slipway status` lists interrupted applies with their stack run ids"
            )
        })?;
    for held in store.instance_locks().await? {
        let lock = &held.lock;
        if lock.stack == resolved.stack
            && lock.instance == resolved.instance
            && lock.owner.run_id == resolved.run_id
            && held.stale.is_some()
        {
            let me = LockOwner::current(resolved.run_id);
            store.break_stale_lock(&held, &me, &actor).await?;
            store
                .release_instance_lock(&lock.stack, &lock.instance, &me)
                .await?;
            workspace.observer.observe(&Event::StaleLockFreed {
                instance: lock.instance.clone(),
                stack: lock.stack.clone(),
                owner: lock.owner.to_string(),
            });
        }
    }
    // The process that drove the run is gone, so the run is over too.
    if let Some(run) = store.run(resolved.run_id).await?
        && run.status == RunStatus::Running
    {
        for stage_run in store.stage_runs(run.id).await? {
            if stage_run.status == StageRunStatus::Running {
                store
                    .set_stage_run_status(stage_run.id, StageRunStatus::Failed)
                    .await?;
            }
        }
        store.finish_run(run.id, RunStatus::Interrupted).await?;
    }
    workspace.observer.observe(&Event::InterruptedRunResolved {
        stack_run: resolved.id,
        instance: resolved.instance.clone(),
        stack: resolved.stack.clone(),
    });
    Ok(())
}
