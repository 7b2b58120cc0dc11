//! What a project file is (`slipway.hcl`, `stack.hcl`, Terraform files, outside the folders
//! slipway skips), and the records of one at a commit or between two: what the git CLI and
//! the in-process reader both hand back.

use slipway_core::config::{DEFAULT_DATA_DIR, PROJECT_FILE, STACK_FILE};

/// One file of a commit: its path (relative to the project folder) and blob id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobEntry {
    pub path: String,
    pub blob: String,
}

/// How one project file differs between two commits, with its blob id at the later one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobChange {
    /// Added or modified: the file now holds `blob`.
    Set {
        path: String,
        blob: String,
    },
    Deleted {
        path: String,
    },
}

impl BlobChange {
    pub fn path(&self) -> &str {
        match self {
            BlobChange::Set { path, .. } | BlobChange::Deleted { path } => path,
        }
    }
}

/// Whether slipway loads a project from this path (relative to the project folder).
pub fn is_project_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let skipped = path
        .split('/')
        .any(|part| part == ".git" || part == ".terraform" || part == DEFAULT_DATA_DIR);
    !skipped
        && (path == PROJECT_FILE
            || name == STACK_FILE
            || slipway_core::terraform::is_terraform_file(name))
}
