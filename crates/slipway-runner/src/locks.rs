//! Instance locks held for a whole command. A manual `apply`, `destroy` or `recover` locks
//! every stack instance it may change before anything starts, all or none, so it never runs
//! beside a pipeline run (or another command) on the same instance; the command is refused up
//! front, naming the run that holds the instance. The locks are released on every exit path
//! by the caller's `release`, also when the work failed. While held, a [`Heartbeat`] renews
//! them, so that other hosts never take a long apply for an abandoned one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use slipway_engine::{Interrupt, InterruptTrigger};
use slipway_store::{
    AnyStore, DEFAULT_LEASE, InstanceLock, LockOwner, NewRun, RunStatus, StackRunStatus, Store,
    StoreError,
};

use crate::help::with_help;
use crate::project::Workspace;

/// The locks of one command, with the run it is recorded as.
#[derive(Debug)]
pub struct HeldInstances {
    store: AnyStore,
    instance: String,
    owner: LockOwner,
    stacks: Arc<Mutex<BTreeSet<String>>>,
    heartbeat: Heartbeat,
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
        let owner = LockOwner::current(run.id);
        let stacks_held = Arc::new(Mutex::new(BTreeSet::new()));
        let held = Self {
            store: store.clone(),
            instance: instance.to_owned(),
            heartbeat: Heartbeat::start(
                store.clone(),
                instance.to_owned(),
                owner.clone(),
                Arc::clone(&stacks_held),
                workspace.settings.lock_heartbeat,
            ),
            owner,
            stacks: stacks_held,
            run_id: run.id,
        };
        for stack in stacks {
            match acquire_instance(
                store,
                stack,
                instance,
                &held.owner,
                &workspace.settings.actor,
            )
            .await
            {
                Ok(_) => {
                    if let Ok(mut stacks) = held.stacks.lock() {
                        stacks.insert(stack.clone());
                    }
                }
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
        drop(self.heartbeat);
        let stacks: Vec<String> = self
            .stacks
            .lock()
            .map(|mut s| std::mem::take(&mut *s).into_iter().collect())
            .unwrap_or_default();
        for stack in &stacks {
            let _ = self
                .store
                .release_instance_lock(stack, &self.instance, &self.owner)
                .await;
        }
        let _ = self.store.finish_run(self.run_id, status).await;
    }
}

/// Takes the lock on `stack` in `instance` for `owner`. A stale lock whose holder died before
/// it said "applying" there is taken over (audited as an `unlock` by `actor`): nothing can be
/// half-changed behind it. A stale lock over an apply that died half-way is not: it stays
/// until a person resolves the interrupted apply.
pub async fn acquire_instance(
    store: &AnyStore,
    stack: &str,
    instance: &str,
    owner: &LockOwner,
    actor: &str,
) -> Result<InstanceLock, StoreError> {
    match store.acquire_instance_lock(stack, instance, owner).await {
        Err(StoreError::InstanceLocked(held)) if held.stale.is_some() => {
            let applying = store
                .stack_runs(held.lock.owner.run_id)
                .await?
                .into_iter()
                .any(|run| {
                    run.stack == stack
                        && run.instance == instance
                        && run.status == StackRunStatus::Applying
                });
            if applying {
                return Err(StoreError::InstanceLocked(held));
            }
            store.break_stale_lock(&held, owner, actor).await
        }
        other => other,
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

/// How often a holder says it is alive: well inside the lease, so that a slow database
/// round trip or two never lets a live holder look gone to another host.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(DEFAULT_LEASE.as_secs() / 4);

/// Renews a holder's instance locks while it works. Owners on other hosts are judged by
/// their heartbeat alone (a process table cannot be read across machines): without it, an
/// apply longer than the lease would look abandoned and its lock could be taken over.
/// A lock found taken from its holder is remembered as lost, and whoever asked to be told
/// ([`Heartbeat::interrupt_on_loss`]) is interrupted; the task stops with the value.
#[derive(Debug)]
pub struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
    losses: Arc<Mutex<Losses>>,
}

/// Locks found taken away, and the interrupts waiting to hear of it.
#[derive(Debug, Default)]
struct Losses {
    lost: BTreeSet<String>,
    watchers: BTreeMap<String, Vec<InterruptTrigger>>,
}

impl Losses {
    fn lose(&mut self, stack: String) {
        for watcher in self.watchers.remove(&stack).unwrap_or_default() {
            watcher.fire();
        }
        self.lost.insert(stack);
    }
}

impl Heartbeat {
    /// Renews, every `every`, the locks on `instance` that `held` names at that moment.
    pub fn start(
        store: AnyStore,
        instance: String,
        owner: LockOwner,
        held: Arc<Mutex<BTreeSet<String>>>,
        every: Duration,
    ) -> Self {
        let losses = Arc::new(Mutex::new(Losses::default()));
        let losses_by_task = Arc::clone(&losses);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let stacks: Vec<String> = held
                    .lock()
                    .map(|held| held.iter().cloned().collect())
                    .unwrap_or_default();
                for stack in stacks {
                    // An unreachable record is not a lost lock: the next beat tries again.
                    if let Ok(false) = store
                        .heartbeat_instance_lock(&stack, &instance, &owner)
                        .await
                        && let Ok(mut losses) = losses_by_task.lock()
                    {
                        losses.lose(stack);
                    }
                }
            }
        });
        Self { task, losses }
    }

    /// Whether the lock on `stack` was taken from this holder.
    pub fn lost(&self, stack: &str) -> bool {
        self.losses
            .lock()
            .is_ok_and(|losses| losses.lost.contains(stack))
    }

    /// An interrupt that fires once the lock on `stack` is found taken from this holder
    /// (at once, if it already was).
    pub fn interrupt_on_loss(&self, stack: &str) -> Interrupt {
        let (trigger, interrupt) = Interrupt::channel();
        if let Ok(mut losses) = self.losses.lock() {
            if losses.lost.contains(stack) {
                trigger.fire();
            } else {
                losses
                    .watchers
                    .entry(stack.to_owned())
                    .or_default()
                    .push(trigger);
            }
        }
        interrupt
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls `done` until it holds, failing after a generous deadline: the way to wait for
    /// the heartbeat task, which works on its own schedule.
    async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !done().await {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_heartbeat_renews_held_locks_and_notices_one_taken_away() {
        let dir = tempfile::tempdir().unwrap();
        let url = slipway_store::default_url(dir.path());
        let store = slipway_store::open(&url).await.unwrap();
        let owner = LockOwner::current(1);
        let acquired = store
            .acquire_instance_lock("queue", "prod", &owner)
            .await
            .unwrap();
        let held = Arc::new(Mutex::new(BTreeSet::from(["queue".to_owned()])));
        let heartbeat = Heartbeat::start(
            store.clone(),
            "prod".to_owned(),
            owner.clone(),
            held,
            Duration::from_millis(10),
        );
        let renewed = || async {
            store.instance_locks().await.unwrap()[0].lock.heartbeat_at > acquired.heartbeat_at
        };
        eventually("the heartbeat renews the lock", renewed).await;
        assert!(!heartbeat.lost("queue"));
        let engine_of_queue = heartbeat.interrupt_on_loss("queue");
        let engine_of_other = heartbeat.interrupt_on_loss("other");

        // Someone takes the lock away (here: its row is released under the holder).
        assert!(
            store
                .release_instance_lock("queue", "prod", &owner)
                .await
                .unwrap()
        );
        eventually("the holder notices", || async { heartbeat.lost("queue") }).await;
        // The engine working on the lost instance is interrupted; no other.
        tokio::time::timeout(Duration::from_secs(20), engine_of_queue.wait())
            .await
            .expect("the engine of the lost instance is interrupted");
        assert!(!engine_of_other.is_set());
        assert!(heartbeat.interrupt_on_loss("queue").is_set(), "asked late");
        drop(heartbeat);
        store.close().await;
    }
}
