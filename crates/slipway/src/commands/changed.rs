//! `slipway changed`: the stacks a range of commits affects, and why.
//!
//! The head commit's stacks are read from git, not from the working tree, so the answer is
//! about commits alone. With no `--base`, the base is the commit last released to the first
//! stage. When the base cannot be found (nothing released yet, a force-push, a shallow
//! clone), every stack counts as changed and the output says why: missing history never
//! reads as "nothing changed".

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use slipway_core::changes::{self, BaseStack, ChangeInput, ChangeSet, FileStatus};
use slipway_core::config::{Env, STACK_FILE};
use slipway_git::{Repo, TreeReader};

use super::ExitStatus;
use crate::project;
use clap::Args;

#[derive(Debug, Args)]
pub struct ChangedArgs {
    /// Compare from this commit (default: the commit last released to the first stage; with none, every stack counts as changed).
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,
    /// Compare up to this commit.
    #[arg(long, value_name = "REF", default_value = "HEAD")]
    pub head: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

mod index;

/// One end of the compared range: what the user named and the commit it resolved to.
#[derive(Debug, Serialize)]
pub struct End {
    pub rev: String,
    pub commit: String,
}

/// The `--json` document (described in docs/change-detection.md).
#[derive(Debug, Serialize)]
struct Report<'a> {
    base: Option<End>,
    head: End,
    all_changed_because: Option<&'a str>,
    affected: &'a [changes::AffectedStack],
    dependents: &'a [changes::Dependent],
    renamed_stacks: &'a [changes::RenamedStack],
    deleted_stacks: &'a [changes::DeletedStack],
    stacks_to_run: Vec<&'a str>,
}

/// Runs without loading the working tree's project: everything is read from the commits, so
/// `main` dispatches here before opening the workspace.
pub fn run(project_dir: Option<&Path>, args: &ChangedArgs) -> Result<ExitStatus> {
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    let root = project::find_root(project_dir, &cwd)?;
    let Detected { base, head, set } = detect(&root, args.base.clone(), &args.head)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let report = Report {
            base,
            head,
            all_changed_because: set.all_changed_because.as_deref(),
            affected: &set.affected,
            dependents: &set.dependents,
            renamed_stacks: &set.renamed_stacks,
            deleted_stacks: &set.deleted_stacks,
            stacks_to_run: set.stacks_to_run().collect(),
        };
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        out.write_all(render(base.as_ref(), &head, &set).as_bytes())?;
    }
    Ok(ExitStatus::Success)
}

/// The compared range and what it changed.
#[derive(Debug)]
pub struct Detected {
    pub base: Option<End>,
    pub head: End,
    pub set: ChangeSet,
}

