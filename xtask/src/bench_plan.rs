//! `cargo xtask bench plan`: plan analysis against `jq` on a generated plan of 100,000
//! changes, through the library's path (a plan file) and the CLI's (`show -json` piped
//! into the reader), with peak memory against the plan's size.
//!
//! The measuring is done by the two cargo benchmarks that own it (`cargo bench -p
//! slipway-plan --bench analyze`, `cargo bench -p slipway-runner --bench plan_stream`);
//! this runs them, shows their reports as they come, and gathers the `figure` lines they
//! end with (`slipway_plan::bench::figure_line`) for the table.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};

use crate::figure::Figure;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Ignored: plan analysis is measured by the library's benchmarks, which build their
    /// own code (accepted so that `cargo xtask bench --slipway PATH` runs this too).
    #[arg(long, value_name = "PATH", hide = true)]
    slipway: Option<std::path::PathBuf>,
}

/// The benchmarks run, as `cargo bench` arguments.
const BENCHES: [[&str; 4]; 2] = [
    ["-p", "slipway-plan", "--bench", "analyze"],
    ["-p", "slipway-runner", "--bench", "plan_stream"],
];

pub fn run(_args: Args) -> Result<Vec<Figure>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut figures = Vec::new();
    for bench in BENCHES {
        let mut child = Command::new(&cargo)
            .arg("bench")
            .args(bench)
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot run cargo bench")?;
        let stdout = child.stdout.take().context("cargo bench's output")?;
        let mut found = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.context("reading cargo bench's output")?;
            println!("{line}");
            if let Some(figure) = parse_figure(&line) {
                figures.push(figure);
                found += 1;
            }
        }
        let status = child.wait().context("waiting for cargo bench")?;
        let command = format!("cargo bench {}", bench.join(" "));
        if !status.success() {
            bail!("{command} failed ({status})");
        }
        if found == 0 {
            bail!("{command} reported no figures");
        }
    }
    Ok(figures)
}

/// A `figure` line: `figure`, name, measured, target, `met`, `MISSED` or `context`, tab
/// separated.
fn parse_figure(line: &str) -> Option<Figure> {
    let mut fields = line.split('\t');
    if fields.next()? != "figure" {
        return None;
    }
    let (name, measured, target, verdict) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    let met = match verdict {
        "met" => Some(true),
        "MISSED" => Some(false),
        "context" => None,
        _ => return None,
    };
    Some(Figure {
        met,
        ..Figure::new(name, measured.to_owned(), target, false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_plan::bench::Speed;

    #[test]
    fn reads_the_figure_lines_the_plan_benchmarks_print() {
        let line = slipway_plan::bench::figure_line("speed", "22.4x", "at least 20x", Some(true));
        assert_eq!(
            parse_figure(&line),
            Some(Figure::new("speed", "22.4x".into(), "at least 20x", true))
        );
        let missed = slipway_plan::bench::figure_line("memory", "1.2x", "at most 1x", Some(false));
        assert_eq!(parse_figure(&missed).and_then(|f| f.met), Some(false));
        let both: Vec<Figure> = slipway_plan::bench::figure_lines("file", Speed::Target, 19.9, 0.6)
            .lines()
            .filter_map(parse_figure)
            .collect();
        assert_eq!(
            both.iter().map(|f| f.met).collect::<Vec<_>>(),
            [Some(false), Some(true)],
            "{both:?}"
        );
        let piped: Vec<Figure> =
            slipway_plan::bench::figure_lines("piped", Speed::Context, 19.9, 1.1)
                .lines()
                .filter_map(parse_figure)
                .collect();
        assert_eq!(
            piped.iter().map(|f| f.met).collect::<Vec<_>>(),
            [None, Some(false)],
            "{piped:?}"
        );
        for other in [
            "counts agree: {}",
            "figure\tonly a name",
            "figure\ta\tb\tc\tmaybe",
        ] {
            assert_eq!(parse_figure(other), None, "{other}");
        }
    }
}
