//! Where bundle files are read from: the working tree (a folder on disk) or a git commit
//! (through the git CLI). Both list the same files for the same content, so an artifact
//! built from either has the same id: the working tree leaves out what git ignores (a commit
//! never holds it) and the folders it is told to skip, such as the data folder.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;

use crate::error::{ArtifactError, Result};
use crate::relpath::RelPath;

/// What kind of file an [`Entry`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file; `executable` is the only mode bit an artifact keeps.
    File { executable: bool },
    /// A symbolic link with its target as written (relative, `/`-separated).
    Symlink { target: String },
}

/// One file found under a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: RelPath,
    pub kind: EntryKind,
    /// Bytes of a regular file; the target's length for a link.
    pub size: u64,
}

/// A read-only view of a repository's files.
pub trait FileSource {
    /// Every file below `dir`, recursively, sorted by path, leaving out what never belongs
    /// in an artifact (see [`is_excluded`]). `dir` may also name a single file. Errors with
    /// [`ArtifactError::DirNotFound`] when `dir` holds no files.
    fn list(&self, dir: &RelPath) -> Result<Vec<Entry>>;

    /// The files directly in `dir`, not below it, sorted by path; empty when `dir` holds
    /// none or does not exist.
    fn list_direct(&self, dir: &RelPath) -> Result<Vec<Entry>>;

    /// The bytes of a regular file.
    fn read(&self, path: &RelPath) -> Result<Vec<u8>>;

    /// The commit the files come from, or `None` for the working tree.
    fn commit(&self) -> Option<&str>;
}

/// True for paths that never go into an artifact: `.git/` and `.terraform/` folders and
/// state files (`*.tfstate*`). `.terraform.lock.hcl` is kept: it pins the providers.
pub fn is_excluded(path: &RelPath) -> bool {
    let mut parts = path.as_str().split('/').peekable();
    while let Some(part) = parts.next() {
        let is_last = parts.peek().is_none();
        if !is_last && (part == ".git" || part == ".terraform") {
            return true;
        }
        if is_last && (part.contains(".tfstate") || part == ".git") {
            return true;
        }
    }
    false
}

/// Files of a folder on disk (the working tree of a repository), less what `.gitignore`
/// files and `.git/info/exclude` leave out and the folders named with
/// [`WorkingTree::skipping`].
#[derive(Debug, Clone)]
pub struct WorkingTree {
    root: PathBuf,
    skipped: Vec<PathBuf>,
    git_ignores: bool,
}