/// The stacks that changed between `base` (default: the commit last released to the first
/// stage) and `head`, with their dependents.
pub fn detect(root: &Path, base: Option<String>, head: &str) -> Result<Detected> {
    let args = DetectArgs {
        base,
        head: head.to_owned(),
    };
    // Head and an explicit base resolve in the process that finds the repository.
    let revs: Vec<&str> = std::iter::once(args.head.as_str())
        .chain(args.base.as_deref())
        .collect();
    let (repo, resolved) = Repo::open_resolving(root, &revs)?;
    let (head_commit, early_base) = match resolved {
        Some(mut ids) => {
            let base = (ids.len() > 1).then(|| ids.pop()).flatten();
            (ids.swap_remove(0), base)
        }
        None => (repo.require(&args.head)?, None),
    };
    let env: Env = std::env::vars().collect();
    // The stacks at head come from the change index, read in full only when it cannot be
    // brought forward (see index.rs). With the base known already, git diffs the range
    // meanwhile: the diff and the index are most of a warm run.
    let (loaded, early_files) = std::thread::scope(|scope| {
        let diff = early_base
            .as_deref()
            .map(|base| scope.spawn(|| repo.diff(base, &head_commit)));
        let loaded = index::project_at(&repo, &head_commit, &args.head, &env);
        let files = diff.map(|d| d.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        (loaded, files)
    });
    let (snapshot, source) = loaded?;
    if std::env::var_os("SLIPWAY_DEBUG_INDEX").is_some() {
        eprintln!("change index: {source:?}");
    }
    let index::Snapshot {
        project,
        stacks: head_stacks,
        graph,
    } = snapshot;
    let project = &project;

    let first_stage = project.stages.first().map(String::as_str);
    let base_rev = args.base.clone().map_or_else(
        || first_stage.map_or(Ok(None), |stage| last_released_commit(root, project, stage)),
        |base| Ok(Some(base)),
    )?;
    let (base, set) = match base_rev {
        None => {
            let because = match first_stage {
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
    Ok(Detected { base, head, set })
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
    project: &index::ProjectSummary,
    stage: &str,
) -> Result<Option<String>> {
    // The same choice as `record::url`, without creating the data folder: reading never
    // needs it.
    let url = match std::env::var("SLIPWAY_STORE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => project
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
    .with_context(|| {
        format!(
            "cannot read the record to find what was last released to {stage}\n  \
             help: fix the record's URL or access, or name the base yourself with `--base REV`"
        )
    })?;
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

/// `REF (commit)`, or the short commit alone when the user named it by id.
fn describe(end: &End) -> String {
    let short = end.commit.get(..12).unwrap_or(&end.commit);
    if end.commit.starts_with(&end.rev) {
        short.to_owned()
    } else {
        format!("{} ({short})", end.rev)
    }
}

/// The human report: a table of affected stacks and why, then dependents, renames and
/// deletions.
fn render(base: Option<&End>, head: &End, set: &ChangeSet) -> String {
    let mut text = String::new();
    match base {
        Some(b) => text.push_str(&format!("base  {}\n", describe(b))),
        None => text.push_str("base  none\n"),
    }
    text.push_str(&format!("head  {}\n\n", describe(head)));
    if let Some(because) = &set.all_changed_because {
        text.push_str(&format!("every stack counts as changed: {because}\n\n"));
    }
    if set.affected.is_empty() {
        text.push_str("no stack is affected\n");
    } else {
        let rows: Vec<(&str, Vec<String>)> = set
            .affected
            .iter()
            .map(|s| {
                let reasons = s.reasons.iter().map(ToString::to_string).collect();
                (s.name.as_str(), reasons)
            })
            .collect();
        table(&mut text, ("STACK", "WHY"), &rows);
    }
    if !set.dependents.is_empty() {
        text.push_str("\ndependents (they consume outputs of a stack above):\n");
        let rows: Vec<(&str, Vec<String>)> = set
            .dependents
            .iter()
            .map(|d| (d.name.as_str(), vec![format!("via {}", d.via.join(", "))]))
            .collect();
        table(&mut text, ("STACK", "VIA"), &rows);
    }
    if !set.renamed_stacks.is_empty() {
        text.push_str("\nrenamed stacks:\n");
        for r in &set.renamed_stacks {
            text.push_str(&format!(
                "  {} -> {} ({} -> {})\n",
                r.from_name, r.name, r.from_dir, r.dir
            ));
        }
    }
    if !set.deleted_stacks.is_empty() {
        text.push_str(
            "\ndeleted stacks (never destroyed implicitly: their instances stay until destroyed explicitly):\n",
        );
        for d in &set.deleted_stacks {
            text.push_str(&format!("  {} ({})\n", d.name, d.dir));
        }
    }
    text.push_str(&format!(
        "\n{} to run: {} affected, {}\n",
        plural(set.affected.len() + set.dependents.len(), "stack"),
        set.affected.len(),
        plural(set.dependents.len(), "dependent")
    ));
    text
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Two columns; a stack with several lines of text repeats no name.
fn table(text: &mut String, header: (&str, &str), rows: &[(&str, Vec<String>)]) {
    let width = rows
        .iter()
        .map(|(name, _)| name.len())
        .chain([header.0.len()])
        .max()
        .unwrap_or(0);
    text.push_str(&format!("{:<width$}  {}\n", header.0, header.1));
    for (name, lines) in rows {
        for (i, line) in lines.iter().enumerate() {
            let first = if i == 0 { *name } else { "" };
            text.push_str(&format!("{first:<width$}  {line}\n"));
        }
    }
}
