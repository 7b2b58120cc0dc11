//! `init` ahead of a stack's turn.
//!
//! In an apply walk a stack that depends on others waits for them to apply, then spends its
//! first seconds in `init`, which needs nothing from them: the engine installs providers and
//! modules and configures the backend. So while upstream stacks apply, each waiting stack is
//! laid out and initialised in a private copy under the run folder, one at a time in the
//! walk's order. When its turn comes and its own working copy holds the same code, lock file
//! and backend, it takes over what that `init` installed and its own `init` is skipped; when
//! anything differs, its `init` runs as always. The stack's own working copy is never
//! touched before its turn, which is when the walk holds the stack instance's lock.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use slipway_engine::driver::{InitOutcome, StepContext};
use slipway_engine::working_copy::WorkingCopy;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::Executor;

/// What became of one waiting stack's early `init`.
enum Entry {
    /// Under way or done; the receiver gets the initialised copy and what its `init` did
    /// (`None` when it failed).
    Started(oneshot::Receiver<Option<(WorkingCopy, InitOutcome)>>),
    /// The stack's turn came first, or it took what there was: nothing more to do.
    Claimed,
}

/// The early `init`s of one walk.
#[derive(Default)]
pub(crate) struct EarlyInits {
    entries: Mutex<BTreeMap<String, Entry>>,
    task: Mutex<Option<JoinHandle<()>>>,
    /// The walk is over: start no more.
    stopped: AtomicBool,
}

impl std::fmt::Debug for EarlyInits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EarlyInits").finish_non_exhaustive()
    }
}

impl EarlyInits {
    fn folder(executor: &Executor) -> PathBuf {
        executor.run_dir.join("early-init")
    }
}

impl Executor {
    /// Starts initialising, one after the other, the stacks of `selected` that wait for
    /// others of the walk.
    pub(super) fn start_early_inits(self: &Arc<Self>, selected: &BTreeSet<&str>) {
        let waiting: Vec<String> = self
            .project
            .graph
            .order_of(selected.iter().copied())
            .into_iter()
            .filter(|name| {
                self.project
                    .graph
                    .dependencies(name)
                    .iter()
                    .any(|d| selected.contains(d))
            })
            .map(str::to_owned)
            .collect();
        if waiting.is_empty() {
            return;
        }
        let this = Arc::clone(self);
        let task = tokio::spawn(async move {
            for name in waiting {
                if this.interrupt.is_set() || this.early_inits.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let (sender, receiver) = oneshot::channel();
                {
                    let Ok(mut entries) = this.early_inits.entries.lock() else {
                        return;
                    };
                    if entries.contains_key(&name) {
                        continue;
                    }
                    entries.insert(name.clone(), Entry::Started(receiver));
                }
                let copy = this.init_early(&name).await;
                if let Err(Some((unwanted, _))) = sender.send(copy) {
                    remove_copy(&unwanted);
                }
            }
        });
        if let Ok(mut slot) = self.early_inits.task.lock() {
            *slot = Some(task);
        }
    }

    /// Lays out `name` in a private copy and initialises it; `None` when that failed (the
    /// stack's own `init` then runs and reports what is wrong).
    async fn init_early(&self, name: &str) -> Option<(WorkingCopy, InitOutcome)> {
        let work_dir = EarlyInits::folder(self).join(name);
        let copy = self.prepare_quietly(name, &work_dir).ok()?;
        let log = self
            .single_log(&self.run_dir.join(format!("{name}.log")))
            .ok()?;
        log.line(
            "== slipway: initialised ahead of its turn, while the stacks it depends on apply ==",
        );
        let credentials = self.environment.for_stack(name);
        let ctx = StepContext::quiet(&copy, &log, &self.interrupt, &credentials);
        let backend_config = self.backend.backend_config(&self.instance, name);
        match self.engine.init(ctx, &backend_config).await {
            Ok(outcome) => Some((copy, outcome)),
            Err(_) => {
                remove_copy(&copy);
                None
            }
        }
    }

    /// At `name`'s turn, with its working copy laid out: takes over its early `init` when
    /// there is one for the same code and backend, waiting for it if it is under way.
    pub(super) async fn adopt_early_init(&self, name: &str, working_copy: &WorkingCopy) {
        let entry = {
            let Ok(mut entries) = self.early_inits.entries.lock() else {
                return;
            };
            entries.insert(name.to_owned(), Entry::Claimed)
        };
        let Some(Entry::Started(receiver)) = entry else {
            return;
        };
        let Ok(Some((staged, outcome))) = receiver.await else {
            return;
        };
        let backend_config = self.backend.backend_config(&self.instance, name);
        if self
            .engine
            .adopt_init(&staged, working_copy, &backend_config)
        {
            self.note_init(name, outcome);
        }
        remove_copy(&staged);
    }

    /// Waits for the early `init`s still running (none outlives its walk) and removes what
    /// no stack took.
    pub(super) async fn finish_early_inits(&self) {
        self.early_inits.stopped.store(true, Ordering::SeqCst);
        let task = self.early_inits.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            // Stacks that never got their turn (a dependency failed) need nothing more.
            if let Ok(mut entries) = self.early_inits.entries.lock() {
                entries.clear();
            }
            let _ = task.await;
        }
        let _ = std::fs::remove_dir_all(EarlyInits::folder(self));
    }
}

/// Removes an early copy (its folder holds `tree/` and nothing of anyone else's).
fn remove_copy(copy: &WorkingCopy) {
    if let Some(folder) = copy.tree.parent() {
        let _ = std::fs::remove_dir_all(folder);
    }
}
