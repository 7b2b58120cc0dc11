//! `slipway run` (the whole pipeline for the current commit), `approve`, `resume`, `reject`
//! and `resolve-interrupted`: their arguments and what they print. The run itself is the
//! runner's (`pipeline::stages`). See docs/pipeline.md.

use anyhow::Result;
use std::io::Write as _;

use clap::Args;
use slipway_runner::pipeline::stages::{self, RunOutcome};

use super::ExitStatus;
use super::deliver::RunOptions;
use crate::pipeline::interrupted;
use crate::project::Workspace;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Compare from this commit (default: the commit last released to the last stage; with
    /// none, every stack counts as changed).
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,
    #[command(flatten)]
    pub options: RunOptions,
    #[command(flatten)]
    pub events: super::EventsArgs,
    #[command(flatten)]
    pub local: super::ci::LocalStateArgs,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The run awaiting approval.
    #[arg(value_name = "RUN")]
    pub run: i64,
    /// The stage whose plans are approved.
    #[arg(long, short = 's', value_name = "STAGE")]
    pub stage: String,
    /// Why the plans may be applied (kept in the audit log).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The approved run.
    #[arg(value_name = "RUN")]
    pub run: i64,
    #[command(flatten)]
    pub options: RunOptions,
    #[command(flatten)]
    pub events: super::EventsArgs,
}

#[derive(Debug, Args)]
pub struct RejectArgs {
    /// The run awaiting approval.
    #[arg(value_name = "RUN")]
    pub run: i64,
    /// The stage whose plans are rejected.
    #[arg(long, short = 's', value_name = "STAGE")]
    pub stage: String,
    /// Why (kept in the audit log).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// The run.
    #[arg(value_name = "RUN")]
    pub run: i64,
    /// Only the events after this one (its number in the run, from 1): to follow on.
    #[arg(long, value_name = "SEQ", default_value_t = 0)]
    pub after: i64,
}

#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// The stack run reported as interrupted.
    #[arg(value_name = "STACK_RUN")]
    pub stack_run: i64,
    /// What you found and did (kept in the record and the audit log).
    #[arg(long, value_name = "TEXT")]
    pub note: String,
}

/// `slipway run`.
pub async fn run(workspace: &Workspace, args: &RunArgs) -> Result<ExitStatus> {
    let outcome = stages::start(workspace, args.base.clone(), &args.options.executor()).await?;
    Ok(status(&outcome))
}

/// `slipway resume`.
pub async fn resume(workspace: &Workspace, args: &ResumeArgs) -> Result<ExitStatus> {
    let outcome = stages::resume(workspace, args.run, &args.options.executor()).await?;
    Ok(status(&outcome))
}

fn status(outcome: &RunOutcome) -> ExitStatus {
    if outcome.succeeded() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    }
}

/// `slipway approve`.
pub async fn approve(workspace: &Workspace, args: &ApproveArgs) -> Result<ExitStatus> {
    let approval = stages::approve(workspace, args.run, &args.stage, &args.reason).await?;
    eprintln!(
        "approved run {} at stage {} ({} saved plan{}) by {}\n  next: slipway resume {}",
        args.run,
        approval.stage,
        approval.plans,
        if approval.plans == 1 { "" } else { "s" },
        workspace.settings.actor,
        args.run
    );
    Ok(ExitStatus::Success)
}

/// `slipway reject`.
pub async fn reject(workspace: &Workspace, args: &RejectArgs) -> Result<ExitStatus> {
    let stage = stages::reject(workspace, args.run, &args.stage, &args.reason).await?;
    eprintln!(
        "rejected run {} at stage {stage}; the run is over",
        args.run
    );
    Ok(ExitStatus::Success)
}

/// `slipway resolve-interrupted`.
pub async fn resolve(workspace: &Workspace, args: &ResolveArgs) -> Result<ExitStatus> {
    interrupted::resolve(workspace, args.stack_run, &args.note).await?;
    Ok(ExitStatus::Success)
}

/// `slipway events RUN`: the run's recorded events, one JSON object a line.
pub async fn events(workspace: &Workspace, args: &EventsArgs) -> Result<ExitStatus> {
    let events = slipway_runner::history::run_events(workspace, args.run, args.after).await?;
    let mut out = std::io::stdout().lock();
    for event in events {
        writeln!(out, "{}", event.event)?;
    }
    Ok(ExitStatus::Success)
}
