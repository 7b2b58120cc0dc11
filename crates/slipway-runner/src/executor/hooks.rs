//! What the executor needs to know when it delivers artifacts rather than the working tree:
//! where each stack's code comes from, and the points in a stack's apply where the run
//! record must be told (lock taken, "applying" said durably, saved plan verified).
//!
//! The executor only calls these hooks; the record-keeping lives in `pipeline::deliver`.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use slipway_engine::Interrupt;

/// Where a stack's code is copied from when its working copy is laid out.
#[derive(Debug, Clone, Default)]
pub enum CodeSource {
    /// The project folder as it is on disk.
    #[default]
    WorkingTree,
    /// Extracted artifacts: stack name -> the root of the extracted tree, which mirrors the
    /// repository's paths. Stacks not named here fall back to the working tree (they are
    /// only read, never applied, by a delivery).
    Artifacts(BTreeMap<String, PathBuf>),
}

impl CodeSource {
    /// The folder `stack`'s files are copied from.
    pub fn root_for<'a>(&'a self, stack: &str, project_root: &'a Path) -> &'a Path {
        match self {
            CodeSource::WorkingTree => project_root,
            CodeSource::Artifacts(roots) => roots.get(stack).map_or(project_root, PathBuf::as_path),
        }
    }
}

/// A boxed future, so hooks can be async behind a trait object.
pub type HookFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a hook stopped a stack: the stack fails with it, and what depends on it is skipped.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// Another run holds the stack instance: alive, or dead and not yet resolved (`stale`).
    #[error("{held}\n    help: {}", if *.stale {
        "an earlier run died while it held this instance; inspect it, then `slipway resolve-interrupted` records that and frees the lock"
    } else {
        "two runs never apply the same stack instance at once; wait for that run to finish"
    })]
    InstanceLocked { held: String, stale: bool },
    /// The holder's lock on the stack instance was taken from it while it worked: nothing
    /// more is started on that instance.
    #[error(
        "the lock on `{stack}` in `{instance}` was taken from this run while it worked; nothing more is applied there\n    help: `slipway status` shows who holds it now; start a new run once that is settled"
    )]
    LockLost { stack: String, instance: String },
    /// The front end's claim on the work (a worker's job) was taken from it while it worked:
    /// nothing more is applied.
    #[error(
        "this worker's job was taken from it while it worked (its lease ran out: the process was paused or cut off); `{stack}` is not applied\n    help: the job is marked interrupted; `slipway status` shows what it left"
    )]
    ClaimLost { stack: String },
    /// The plan file about to be applied is not the one that was approved.
    #[error(
        "approval void: the saved plan {} changed since it was approved (sha256 {approved} was approved, the file now hashes to {actual}); nothing was applied\n    help: start a new run to plan again and ask for a new approval",
        .plan_file.display()
    )]
    ApprovalVoid {
        plan_file: PathBuf,
        approved: String,
        actual: String,
    },
    /// The run record could not be read or written, so the stack must not go on.
    #[error("{what}: {source:#}")]
    Record { what: String, source: anyhow::Error },
}

/// Called by the executor around each stack's apply.
pub trait ApplyHooks: std::fmt::Debug + Send + Sync {
    /// Before anything runs for `stack` (take the instance lock).
    fn start<'a>(&'a self, stack: &'a str) -> HookFuture<'a, Result<(), HookError>>;
    /// A plan approved earlier that must be applied as it is, instead of planning again.
    fn saved_plan(&self, stack: &str) -> Option<PathBuf>;
    /// After planning, right before the engine may change the instance (verify the saved
    /// plan, say "applying" durably).
    fn before_apply<'a>(
        &'a self,
        stack: &'a str,
        plan_file: &'a Path,
    ) -> HookFuture<'a, Result<(), HookError>>;
    /// An interrupt that fires if the lock on `stack`'s instance is taken from this run
    /// while it works: the stack's engine is stopped as Ctrl-C would stop it.
    fn lock_lost(&self, _stack: &str) -> Option<Interrupt> {
        None
    }
    /// The engine process that changes `stack`'s instance has started (`pid` on this host).
    fn engine_started(&self, _stack: &str, _pid: u32) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_errors_say_what_happened_and_what_to_do() {
        let held = "stack `queue` of instance `dev` is locked by run 7 (pid 4242 on ci-runner-3)";
        let errors = [
            HookError::InstanceLocked {
                held: held.to_owned(),
                stale: false,
            },
            HookError::InstanceLocked {
                held: held.to_owned(),
                stale: true,
            },
            HookError::ApprovalVoid {
                plan_file: PathBuf::from("plans/run-7/prod/queue.tfplan"),
                approved: "aa11".to_owned(),
                actual: "bb22".to_owned(),
            },
            HookError::Record {
                what: "cannot record that `queue` is applying".to_owned(),
                source: anyhow::anyhow!("database is locked"),
            },
            HookError::ClaimLost {
                stack: "queue".to_owned(),
            },
        ];
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        insta::assert_snapshot!(text.join("\n---\n"));
    }
}
