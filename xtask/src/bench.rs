//! `cargo xtask bench`: benchmarks that compare slipway with the baseline a team would use
//! instead, measured in the same run on the same machine and reported as ratios; and
//! `slipway serve` under load, reported against its latency and error targets.
//!
//! Each benchmark prints its own report and hands back its headline figures
//! ([`Figure`]); `cargo xtask bench` without a sub-command runs them all and ends with one
//! table of every figure against its target.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser as _;

use crate::figure::{Figure, Report};

use crate::support::{slipway_binary, target_dir};
use crate::{
    bench_advise, bench_apply, bench_changed, bench_discovery, bench_jobs, bench_overhead,
    bench_plan, bench_recover, bench_serve, section,
};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    which: Option<Which>,
    /// Without a sub-command: measure this slipway binary in every benchmark instead of
    /// building `target/release/slipway`.
    #[arg(long, value_name = "PATH")]
    slipway: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum Which {
    /// examples/webshop applied to a fresh stage by slipway against a sequential
    /// init/plan/apply loop per stack (targets: slipway at most 0.65x the loop's time and 1.0x its critical path).
    Apply(bench_apply::Args),
    /// `slipway changed` on a generated 5,000-stack monorepo against `git diff --name-only`
    /// (targets: at most 10x cold, 3x bringing its index forward, 1.5x warm).
    Changed(bench_changed::Args),
    /// `slipway advise` on a generated repository of 2,000 stacks and 20,000 commits:
    /// time and peak memory (target: well under a minute).
    Advise(bench_advise::Args),
    /// `slipway serve` on loopback: 100 readers of the release matrix and run events and 50
    /// signed webhooks a second for 60 s (targets: no errors, acknowledgement p99 under 50 ms).
    Serve(bench_serve::Args),
    /// `slipway apply` of 1,000 stacks on an engine that answers at once: slipway's own time
    /// per stack instance (target: at most 20 ms).
    Overhead(bench_overhead::Args),
    /// 1,000 queued drift checks of an outputs-only stack on 1, 2 and 4 `slipway worker`s
    /// (engine: the stand-in): jobs per second, the gap between a worker's jobs and queue
    /// latency (target: under 20 ms of scheduling per job).
    Jobs(bench_jobs::Args),
    /// `slipway stacks` on generated trees of 5,000 and 50,000 stacks against
    /// `find -name stack.hcl | xargs cat` (targets: at most 1.5x, linear, under 300 MB).
    Discovery(bench_discovery::Args),
    /// Plan analysis of a generated 100,000-change plan against `jq`, read from a file and
    /// piped from `show -json` (targets: at least 20x faster, peak memory at most the plan's
    /// size). Runs the `cargo bench` benchmarks that measure it.
    Plan(bench_plan::Args),
    /// `slipway recover` of a stage whose cloud was wiped (a VPC platform) against the
    /// recovery time `slipway drill` measured for it (target: at most 1.5x).
    Recover(bench_recover::Args),
}

/// Parses one sub-command with its defaults, as if typed after `cargo xtask bench`.
#[derive(Debug, clap::Parser)]
#[command(name = "bench")]
struct One {
    #[command(subcommand)]
    which: Which,
}

/// The benchmarks `cargo xtask bench` runs without a sub-command, in this order: the
/// quick ones first, so a failing sandbox (needed by `apply`) comes late.
const ALL: &[&str] = &[
    "overhead",
    "jobs",
    "discovery",
    "plan",
    "changed",
    "advise",
    "serve",
    "apply",
    "recover",
];

pub fn run(args: Args) -> Result<ExitCode> {
    let Some(which) = args.which else {
        return run_all(args.slipway);
    };
    let report = run_one(which)?;
    Ok(if report.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn run_one(which: Which) -> Result<Report> {
    Ok(match which {
        Which::Apply(args) => bench_apply::run(args)?.into(),
        Which::Changed(args) => bench_changed::run(args)?.into(),
        Which::Advise(args) => bench_advise::run(args)?.into(),
        Which::Serve(args) => bench_serve::run(args)?,
        Which::Overhead(args) => bench_overhead::run(args)?.into(),
        Which::Jobs(args) => bench_jobs::run(args)?.into(),
        Which::Discovery(args) => bench_discovery::run(args)?.into(),
        Which::Recover(args) => bench_recover::run(args)?.into(),
        Which::Plan(args) => bench_plan::run(args)?.into(),
    })
}

/// Every benchmark in turn with its defaults, one binary for all, then one table. A
/// benchmark that fails is a row of the table; the others still run.
fn run_all(slipway: Option<PathBuf>) -> Result<ExitCode> {
    let slipway = slipway_binary(slipway.as_deref(), &target_dir())?;
    let mut figures = Vec::new();
    let mut failed = false;
    for name in ALL {
        section(&format!("cargo xtask bench {name}"));
        let argv: Vec<std::ffi::OsString> = vec![
            "bench".into(),
            (*name).into(),
            "--slipway".into(),
            slipway.clone().into_os_string(),
        ];
        let result = One::try_parse_from(argv)
            .map_err(anyhow::Error::from)
            .and_then(|one| run_one(one.which));
        match result {
            Ok(report) => {
                failed |= report.failed;
                figures.extend(report.figures);
            }
            Err(error) => {
                eprintln!("error: bench {name}: {error:#}");
                failed = true;
                figures.push(Figure {
                    name: format!("{name}: the benchmark"),
                    measured: format!("failed: {}", first_line(&format!("{error:#}"))),
                    target: "runs".to_owned(),
                    met: Some(false),
                });
            }
        }
    }
    section("all benchmarks");
    print!("{}", table(&figures));
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// The figures as a Markdown table, columns padded to their widest cell.
pub fn table(figures: &[Figure]) -> String {
    let header = ["figure", "measured", "target", "met"];
    let rows: Vec<[String; 4]> = figures
        .iter()
        .map(|f| {
            [
                f.name.clone(),
                f.measured.clone(),
                f.target.clone(),
                match f.met {
                    Some(true) => "met".to_owned(),
                    Some(false) => "MISSED".to_owned(),
                    None => "see its output".to_owned(),
                },
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String; 4]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut out = line(&header.map(str::to_owned));
    out.push_str(&line(&widths.map(|w| "-".repeat(w))));
    for row in &rows {
        out.push_str(&line(row));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_pads_columns_and_says_met_missed_or_unknown() {
        let figures = [
            Figure::new("overhead", "4.2 ms".into(), "at most 20 ms", true),
            Figure::new("discovery 5,000", "2.20x".into(), "at most 1.5x", false),
            Figure {
                name: "advise memory".into(),
                measured: "61 MiB".into(),
                target: "none set".into(),
                met: None,
            },
        ];
        let expected = "\
| figure          | measured | target        | met            |
| --------------- | -------- | ------------- | -------------- |
| overhead        | 4.2 ms   | at most 20 ms | met            |
| discovery 5,000 | 2.20x    | at most 1.5x  | MISSED         |
| advise memory   | 61 MiB   | none set      | see its output |
";
        assert_eq!(table(&figures), expected);
    }

    #[test]
    fn an_empty_table_has_its_header() {
        assert_eq!(
            table(&[]),
            "| figure | measured | target | met |\n| ------ | -------- | ------ | --- |\n"
        );
    }

    #[test]
    fn every_benchmark_parses_with_its_defaults_and_a_binary() {
        for name in ALL {
            let one = One::try_parse_from(["bench", name, "--slipway", "/bin/true"]);
            assert!(one.is_ok(), "{name}: {one:?}");
        }
    }
}
