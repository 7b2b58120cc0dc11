//! `slipway plan`: plans a stage's stacks, then prints the run's blast radius report to
//! stdout (terminal table, Markdown or JSON). Progress and the summary go to stderr.
//!
//! The exit code is the plan's (0 nothing to change, 2 changes pending, 1 failure): a
//! policy violation is in the report, and only stops an `apply`.

use anyhow::Result;
use clap::Args;
use slipway_plan::Report;

use super::ExitStatus;
use super::report::ReportArgs;
use super::stage::StageArgs;
use crate::executor::Operation;
use crate::project::Workspace;

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub stage: StageArgs,
    #[command(flatten)]
    pub report: ReportArgs,
}

pub async fn run(workspace: &Workspace, args: &PlanArgs) -> Result<ExitStatus> {
    let (status, results) =
        super::stage::run_with_results(workspace, &args.stage, Operation::Plan).await?;
    // Results come in dependency order, so the report lists stacks in the order they apply.
    let instances = results
        .into_iter()
        .filter_map(|result| result.report)
        .collect();
    let report = Report::new(instances);
    if args.stage.events.json {
        let json: serde_json::Value = serde_json::from_str(&report.to_json())?;
        super::stream_report(workspace, "blast_radius", &json)?;
    } else {
        args.report.print(&report)?;
    }
    Ok(status)
}
