//! Which stacks a range of commits changes, and why, read from git alone: the head commit's
//! stacks come from the change index (`index`), the base is the commit last released to the
//! first or the last stage ([`DefaultBase`]) unless named. When the base cannot be found (nothing released yet, a
//! force-push, a shallow clone), every stack counts as changed and the result says why:
//! missing history never reads as "nothing changed".

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use slipway_core::changes::{self, BaseStack, ChangeInput, ChangeSet, FileStatus};
use slipway_core::config::STACK_FILE;
use slipway_git::{EarlyDiff, Repo, TreeReader};

use crate::Settings;
use crate::help::WithHelp;

mod index;

pub use index::Source;

/// One end of the compared range: what the user named and the commit it resolved to.
#[derive(Debug, Serialize)]
pub struct End {
    pub rev: String,
    pub commit: String,
}

/// The compared range and what it changed.
#[derive(Debug)]
pub struct Detected {
    pub base: Option<End>,
    pub head: End,
    pub set: ChangeSet,
    /// How the head's stacks were read: from the change index or in full.
    pub index: Source,
    /// How the repository was read: in-process, or by git processes.
    pub git: GitAccess,
}

/// How change detection read the repository, for tests and measurements
/// (`SLIPWAY_DEBUG_INDEX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitAccess {
    /// Commits resolved and trees read in-process; git is still asked what only it can answer.
    InProcess,
    /// Every question went to git: the environment points git elsewhere, or the repository
    /// or the revisions named need git itself.
    Command,
}

/// Which stage's last release is the base when none is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultBase {
    /// What the first stage runs: the changes no stage has seen yet (`slipway changed`).
    FirstStage,
    /// What the last stage runs: every change not yet delivered all the way (`slipway run`).
    /// A run that stopped half-way (failed, rejected, or killed) leaves its changes in the
    /// next run, even when that run's own commit touches other stacks.
    LastStage,
}

