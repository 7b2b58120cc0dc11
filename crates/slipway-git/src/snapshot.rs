//! The inputs of slipway's change index: which configuration and Terraform files a commit
//! holds, with their blob ids, and which of them changed between two commits.
//!
//! Both answers use the same filter as [`crate::TreeReader`] (the folders `.git`,
//! `.terraform` and the default data folder are skipped) and keep only the files a project
//! is loaded from: `slipway.hcl`, every `stack.hcl` and every `.tf` file. Paths are relative
//! to the project folder.

use crate::batch::CatFile;
use crate::error::GitError;
use crate::project_files::{BlobChange, BlobEntry, is_project_file};
use crate::repo::{Repo, failed};

/// Reads blobs by id: the ids [`Repo::project_blobs`] and [`Repo::project_blob_changes`]
/// hand back. Asking by id spares git the walk from a commit's root tree that every
/// `commit:path` costs, which is most of the time reading thousands of files by path takes.
///
/// A repository opened in-process ([`Repo::open_in_process`]) is read in-process; otherwise,
/// or when an object is not here (a partial clone fetches it on demand), through one
/// `git cat-file --batch` process.
pub struct BlobReader {
    repo: Repo,
    batch: Option<CatFile>,
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader").finish_non_exhaustive()
    }
}

impl BlobReader {
    pub fn new(repo: &Repo) -> Result<Self, GitError> {
        let batch = match repo.objects() {
            Some(_) => None,
            None => Some(CatFile::start(repo)?),
        };
        Ok(Self {
            repo: repo.clone(),
            batch,
        })
    }

    /// The text of each blob, in order; `None` for one the repository does not have, that
    /// is not a blob or not UTF-8 text, or an id that is not hexadecimal (anything else
    /// would be read by git as a revision).
    pub fn read(&mut self, blobs: &[&str]) -> Result<Vec<Option<String>>, GitError> {
        if self.batch.is_none()
            && let Some(texts) = self
                .repo
                .objects()
                .and_then(|objects| objects.blob_texts(blobs))
        {
            return Ok(texts);
        }
        let batch = match &mut self.batch {
            Some(batch) => batch,
            None => self.batch.insert(CatFile::start(&self.repo)?),
        };
        let is_id = |id: &str| !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit());
        let names: Vec<String> = blobs
            .iter()
            .filter(|id| is_id(id))
            .map(|id| (*id).to_owned())
            .collect();
        let mut texts = batch.read_objects(&names)?.into_iter();
        Ok(blobs
            .iter()
            .map(|id| {
                if is_id(id) {
                    texts.next().flatten()
                } else {
                    None
                }
            })
            .collect())
    }
}

impl Repo {
    /// Every project file at `commit` with its blob id, in git's path order.
    pub fn project_blobs(&self, commit: &str) -> Result<Vec<BlobEntry>, GitError> {
        if let Some(entries) = self
            .objects()
            .and_then(|objects| objects.project_blobs(commit, self.prefix()))
        {
            return Ok(entries);
        }
        let mut args = vec!["ls-tree", "-r", "-z", "--full-tree", commit, "--"];
        let prefix = self.prefix().to_owned();
        if !prefix.is_empty() {
            args.push(&prefix);
        }
        let output = self.run(&args)?;
        if !output.status.success() {
            return Err(failed("git ls-tree", &output));
        }
        let mut entries = Vec::new();
        for record in output.stdout.split(|b| *b == 0).filter(|r| !r.is_empty()) {
            // `<mode> SP <type> SP <object> TAB <path>`
            let Some(tab) = record.iter().position(|b| *b == b'\t') else {
                return Err(bad("git ls-tree -z", "a record without a tab"));
            };
            let Ok(path) = std::str::from_utf8(&record[tab + 1..]) else {
                continue;
            };
            let meta = String::from_utf8_lossy(&record[..tab]);
            let mut fields = meta.split(' ');
            let (Some(_mode), Some(kind), Some(blob)) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err(bad("git ls-tree -z", "a record without mode, type and id"));
            };
            let Some(path) = path.strip_prefix(&prefix) else {
                continue;
            };
            if kind == "blob" && is_project_file(path) {
                entries.push(BlobEntry {
                    path: path.to_owned(),
                    blob: blob.to_owned(),
                });
            }
        }
        Ok(entries)
    }

    /// The project files that differ between `from` and `to` (renames read as a deletion and
    /// an addition), with their blob ids at `to`.
    pub fn project_blob_changes(&self, from: &str, to: &str) -> Result<Vec<BlobChange>, GitError> {
        if let Some(changes) = self
            .objects()
            .and_then(|objects| objects.blob_changes(from, to, self.prefix()))
        {
            return Ok(changes);
        }
        let mut args = vec![
            "diff",
            "--raw",
            "-z",
            "--no-renames",
            "--no-abbrev",
            "--no-ext-diff",
            "--no-textconv",
            from,
            to,
            "--",
        ];
        let prefix = self.prefix().to_owned();
        if !prefix.is_empty() {
            args.push(&prefix);
        }
        let output = self.run(&args)?;
        if !output.status.success() {
            return Err(failed("git diff --raw", &output));
        }
        parse_raw(&output.stdout, &prefix).map_err(|detail| bad("git diff --raw -z", &detail))
    }
}

