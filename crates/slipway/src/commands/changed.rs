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
use slipway_core::changes::{self, ChangeSet};
use slipway_runner::changes::{DefaultBase, Detected, End, detect};

use super::ExitStatus;
use crate::project;
use clap::Args;
use slipway_runner::Settings;

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
pub fn run(
    project_dir: Option<&Path>,
    settings: &Settings,
    args: &ChangedArgs,
) -> Result<ExitStatus> {
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    let root = project::find_root(project_dir, &cwd)?;
    let Detected {
        base,
        head,
        set,
        index,
        git,
    } = detect(
        &root,
        settings,
        args.base.clone(),
        &args.head,
        DefaultBase::FirstStage,
    )?;
    if settings.environment.contains_key("SLIPWAY_DEBUG_INDEX") {
        eprintln!("change index: {index:?}");
        eprintln!("git read: {git:?}");
    }
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
