//! `cargo xtask bench`: benchmarks that compare slipway with the baseline a team would use
//! instead, measured in the same run on the same machine and reported as ratios; and
//! `slipway serve` under load, reported against its latency and error targets.

use std::process::ExitCode;

use anyhow::Result;

use crate::{bench_advise, bench_apply, bench_changed, bench_serve};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    which: Which,
}

#[derive(Debug, clap::Subcommand)]
enum Which {
    /// examples/webshop applied to a fresh stage by slipway against a sequential
    /// init/plan/apply loop per stack (target: slipway at most 0.7x the loop's time).
    Apply(bench_apply::Args),
    /// `slipway changed` on a generated 5,000-stack monorepo against `git diff --name-only`
    /// (target: under 3x).
    Changed(bench_changed::Args),
    /// `slipway advise` on a generated repository of 2,000 stacks and 20,000 commits:
    /// time and peak memory (target: well under a minute).
    Advise(bench_advise::Args),
    /// `slipway serve` on loopback: 100 readers of the release matrix and run events and 50
    /// signed webhooks a second for 60 s (targets: no errors, acknowledgement p99 under 50 ms).
    Serve(bench_serve::Args),
}

pub fn run(args: Args) -> Result<ExitCode> {
    match args.which {
        Which::Apply(args) => bench_apply::run(args),
        Which::Changed(args) => bench_changed::run(args).map(|()| ExitCode::SUCCESS),
        Which::Advise(args) => bench_advise::run(args).map(|()| ExitCode::SUCCESS),
        Which::Serve(args) => bench_serve::run(args),
    }
}
