//! Change detection's questions answered from the repository's own files with gitoxide,
//! without starting git: where the repository is, which commits two ids or `HEAD` name,
//! which files differ between two commits' trees, which project files a commit holds and
//! what they say.
//!
//! Each answer is either exactly what the git CLI would give or no answer at all, and the
//! caller then asks git. Anything out of the ordinary gets no answer: a bare repository, one
//! whose owner git would not trust, a revision other than a full object id or `HEAD`, an
//! object missing here (a shallow or partial clone), and any diff in which git's rename
//! detection could pair a deleted file with an added one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use gix::bstr::ByteSlice;
use gix::diff::tree::recorder::Change;
use gix::objs::TreeRefIter;
use slipway_core::changes::{FileChange, FileStatus};

use crate::project_files::{BlobChange, BlobEntry, is_project_file};

/// A repository opened in-process, shared by the threads of one detection.
#[derive(Clone)]
pub(crate) struct Objects {
    repo: gix::ThreadSafeRepository,
    /// The tree diffs asked for so far. Change detection asks for the same range on two
    /// threads when the change index describes the base (the usual case in a pipeline):
    /// the one that asks second waits for the first one's answer instead of diffing again.
    diffs: Arc<Mutex<TreeDiffs>>,
}

/// Each tree diff asked for, by `(base, head, prefix)`, filled in by the first thread to
/// ask.
type TreeDiffs = Vec<(DiffKey, Arc<TreeDiff>)>;
type DiffKey = (String, String, String);
type TreeDiff = OnceLock<Option<Vec<Change>>>;

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
        // Isolated: the repository's own configuration only, never the environment or the
        // user's and system's files, none of which changes what its objects say.
        let repo = gix::ThreadSafeRepository::discover_opts(
            project_root,
            gix::discover::upwards::Options::default(),
            |_, _| gix::open::Options::isolated(),
        )
        .ok()?
        .to_thread_local();
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
                diffs: Arc::default(),
            },
            location,
            commits,
        ))
    }

    /// What `git diff --name-status -M base head -- prefix` lists, with paths relative to
    /// `prefix`; None when git must be asked (see the module's documentation).
    pub(crate) fn diff(&self, base: &str, head: &str, prefix: &str) -> Option<Vec<FileChange>> {
        file_changes(self.tree_diff(base, head, prefix)?)
    }

    /// What `git diff --raw --no-renames base head -- prefix` lists of the project's files
    /// ([`is_project_file`]), with paths relative to `prefix`; None when git must be asked.
    pub(crate) fn blob_changes(
        &self,
        base: &str,
        head: &str,
        prefix: &str,
    ) -> Option<Vec<BlobChange>> {
        let mut changes = Vec::new();
        for record in self.tree_diff(base, head, prefix)? {
            let (path, now) = match record {
                Change::Addition {
                    entry_mode,
                    oid,
                    path,
                    ..
                }
                | Change::Modification {
                    entry_mode,
                    oid,
                    path,
                    ..
                } if !entry_mode.is_tree() => (path, Some((entry_mode, oid))),
                Change::Deletion {
                    entry_mode, path, ..
                } if !entry_mode.is_tree() => (path, None),
                _ => continue,
            };
            let path = path.to_str().ok()?;
            if !is_project_file(path) {
                continue;
            }
            let path = path.to_owned();
            changes.push(match now {
                // A submodule at the path is no file; a symbolic link is a blob.
                Some((mode, oid)) if !mode.is_commit() => BlobChange::Set {
                    path,
                    blob: oid.to_string(),
                },
                _ => BlobChange::Deleted { path },
            });
        }
        changes.sort_unstable_by(|a, b| a.path().as_bytes().cmp(b.path().as_bytes()));
        Some(changes)
    }

    /// What `git ls-tree -r commit -- prefix` lists of the project's files
    /// ([`is_project_file`]), with paths relative to `prefix`; None when git must be asked.
    pub(crate) fn project_blobs(&self, commit: &str, prefix: &str) -> Option<Vec<BlobEntry>> {
        let repo = self.repo.to_thread_local();
        let files = project_tree(&repo, commit, prefix)?
            .traverse()
            .breadthfirst
            .files()
            .ok()?;
        let mut entries = Vec::new();
        for file in files {
            // Blobs and symbolic links; not folders, not submodules.
            if file.mode.is_tree() || file.mode.is_commit() {
                continue;
            }
            let path = file.filepath.to_str().ok()?;
            if is_project_file(path) {
                entries.push(BlobEntry {
                    path: path.to_owned(),
                    blob: file.oid.to_string(),
                });
            }
        }
        // `ls-tree` lists depth-first in tree order: byte order of the whole paths.
        entries.sort_unstable_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        Some(entries)
    }

    /// The text of each blob, as [`BlobReader::read`](crate::BlobReader::read) gives it;
    /// None when git must be asked: an id that is not a full one, or an object this clone
    /// does not have.
    pub(crate) fn blob_texts(&self, blobs: &[&str]) -> Option<Vec<Option<String>>> {
        // A full read is thousands of blobs and an update hundreds, each inflated on its
        // own: two threads halve it where a second core is free.
        const SPLIT_FROM: usize = 256;
        if blobs.len() >= SPLIT_FROM {
            let (first, second) = blobs.split_at(blobs.len() / 2);
            let (mut first, second) = std::thread::scope(|scope| {
                let second = scope.spawn(|| self.blob_texts_here(second));
                (self.blob_texts_here(first), second.join().ok().flatten())
            });
            first.as_mut()?.extend(second?);
            return first;
        }
        self.blob_texts_here(blobs)
    }

    fn blob_texts_here(&self, blobs: &[&str]) -> Option<Vec<Option<String>>> {
        let repo = self.repo.to_thread_local();
        blobs
            .iter()
            .map(|id| {
                if id.is_empty() {
                    return Some(None);
                }
                if !is_full_sha1(id) {
                    return None;
                }
                let id = gix::ObjectId::from_hex(id.as_bytes()).ok()?;
                let object = repo.try_find_object(id).ok()??;
                if object.kind != gix::object::Kind::Blob {
                    return Some(None);
                }
                Some(String::from_utf8(object.detach().data).ok())
            })
            .collect()
    }

    /// The records of a tree diff below `prefix`, paths relative to it: files and folders.
    fn tree_diff(&self, base: &str, head: &str, prefix: &str) -> Option<Vec<Change>> {
        let diff = {
            let mut diffs = self.diffs.lock().unwrap_or_else(|e| e.into_inner());
            let key = (base.to_owned(), head.to_owned(), prefix.to_owned());
            match diffs.iter().find(|(k, _)| *k == key) {
                Some((_, diff)) => Arc::clone(diff),
                None => {
                    let diff = Arc::new(TreeDiff::new());
                    diffs.push((key, Arc::clone(&diff)));
                    diff
                }
            }
        };
        diff.get_or_init(|| self.tree_diff_uncached(base, head, prefix))
            .clone()
    }

    fn tree_diff_uncached(&self, base: &str, head: &str, prefix: &str) -> Option<Vec<Change>> {
        let repo = self.repo.to_thread_local();
        let (before, after) = (
            project_tree(&repo, base, prefix)?,
            project_tree(&repo, head, prefix)?,
        );
        let mut recorder = gix::diff::tree::Recorder::default();
        gix::diff::tree(
            TreeRefIter::from_bytes(&before.data, repo.object_hash()),
            TreeRefIter::from_bytes(&after.data, repo.object_hash()),
            &mut gix::diff::tree::State::default(),
            &repo,
            &mut recorder,
        )
        .ok()?;
        Some(recorder.records)
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

/// The project folder's tree at `commit`: an empty tree where the commit has no such folder.
fn project_tree<'repo>(
    repo: &'repo gix::Repository,
    commit: &str,
    prefix: &str,
) -> Option<gix::Tree<'repo>> {
    let id = gix::ObjectId::from_hex(commit.as_bytes()).ok()?;
    let tree = repo.find_commit(id).ok()?.tree().ok()?;
    let folder = prefix.trim_end_matches('/');
    if folder.is_empty() {
        return Some(tree);
    }
    match tree.lookup_entry_by_path(folder).ok()? {
        Some(entry) if entry.mode().is_tree() => repo.find_tree(entry.object_id()).ok(),
        _ => Some(repo.empty_tree()),
    }
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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    use crate::Repo;

    fn git(dir: &Path, args: &[&str]) -> String {
        let output = Command::new("git")
            .current_dir(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(["-c", "commit.gpgsign=false"])
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "git {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    fn commit(dir: &Path, files: &[(&str, Option<&str>)]) -> String {
        for (path, text) in files {
            let file = dir.join(path);
            match text {
                Some(text) => {
                    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                    std::fs::write(file, text).unwrap();
                }
                None => std::fs::remove_file(file).unwrap(),
            }
        }
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "--allow-empty", "-m", "step"]);
        git(dir, &["rev-parse", "HEAD"])
    }

    /// The project's files, their changes and their texts read in-process are what
    /// `git ls-tree`, `git diff --raw` and `git cat-file` give, renames, symbolic links,
    /// submodules and files outside the project included, from the top and from below it.
    #[test]
    fn project_files_and_their_changes_are_what_git_lists() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path();
        git(top, &["init", "-q", "-b", "main"]);
        let mut commits = vec![commit(
            top,
            &[
                ("infra/slipway.hcl", Some("project {}\n")),
                ("infra/stacks/a/stack.hcl", Some("stack {}\n")),
                ("infra/stacks/a/main.tf", Some("variable \"a\" {}\n")),
                ("infra/stacks/a/notes.md", Some("not a project file\n")),
                ("infra/modules/m/main.tf.json", Some("{}\n")),
                ("other/x.tf", Some("variable \"x\" {}\n")),
            ],
        )];
        commits.push(commit(
            top,
            &[
                ("infra/stacks/a/main.tf", Some("variable \"a2\" {}\n")),
                ("infra/stacks/a/notes.md", Some("still not\n")),
                ("infra/stacks/b/stack.hcl", Some("stack {}\n")),
                ("infra/modules/m/main.tf.json", None),
                ("other/x.tf", Some("variable \"x2\" {}\n")),
            ],
        ));
        std::fs::rename(top.join("infra/stacks/b"), top.join("infra/stacks/c")).unwrap();
        std::os::unix::fs::symlink("main.tf", top.join("infra/stacks/a/link.tf")).unwrap();
        commits.push(commit(top, &[]));
        // A submodule entry whose name looks like Terraform: no file to read.
        let id = commits[0].clone();
        git(
            top,
            &[
                "update-index",
                "--add",
                "--cacheinfo",
                &format!("160000,{id},infra/sub.tf"),
            ],
        );
        git(top, &["commit", "-q", "-m", "submodule"]);
        commits.push(git(top, &["rev-parse", "HEAD"]));

        for root in [top.to_path_buf(), top.join("infra")] {
            let (in_process, _) = Repo::open_in_process(&root, &["HEAD"]).unwrap();
            let objects = in_process.objects().unwrap();
            let by_git = Repo::open(&root).unwrap();
            // Every project file of a commit, as `ls-tree` lists them.
            for commit in &commits {
                let expected = by_git.project_blobs(commit).unwrap();
                assert!(!expected.is_empty());
                assert_eq!(
                    objects.project_blobs(commit, by_git.prefix()),
                    Some(expected)
                );
            }
            for (from, to) in [(0, 1), (1, 2), (2, 3), (3, 0), (0, 3)] {
                let (from, to) = (&commits[from], &commits[to]);
                let expected = by_git.project_blob_changes(from, to).unwrap();
                assert!(!expected.is_empty());
                assert_eq!(
                    objects.blob_changes(from, to, by_git.prefix()),
                    Some(expected),
                    "{} {from}..{to}",
                    root.display()
                );
            }
            // Blobs read by id: text, a folder's tree, a binary blob, no id and an empty file
            // are read in-process; an abbreviated id or a missing object go to git.
            let blob = |spec: &str| git(top, &["rev-parse", spec]);
            let (text, tree) = (blob("HEAD:infra/slipway.hcl"), blob("HEAD:infra"));
            std::fs::write(top.join("empty"), "").unwrap();
            let empty = git(top, &["hash-object", "-w", "empty"]);
            std::fs::write(top.join("binary"), [0xff, 0xfe, 0]).unwrap();
            let binary_blob = git(top, &["hash-object", "-w", "binary"]);
            let abbreviated = &text[..10];
            let unknown = "0".repeat(40);
            let mut by_id = crate::BlobReader::new(&in_process).unwrap();
            let mut by_batch = crate::BlobReader::new(&by_git).unwrap();
            for ids in [
                &[text.as_str(), &tree, &binary_blob, "", &empty][..],
                &[text.as_str(), abbreviated],
                &[unknown.as_str(), &text],
            ] {
                let answered = objects.blob_texts(ids);
                let expected = by_batch.read(ids).unwrap();
                assert_eq!(answered.is_some(), ids.len() == 5, "{ids:?}");
                assert_eq!(by_id.read(ids).unwrap(), expected, "{ids:?}");
            }
            // Enough blobs to be read on two threads, in order all the same.
            let many: Vec<&str> = (0..700)
                .map(|i| [text.as_str(), &tree, &empty, &binary_blob][i % 4])
                .collect();
            assert_eq!(
                objects.blob_texts(&many),
                Some(by_batch.read(&many).unwrap())
            );
            assert_eq!(
                objects.blob_texts(&[text.as_str(), &tree, &binary_blob]),
                Some(vec![Some("project {}\n".to_owned()), None, None])
            );
            // A commit this repository lacks is git's to report.
            let unknown = "0".repeat(40);
            assert_eq!(objects.blob_changes(&unknown, &commits[0], ""), None);
            assert!(
                in_process
                    .project_blob_changes(&unknown, &commits[0])
                    .is_err()
            );
        }
    }
}