/// Parses `git diff --raw -z --no-renames` output: `:<mode> <mode> <old> <new> <status>`, NUL,
/// path, NUL, for each file.
fn parse_raw(output: &[u8], prefix: &str) -> Result<Vec<BlobChange>, String> {
    let mut fields = output.split(|b| *b == 0);
    let mut changes = Vec::new();
    while let Some(meta) = fields.next() {
        if meta.is_empty() {
            continue;
        }
        let meta = String::from_utf8_lossy(meta);
        let parts: Vec<&str> = meta.trim_start_matches(':').split(' ').collect();
        let [_, new_mode, _, new_blob, status] = parts[..] else {
            return Err(format!("unexpected record `{meta}`"));
        };
        let path = fields
            .next()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| format!("record `{meta}` without a path"))?;
        let Ok(path) = std::str::from_utf8(path) else {
            continue;
        };
        let Some(path) = path.strip_prefix(prefix) else {
            continue;
        };
        if !is_project_file(path) {
            continue;
        }
        // A submodule at the path is no file; a symlink is a blob, read as the tree reader
        // reads it.
        let is_file = new_mode != "160000";
        let change = match status.as_bytes().first() {
            Some(b'D') => BlobChange::Deleted {
                path: path.to_owned(),
            },
            Some(b'A' | b'M' | b'T') if is_file => BlobChange::Set {
                path: path.to_owned(),
                blob: new_blob.to_owned(),
            },
            Some(b'A' | b'M' | b'T') => BlobChange::Deleted {
                path: path.to_owned(),
            },
            _ => return Err(format!("unknown status in `{meta}`")),
        };
        changes.push(change);
    }
    Ok(changes)
}

fn bad(command: &str, detail: &str) -> GitError {
    GitError::BadOutput {
        command: command.to_owned(),
        detail: detail.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_files_are_configuration_and_terraform_outside_skipped_folders() {
        assert!(is_project_file("slipway.hcl"));
        assert!(is_project_file("stacks/a/stack.hcl"));
        assert!(is_project_file("modules/m/main.tf"));
        assert!(!is_project_file("stacks/a/README.md"));
        assert!(!is_project_file("nested/slipway.hcl"));
        assert!(!is_project_file("stacks/a/.terraform/modules/x/main.tf"));
        assert!(!is_project_file(".slipway/work/a/main.tf"));
    }

    #[test]
    fn raw_diff_keeps_project_files_below_the_prefix() {
        let zero = "0".repeat(40);
        let blob = "a".repeat(40);
        let output = format!(
            ":000000 100644 {zero} {blob} A\0infra/stacks/a/stack.hcl\0\
             :100644 000000 {blob} {zero} D\0infra/stacks/b/main.tf\0\
             :100644 100644 {blob} {blob} M\0infra/docs/readme.md\0\
             :100644 100644 {blob} {blob} M\0other/main.tf\0\
             :100644 160000 {blob} {blob} T\0infra/stacks/c/sub.tf\0"
        );
        let changes = parse_raw(output.as_bytes(), "infra/").unwrap();
        assert_eq!(
            changes,
            vec![
                BlobChange::Set {
                    path: "stacks/a/stack.hcl".into(),
                    blob: blob.clone()
                },
                BlobChange::Deleted {
                    path: "stacks/b/main.tf".into()
                },
                BlobChange::Deleted {
                    path: "stacks/c/sub.tf".into()
                },
            ]
        );
    }

    #[test]
    fn truncated_raw_diff_is_an_error() {
        assert!(parse_raw(b":100644 100644 a b M\0", "").is_err());
        assert!(parse_raw(b":garbage\0x\0", "").is_err());
    }
}
