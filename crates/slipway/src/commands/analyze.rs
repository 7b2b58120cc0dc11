//! `slipway analyze PLAN.json`: the blast radius report for a plan JSON file made elsewhere
//! (another CI system, another Terraform or OpenTofu version), so teams can adopt the
//! analysis before the pipeline.
//!
//! Works outside a project: then the built-in stateful list applies and there is no policy.
//! Inside a project, the project's `stateful_resources` and stack graph apply, and
//! `--stage S` checks the plan against that stage's policy.

use std::path::Path;

use anyhow::{Context, Result};
use slipway_plan::{
    Report, StackLinks, StatefulTypes, Verdict, analyze_instance, read_plan_file,
    stack_name_from_path,
};

use super::ExitStatus;
use super::report::ReportArgs;
use crate::analysis::{load_policy, stack_links, stateful_types};
use crate::project;
use crate::project::find_stage;
use slipway_runner::Settings;

#[derive(Debug, clap::Args)]
pub struct AnalyzeArgs {
    /// Plan JSON, as `terraform show -json PLANFILE` (or `tofu show -json`) writes it.
    #[arg(value_name = "PLAN.json")]
    pub plan: std::path::PathBuf,
    /// Check the plan against this stage's policy (needs the project).
    #[arg(long, short = 's', value_name = "STAGE")]
    pub stage: Option<String>,
    /// The stack the plan is of (default: the file's name, `network.json` -> `network`).
    #[arg(long, value_name = "STACK")]
    pub stack: Option<String>,
    #[command(flatten)]
    pub report: ReportArgs,
}

/// Prints the report; exit 0, or 1 when the stage's policy blocks the change.
pub fn run(
    project_dir: Option<&Path>,
    settings: Settings,
    args: &AnalyzeArgs,
) -> Result<ExitStatus> {
    let workspace = open_if_present(project_dir, settings)?;
    let (stateful, links) = match &workspace {
        Some(workspace) => (
            stateful_types(&workspace.project.stateful_resources),
            stack_links(&workspace.project),
        ),
        None => (StatefulTypes::builtin(), StackLinks::default()),
    };
    let (instance, policy) = match (&workspace, &args.stage) {
        (_, None) => ("default".to_owned(), None),
        (Some(workspace), Some(name)) => {
            let stage = find_stage(workspace, name)?;
            let policy = load_policy(&workspace.root, &stage.name, stage.policy.as_ref())?;
            (stage.name.clone(), policy)
        }
        (None, Some(name)) => anyhow::bail!(
            "--stage {name} needs a project, and there is no slipway.hcl here or in any folder above\n  help: run it inside the project (or pass -C DIR), or leave out --stage to analyze without a policy"
        ),
    };
    let plan = read_plan_file(&args.plan)
        .with_context(|| format!("cannot analyze {}", args.plan.display()))?;
    // The file's name is only a guess at the stack; `--stack` names it, so the downstream
    // reach through the project's stack graph is found.
    let stack = args
        .stack
        .clone()
        .unwrap_or_else(|| stack_name_from_path(&args.plan));
    let measured = analyze_instance(&stack, &instance, &plan, &stateful, &links, policy.as_ref())
        .with_context(|| format!("cannot evaluate the policy of stage `{instance}`"))?;
    let report = Report::new(vec![measured]);
    args.report.print(&report)?;
    Ok(if report.total.verdict == Verdict::Block {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

/// The project around the current (or given) folder, when there is one.
fn open_if_present(
    project_dir: Option<&Path>,
    settings: Settings,
) -> Result<Option<project::Workspace>> {
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    if project_dir.is_none() && project::find_root(None, &cwd).is_err() {
        return Ok(None);
    }
    project::open(project_dir, &cwd, settings).map(Some)
}
