//! The CI guard: a command that changes a stage refuses to run on a CI runner when what it
//! writes (state, the run record, artifacts and saved plans) would stay on the runner and be
//! lost with it. `main` reads `CI` once and hands it here as [`Setting`].

use anyhow::{Result, bail};
use clap::Args;
use slipway_core::config::StateConfig;

use crate::pipeline::artifacts;
use crate::project::Workspace;
use crate::record;

/// Where slipway runs, read once at the binary's edge.
#[derive(Debug, Clone, Copy, Default)]
pub struct Setting {
    /// `CI=true` (or `1`): GitHub Actions, GitLab CI and most others set it.
    pub ci: bool,
}

impl Setting {
    /// From the value of the `CI` variable.
    pub fn from_ci_variable(value: Option<&str>) -> Self {
        Self {
            ci: value.is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1"),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct LocalStateArgs {
    /// Run in CI even though state, the run record or artifacts stay on this machine (each
    /// job of a CI runner starts from a fresh clone: they are lost with the runner).
    #[arg(long)]
    pub allow_local_state: bool,
}

/// Refuses `command` in CI when state, the record or artifacts are kept in the data folder.
pub fn refuse_local_state(
    workspace: &Workspace,
    setting: Setting,
    args: &LocalStateArgs,
    command: &str,
) -> Result<()> {
    if !setting.ci || args.allow_local_state {
        return Ok(());
    }
    let data = workspace.project.data_dir.display().to_string();
    let mut missing = Vec::new();
    if workspace.project.state == StateConfig::Local {
        missing.push(format!(
            "state is local ({data}/state): add a `state {{ backend = \"s3\" ... }}` block to slipway.hcl"
        ));
    }
    if record::url(workspace)?.starts_with("sqlite:") {
        missing.push(format!(
            "the run record is an SQLite file ({data}/slipway.db): set `store {{ url = \"postgres://...\" }}` in slipway.hcl, or SLIPWAY_STORE_URL"
        ));
    }
    if !artifacts::store_url(workspace)?.starts_with("s3://") {
        missing.push(format!(
            "artifacts and saved plans are kept in {data}/artifacts: set `artifacts {{ url = \"s3://...\" }}` in slipway.hcl, or SLIPWAY_ARTIFACTS_URL"
        ));
    }
    if missing.is_empty() {
        return Ok(());
    }
    bail!(
        "`slipway {command}` refuses to run in CI (CI=true) with what it writes kept on this runner:\n{}\n  help: each CI job starts from a fresh clone, so the next job would plan every resource as new and see no release; see docs/ci.md (`slipway init` writes these settings, `slipway bootstrap` creates the bucket and lock table), or pass --allow-local-state if you mean it",
        missing
            .iter()
            .map(|m| format!("  - {m}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_ci_variable() {
        assert!(Setting::from_ci_variable(Some("true")).ci);
        assert!(Setting::from_ci_variable(Some("TRUE")).ci);
        assert!(Setting::from_ci_variable(Some("1")).ci);
        assert!(!Setting::from_ci_variable(Some("false")).ci);
        assert!(!Setting::from_ci_variable(Some("")).ci);
        assert!(!Setting::from_ci_variable(None).ci);
    }
}
