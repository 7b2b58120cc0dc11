//! Finding the project on disk and loading it: the filesystem side of configuration; and
//! finding the stages and stacks a command names.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::FileType;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use slipway_core::config::{self, PROJECT_FILE, Project, ProjectSources, STACK_FILE, StackSources};
use slipway_core::{Diagnostics, SourceFile, Stage};
use walkdir::{DirEntry, WalkDir};

use crate::Settings;
use crate::events::{InterruptSource, Observer, Reporter, Unobserved};

/// A loaded project, where it lives, and what the front end driving it provides: its
/// settings, where events go, and the interrupt engine steps obey.
#[derive(Clone)]
pub struct Workspace {
    pub root: PathBuf,
    pub project: Project,
    pub settings: Settings,
    pub observer: Arc<dyn Observer>,
    pub interrupts: InterruptSource,
    /// The front end's claim on this work (a worker's job), confirmed before each apply and
    /// each release; `None`: the work is nobody else's to take (a person's command).
    pub claim: Option<Arc<dyn WorkClaim>>,
    /// Where a stage's stack applies go as jobs of their own, to be spread over workers;
    /// `None`: this process applies them itself.
    pub steps: Option<Arc<dyn StepQueue>>,
}

/// A claim on the work a runner does that can be taken away: a worker's job, held under a
/// lease. A process paused past its lease (a frozen VM, SIGSTOP) finds its job marked
/// interrupted when it resumes; confirming the claim before each apply and each release
/// keeps it from changing anything after that.
pub trait WorkClaim: Send + Sync {
    /// Whether the claim is still this process's (renewing it if so). An error counts as
    /// lost: nothing is applied on a claim that cannot be confirmed.
    fn confirm(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + '_>>;
}

/// The queue a worker spreads a stage's stack applies over (see
/// [`crate::pipeline::spread`]): each ready stack instance becomes a job any worker carrying
/// the stage's labels may take, and the delivering worker follows their ends in the record.
pub trait StepQueue: Send + Sync {
    /// Queues the apply of `step`; returns its job's id.
    fn queue<'a>(&'a self, step: &'a StepRequest) -> StepFuture<'a, Result<i64>>;
    /// Runs one queued step of run `run` in this process, if one waits; returns its job's id
    /// when it ran one. The delivering worker does so while it waits, so that a run
    /// progresses with one worker as with many.
    fn run_one_of(&self, run: i64) -> LocalFuture<'_, Result<Option<i64>>>;
    /// Withdraws step job `job` if nobody took it yet (the delivering worker stopped);
    /// `false` when it was taken.
    fn withdraw(&self, job: i64) -> StepFuture<'_, Result<bool>>;
    /// How step job `job` ended: `None` while it is queued or running.
    fn ended(&self, job: i64) -> StepFuture<'_, Result<Option<StepEnd>>>;
}

/// A boxed future the step queue answers with.
pub type StepFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A boxed future that stays on the thread that polls it: a step run in this process drives
/// the runner, whose futures are not all `Send`.
pub type LocalFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + 'a>>;

/// One stack instance's apply, to be queued as a job.
#[derive(Debug, Clone)]
pub struct StepRequest {
    pub run: i64,
    pub stage: String,
    pub stack: String,
    /// The labels a worker must carry to take it: the stage's.
    pub labels: slipway_core::Labels,
}

/// How a step job ended, as the queue recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepEnd {
    /// Whether the job ran to its end (its stack run says how the apply went); `false` when
    /// it failed before the apply could be recorded, or its worker was lost.
    pub completed: bool,
    /// The queue's words for how it ended.
    pub outcome: String,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace")
            .field("root", &self.root)
            .field("project", &self.project.name)
            .finish_non_exhaustive()
    }
}

impl Workspace {
    /// The same workspace, whose events also go to `observer`.
    pub fn observed_also(&self, observer: Arc<dyn Observer>) -> Workspace {
        let mut also = self.clone();
        also.observer = Arc::new(crate::events::Tee::new(vec![
            Arc::clone(&self.observer),
            observer,
        ]));
        also
    }

    /// A workspace whose events go nowhere and whose engine steps are never interrupted;
    /// front ends replace both.
    pub fn new(root: PathBuf, project: Project, settings: Settings) -> Self {
        Self {
            root,
            project,
            settings,
            observer: Arc::new(Unobserved),
            interrupts: InterruptSource::never(),
            claim: None,
            steps: None,
        }
    }

