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
use slipway_core::changes::{self, BaseStack, ChangeInput, ChangeSet, FileStatus, HeadStack};
use slipway_core::config::{self, Env, STACK_FILE};
use slipway_git::{Repo, TreeReader};

use super::ExitStatus;
use crate::cli::ChangedArgs;
use crate::project::{self, ConfigErrors};

/// One end of the compared range: what the user named and the commit it resolved to.
#[derive(Debug, Serialize)]
struct End {
    rev: String,
    commit: String,
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
    let repo = Repo::open(&root)?;
    let head_commit = repo.require(&args.head)?;
    let mut head_tree = TreeReader::new(&repo, &head_commit)?;
    let sources = head_tree
        .project_sources()
        .with_context(|| format!("cannot read the project at {}", args.head))?;
    let env: Env = std::env::vars().collect();
    let project = config::load(&sources, &env)
        .map_err(ConfigErrors)
        .with_context(|| format!("the project at {} does not load", args.head))?;
    let mut module_dirs = head_tree.module_dirs(&project.stacks)?;
    let head_stacks: Vec<HeadStack> = project
        .stacks
        .iter()
        .map(|s| HeadStack {
            name: s.name.clone(),
            dir: s.dir.clone(),
            module_dirs: module_dirs.remove(&s.name).unwrap_or_default(),
        })
        .collect();

    let first_stage = project.stages.first().map(|s| s.name.as_str());
    let base_rev = args
        .base
        .clone()
        .or_else(|| first_stage.and_then(|stage| last_released_commit(&root, stage)));
    let (base, set) = match base_rev {
        None => {
            let because = match first_stage {
                Some(stage) => format!("no base: nothing has been released to {stage} yet"),
                None => "no base: the project has no stage to release to yet".to_owned(),
            };
            (
                None,
                ChangeSet::all_changed(&head_stacks, &project.graph, &because),
            )
        }
        Some(rev) => match repo.resolve(&rev)? {
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
                (
                    None,
                    ChangeSet::all_changed(&head_stacks, &project.graph, &because),
                )
            }
            Some(base_commit) => {
                let files = repo.diff(&base_commit, &head_commit)?;
                let base_stacks = gone_stacks(&repo, &base_commit, &files, &project.name)?;
                let set = changes::detect(ChangeInput {
                    files: &files,
                    head: &head_stacks,
                    base: &base_stacks,
                    graph: &project.graph,
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

/// The commit last released to `stage`. The release record supplies it once present; until
/// then there is none, and every stack counts as changed unless `--base` is given.
fn last_released_commit(_project_root: &Path, _stage: &str) -> Option<String> {
    None
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
