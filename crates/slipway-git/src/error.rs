//! Errors of the git adapter.

use std::path::PathBuf;

/// A git command could not run, failed, or printed something unexpected.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git: {source}")]
    Spawn {
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not inside a git repository", dir.display())]
    NotARepository { dir: PathBuf },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("`{command}` printed output slipway cannot read: {detail}")]
    BadOutput { command: String, detail: String },
    #[error("`{rev}` is not a commit in this repository")]
    UnknownRevision { rev: String },
    #[error("cannot talk to `git cat-file`: {source}")]
    Batch {
        #[source]
        source: std::io::Error,
    },
}