    /// The same workspace, its work done under `claim` (see [`WorkClaim`]).
    pub fn claimed_by(mut self, claim: Arc<dyn WorkClaim>) -> Self {
        self.claim = Some(claim);
        self
    }

    /// The same workspace, spreading stage applies over workers through `steps`.
    pub fn spreading_through(mut self, steps: Arc<dyn StepQueue>) -> Self {
        self.steps = Some(steps);
        self
    }

    pub fn observed_by(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    pub fn interrupted_by(mut self, interrupts: InterruptSource) -> Self {
        self.interrupts = interrupts;
        self
    }

    /// Reports events about `stage`'s own instance.
    pub fn reporter(&self, stage: &str) -> Reporter {
        Reporter::new(Arc::clone(&self.observer), stage, stage)
    }

    /// The absolute data folder.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join(&self.project.data_dir)
    }

    /// The data folder, created, and kept out of git.
    pub fn ensure_data_dir(&self) -> Result<PathBuf> {
        let dir = self.data_dir();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the data folder {}", dir.display()))?;
        // Marks the folder as slipway's, so discovery never mistakes a working copy for a stack.
        let marker = dir.join(DATA_MARKER);
        if !marker.exists() {
            std::fs::write(&marker, "")?;
        }
        let ignore = dir.join(".gitignore");
        if !ignore.exists() {
            std::fs::write(
                &ignore,
                "# slipway's data folder: state, logs, working copies.\n*\n",
            )?;
        }
        Ok(dir)
    }
}

/// The file that marks a folder as slipway's data folder, whatever slipway.hcl names it.
const DATA_MARKER: &str = ".slipway-data";

/// Every file and folder below `root`, by name, without `.git`, `.terraform` and slipway's
/// data folder. The data folder may be renamed in slipway.hcl; both the default and anything
/// holding slipway's own marker are skipped, so a working copy is never mistaken for code.
/// [`read_sources`] walks the same way, reading each folder once.
pub fn walk_sources(root: &Path) -> impl Iterator<Item = walkdir::Result<DirEntry>> {
    WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            !(e.file_type().is_dir()
                && (skipped_by_name(e.file_name()) || e.path().join(DATA_MARKER).exists()))
        })
}

/// Folders never walked, whatever they hold.
fn skipped_by_name(name: &std::ffi::OsStr) -> bool {
    name == ".git" || name == ".terraform" || name == config::DEFAULT_DATA_DIR
}

/// Configuration errors, rendered with their locations.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigErrors(pub Diagnostics);

/// The project folder: `explicit` if given, else the nearest folder at or above `cwd` that
/// holds slipway.hcl.
pub fn find_root(explicit: Option<&Path>, cwd: &Path) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        let dir = if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            cwd.join(dir)
        };
        if !dir.join(PROJECT_FILE).is_file() {
            bail!(
                "no {PROJECT_FILE} in {}\n  help: point --project-dir at the folder that holds {PROJECT_FILE}",
                dir.display()
            );
        }
        return Ok(dir);
    }
    for dir in cwd.ancestors() {
        if dir.join(PROJECT_FILE).is_file() {
            return Ok(dir.to_path_buf());
        }
    }
    bail!(
        "no {PROJECT_FILE} found in {} or any folder above it\n  help: run slipway inside a project, or pass --project-dir DIR",
        cwd.display()
    )
}

/// Reads slipway.hcl and every stack folder below `root`: the folders [`walk_sources`]
/// yields, in its order. Folders are walked and stacks read on every core; the first problem
/// in path order is the one reported.
pub fn read_sources(root: &Path) -> Result<ProjectSources> {
    let config_path = root.join(PROJECT_FILE);
    let text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("cannot read {}", config_path.display()))?;
    let config = SourceFile::new(PROJECT_FILE, text);
    if root.file_name().is_some_and(skipped_by_name) {
        return Ok(ProjectSources {
            config,
            stacks: Vec::new(),
        });
    }
    let walked = walk_folder(root, root);
    match walked.problem {
        Some(problem) => Err(problem),
        None => Ok(ProjectSources {
            config,
            stacks: walked.stacks,
        }),
    }
}

/// What the walk below one folder found, in path order: the stacks read before the first
/// problem, and that problem.
#[derive(Default)]
struct Walked {
    stacks: Vec<StackSources>,
    problem: Option<anyhow::Error>,
}