/// The stacks that changed between `base` (default: the commit last released to the stage
/// `default_base` names) and `head`, with their dependents.
pub fn detect(
    root: &Path,
    settings: &Settings,
    base: Option<String>,
    head: &str,
    default_base: DefaultBase,
) -> Result<Detected> {
    let args = DetectArgs {
        base,
        head: head.to_owned(),
    };
    let revs: Vec<&str> = std::iter::once(args.head.as_str())
        .chain(args.base.as_deref())
        .collect();
    // Commit ids and `HEAD` resolve, and their trees diff, without starting git, unless the
    // environment points git elsewhere. Otherwise git answers.
    let in_process = !settings
        .environment
        .keys()
        .any(|name| slipway_git::redirects_git(name));
    let opened = in_process
        .then(|| Repo::open_in_process(root, &revs))
        .flatten();
    let git = match opened {
        Some(_) => GitAccess::InProcess,
        None => GitAccess::Command,
    };
    let (repo, resolved, early_diff) = match opened {
        Some((repo, ids)) => (repo, Some(ids), None),
        None => {
            // With both ends named by commit id, git diffs the range while another git
            // process finds the repository and resolves them: on a warm run the diff is
            // most of the time. Its answer counts only if both ids name themselves as
            // commits.
            let early_diff = args
                .base
                .as_deref()
                .filter(|base| {
                    slipway_git::is_object_id(base) && slipway_git::is_object_id(&args.head)
                })
                .map(|base| {
                    let (root, base, head) =
                        (root.to_path_buf(), base.to_owned(), args.head.clone());
                    std::thread::spawn(move || EarlyDiff::start(&root, &base, &head))
                });
            // Head and an explicit base resolve in the process that finds the repository.
            let (repo, resolved) = Repo::open_resolving(root, &revs)?;
            (repo, resolved, early_diff)
        }
    };
    let (head_commit, early_base) = match resolved {
        Some(mut ids) => {
            let base = (ids.len() > 1).then(|| ids.pop()).flatten();
            (ids.swap_remove(0), base)
        }
        None => (repo.require(&args.head)?, None),
    };
    let env = &settings.environment;
    // The stacks at head come from the change index, read in full only when it cannot be
    // brought forward (see index.rs). With the base known already, git diffs the range
    // meanwhile: the diff and the index are most of a warm run.
    let early_diff = early_diff.filter(|_| early_base == args.base && head_commit == args.head);
    let (loaded, early_files) = std::thread::scope(|scope| {
        let (repo, head_commit) = (&repo, &head_commit);
        let diff = early_base.as_deref().map(|base| {
            scope.spawn(
                move || match early_diff.map(std::thread::JoinHandle::join) {
                    Some(Ok(Ok(early))) => Ok(repo.early_diff(early)),
                    // Asked again: for git's own error, or for ends that were not commit ids.
                    _ => repo.diff(base, head_commit),
                },
            )
        });
        let loaded = index::project_at(repo, head_commit, &args.head, env);
        let files = diff.map(|d| d.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        (loaded, files)
    });
    let (snapshot, source) = loaded?;
    // `_saving` waits for the index files at the end of this function: they are written
    // while the answer is decided.
    let index::Snapshot {
        project,
        stacks: head_stacks,
        graph,
        saving: _saving,
    } = snapshot;
    let project = &project;

    let base_stage = match default_base {
        DefaultBase::FirstStage => project.stages.first(),
        DefaultBase::LastStage => project.stages.last(),
    }
    .map(String::as_str);
    let base_rev = args.base.clone().map_or_else(
        || {
            base_stage.map_or(Ok(None), |stage| {
                last_released_commit(root, settings, project, stage)
            })
        },
        |base| Ok(Some(base)),
    )?;
    let (base, set) = match base_rev {
        None => {
            let because = match base_stage {
                Some(stage) => format!("no base: nothing has been released to {stage} yet"),
                None => "no base: the project has no stage to release to yet".to_owned(),
            };
            (None, ChangeSet::all_changed(&head_stacks, &graph, &because))
        }
        Some(rev) => match early_base
            .clone()
            .map_or_else(|| repo.resolve(&rev), |c| Ok(Some(c)))?
        {
            None => {
                let because = if repo.is_shallow()? {
                    format!(
                        "base {rev} is not in this shallow clone's history; fetch more history (git fetch --unshallow) to compare"
                    )
                } else {
                    format!(
                        "base {rev} is not a commit in this repository (rewritten by a force-push, or never fetched)"
                    )
                };
                (None, ChangeSet::all_changed(&head_stacks, &graph, &because))
            }
            Some(base_commit) => {
                let files = match early_files {
                    Some(files) => files?,
                    None => repo.diff(&base_commit, &head_commit)?,
                };
                let base_stacks = gone_stacks(&repo, &base_commit, &files, &project.name)?;
                let set = changes::detect(ChangeInput {
                    files: &files,
                    head: &head_stacks,
                    base: &base_stacks,
                    graph: &graph,
                });
                (
                    Some(End {
                        rev,
                        commit: base_commit,
                    }),
                    set,
                )
            }
        },
    };
    let head = End {
        rev: args.head.clone(),
        commit: head_commit,
    };
    Ok(Detected {
        base,
        head,
        set,
        index: source,
        git,
    })
}

struct DetectArgs {
    base: Option<String>,
    head: String,
}

/// The commit of the newest release to `stage`, from the record. None when nothing was
/// released there yet (or the default record does not exist yet): then every stack counts
/// as changed. A record that exists but cannot be read is an error: reading it as "nothing
/// released" would redeploy every stack.
fn last_released_commit(
    project_root: &Path,
    settings: &Settings,
    project: &index::ProjectSummary,
    stage: &str,
) -> Result<Option<String>> {
    // The same choice as `record::url`, without creating the data folder: reading never
    // needs it.
    let url = match &settings.store_url {
        Some(url) => url.clone(),
        None => project
            .store_url
            .clone()
            .unwrap_or_else(|| slipway_store::default_url(&project_root.join(&project.data_dir))),
    };
    // The default record is a file; a missing file means nothing was ever released.
    if let Some(path) = url.strip_prefix("sqlite://") {
        if !Path::new(path).exists() {
            return Ok(None);
        }
    }
    let releases = tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(async {
            use slipway_store::Store;
            let store = slipway_store::open(&url).await?;
            let releases = store.current_releases().await;
            store.close().await;
            releases
        })
    })
    .with_context(|| format!("cannot read the record to find what was last released to {stage}"))
    .help("fix the record's URL or access, or name the base yourself with `--base REV`")?;
    Ok(releases
        .into_iter()
        .filter(|r| r.stage == stage)
        .max_by_key(|r| (r.released_at, r.id))
        .map(|r| r.commit))
}

/// Base stacks whose `stack.hcl` the diff deleted or moved away: the only base stacks that
/// can have been renamed or deleted. Their names are read at the base commit.
fn gone_stacks(
    repo: &Repo,
    base_commit: &str,
    files: &[changes::FileChange],
    project_name: &str,
) -> Result<Vec<BaseStack>> {
    let stack_files: Vec<String> = files
        .iter()
        .filter_map(|f| match &f.status {
            FileStatus::Deleted => Some(f.path.clone()),
            FileStatus::Renamed { from } => Some(from.clone()),
            _ => None,
        })
        .filter(|p| p == STACK_FILE || p.ends_with(&format!("/{STACK_FILE}")))
        .collect();
    if stack_files.is_empty() {
        return Ok(Vec::new());
    }
    let texts = TreeReader::new(repo, base_commit)?.read(&stack_files)?;
    Ok(stack_files
        .iter()
        .zip(texts)
        .map(|(path, text)| {
            let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
            BaseStack {
                name: changes::stack_name(dir, text.as_deref().unwrap_or(""), project_name),
                dir: dir.to_owned(),
            }
        })
        .collect())
}
