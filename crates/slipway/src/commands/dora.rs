//! `slipway dora`: the four delivery metrics of each stage over a window, from the record
//! and the git history (definitions in docs/dora.md).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use clap::Args;
use slipway_core::dora::{DEFAULT_FAILURE_WINDOW_MS, Durations, Report};
use slipway_runner::dora::Window;
use slipway_runner::project::Workspace;
use slipway_runner::record;
use slipway_store::UnixMillis;

use crate::ExitStatus;

#[derive(Debug, Args)]
pub struct DoraArgs {
    /// Only this stage (default: every stage with anything on record in the window).
    #[arg(long, short = 's', value_name = "STAGE")]
    pub stage: Option<String>,
    /// The window's start: a date (2026-01-31) or how long ago (30d, 12weeks).
    #[arg(long, value_name = "DATE|DURATION", default_value = "30d")]
    pub since: String,
    /// How long after a deployment a failure, rollback or recovery of its stage counts
    /// against it (unless the stage was deployed again before).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = humantime::parse_duration)]
    pub failure_window: Duration,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `slipway dora`.
pub async fn run(workspace: &Workspace, args: &DoraArgs) -> Result<ExitStatus> {
    if let Some(stage) = &args.stage {
        slipway_runner::project::find_stage(workspace, stage)?;
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let days = super::since::since_days(&args.since, now)?;
    let until = UnixMillis::now();
    let window = Window {
        since: UnixMillis(until.0 - (days * 86_400_000.0).round() as i64),
        until,
        stage: args.stage.clone(),
        failure_window_ms: i64::try_from(args.failure_window.as_millis())
            .unwrap_or(DEFAULT_FAILURE_WINDOW_MS),
    };
    let store = record::open(workspace).await?;
    let report = slipway_runner::dora::report(workspace, &store, &window).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report));
        if report.stages.iter().all(|s| s.deployments == 0) {
            eprintln!(
                "nothing delivered since {}\n  help: widen the window with --since (e.g. --since 90d)",
                UnixMillis(report.since).to_rfc3339()
            );
        }
    }
    Ok(ExitStatus::Success)
}

/// The metrics as a table, one row per stage.
fn table(report: &Report) -> String {
    let mut out = format!(
        "{:<10} {:>11} {:>9} {:>13} {:>13} {:>15} {:>13} {:>5}\n",
        "STAGE",
        "DEPLOYMENTS",
        "PER DAY",
        "LEAD TIME",
        "LEAD p90",
        "CHANGE FAILURE",
        "TIME TO FIX",
        "OPEN"
    );
    for stage in &report.stages {
        out.push_str(&format!(
            "{:<10} {:>11} {:>9.2} {:>13} {:>13} {:>15} {:>13} {:>5}\n",
            stage.stage,
            stage.deployments,
            stage.deployments_per_day,
            median(stage.lead_time.as_ref()),
            stage
                .lead_time
                .as_ref()
                .map_or_else(|| "-".to_owned(), |d| human(d.p90_ms)),
            stage.change_failure_rate.map_or_else(
                || "-".to_owned(),
                |rate| format!(
                    "{:.0}% ({}/{})",
                    rate * 100.0,
                    stage.failed_deployments,
                    stage.deployments
                )
            ),
            median(stage.time_to_restore.as_ref()),
            stage.open_incidents,
        ));
    }
    out
}

fn median(durations: Option<&Durations>) -> String {
    durations.map_or_else(|| "-".to_owned(), |d| human(d.median_ms))
}

/// A duration as people read it on a dashboard: its two largest units.
fn human(ms: i64) -> String {
    let s = ms / 1000;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m {}s", s % 60),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_their_two_largest_units() {
        assert_eq!(human(42_000), "42s");
        assert_eq!(human(125_000), "2m 5s");
        assert_eq!(human(2 * 3_600_000 + 60_000), "2h 1m");
        assert_eq!(human(3 * 86_400_000 + 5 * 3_600_000), "3d 5h");
    }
}
