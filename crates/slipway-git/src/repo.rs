//! A repository and the project folder inside it; one method per git question.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use slipway_core::changes::FileChange;

use crate::diff::{parse_name_status, relative_to};
use crate::error::GitError;
use crate::in_process::Objects;

/// The git repository holding a project, and where the project sits inside it.
#[derive(Debug, Clone)]
pub struct Repo {
    top: PathBuf,
    /// The project folder relative to `top`: `""`, or ending in `/`.
    prefix: String,
    /// The folder holding the repository's objects and refs, shared by all its worktrees.
    common_dir: PathBuf,
    /// The repository opened in-process, when it was ([`Repo::open_in_process`]).
    objects: Option<Objects>,
}

impl Repo {
    /// The repository holding `project_root`.
    pub fn open(project_root: &Path) -> Result<Self, GitError> {
        let output = git_in(
            project_root,
            // Asked in the same process: every process costs milliseconds on the warm path.
            [
                "rev-parse",
                "--show-toplevel",
                "--show-prefix",
                "--git-common-dir",
            ],
        )?;
        if !output.status.success() {
            return Err(GitError::NotARepository {
                dir: project_root.to_path_buf(),
            });
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let mut lines = text.lines();
        let top = lines
            .next()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| GitError::BadOutput {
                command: "git rev-parse --show-toplevel".into(),
                detail: "no top-level folder".into(),
            })?;
        let prefix = lines.next().unwrap_or("").to_owned();
        // Printed relative to the folder git ran in, unless it is elsewhere.
        let common_dir = project_root.join(lines.next().unwrap_or(".git"));
        Ok(Self {
            top: PathBuf::from(top),
            prefix,
            common_dir,
            objects: None,
        })
    }

    /// The repository holding `project_root` and the commits `revs` name, asked of one git
    /// process: on a fast path every process counts. The commits are None when one of the
    /// revisions is unknown or not a plain name; ask [`Repo::resolve`] then, which tells
    /// why.
    pub fn open_resolving(
        project_root: &Path,
        revs: &[&str],
    ) -> Result<(Self, Option<Vec<String>>), GitError> {
        // Ranges, `^`-exclusions and options mean something else to a bare rev-parse.
        let plain = |rev: &&str| {
            !rev.is_empty()
                && !rev.starts_with(['-', '^'])
                && !rev.contains("..")
                && !rev.contains(char::is_whitespace)
        };
        if revs.is_empty() || !revs.iter().all(plain) {
            return Ok((Self::open(project_root)?, None));
        }
        let specs: Vec<String> = revs.iter().map(|rev| format!("{rev}^{{commit}}")).collect();
        let mut args = vec![
            "rev-parse",
            "--show-toplevel",
            "--show-prefix",
            "--git-common-dir",
        ];
        args.extend(specs.iter().map(String::as_str));
        let output = git_in(project_root, &args)?;
        let text = String::from_utf8_lossy(&output.stdout);
        let lines: Vec<&str> = text.lines().collect();
        let ids = lines.get(3..).unwrap_or_default();
        if !output.status.success()
            || lines.len() != 3 + revs.len()
            || lines[0].is_empty()
            || !ids.iter().all(|id| crate::is_object_id(id))
        {
            return Ok((Self::open(project_root)?, None));
        }
        let repo = Self {
            top: PathBuf::from(lines[0]),
            prefix: lines[1].to_owned(),
            common_dir: project_root.join(lines[2]),
            objects: None,
        };
        Ok((repo, Some(ids.iter().map(|id| (*id).to_owned()).collect())))
    }

    /// [`Repo::open_resolving`] answered without starting git, reading the repository's files
    /// in-process; None when git has to answer: a revision other than a full object id or
    /// `HEAD`, a bare repository, one git would not trust, an object this clone lacks. A
    /// repository opened this way also answers [`Repo::diff`] in-process where it can.
    ///
    /// The caller decides whether git's environment allows it: variables such as `GIT_DIR`
    /// ([`redirects_git`](crate::redirects_git)) change what git would read.
    pub fn open_in_process(project_root: &Path, revs: &[&str]) -> Option<(Self, Vec<String>)> {
        let (objects, location, commits) = Objects::open(project_root, revs)?;
        let repo = Self {
            top: location.top,
            prefix: location.prefix,
            common_dir: location.common_dir,
            objects: Some(objects),
        };
        Some((repo, commits))
    }

    /// The repository's git folder (shared by all its worktrees): where caches about its
    /// commits belong.
    pub fn common_dir(&self) -> &Path {
        &self.common_dir
    }

    /// The repository's top folder.
    pub fn top(&self) -> &Path {
        &self.top
    }

