//! `cargo xtask`: the project's own commands, written in Rust so they run wherever cargo
//! does. One module per subcommand; each owns its arguments and its behaviour.
//!
//! Output discipline: data (such as `export` lines) goes to stdout, everything said to the
//! person running the command goes to stderr.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod bench_advise;
mod bench_apply;
mod bench_changed;
mod bench_discovery;
mod bench_jobs;
mod bench_overhead;
mod bench_plan;
mod bench_recover;
mod bench_serve;
mod crash_harness;
mod demo;
mod figure;
mod fuzz;
mod sandbox;
mod support;
mod test;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "slipway's project commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install the test sandbox and run the AWS emulator (Terraform 1.0.3 + AWS provider + moto).
    Sandbox(sandbox::Args),
    /// Run the whole test suite against the sandbox (what CI runs).
    Test(test::Args),
    /// The demo: examples/webshop delivered to dev, test and prod on the sandbox.
    Demo(demo::Args),
    /// Benchmarks: against the baselines teams use today (reported as ratios), and the
    /// server under load (against its targets).
    Bench(bench::Args),
    /// Fuzz the configuration loader and the plan reader (cargo-fuzz, nightly); crashing
    /// inputs are kept as regression tests.
    Fuzz(fuzz::Args),
    /// Kill `slipway run` with SIGKILL at every point the crash harness knows, on the
    /// sandbox, and check that nothing was lost after each.
    CrashHarness(crash_harness::Args),
}

fn main() -> ExitCode {
    // Started through its link, this binary is the stand-in engine of `bench overhead`.
    if bench_overhead::is_stand_in() {
        return bench_overhead::stand_in();
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sandbox(args) => sandbox::run(args),
        Command::Test(args) => test::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Fuzz(args) => fuzz::run(args),
        Command::CrashHarness(args) => crash_harness::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// A section header on stderr, so long outputs are easy to scan.
pub(crate) fn section(title: &str) {
    eprintln!("\n==> {title}");
}