impl WorkingTree {
    /// A view of the repository whose root folder is `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            skipped: Vec::new(),
            git_ignores: true,
        }
    }

    /// Lists every file, whatever `.gitignore` files say: for code that came out of an
    /// artifact, where every file was committed.
    pub fn without_git_ignores(mut self) -> Self {
        self.git_ignores = false;
        self
    }

    /// Never lists `folder` (absolute, or relative to the root) nor anything below it: the
    /// data folder lives beside the code and must never be copied into it. A folder that
    /// holds the root itself (code extracted into the data folder) skips nothing.
    pub fn skipping(mut self, folder: impl Into<PathBuf>) -> Self {
        let folder = folder.into();
        let folder = if folder.is_absolute() {
            folder
        } else {
            self.root.join(folder)
        };
        if !self.root.starts_with(&folder) {
            self.skipped.push(folder);
        }
        self
    }

    /// The files below `base` (to `max_depth` levels below it), sorted, as git would list
    /// them. The walk starts at the root and descends only towards `base`, so the ignore
    /// files of the root and of every folder on the way apply, and none above the root.
    fn walk(&self, base: &Path, max_depth: Option<usize>) -> Result<Vec<Entry>> {
        let skipped = self.skipped.clone();
        let target = base.to_owned();
        let depth_of_base = base
            .strip_prefix(&self.root)
            .map(|rel| rel.components().count())
            .unwrap_or(0);
        let walker = ignore::WalkBuilder::new(&self.root)
            .standard_filters(false)
            .git_ignore(self.git_ignores)
            .git_exclude(self.git_ignores)
            .parents(false)
            .require_git(false)
            .follow_links(false)
            .max_depth(max_depth.map(|d| d + depth_of_base))
            .filter_entry(move |e| {
                let is_dir = e.file_type().is_some_and(|t| t.is_dir());
                let name = e.file_name();
                let on_the_way = target.starts_with(e.path()) || e.path().starts_with(&target);
                on_the_way
                    && !(is_dir && (name == ".git" || name == ".terraform"))
                    && !skipped.iter().any(|s| e.path().starts_with(s))
            })
            .build();
        let mut entries = Vec::new();
        for item in walker {
            let item = item.map_err(|e| ArtifactError::WorkingTree {
                path: base.to_owned(),
                source: std::io::Error::other(e.to_string()),
            })?;
            let Some(file_type) = item.file_type() else {
                continue;
            };
            if file_type.is_dir() || !item.path().starts_with(base) {
                continue;
            }
            if let Some(entry) = self.entry(item.path(), file_type)? {
                entries.push(entry);
            }
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    fn entry(&self, path: &Path, file_type: std::fs::FileType) -> Result<Option<Entry>> {
        let io_err = |source| ArtifactError::WorkingTree {
            path: path.to_owned(),
            source,
        };
        let rel = path
            .strip_prefix(&self.root)
            .map_err(|_| io_err(std::io::Error::other("outside the root")))?;
        let rel_text = rel
            .to_str()
            .ok_or_else(|| io_err(std::io::Error::other("file name is not UTF-8")))?;
        let path_rel = RelPath::new(rel_text)?;
        if is_excluded(&path_rel) {
            return Ok(None);
        }
        let (kind, size) = if file_type.is_symlink() {
            let target = std::fs::read_link(path).map_err(io_err)?;
            let target = target
                .to_str()
                .ok_or_else(|| io_err(std::io::Error::other("link target is not UTF-8")))?;
            let size = target.len() as u64;
            (
                EntryKind::Symlink {
                    target: target.to_owned(),
                },
                size,
            )
        } else if file_type.is_file() {
            let meta = std::fs::metadata(path).map_err(io_err)?;
            (
                EntryKind::File {
                    executable: is_executable(&meta),
                },
                meta.len(),
            )
        } else {
            // Sockets, fifos and devices have no place in infrastructure code.
            return Ok(None);
        };
        Ok(Some(Entry {
            path: path_rel,
            kind,
            size,
        }))
    }

    fn disk_path(&self, path: &RelPath) -> PathBuf {
        if path.is_root() {
            self.root.clone()
        } else {
            self.root.join(path.as_str())
        }
    }
}

impl FileSource for WorkingTree {
    fn list(&self, dir: &RelPath) -> Result<Vec<Entry>> {
        let base = self.disk_path(dir);
        let not_found = || ArtifactError::DirNotFound {
            dir: dir.to_string(),
            commit: None,
        };
        let meta = match std::fs::symlink_metadata(&base) {
            Ok(meta) => meta,
            Err(_) => return Err(not_found()),
        };
        if self.skipped.iter().any(|s| base.starts_with(s)) {
            return Err(not_found());
        }
        if !meta.is_dir() {
            return self
                .entry(&base, meta.file_type())?
                .map(|e| vec![e])
                .ok_or_else(not_found);
        }
        let mut entries = self.walk(&base, None)?;
        if entries.is_empty() {
            return Err(not_found());
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    fn list_direct(&self, dir: &RelPath) -> Result<Vec<Entry>> {
        let base = self.disk_path(dir);
        if !base.is_dir() || self.skipped.iter().any(|s| base.starts_with(s)) {
            return Ok(Vec::new());
        }
        self.walk(&base, Some(1))
    }

    fn read(&self, path: &RelPath) -> Result<Vec<u8>> {
        let disk = self.disk_path(path);
        std::fs::read(&disk).map_err(|source| ArtifactError::WorkingTree { path: disk, source })
    }

    fn commit(&self) -> Option<&str> {
        None
    }
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    false
}

/// Files of one git commit, read through the git CLI.
///
/// Listing runs `git ls-tree`; contents come from a single `git cat-file --batch` process
/// started on first read and kept for the life of this value, so a build costs one process
/// per listed folder plus one, not one per file.
pub struct GitCommit {
    repo: PathBuf,
    commit: String,
    blobs: Mutex<HashMap<RelPath, String>>,
    batch: Mutex<Option<CatFileBatch>>,
}

impl std::fmt::Debug for GitCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitCommit")
            .field("repo", &self.repo)
            .field("commit", &self.commit)
            .finish_non_exhaustive()
    }
}

impl GitCommit {
    /// Resolves `rev` (a branch, tag or hash) to a commit of the repository at `repo`.
    pub fn open(repo: impl Into<PathBuf>, rev: &str) -> Result<Self> {
        let repo = repo.into();
        let spec = format!("{rev}^{{commit}}");
        let output = git(&repo)
            .args([
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",
                &spec,
            ])
            .output()
            .map_err(|e| git_error("rev-parse", e.to_string()))?;
        if !output.status.success() {
            return Err(ArtifactError::UnknownCommit {
                rev: rev.to_owned(),
            });
        }
        let commit = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        Ok(Self {
            repo,
            commit,
            blobs: Mutex::new(HashMap::new()),
            batch: Mutex::new(None),
        })
    }

    /// The full hash of the commit.
    pub fn commit_hash(&self) -> &str {
        &self.commit
    }

    fn read_object(&self, object: &str, path: &RelPath) -> Result<Vec<u8>> {
        let mut guard = self
            .batch
            .lock()
            .map_err(|_| git_error("cat-file --batch", "an earlier read panicked".into()))?;
        if guard.is_none() {
            *guard = Some(CatFileBatch::start(&self.repo)?);
        }
        let batch = guard
            .as_mut()
            .ok_or_else(|| git_error("cat-file --batch", "not running".into()))?;
        match batch.read(object) {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => Err(ArtifactError::ReadFile {
                path: path.to_string(),
                message: format!("not in commit {}", &self.commit[..12]),
            }),
            Err(e) => {
                // The stream may be out of step now; start afresh on the next read.
                *guard = None;
                Err(e)
            }
        }
    }
}

impl GitCommit {
    /// `git ls-tree -l` of `dir` at the commit: recursively, or one level only. Trees are
    /// skipped; blobs and links come back as entries, their objects remembered for reads.
    fn ls_tree(&self, dir: &RelPath, recursive: bool) -> Result<Vec<Entry>> {
        let mut command = git(&self.repo);
        command.args(["--literal-pathspecs", "ls-tree", "-l", "-z", "--full-tree"]);
        if recursive {
            command.arg("-r");
        }
        command.arg(&self.commit);
        if !dir.is_root() {
            // A trailing slash lists the folder's content, not the folder itself.
            let spec = if recursive {
                dir.as_str().to_owned()
            } else {
                format!("{}/", dir.as_str())
            };
            command.args(["--", &spec]);
        }
        let output = command
            .output()
            .map_err(|e| git_error("ls-tree", e.to_string()))?;
        if !output.status.success() {
            return Err(git_error(
                "ls-tree",
                String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            ));
        }
        let mut found = Vec::new();
        for record in output.stdout.split(|b| *b == 0).filter(|r| !r.is_empty()) {
            let record = std::str::from_utf8(record)
                .map_err(|_| git_error("ls-tree", "a path is not UTF-8".into()))?;
            let (meta, name) = record
                .split_once('\t')
                .ok_or_else(|| git_error("ls-tree", format!("unexpected line `{record}`")))?;
            // `<mode> <type> <object> <size>`, the size padded with spaces.
            let mut fields = meta.split_whitespace();
            let (Some(mode), Some(kind), Some(object), Some(size)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(git_error("ls-tree", format!("unexpected line `{record}`")));
            };
            if kind == "tree" {
                continue;
            }
            let path = RelPath::new(name)?;
            if is_excluded(&path) {
                continue;
            }
            let size = size.parse::<u64>().unwrap_or(0);
            let kind = match mode {
                "100644" => EntryKind::File { executable: false },
                "100755" => EntryKind::File { executable: true },
                "120000" => {
                    let target = self.read_object(object, &path)?;
                    let target =
                        String::from_utf8(target).map_err(|_| ArtifactError::ReadFile {
                            path: path.to_string(),
                            message: "link target is not UTF-8".into(),
                        })?;
                    EntryKind::Symlink { target }
                }
                "160000" => {
                    return Err(ArtifactError::Submodule {
                        path: path.to_string(),
                    });
                }
                other => {
                    return Err(git_error(
                        "ls-tree",
                        format!("unknown mode {other} for `{name}`"),
                    ));
                }
            };
            found.push((path, object.to_owned(), kind, size));
        }
        let mut blobs = self
            .blobs
            .lock()
            .map_err(|_| git_error("ls-tree", "an earlier listing panicked".into()))?;
        let mut entries = Vec::with_capacity(found.len());
        for (path, object, kind, size) in found {
            blobs.insert(path.clone(), object);
            entries.push(Entry { path, kind, size });
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }
}

impl FileSource for GitCommit {
    fn list(&self, dir: &RelPath) -> Result<Vec<Entry>> {
        let entries = self.ls_tree(dir, true)?;
        if entries.is_empty() {
            return Err(ArtifactError::DirNotFound {
                dir: dir.to_string(),
                commit: Some(self.commit.clone()),
            });
        }
        Ok(entries)
    }

    fn list_direct(&self, dir: &RelPath) -> Result<Vec<Entry>> {
        self.ls_tree(dir, false)
    }

    fn read(&self, path: &RelPath) -> Result<Vec<u8>> {
        let known = self
            .blobs
            .lock()
            .ok()
            .and_then(|blobs| blobs.get(path).cloned());
        let object = known.unwrap_or_else(|| format!("{}:{}", self.commit, path.as_str()));
        self.read_object(&object, path)
    }

    fn commit(&self) -> Option<&str> {
        Some(&self.commit)
    }
}

fn git(repo: &Path) -> Command {
    let mut command = Command::new("git");
    command.arg("-C").arg(repo);
    // Paths must come back byte for byte, not quoted or translated.
    command.args(["-c", "core.quotePath=false"]);
    command.stdin(Stdio::null());
    command
}

fn git_error(command: &str, message: String) -> ArtifactError {
    ArtifactError::Git {
        command: command.to_owned(),
        message,
    }
}

/// A running `git cat-file --batch`: write an object name, read `<oid> <type> <size>\n`,
/// the content and a newline; or `<name> missing\n`.
struct CatFileBatch {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl CatFileBatch {
    fn start(repo: &Path) -> Result<Self> {
        let mut child = git(repo)
            .args(["cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| git_error("cat-file --batch", e.to_string()))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| git_error("cat-file --batch", "no stdout".into()))?;
        Ok(Self {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }

    fn read(&mut self, object: &str) -> Result<Option<Vec<u8>>> {
        let fail = |message: String| git_error("cat-file --batch", message);
        if object.contains('\n') {
            return Err(fail(format!("object name {object:?} contains a newline")));
        }
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| fail("stdin closed".into()))?;
        writeln!(stdin, "{object}")
            .and_then(|()| stdin.flush())
            .map_err(|e| fail(e.to_string()))?;
        let mut header = String::new();
        self.stdout
            .read_line(&mut header)
            .map_err(|e| fail(e.to_string()))?;
        let header = header.trim_end();
        if header.ends_with(" missing") || header.ends_with(" ambiguous") {
            return Ok(None);
        }
        let size: usize = header
            .rsplit(' ')
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| fail(format!("unexpected header `{header}`")))?;
        let mut content = vec![0; size];
        self.stdout
            .read_exact(&mut content)
            .map_err(|e| fail(e.to_string()))?;
        let mut newline = [0u8; 1];
        self.stdout
            .read_exact(&mut newline)
            .map_err(|e| fail(e.to_string()))?;
        Ok(Some(content))
    }
}

impl Drop for CatFileBatch {
    fn drop(&mut self) {
        // Closing stdin ends git's loop; reap it so no zombie is left behind.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_state_and_tool_folders_but_keeps_the_lock_file() {
        let excluded = |p: &str| is_excluded(&RelPath::new(p).expect("valid"));
        assert!(excluded("stacks/a/.terraform/providers/x"));
        assert!(excluded("stacks/a/terraform.tfstate"));
        assert!(excluded("stacks/a/terraform.tfstate.backup"));
        assert!(excluded(".git/config"));
        assert!(!excluded("stacks/a/.terraform.lock.hcl"));
        assert!(!excluded("stacks/a/main.tf"));
    }
}
