//! slipway's git adapter: resolves revisions, detects shallow clones, lists what changed
//! between two commits, reads the stacks of a commit without checking it out, and keeps a
//! server's working copy at the commit it delivers.
//!
//! It drives the `git` command-line tool through `std::process`, so it behaves exactly as
//! the git the user has (its configuration, its object formats, its partial clones). The
//! questions on the fast path of change detection (where the repository is, two commits,
//! their diff) are first asked in-process with gitoxide, which answers only where its
//! answer is git's (`in_process`). It
//! knows git and the layout of a slipway project (where `stack.hcl` and `.tf` files live);
//! it does not decide what a change affects: that is `slipway_core::changes`.
//!
//! Every path it hands back is relative to the project root (the folder holding
//! `slipway.hcl`), with `/` separators, even when the project sits below the repository's
//! top folder.

mod batch;
mod checkout;
mod diff;
mod error;
mod in_process;
mod log;
mod project_files;
mod repo;
mod snapshot;
mod tree;

pub use checkout::Author;
pub use diff::parse_name_status;
pub use error::GitError;
pub use log::{LogEntry, parse_log};
pub use project_files::{BlobChange, BlobEntry, is_project_file};
pub use repo::{EarlyDiff, Repo};
pub use snapshot::BlobReader;
pub use tree::TreeReader;

/// Whether `rev` is a full object id (SHA-1 or SHA-256), which `rev-parse` resolves to
/// itself when it names a commit.
pub fn is_object_id(rev: &str) -> bool {
    matches!(rev.len(), 40 | 64) && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether the environment variable `name` changes which repository, objects or settings
/// git reads: with any of them set, only git itself gives git's answers.
pub fn redirects_git(name: &str) -> bool {
    matches!(
        name,
        "GIT_DIR"
            | "GIT_WORK_TREE"
            | "GIT_COMMON_DIR"
            | "GIT_OBJECT_DIRECTORY"
            | "GIT_ALTERNATE_OBJECT_DIRECTORIES"
            | "GIT_CEILING_DIRECTORIES"
            | "GIT_DISCOVERY_ACROSS_FILESYSTEM"
            | "GIT_NAMESPACE"
            | "GIT_REPLACE_REF_BASE"
            | "GIT_NO_REPLACE_OBJECTS"
            | "GIT_SHALLOW_FILE"
            | "GIT_GRAFT_FILE"
    ) || name.starts_with("GIT_CONFIG")
}