    /// The project folder relative to the top folder (`""`, or ending in `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The commit `rev` names, or `None` when this repository does not have it (a ref that
    /// does not exist, a commit dropped by a force-push, history a shallow clone lacks).
    pub fn resolve(&self, rev: &str) -> Result<Option<String>, GitError> {
        // A revision starting with `-` would read as an option.
        if rev.is_empty() || rev.starts_with('-') {
            return Ok(None);
        }
        let spec = format!("{rev}^{{commit}}");
        let output = self.run(["rev-parse", "--verify", "--quiet", &spec])?;
        if !output.status.success() {
            // `--verify --quiet` exits 1 without a word for an unknown revision.
            if output.stderr.is_empty() {
                return Ok(None);
            }
            return Err(failed("git rev-parse --verify", &output));
        }
        let oid = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if oid.is_empty() || !oid.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(GitError::BadOutput {
                command: "git rev-parse --verify".into(),
                detail: format!("`{oid}` is not an object id"),
            });
        }
        Ok(Some(oid))
    }

    /// Like [`Repo::resolve`], for revisions that must exist.
    pub fn require(&self, rev: &str) -> Result<String, GitError> {
        self.resolve(rev)?.ok_or_else(|| GitError::UnknownRevision {
            rev: rev.to_owned(),
        })
    }

    /// Whether this is a shallow clone, whose history stops at a cut-off.
    pub fn is_shallow(&self) -> Result<bool, GitError> {
        let output = self.run(["rev-parse", "--is-shallow-repository"])?;
        if !output.status.success() {
            return Err(failed("git rev-parse --is-shallow-repository", &output));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim() == "true")
    }

    /// Files changed from `base` to `head` inside the project, renames detected.
    pub fn diff(&self, base: &str, head: &str) -> Result<Vec<FileChange>, GitError> {
        if let Some(changes) = self.diff_in_process(base, head) {
            return Ok(changes);
        }
        let pathspec = if self.prefix.is_empty() {
            None
        } else {
            Some(self.prefix.as_str())
        };
        let changes = name_status(&self.top, base, head, pathspec)?;
        Ok(relative_to(changes, &self.prefix))
    }

    /// [`Repo::diff`] answered in-process, for a repository opened with
    /// [`Repo::open_in_process`] and two commit ids; None when git has to answer, which is
    /// also whenever its rename detection could pair a deleted file with an added one.
    pub fn diff_in_process(&self, base: &str, head: &str) -> Option<Vec<FileChange>> {
        self.objects.as_ref()?.diff(base, head, &self.prefix)
    }

    /// The repository opened in-process, if it was.
    pub(crate) fn objects(&self) -> Option<&Objects> {
        self.objects.as_ref()
    }

    /// The answer of [`Repo::diff`] for a diff git was asked before the repository was
    /// opened ([`EarlyDiff::start`]).
    pub fn early_diff(&self, early: EarlyDiff) -> Vec<FileChange> {
        relative_to(early.changes, &self.prefix)
    }

    /// Runs git at the top folder with output captured.
    pub(crate) fn run<I, S>(&self, args: I) -> Result<Output, GitError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        git_in(&self.top, args)
    }

    pub(crate) fn command(&self) -> Command {
        base_command(&self.top)
    }
}

/// [`Repo::diff`] asked of git from the project folder, before the repository is opened:
/// on the fast path of change detection the diff is most of the time, so it need not wait
/// for the process that finds the repository. [`Repo::early_diff`] gives the same answer
/// [`Repo::diff`] gives, for the commits `base` and `head` named when the diff started.
#[derive(Debug)]
pub struct EarlyDiff {
    /// Relative to the repository's top folder, only paths below the project folder.
    changes: Vec<FileChange>,
}

impl EarlyDiff {
    /// Lists what changed from `base` to `head` below `project_root`.
    pub fn start(project_root: &Path, base: &str, head: &str) -> Result<Self, GitError> {
        // `.` from the project folder is the pathspec `Repo::diff` gives from the top one;
        // the paths printed are relative to the top folder either way.
        let changes = name_status(project_root, base, head, Some("."))?;
        Ok(Self { changes })
    }
}

/// `git diff --name-status -M` from `dir`, limited to `pathspec`.
fn name_status(
    dir: &Path,
    base: &str,
    head: &str,
    pathspec: Option<&str>,
) -> Result<Vec<FileChange>, GitError> {
    let mut args: Vec<&str> = vec![
        "diff",
        "--name-status",
        "-z",
        "-M",
        "--no-ext-diff",
        "--no-textconv",
        base,
        head,
        "--",
    ];
    args.extend(pathspec);
    let output = git_in(dir, &args)?;
    if !output.status.success() {
        return Err(failed("git diff --name-status", &output));
    }
    parse_name_status(&output.stdout).map_err(|detail| GitError::BadOutput {
        command: "git diff --name-status -z".into(),
        detail,
    })
}

fn base_command(dir: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .current_dir(dir)
        // Reading never needs the index lock; a concurrent `git commit` must not fail for it.
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    command
}

fn git_in<I, S>(dir: &Path, args: I) -> Result<Output, GitError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    base_command(dir)
        .args(args)
        .output()
        .map_err(|source| GitError::Spawn { source })
}

pub(crate) fn failed(command: &str, output: &Output) -> GitError {
    GitError::Failed {
        command: command.to_owned(),
        status: output.status.to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    }
}
