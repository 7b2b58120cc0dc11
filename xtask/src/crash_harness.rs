//! `cargo xtask crash-harness`: kills `slipway run` and `slipway resume` with SIGKILL at every
//! point the crash harness knows (crates/slipway/tests/it/crash_anywhere.rs), on the sandbox,
//! and checks after each that nothing was lost. CI runs a sample of the points; this runs
//! them all (several minutes) and prints how many were covered.

use std::process::{Command, ExitCode};

use anyhow::{Context as _, Result};
use slipway_sandbox::{Sandbox, default_dir, env};

use crate::section;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> Result<ExitCode> {
    let dir = default_dir();
    section(&format!("sandbox: {}", dir.display()));
    let sandbox = Sandbox::ensure_installed(&dir)
        .with_context(|| format!("installing the sandbox in {}", dir.display()))?;
    section("every crash point (crash_anywhere::every_crash_point_loses_nothing)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "test",
            "-p",
            "slipway",
            "--test",
            "it",
            "--",
            "--ignored",
            "--exact",
            "crash_anywhere::every_crash_point_loses_nothing",
            "--nocapture",
        ])
        .env(env::SANDBOX_DIR, &sandbox.root)
        .status()
        .context("running the crash harness")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
