//! `cargo xtask test`: the whole test suite, as CI runs it. Installs the sandbox first so
//! that tests needing Terraform and moto find it (and don't race to install it), then runs
//! `cargo test --workspace` with any extra arguments passed through. Also installs the
//! PostgreSQL server binaries so the store's PostgreSQL tests run rather than skip, and
//! lists the engine binaries the compatibility suite will run against (loudly when none is
//! newer than Terraform 1.5).

use std::process::{Command, ExitCode};

use anyhow::{Context as _, Result};
use slipway_sandbox::{Sandbox, default_dir, env};

use crate::section;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Extra arguments for `cargo test`, e.g. `-- --nocapture`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    cargo_args: Vec<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let dir = default_dir();
    section(&format!("sandbox: {}", dir.display()));
    let sandbox = Sandbox::ensure_installed(&dir)
        .with_context(|| format!("installing the sandbox in {}", dir.display()))?;
    eprintln!(
        "Terraform {} at {}",
        slipway_sandbox::TERRAFORM_VERSION,
        sandbox.terraform.display()
    );

    // The engine compatibility suite (crates/slipway/tests/it/engines.rs) runs on each of
    // these; say which here, where CI's output shows it.
    section("engines the compatibility suite runs against");
    let engines = slipway_sandbox::engines::discover(
        &sandbox.terraform,
        std::env::var("PATH").ok().as_deref(),
        std::env::var(slipway_sandbox::engines::TEST_ENGINES)
            .ok()
            .as_deref(),
    );
    for engine in &engines {
        eprintln!("{} at {}", engine.label(), engine.path.display());
    }
    if !engines
        .iter()
        .any(slipway_sandbox::engines::EngineBinary::is_modern)
    {
        eprintln!(
            "{}",
            slipway_sandbox::engines::no_modern_engine_banner(&engines)
        );
    }

    section("PostgreSQL server binaries (for the store's PostgreSQL tests)");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-postgres.sh");
    let installed = Command::new("sh")
        .arg(&script)
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    anyhow::ensure!(
        installed.success(),
        "{} failed ({installed})",
        script.display()
    );

    section("cargo test --workspace");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["test", "--workspace"])
        .args(&args.cargo_args)
        .env(env::SANDBOX_DIR, &sandbox.root)
        // CI must exercise PostgreSQL for real, not skip it.
        .env("SLIPWAY_REQUIRE_POSTGRES", "1")
        .status()
        .context("running cargo test")?;

    if status.success() {
        section("all tests passed");
        Ok(ExitCode::SUCCESS)
    } else {
        section(&format!("tests failed ({status})"));
        let code = status.code().unwrap_or(1);
        Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
    }
}
