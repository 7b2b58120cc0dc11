//! What a walk does to each stack (`Operation`) and how each stack instance ended
//! (`Outcome`), with the one line people read about it (`describe`). Plain values: the
//! executor produces them, events carry them, front ends render them.

use std::path::Path;
use std::time::Duration;

/// What to do to each stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Plan,
    Apply,
    Destroy,
    /// Initialise and read outputs only (for stacks whose outputs others need).
    ReadOutputs,
}

/// How one stack instance ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Planned {
        changes: bool,
    },
    /// Not planned: its inputs are unknown until a dependency is applied.
    InputsUnknown {
        reason: String,
    },
    /// Not applied: the stage's policy refuses the change, or asks for an approval the
    /// apply does not have.
    PolicyBlocked {
        reason: String,
    },
    /// Not applied: the approved plan no longer fits the instance's state.
    ApprovalVoid {
        reason: String,
    },
    Applied {
        changed: bool,
    },
    Destroyed,
    OutputsRead,
    Failed {
        error: String,
    },
    Skipped {
        because: String,
    },
    /// Stopped by an interrupt; `mid_apply` when the engine was changing infrastructure.
    Interrupted {
        mid_apply: bool,
    },
    NotStarted,
}

impl Outcome {
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Outcome::Failed { .. }
                | Outcome::PolicyBlocked { .. }
                | Outcome::ApprovalVoid { .. }
                | Outcome::Skipped { .. }
                | Outcome::Interrupted { .. }
                | Outcome::NotStarted
        )
    }
}

/// One line saying how a stack ended.
pub fn describe(
    stage: &str,
    stack: &str,
    outcome: &Outcome,
    elapsed: Duration,
    log: &Path,
) -> String {
    let secs = elapsed.as_secs_f64();
    let who = format!("{stage}/{stack}");
    match outcome {
        Outcome::Planned { changes: true } => format!("~ {who}: changes pending ({secs:.1}s)"),
        Outcome::Planned { changes: false } => format!("= {who}: no changes ({secs:.1}s)"),
        Outcome::InputsUnknown { reason } => format!("? {who}: not planned: {reason}"),
        Outcome::PolicyBlocked { reason } | Outcome::ApprovalVoid { reason } => {
            format!("x {who}: {reason}\n    log: {}", log.display())
        }
        Outcome::Applied { changed: true } => format!("+ {who}: applied ({secs:.1}s)"),
        Outcome::Applied { changed: false } => format!("= {who}: up to date ({secs:.1}s)"),
        Outcome::Destroyed => format!("- {who}: destroyed ({secs:.1}s)"),
        Outcome::OutputsRead => format!("  {who}: outputs read ({secs:.1}s)"),
        Outcome::Failed { error } if error.contains(&log.display().to_string()) => {
            format!("x {who}: failed: {error}")
        }
        Outcome::Failed { error } => {
            format!("x {who}: failed: {error}\n    log: {}", log.display())
        }
        Outcome::Skipped { because } => {
            format!("  {who}: skipped, because `{because}` did not succeed")
        }
        Outcome::Interrupted { mid_apply: true } => {
            format!(
                "! {who}: interrupted mid-apply; state may be partial\n    log: {}",
                log.display()
            )
        }
        Outcome::Interrupted { mid_apply: false } => format!("! {who}: interrupted"),
        Outcome::NotStarted => format!("  {who}: not started"),
    }
}
