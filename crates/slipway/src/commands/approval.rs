//! Approvals outside the pipeline: a stage with `approval = true` changes only on someone's
//! recorded word. `slipway run` stops there for `slipway approve`; the commands that change a
//! stage directly (`apply`, `destroy`, `deploy`, `promote`, `rollback`) take that word as
//! `--approve "why"` and write it to the audit log before anything runs.

use anyhow::{Result, bail};
use clap::Args;
use slipway_core::Stage;
use slipway_store::{AnyStore, AuditAction, NewAuditEntry, Store};

/// The approval a command brings for a stage that requires one.
#[derive(Debug, Clone, Default, Args)]
pub struct ApprovalArgs {
    /// Approve this change of a stage with `approval = true`, saying why (recorded in the
    /// audit log with who approved). Without it such a stage changes only through
    /// `slipway run` and `slipway approve`.
    #[arg(long, value_name = "WHY")]
    pub approve: Option<String>,
}

/// What was approved, to be recorded once the change has a run (or without one).
#[derive(Debug)]
pub struct Approval {
    stage: String,
    command: &'static str,
    reason: String,
}

impl ApprovalArgs {
    /// Checks that `command` may change `stage`: `Ok(None)` when the stage needs no approval,
    /// `Ok(Some(..))` when this command brings one, an error saying how to approve otherwise.
    pub fn check(&self, stage: &Stage, command: &'static str) -> Result<Option<Approval>> {
        decide(
            &stage.name,
            stage.approval,
            self.approve.as_deref(),
            command,
        )
    }
}

fn decide(
    stage: &str,
    required: bool,
    approve: Option<&str>,
    command: &'static str,
) -> Result<Option<Approval>> {
    if !required {
        return Ok(None);
    }
    match approve.map(str::trim) {
        Some(reason) if !reason.is_empty() => Ok(Some(Approval {
            stage: stage.to_owned(),
            command,
            reason: reason.to_owned(),
        })),
        Some(_) => bail!(
            "`--approve` needs a reason\n  help: say why this {command} of `{stage}` may go ahead, e.g. --approve \"hotfix for INC-42\""
        ),
        None => bail!(
            "stage `{stage}` requires an approval (`approval = true` in slipway.hcl), and this {command} has none; nothing was changed\n  help: deliver through the pipeline (`slipway run`, then `slipway approve RUN --stage {stage}`), or approve this {command} yourself: add --approve \"why\" (recorded in the audit log)"
        ),
    }
}

impl Approval {
    /// Appends the approval to the audit log, tied to `run_id` when the change has a run.
    pub async fn record(&self, actor: &str, store: &AnyStore, run_id: Option<i64>) -> Result<()> {
        store
            .append_audit(&NewAuditEntry {
                actor: actor.to_owned(),
                action: AuditAction::Approve,
                stage: Some(self.stage.clone()),
                stack: None,
                run_id,
                details: serde_json::json!({
                    "reason": self.reason,
                    "command": self.command,
                }),
            })
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stages_that_require_it_ask_for_an_approval_with_a_reason() {
        assert!(decide("dev", false, None, "deploy").unwrap().is_none());
        let given = decide("prod", true, Some(" hotfix "), "promote")
            .unwrap()
            .unwrap();
        assert_eq!(
            (given.stage.as_str(), given.reason.as_str()),
            ("prod", "hotfix")
        );
        assert_eq!(given.command, "promote");
        let blank = decide("prod", true, Some("  "), "apply").unwrap_err();
        assert!(
            blank.to_string().starts_with("`--approve` needs a reason"),
            "{blank}"
        );
        let missing = decide("prod", true, None, "rollback")
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("stage `prod` requires an approval"),
            "{missing}"
        );
        assert!(missing.contains("--approve \"why\""), "{missing}");
    }
}
