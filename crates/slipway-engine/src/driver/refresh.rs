//! `plan -refresh-only`: what changed in the real infrastructure since the state was last
//! written, without proposing any change of the code. Drift detection is built on it.

use std::ffi::OsString;

use super::{Access, Engine, PlanOutcome, StepContext};
use crate::child::StepError;

/// The file a refresh-only plan is saved to, beside (never over) the working copy's own
/// plan: an approved plan waiting there must not be replaced by a drift check.
pub const REFRESH_PLAN_FILE: &str = "slipway-refresh.tfplan";

impl Engine {
    /// `plan -refresh-only -detailed-exitcode -out`: `has_changes` is true when the real
    /// infrastructure no longer matches the state (read `resource_drift` from `show -json`
    /// for what changed).
    pub async fn plan_refresh_only(&self, ctx: StepContext<'_>) -> Result<PlanOutcome, StepError> {
        let plan_file = ctx.working_copy.stack_dir.join(REFRESH_PLAN_FILE);
        let mut args: Vec<OsString> = vec![
            "plan".into(),
            "-refresh-only".into(),
            "-input=false".into(),
            "-no-color".into(),
            "-detailed-exitcode".into(),
            format!("-out={}", plan_file.display()).into(),
        ];
        args.extend(self.lock_timeout_arg());
        let finished = self
            .run(ctx, "plan -refresh-only", args, false, Access::Read)
            .await?;
        match finished.code {
            Some(0) => Ok(PlanOutcome {
                has_changes: false,
                plan_file,
                summary: None,
            }),
            Some(2) => Ok(PlanOutcome {
                has_changes: true,
                plan_file,
                summary: None,
            }),
            _ => Err(Self::failure(ctx, "plan -refresh-only", &finished)),
        }
    }
}
