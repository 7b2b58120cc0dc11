//! `cargo xtask test`: the whole test suite, as CI runs it. Installs the sandbox first so
//! that tests needing Terraform and moto find it (and don't race to install it), then runs
//! the workspace's tests with any extra arguments passed through: with `cargo nextest` when
//! it is installed (every test binary at once, more tests than cores, since most of them
//! wait on Terraform and the emulator; then the doctests, which nextest does not run), else
//! with `cargo test --workspace`. Also installs the
//! PostgreSQL server binaries so the store's PostgreSQL tests run rather than skip, headless
//! Chromium and chromedriver so the web pages' browser tests run rather than skip, and
//! lists the engine binaries the compatibility suite will run against (loudly when none is
//! newer than Terraform 1.5).

use std::process::{Command, ExitCode};

use anyhow::{Context as _, Result};
use slipway_sandbox::{Sandbox, default_dir, env};

use crate::section;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Extra arguments for `cargo nextest run` (e.g. `-E 'test(pipeline)'`), or for `cargo
    /// test` where nextest is not installed (e.g. `-- --nocapture`).
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

    section("Chromium and chromedriver (for the web pages' browser tests)");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-chromium.sh");
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

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let with_sandbox = |command: &mut Command| {
        command
            .env(env::SANDBOX_DIR, &sandbox.root)
            // CI must exercise PostgreSQL and the browser for real, not skip them.
            .env("SLIPWAY_REQUIRE_POSTGRES", "1")
            .env("SLIPWAY_REQUIRE_CHROMIUM", "1");
    };
    let nextest = Command::new(&cargo)
        .args(["nextest", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let status = if nextest {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
        section(&format!(
            "cargo nextest run --workspace ({threads} tests at a time)"
        ));
        let mut command = Command::new(&cargo);
        command
            .args(["nextest", "run", "--workspace", "--no-fail-fast"])
            .arg(format!("--test-threads={threads}"))
            .args(&args.cargo_args);
        with_sandbox(&mut command);
        let tests = command.status().context("running cargo nextest")?;
        if tests.success() && args.cargo_args.is_empty() {
            section("cargo test --workspace --doc");
            let mut command = Command::new(&cargo);
            command.args(["test", "--workspace", "--doc"]);
            with_sandbox(&mut command);
            command.status().context("running the doctests")?
        } else {
            tests
        }
    } else {
        section("cargo test --workspace (cargo nextest is not installed)");
        let mut command = Command::new(&cargo);
        command.args(["test", "--workspace"]).args(&args.cargo_args);
        with_sandbox(&mut command);
        command.status().context("running cargo test")?
    };

    if status.success() {
        section("all tests passed");
        Ok(ExitCode::SUCCESS)
    } else {
        section(&format!("tests failed ({status})"));
        let code = status.code().unwrap_or(1);
        Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
    }
}
