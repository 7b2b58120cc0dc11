//! The questions of a warm change detection answered from the repository's own files with
//! gitoxide, without starting git: where the repository is, which commits two ids or `HEAD`
//! name, and which files differ between two commits' trees.
//!
//! Each answer is either exactly what the git CLI would give or no answer at all, and the
//! caller then asks git. Anything out of the ordinary gets no answer: a bare repository, one
//! whose owner git would not trust, a revision other than a full object id or `HEAD`, an
//! object missing here (a shallow or partial clone), and any diff in which git's rename
//! detection could pair a deleted file with an added one.

use std::path::{Path, PathBuf};

use gix::bstr::ByteSlice;
use gix::diff::tree::recorder::Change;
use gix::objs::TreeRefIter;
use slipway_core::changes::{FileChange, FileStatus};

/// A repository opened in-process, shared by the threads of one detection.
#[derive(Clone)]
pub(crate) struct Objects {
    repo: gix::ThreadSafeRepository,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objects").finish_non_exhaustive()
    }
}

/// Where a repository opened in-process sits, as `git rev-parse --show-toplevel
/// --show-prefix --git-common-dir` tells it.
pub(crate) struct Location {
    pub top: PathBuf,
    /// `""`, or the project folder relative to `top` ending in `/`.
    pub prefix: String,
    pub common_dir: PathBuf,
}

impl Objects {
    /// The repository holding `project_root` and the commits `revs` name, or None when any
    /// of it needs git itself to answer.
    pub(crate) fn open(
        project_root: &Path,
        revs: &[&str],
    ) -> Option<(Self, Location, Vec<String>)> {
        if !revs.iter().all(|rev| *rev == "HEAD" || is_full_sha1(rev)) {
            return None;
        }
        let repo = gix::discover(project_root).ok()?;
        if repo.git_dir_trust() != gix::sec::Trust::Full {
            return None;
        }
        let top = repo.workdir()?.canonicalize().ok()?;
        let root = project_root.canonicalize().ok()?;
        let prefix = root
            .strip_prefix(&top)
            .ok()?
            .components()
            .map(|c| c.as_os_str().to_str().map(|s| format!("{s}/")))
            .collect::<Option<String>>()?;
        let common_dir = repo.common_dir().canonicalize().ok()?;
        let commits = revs
            .iter()
            .map(|rev| commit_of(&repo, rev))
            .collect::<Option<Vec<_>>>()?;
        let location = Location {
            top,
            prefix,
            common_dir,
        };
        Some((
            Self {
                repo: repo.into_sync(),
            },
            location,
            commits,
        ))
    }

    /// What `git diff --name-status -M base head -- prefix` lists, with paths relative to
    /// `prefix`; None when git must be asked (see the module's documentation).
    pub(crate) fn diff(&self, base: &str, head: &str, prefix: &str) -> Option<Vec<FileChange>> {
        let repo = self.repo.to_thread_local();
        let tree_at = |commit: &str| -> Option<Vec<u8>> {
            let id = gix::ObjectId::from_hex(commit.as_bytes()).ok()?;
            let tree = repo.find_commit(id).ok()?.tree().ok()?;
            let folder = prefix.trim_end_matches('/');
            if folder.is_empty() {
                return Some(tree.data.clone());
            }
            match tree.lookup_entry_by_path(folder).ok()? {
                Some(entry) if entry.mode().is_tree() => {
                    Some(repo.find_tree(entry.object_id()).ok()?.data.clone())
                }
                // No project folder at this commit: everything in it was added or deleted.
                _ => Some(Vec::new()),
            }
        };
        let (before, after) = (tree_at(base)?, tree_at(head)?);
        let mut recorder = gix::diff::tree::Recorder::default();
        gix::diff::tree(
            TreeRefIter::from_bytes(&before, repo.object_hash()),
            TreeRefIter::from_bytes(&after, repo.object_hash()),
            &mut gix::diff::tree::State::default(),
            &repo,
            &mut recorder,
        )
        .ok()?;
        file_changes(recorder.records)
    }
}

/// The changed files (not folders) of a tree diff in git's order, or None when git's rename
/// detection could pair a deletion with an addition.
fn file_changes(records: Vec<Change>) -> Option<Vec<FileChange>> {
    let (mut added, mut deleted) = (false, false);
    let mut changes = Vec::with_capacity(records.len());
    for record in records {
        let (path, status) = match record {
            Change::Addition {
                entry_mode, path, ..
            } if !entry_mode.is_tree() => {
                added = true;
                (path, FileStatus::Added)
            }
            Change::Deletion {
                entry_mode, path, ..
            } if !entry_mode.is_tree() => {
                deleted = true;
                (path, FileStatus::Deleted)
            }
            // Both sides are files: a file that became a folder, or the reverse, is recorded
            // as a deletion and an addition.
            Change::Modification {
                entry_mode, path, ..
            } if !entry_mode.is_tree() => (path, FileStatus::Modified),
            // Folders: their files come as records of their own.
            _ => continue,
        };
        if added && deleted {
            return None;
        }
        changes.push(FileChange::new(path.to_str().ok()?.to_owned(), status));
    }
    // Git lists a diff depth-first in tree order, which is byte order of the whole paths.
    changes.sort_unstable_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    Some(changes)
}

/// The commit `rev` (a full object id, or `HEAD`) names, as `rev-parse REV^{commit}` gives it.
fn commit_of(repo: &gix::Repository, rev: &str) -> Option<String> {
    let commit = if rev == "HEAD" {
        repo.head_commit().ok()?
    } else {
        let id = gix::ObjectId::from_hex(rev.as_bytes()).ok()?;
        repo.find_object(id).ok()?.peel_to_commit().ok()?
    };
    Some(commit.id.to_string())
}

fn is_full_sha1(rev: &str) -> bool {
    rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit())
}
