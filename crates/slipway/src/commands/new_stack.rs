//! `slipway new stack NAME [--depends-on X]...`: adds a stack to an existing project, beside
//! the stacks already there, wired to the stacks it depends on.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use slipway_core::config::STACK_FILE;

use super::ExitStatus;
use super::init::{Planned, write_all};
use crate::project::Workspace;
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct NewArgs {
    #[command(subcommand)]
    pub command: NewCommand,
}

#[derive(Debug, Subcommand)]
pub enum NewCommand {
    /// Add a stack (stack.hcl and main.tf) beside the project's other stacks.
    Stack(NewStackArgs),
}

#[derive(Debug, Args)]
pub struct NewStackArgs {
    /// The stack's name (letters, digits, `-`, `_`).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// A stack this one consumes outputs of (repeatable).
    #[arg(long = "depends-on", value_name = "STACK")]
    pub depends_on: Vec<String>,
    /// Folder for the stack, relative to the project (default: beside the other stacks).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The team that owns it.
    #[arg(long)]
    pub team: Option<String>,
    /// The technical capability it belongs to.
    #[arg(long)]
    pub capability: Option<String>,
    /// Replace files that already exist.
    #[arg(long)]
    pub force: bool,
}

pub fn run(workspace: &Workspace, args: &NewStackArgs) -> Result<ExitStatus> {
    let project = &workspace.project;
    let name = &args.name;
    if !name.starts_with(|c: char| c.is_ascii_alphabetic())
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!(
            "`{name}` is not a valid stack name\n  help: use letters, digits, `-` and `_`, starting with a letter"
        );
    }
    if let Some(existing) = project.stack(name) {
        bail!(
            "a stack named `{name}` already exists in {}\n  help: choose another name",
            existing.dir
        );
    }
    let mut dependencies = Vec::new();
    for dep in &args.depends_on {
        match project.stack(dep) {
            Some(stack) => dependencies.push(stack),
            None => bail!(
                "`{dep}` is not a stack of this project\n  help: `slipway stacks` lists them: {}",
                project
                    .stacks
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    let dir = match &args.dir {
        Some(dir) => crate::commands::init::slash(dir),
        None => format!("{}/{name}", stacks_parent(workspace)),
    };
    let dir = dir
        .trim_start_matches("./")
        .trim_end_matches('/')
        .to_owned();

    let mut stack_hcl = String::from("stack {\n");
    for (key, value) in [("team", &args.team), ("capability", &args.capability)] {
        match value {
            Some(v) => {
                let _ = writeln!(stack_hcl, "  {key} = {v:?}");
            }
            None => {
                let _ = writeln!(stack_hcl, "  # {key} = \"\"");
            }
        }
    }
    stack_hcl.push_str("}\n");
    for dep in &dependencies {
        let _ = write!(
            stack_hcl,
            "\ndependency \"{}\" {{\n  path = \"{}\"\n}}\n",
            dep.name,
            super::init::relative(&dir, &dep.dir)
        );
    }
    if !dependencies.is_empty() {
        stack_hcl.push_str(
            "\n# Outputs of the stacks above, passed as this stack's variables, e.g.\n# inputs = {\n#   vpc_id = dependency.network.outputs.vpc_id\n# }\n",
        );
    }
    let main_tf = r#"variable "env" {
  description = "The stage this instance belongs to (from the stage's variables)."
  type        = string
}
"#;
    let files = vec![
        Planned {
            path: PathBuf::from(&dir).join(STACK_FILE),
            contents: stack_hcl,
        },
        Planned {
            path: PathBuf::from(&dir).join("main.tf"),
            contents: main_tf.to_owned(),
        },
    ];
    write_all(&workspace.root, &files, args.force)?;
    Ok(ExitStatus::Success)
}

/// Where new stacks go: the folder most existing stacks share as parent, else `stacks`.
fn stacks_parent(workspace: &Workspace) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for stack in &workspace.project.stacks {
        let parent = Path::new(&stack.dir)
            .parent()
            .and_then(|p| p.to_str())
            .unwrap_or("");
        *counts.entry(parent).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(p, _)| p.to_owned())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "stacks".to_owned())
}
