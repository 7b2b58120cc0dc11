//! The base of an approved plan: the state it was made against.
//!
//! Terraform refuses a saved plan when the state it was made against changed since ("Saved
//! plan is stale"), but only when that state existed: a plan made against *no* state (the
//! first delivery of a stack to a stage) is applied on top of whatever state the instance has
//! by then. If someone applied to the instance between the approval and `slipway resume`,
//! that would create again what already exists and overwrite its state. So before an
//! approved plan made against no state is applied, the instance's state must still be empty.

use std::path::Path;

use slipway_engine::StepError;
use slipway_engine::driver::{StepContext, count_resources};

use super::{Executor, StackError};

/// Whether a plan (its `show -json` document) was made against a state that held anything:
/// Terraform writes `prior_state` only then, in every plan format version.
pub fn planned_against_state(plan_json: &[u8]) -> Result<bool, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Plan {
        prior_state: Option<serde::de::IgnoredAny>,
    }
    Ok(serde_json::from_slice::<Plan>(plan_json)?
        .prior_state
        .is_some())
}

impl Executor {
    /// Refuses an approved plan made against no state when the instance has resources now.
    /// Plans made against state are left to Terraform's own check.
    pub async fn check_saved_plan_base(
        &self,
        ctx: StepContext<'_>,
        name: &str,
        plan_file: &Path,
    ) -> Result<(), StackError> {
        let plan = match self.engine.show_json(ctx, plan_file).await {
            Ok(plan) => plan,
            // Terraform reads the plan against the current state and refuses a stale one
            // already here; say what that means for the approval.
            Err(StepError::StalePlan { .. }) => {
                return Err(StackError::ApprovalVoid(format!(
                    "approval void: the state of `{name}` changed since the plan {} was approved (Terraform: \"Saved plan is stale\"); nothing was applied\n    help: someone applied to it in between; start a new run (`slipway run`) to plan again and ask for a new approval",
                    plan_file.display()
                )));
            }
            Err(error) => return Err(error.into()),
        };
        let against_state = planned_against_state(&plan).map_err(|e| {
            StackError::Other(anyhow::anyhow!(
                "cannot read the saved plan {}: {e}",
                plan_file.display()
            ))
        })?;
        if against_state {
            return Ok(());
        }
        let state = self.engine.state_pull(ctx).await?;
        let resources = if state.trim_ascii().is_empty() {
            0
        } else {
            count_resources(&state).map_err(|e| {
                StackError::Other(anyhow::anyhow!(
                    "cannot read the state of `{name}` in `{}`: {e}",
                    self.instance
                ))
            })?
        };
        if resources == 0 {
            return Ok(());
        }
        Err(StackError::ApprovalVoid(format!(
            "approval void: the state of `{name}` changed since the plan {} was approved: it was planned against no state, and the instance `{}` now holds {resources} resource{}; nothing was applied\n    help: someone applied to it in between; start a new run (`slipway run`) to plan again and ask for a new approval",
            plan_file.display(),
            self.instance,
            if resources == 1 { "" } else { "s" }
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::planned_against_state;

    #[test]
    fn a_plan_says_whether_it_was_made_against_state() {
        let cases: [(&str, bool); 3] = [
            (r#"{"format_version":"0.2","resource_changes":[]}"#, false),
            (
                r#"{"format_version":"0.2","prior_state":{"format_version":"0.2","values":{}}}"#,
                true,
            ),
            (
                r#"{"format_version":"1.2","prior_state":{"values":{"root_module":{}}},"planned_values":{}}"#,
                true,
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(
                planned_against_state(json.as_bytes()).unwrap(),
                expected,
                "{json}"
            );
        }
        assert!(planned_against_state(b"not json").is_err());
    }
}