impl Walked {
    fn failed(problem: anyhow::Error) -> Self {
        Self {
            stacks: Vec::new(),
            problem: Some(problem),
        }
    }
}

/// Walks `dir` as [`walk_sources`] does (depth first, by name, skipping the same folders),
/// listing each folder once: its listing says whether it holds the data folder's marker, a
/// stack.hcl, and which `.tf` files, so no file is looked up on its own. Subfolders are
/// walked and stacks read in parallel, and joined in path order.
fn walk_folder(root: &Path, dir: &Path) -> Walked {
    let entries = match list(dir) {
        Ok(entries) => entries,
        Err(problem) => {
            return Walked::failed(problem.context(format!("cannot walk {}", root.display())));
        }
    };
    let holds_marker = entries.iter().any(|(name, file_type)| {
        // `exists` follows a link, as the marker's check in `walk_sources` does.
        name == DATA_MARKER && (!file_type.is_symlink() || dir.join(name).exists())
    });
    if holds_marker {
        return Walked::default();
    }
    let parts: Vec<Walked> = entries
        .par_iter()
        .filter_map(|(name, file_type)| {
            if file_type.is_dir() {
                (!skipped_by_name(name)).then(|| walk_folder(root, &dir.join(name)))
            } else if file_type.is_file() && name == STACK_FILE {
                Some(match read_stack(root, dir, &entries) {
                    Ok(stack) => Walked {
                        stacks: vec![stack],
                        problem: None,
                    },
                    Err(problem) => Walked::failed(problem),
                })
            } else {
                None
            }
        })
        .collect();
    let mut walked = Walked::default();
    for part in parts {
        walked.stacks.extend(part.stacks);
        if part.problem.is_some() {
            walked.problem = part.problem;
            break;
        }
    }
    walked
}

/// A folder's entries, by name.
fn list(dir: &Path) -> Result<Vec<(OsString, FileType)>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let file_type = entry
            .file_type()
            .with_context(|| format!("cannot read {}", entry.path().display()))?;
        entries.push((entry.file_name(), file_type));
    }
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

/// Reads the stack in `dir`, whose entries are `entries`: its stack.hcl and its `.tf` files
/// (a link counts when it leads to a file).
fn read_stack(root: &Path, dir: &Path, entries: &[(OsString, FileType)]) -> Result<StackSources> {
    let relative = dir.strip_prefix(root).unwrap_or(dir).to_path_buf();
    let config_path = dir.join(STACK_FILE);
    let config = SourceFile::new(
        relative.join(STACK_FILE),
        std::fs::read_to_string(&config_path)
            .with_context(|| format!("cannot read {}", config_path.display()))?,
    );
    let mut terraform = Vec::new();
    for (name, file_type) in entries {
        if !name
            .to_str()
            .is_some_and(slipway_core::terraform::is_terraform_file)
        {
            continue;
        }
        let path = dir.join(name);
        if file_type.is_file() || (file_type.is_symlink() && path.is_file()) {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            terraform.push(SourceFile::new(relative.join(name), text));
        }
    }
    Ok(StackSources {
        dir: relative,
        config,
        terraform,
    })
}

/// Finds (from `explicit`, else upwards from `cwd`), reads and validates the project, with
/// `env()` in configuration resolved against the settings' environment.
pub fn open(explicit: Option<&Path>, cwd: &Path, settings: Settings) -> Result<Workspace> {
    let root = find_root(explicit, cwd)?;
    let sources = read_sources(&root)?;
    let project = config::load(&sources, &settings.environment).map_err(ConfigErrors)?;
    Ok(Workspace::new(root, project, settings))
}

/// The stage named on the command line.
pub fn find_stage<'a>(workspace: &'a Workspace, name: &str) -> Result<&'a Stage> {
    let project = &workspace.project;
    project.stage(name).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown stage `{name}`\n  help: the stages in slipway.hcl are: {}",
            project.stage_names().join(", ")
        )
    })
}

/// The stack named on the command line.
pub fn check_stack(workspace: &Workspace, name: &str) -> Result<()> {
    let project = &workspace.project;
    if project.stack(name).is_none() {
        let known: Vec<&str> = project.stacks.iter().map(|s| s.name.as_str()).collect();
        bail!(
            "unknown stack `{name}`\n  help: the stacks are: {}",
            known.join(", ")
        );
    }
    Ok(())
}

