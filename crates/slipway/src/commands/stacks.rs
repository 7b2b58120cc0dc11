//! `slipway stacks`: what is in the project, in dependency order.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

use super::ExitStatus;
use crate::project::Workspace;
use clap::Args;

#[derive(Debug, Args)]
pub struct StacksArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct StackRow<'a> {
    name: &'a str,
    path: &'a str,
    team: Option<&'a str>,
    capability: Option<&'a str>,
    dependencies: Vec<&'a str>,
    dependents: Vec<&'a str>,
}

pub fn run(workspace: &Workspace, args: &StacksArgs) -> Result<ExitStatus> {
    let project = &workspace.project;
    let rows: Vec<StackRow<'_>> = project
        .graph
        .topological_order()
        .into_iter()
        .filter_map(|name| project.stack(name))
        .map(|stack| StackRow {
            name: &stack.name,
            path: &stack.dir,
            team: stack.team.as_deref(),
            capability: stack.capability.as_deref(),
            dependencies: project.graph.dependencies(&stack.name),
            dependents: project.graph.dependents(&stack.name),
        })
        .collect();
    // Written in blocks: stdout flushes at each line otherwise, a system call per stack.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    if args.json {
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
        out.flush()?;
        return Ok(ExitStatus::Success);
    }
    if rows.is_empty() {
        eprintln!("no stacks found: a stack is a folder with a stack.hcl beside its .tf files");
        return Ok(ExitStatus::Success);
    }
    let table: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.name.to_owned(),
                r.team.unwrap_or("-").to_owned(),
                r.capability.unwrap_or("-").to_owned(),
                r.path.to_owned(),
                if r.dependencies.is_empty() {
                    "-".to_owned()
                } else {
                    r.dependencies.join(", ")
                },
            ]
        })
        .collect();
    let header = ["STACK", "TEAM", "CAPABILITY", "PATH", "DEPENDS ON"];
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in std::iter::once(header.map(str::to_owned)).chain(table) {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if i == 4 {
                    cell.clone()
                } else {
                    format!("{cell:<w$}", w = widths[i])
                }
            })
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    out.flush()?;
    Ok(ExitStatus::Success)
}
