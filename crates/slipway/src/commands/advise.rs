//! `slipway advise`: the stack-slicing advisor. The runner gathers what `slipway_advisor`
//! analyses (see `slipway_runner::advise`); this command picks the window and the stage,
//! prints the report and what the gathering noticed, and draws the picture.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use slipway_runner::advise::{AdviseRequest, Notice, gather};

use super::ExitStatus;
use crate::project::Workspace;
use clap::{Args, ValueEnum};
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AdviseFormat {
    /// A report for the terminal.
    Terminal,
    /// A Markdown report (for a pull request or a wiki page).
    Markdown,
    /// JSON (schema in docs/advisor.md).
    Json,
}

#[derive(Debug, Args)]
pub struct AdviseArgs {
    /// Read commits since this date (YYYY-MM-DD) or this long ago (e.g. "90d"); default: `history` in the advisor block, else 180 days.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = AdviseFormat::Terminal)]
    pub format: AdviseFormat,
    /// Also draw the stacks as an SVG picture into FILE.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Show every stack's measurements, not only those with recommendations.
    #[arg(long)]
    pub all: bool,
    /// Read the resources that exist from this stage's state; default: the last stage's
    /// local state (remote state is read only for a stage named here, one engine `init` per
    /// stack). Stacks without state there are counted from their declarations.
    #[arg(long, short = 's', value_name = "STAGE")]
    pub stage: Option<String>,
}

pub async fn run(workspace: &Workspace, args: &AdviseArgs) -> Result<ExitStatus> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let request = AdviseRequest {
        window_days: args
            .since
            .as_deref()
            .map(|since| super::since::since_days(since, now))
            .transpose()?,
        stage: args.stage.clone(),
        now,
    };
    let gathered = gather(workspace, &request).await?;
    for notice in &gathered.notices {
        match notice {
            Notice::Warning(text) => eprintln!("warning: {text}"),
            Notice::RemoteStateNotRead { stage } => eprintln!(
                "note: resources counted from declarations; `--stage {stage}` reads what exists from the remote state (one engine `init` per stack)"
            ),
        }
    }
    let report = slipway_advisor::analyze(&gathered.input);
    let text = match args.format {
        AdviseFormat::Terminal => slipway_advisor::render::terminal(&report, args.all),
        AdviseFormat::Markdown => slipway_advisor::render::markdown(&report, args.all),
        AdviseFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    if let Some(path) = &args.svg {
        std::fs::write(path, slipway_advisor::svg::render(&report))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(ExitStatus::Success)
}
