//! `slipway graph`: the dependency graph for humans and other tools.

use std::io::Write;

use anyhow::Result;
use slipway_core::render;

use super::ExitStatus;
use crate::cli::{GraphArgs, GraphFormat};
use crate::project::Workspace;

pub fn run(workspace: &Workspace, args: &GraphArgs) -> Result<ExitStatus> {
    let project = &workspace.project;
    let text = match args.format {
        GraphFormat::Mermaid => render::mermaid(&project.stacks, &project.graph),
        GraphFormat::Dot => render::dot(&project.stacks, &project.graph),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitStatus::Success)
}
