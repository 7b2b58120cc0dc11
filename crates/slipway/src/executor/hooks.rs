//! What the executor needs to know when it delivers artifacts rather than the working tree:
//! where each stack's code comes from, and the points in a stack's apply where the run
//! record must be told (lock taken, "applying" said durably, saved plan verified).
//!
//! The executor only calls these hooks; the record-keeping lives in `pipeline::deliver`.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

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

/// Called by the executor around each stack's apply. Errors are messages for people: the
/// stack fails with them, and what depends on it is skipped.
pub trait ApplyHooks: std::fmt::Debug + Send + Sync {
    /// Before anything runs for `stack` (take the instance lock).
    fn start<'a>(&'a self, stack: &'a str) -> HookFuture<'a, Result<(), String>>;
    /// A plan approved earlier that must be applied as it is, instead of planning again.
    fn saved_plan(&self, stack: &str) -> Option<PathBuf>;
    /// After planning, right before the engine may change the instance (verify the saved
    /// plan, say "applying" durably).
    fn before_apply<'a>(
        &'a self,
        stack: &'a str,
        plan_file: &'a Path,
    ) -> HookFuture<'a, Result<(), String>>;
}
