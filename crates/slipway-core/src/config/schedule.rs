//! `schedule "NAME" { ... }` blocks of slipway.hcl: work the server starts on its own, on a
//! cron schedule, per stage.
//!
//! ```hcl
//! schedule "nightly-drift" {
//!   cron  = "0 3 * * *"   # minute hour day-of-month month day-of-week, in UTC
//!   run   = "drift"       # "drift" (a drift check) or "drill" (a recovery drill)
//!   stage = "prod"
//! }
//! ```
//!
//! Only `slipway serve` acts on schedules. A schedule whose times passed while no server ran
//! runs once when one starts, not once per time missed.

use std::str::FromStr as _;

use hcl::edit::Span;
use hcl::edit::structure::Block;

use super::eval::{Env, Scope};
use super::schema::{Checked, Schema};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::source::{Location, SourceFile};

const SCHEDULE_BLOCK: Schema = Schema {
    what: "block `schedule`",
    attributes: &["cron", "run", "stage"],
    blocks: &[],
};

/// What a schedule starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduled {
    /// `slipway drift --stage S`.
    Drift,
    /// `slipway drill --stage S`.
    Drill,
}

impl Scheduled {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheduled::Drift => "drift",
            Scheduled::Drill => "drill",
        }
    }
}

/// One `schedule` block.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    /// The cron expression as written (five fields, UTC).
    pub cron: String,
    pub run: Scheduled,
    pub stage: String,
    pub location: Location,
}

impl Schedule {
    /// The parsed cron expression. Checked when the configuration is loaded, so this only
    /// fails for a schedule made by hand.
    pub fn pattern(&self) -> Result<croner::Cron, croner::errors::CronError> {
        croner::Cron::from_str(&self.cron)
    }
}

/// Reads the `schedule` blocks; `stages` are the stage names.
pub(crate) fn load_schedules<'a>(
    file: &SourceFile,
    blocks: impl Iterator<Item = &'a Block>,
    stages: &[&str],
    scope: &Scope<'_>,
    env: &Env,
    diagnostics: &mut Diagnostics,
) -> Vec<Schedule> {
    let mut schedules: Vec<Schedule> = Vec::new();
    for block in blocks {
        let Some(label) = block.labels.first() else {
            continue;
        };
        let name = label.as_str().to_owned();
        if schedules.iter().any(|s| s.name == name) {
            diagnostics.push(
                Diagnostic::at(
                    file,
                    block.span(),
                    format!("schedule `{name}` is defined twice"),
                )
                .help("give each schedule its own name"),
            );
            continue;
        }
        let body = Checked::new(file, &block.body, &SCHEDULE_BLOCK, diagnostics);
        let what = Some("block `schedule`");
        let span_of = |key: &str| body.attribute(key).and_then(|a| a.value.span());
        let cron = body.string("cron", what, scope, env, diagnostics);
        let run = body.string("run", what, scope, env, diagnostics);
        let stage = body.string("stage", what, scope, env, diagnostics);
        let (Some(cron), Some(run), Some(stage)) = (cron, run, stage) else {
            continue;
        };
        let mut valid = true;
        if let Err(error) = croner::Cron::from_str(&cron) {
            valid = false;
            diagnostics.push(
                Diagnostic::at(
                    file,
                    span_of("cron"),
                    format!("`cron` of schedule `{name}` is not a cron expression: {error}"),
                )
                .help("five fields, in UTC: minute hour day-of-month month day-of-week, e.g. \"0 3 * * *\" for 03:00 every day"),
            );
        }
        let run = match run.as_str() {
            "drift" => Some(Scheduled::Drift),
            "drill" => Some(Scheduled::Drill),
            other => {
                diagnostics.push(
                    Diagnostic::at(
                        file,
                        span_of("run"),
                        format!("schedule `{name}` runs `{other}`, which slipway cannot schedule"),
                    )
                    .help("write `run = \"drift\"` (a drift check) or `run = \"drill\"` (a recovery drill)"),
                );
                None
            }
        };
        if !stages.contains(&stage.as_str()) {
            valid = false;
            diagnostics.push(
                Diagnostic::at(
                    file,
                    span_of("stage"),
                    format!("schedule `{name}` names stage `{stage}`, which is not a stage"),
                )
                .help(format!("use one of: {}", stages.join(", "))),
            );
        }
        if let (true, Some(run)) = (valid, run) {
            schedules.push(Schedule {
                name,
                cron,
                run,
                stage,
                location: file.location(block.span()),
            });
        }
    }
    schedules
}