/// The stacks named on the command line, each checked; every stack when none is named.
pub fn chosen_stacks(workspace: &Workspace, names: &[String]) -> Result<BTreeSet<String>> {
    if names.is_empty() {
        return Ok(workspace
            .project
            .stacks
            .iter()
            .map(|s| s.name.clone())
            .collect());
    }
    for name in names {
        check_stack(workspace, name)?;
    }
    Ok(names.iter().cloned().collect())
}

/// `names` and every stack they depend on, transitively.
pub fn with_dependencies<'a>(
    project: &Project,
    names: impl IntoIterator<Item = &'a String>,
) -> BTreeSet<String> {
    let names: Vec<&str> = names.into_iter().map(String::as_str).collect();
    project
        .graph
        .with_dependencies(&names)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, path: &str, text: impl AsRef<[u8]>) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn stack_dirs(sources: &ProjectSources) -> Vec<String> {
        sources
            .stacks
            .iter()
            .map(|s| s.dir.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn stacks_are_found_where_walk_sources_finds_them_in_its_order() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(root, PROJECT_FILE, "project {}\n");
        write(root, "a/stack.hcl", "");
        write(root, "a/main.tf", "variable \"x\" {}\n");
        write(root, "a/vars.tf.json", "{}");
        write(root, "a/notes.md", "not code");
        std::fs::create_dir_all(root.join("a/folder.tf")).unwrap();
        // A stack inside another stack's folder comes before it: `b` sorts before `stack.hcl`.
        write(root, "a/b/stack.hcl", "");
        write(root, ".git/x/stack.hcl", "");
        write(root, "m/.terraform/modules/x/stack.hcl", "");
        write(root, ".slipway/work/x/stack.hcl", "");
        // A renamed data folder is known by its marker.
        write(root, "state/.slipway-data", "");
        write(root, "state/work/x/stack.hcl", "");
        write(root, "z/stack.hcl", "");
        std::os::unix::fs::symlink("../a/main.tf", root.join("z/linked.tf")).unwrap();
        std::os::unix::fs::symlink("nowhere.tf", root.join("z/dangling.tf")).unwrap();
        // Links to folders are not followed, and a linked stack.hcl is not a stack.
        std::os::unix::fs::symlink("a", root.join("y")).unwrap();
        std::os::unix::fs::symlink("../a/stack.hcl", root.join("m/stack.hcl")).unwrap();

        let sources = read_sources(root).unwrap();
        assert_eq!(stack_dirs(&sources), ["a/b", "a", "z"]);
        let walked: Vec<String> = walk_sources(root)
            .map(Result::unwrap)
            .filter(|e| e.file_type().is_file() && e.file_name() == STACK_FILE)
            .map(|e| {
                let dir = e.path().parent().unwrap().strip_prefix(root).unwrap();
                dir.to_string_lossy().into_owned()
            })
            .collect();
        assert_eq!(stack_dirs(&sources), walked);
        let files = |i: usize| -> Vec<String> {
            sources.stacks[i]
                .terraform
                .iter()
                .map(|f| f.path.to_string_lossy().into_owned())
                .collect()
        };
        assert!(files(0).is_empty());
        assert_eq!(files(1), ["a/main.tf", "a/vars.tf.json"]);
        assert_eq!(files(2), ["z/linked.tf"]);
        assert_eq!(sources.stacks[2].terraform[0].text, "variable \"x\" {}\n");
        assert_eq!(sources.stacks[1].config.path, Path::new("a/stack.hcl"));
    }

    #[test]
    fn the_first_unreadable_file_in_path_order_is_the_one_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(root, PROJECT_FILE, "project {}\n");
        for i in 0..64 {
            write(root, &format!("s{i:02}/stack.hcl"), "");
            write(root, &format!("s{i:02}/main.tf"), "");
        }
        // Not UTF-8, so unreadable as text.
        write(root, "s40/stack.hcl", [0xff, 0xfe]);
        write(root, "s07/main.tf", [0xff, 0xfe]);
        write(root, "s50/main.tf", [0xff, 0xfe]);
        let error = format!("{:#}", read_sources(root).unwrap_err());
        assert!(error.contains("s07/main.tf"), "{error}");
        write(root, "s07/main.tf", "");
        let error = format!("{:#}", read_sources(root).unwrap_err());
        assert!(error.contains("s40/stack.hcl"), "{error}");
    }
}
