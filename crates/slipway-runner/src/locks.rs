//! Instance locks held for a whole command. A manual `apply`, `destroy` or `recover` locks
//! every stack instance it may change before anything starts, all or none, so it never runs
//! beside a pipeline run (or another command) on the same instance; the command is refused up
//! front, naming the run that holds the instance. The locks are released on every exit path
//! by the caller's `release`, also when the work failed.

use anyhow::Result;
use slipway_store::{AnyStore, LockOwner, NewRun, RunStatus, Store, StoreError};

use crate::help::with_help;
use crate::project::Workspace;

/// The locks of one command, with the run it is recorded as.
#[derive(Debug)]
pub struct HeldInstances {
    store: AnyStore,
    instance: String,
    owner: LockOwner,
    stacks: Vec<String>,
    /// The run the command is recorded as; its id names the command in the lock.
    pub run_id: i64,
}

impl HeldInstances {
    /// Records a run for `command` (`apply`, `destroy`, `recover`) and locks `stacks` of
    /// `instance` for it. Refused, with nothing left locked and the run recorded as failed,
    /// when any of them is held.
    pub async fn acquire(
        workspace: &Workspace,
        store: &AnyStore,
        command: &str,
        instance: &str,
        stacks: impl IntoIterator<Item = &String>,
    ) -> Result<Self> {
        let run = store
            .create_run(&NewRun {
                commit: head_commit(workspace),
                trigger: command.to_owned(),
                actor: workspace.settings.actor.clone(),
            })
            .await?;
        let mut held = Self {
            store: store.clone(),
            instance: instance.to_owned(),
            owner: LockOwner::current(run.id),
            stacks: Vec::new(),
            run_id: run.id,
        };
        for stack in stacks {
            match store
                .acquire_instance_lock(stack, instance, &held.owner)
                .await
            {
                Ok(_) => held.stacks.push(stack.clone()),
                Err(error) => {
                    held.release(RunStatus::Failed).await;
                    return Err(match error {
                        StoreError::InstanceLocked(lock) => with_help(
                            anyhow::anyhow!(
                                "cannot {command} `{instance}`: {lock}; nothing was changed"
                            ),
                            if lock.stale.is_some() {
                                "its process is gone: `slipway status` names the interrupted apply, and `slipway resolve-interrupted` frees the lock".to_owned()
                            } else {
                                format!(
                                    "wait for run {} to finish, then run this again",
                                    lock.lock.owner.run_id
                                )
                            },
                        ),
                        other => anyhow::Error::from(other)
                            .context(format!("cannot lock `{stack}` of `{instance}`")),
                    });
                }
            }
        }
        Ok(held)
    }

    /// Releases every lock and records how the command's run ended. Record errors are not
    /// the caller's to handle here: a lock left behind is reported as stale later.
    pub async fn release(self, status: RunStatus) {
        for stack in &self.stacks {
            let _ = self
                .store
                .release_instance_lock(stack, &self.instance, &self.owner)
                .await;
        }
        let _ = self.store.finish_run(self.run_id, status).await;
    }
}

/// The commit the working tree is on, for the run record; empty outside a repository.
fn head_commit(workspace: &Workspace) -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--verify", "--quiet", "HEAD"])
        .current_dir(&workspace.root)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default()
}
