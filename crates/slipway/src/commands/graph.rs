//! `slipway graph`: the dependency graph for humans and other tools.

use std::io::Write;

use anyhow::Result;
use slipway_core::render;

use super::ExitStatus;
use crate::project::Workspace;
use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// Mermaid flowchart (renders in GitHub and GitLab Markdown).
    Mermaid,
    /// Graphviz DOT.
    Dot,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
    pub format: GraphFormat,
}

pub fn run(workspace: &Workspace, args: &GraphArgs) -> Result<ExitStatus> {
    let project = &workspace.project;
    let text = match args.format {
        GraphFormat::Mermaid => render::mermaid(&project.stacks, &project.graph),
        GraphFormat::Dot => render::dot(&project.stacks, &project.graph),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitStatus::Success)
}
