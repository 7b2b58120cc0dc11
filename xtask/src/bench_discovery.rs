//! `cargo xtask bench discovery`: how long `slipway stacks` takes to find and load every
//! stack of a large tree, against `find . -name stack.hcl | xargs cat > /dev/null` over the
//! same tree in the same run (targets: at most 1.5x the baseline, growing linearly with the
//! number of stacks, peak memory under 300 MB).
//!
//! Trees of 5,000 and 50,000 stacks are generated once below `target/bench-discovery/` and
//! reused. Each stack folder holds a stack.hcl (a team, and a dependency on the stack
//! before it in chains of five) and a main.tf (a variable, an output, and every tenth a
//! call of one of 20 shared local modules). Both commands run once untimed (so the files
//! are in the page cache), then take turns; the median of `--runs` counts. "Linear" is
//! counted as: the time per stack at the largest size at most 1.25 times that at the
//! smallest. Time and peak memory (the child's maximum resident set size, which is its
//! `VmHWM`) come from [`measure`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};

use crate::figure::Figure;
use crate::support::{Measured, measure, slipway_binary, target_dir};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Tree sizes to measure, in stacks.
    #[arg(long, value_delimiter = ',', default_values_t = [5_000, 50_000])]
    stacks: Vec<usize>,
    /// Timed runs per size and command; the median counts.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Use this slipway binary instead of building `target/release/slipway`.
    #[arg(long, value_name = "PATH")]
    slipway: Option<PathBuf>,
}

const RATIO_TARGET: f64 = 1.5;
const LINEAR_TARGET: f64 = 1.25;
const MEMORY_TARGET_MB: f64 = 300.0;
const MODULES: usize = 20;
const BASELINE: &str = "find . -name stack.hcl | xargs cat > /dev/null";

/// One size's medians.
struct Row {
    stacks: usize,
    baseline: Duration,
    slipway: Duration,
    peak_mb: f64,
}

impl Row {
    fn ratio(&self) -> f64 {
        self.slipway.as_secs_f64() / self.baseline.as_secs_f64().max(1e-6)
    }

    fn per_stack(&self) -> f64 {
        self.slipway.as_secs_f64() / self.stacks.max(1) as f64
    }
}

pub fn run(args: Args) -> Result<Vec<Figure>> {
    ensure!(
        !args.stacks.is_empty() && args.stacks.iter().all(|&n| n >= 10) && args.runs > 0,
        "need sizes of at least 10 stacks and at least one run"
    );
    let slipway = slipway_binary(args.slipway.as_deref(), &target_dir())?;
    let mut sizes = args.stacks.clone();
    sizes.sort_unstable();
    sizes.dedup();
    println!(
        "slipway stacks vs `{BASELINE}`, median of {} runs",
        args.runs
    );
    println!(
        "{:>8} {:>10} {:>10} {:>7} {:>12} {:>12}",
        "stacks", "baseline", "slipway", "ratio", "per stack", "peak memory"
    );
    let mut rows = Vec::new();
    for &stacks in &sizes {
        let tree = cached_tree(stacks)?;
        let slipway_stacks = || {
            let mut command = Command::new(&slipway);
            command.arg("stacks").current_dir(&tree);
            command
        };
        let baseline = || {
            let mut command = Command::new("sh");
            command.args(["-c", BASELINE]).current_dir(&tree);
            command
        };
        // Untimed: the page cache holds the tree afterwards, for both.
        measure(&mut baseline())?;
        measure(&mut slipway_stacks())?;
        let mut base_runs = Vec::new();
        let mut slipway_runs: Vec<Measured> = Vec::new();
        for _ in 0..args.runs {
            base_runs.push(measure(&mut baseline())?.wall);
            slipway_runs.push(measure(&mut slipway_stacks())?);
        }
        let peak_kib = slipway_runs
            .iter()
            .map(|m| m.max_rss_kib)
            .max()
            .unwrap_or(0);
        let row = Row {
            stacks,
            baseline: median(base_runs),
            slipway: median(slipway_runs.iter().map(|m| m.wall).collect()),
            peak_mb: peak_kib as f64 * 1024.0 / 1e6,
        };
        println!(
            "{:>8} {:>10} {:>10} {:>6.2}x {:>9.1} µs {:>9.0} MB",
            stacks,
            format!("{:.2?}", row.baseline),
            format!("{:.2?}", row.slipway),
            row.ratio(),
            row.per_stack() * 1e6,
            row.peak_mb
        );
        rows.push(row);
    }
    let figures = figures(&rows);
    for figure in &figures {
        println!(
            "{}: {} (target: {}) {}",
            figure.name,
            figure.measured,
            figure.target,
            if figure.met == Some(true) {
                "ok"
            } else {
                "OVER TARGET"
            }
        );
    }
    Ok(figures)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The headline figures: the ratio at each size, the growth from the smallest size to the
/// largest, and the peak memory at the largest.
fn figures(rows: &[Row]) -> Vec<Figure> {
    let mut figures: Vec<Figure> = rows
        .iter()
        .map(|row| {
            Figure::new(
                &format!(
                    "discovery: slipway stacks / find+cat, {} stacks",
                    thousands(row.stacks)
                ),
                format!("{:.2}x", row.ratio()),
                &format!("at most {RATIO_TARGET}x"),
                row.ratio() <= RATIO_TARGET,
            )
        })
        .collect();
    if let (Some(first), Some(last)) = (rows.first(), rows.last())
        && rows.len() > 1
    {
        let growth = last.per_stack() / first.per_stack().max(1e-12);
        figures.push(Figure::new(
            &format!(
                "discovery: time per stack, {} vs {} stacks",
                thousands(last.stacks),
                thousands(first.stacks)
            ),
            format!("{growth:.2}x"),
            &format!("linear (at most {LINEAR_TARGET}x)"),
            growth <= LINEAR_TARGET,
        ));
    }
    if let Some(last) = rows.last() {
        figures.push(Figure::new(
            &format!("discovery: peak memory, {} stacks", thousands(last.stacks)),
            format!("{:.0} MB", last.peak_mb),
            &format!("under {MEMORY_TARGET_MB:.0} MB"),
            last.peak_mb < MEMORY_TARGET_MB,
        ));
    }
    figures
}

/// 50000 as "50,000".
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The generated tree of `stacks` stacks, made unless a complete one is cached.
fn cached_tree(stacks: usize) -> Result<PathBuf> {
    let base = target_dir().join("bench-discovery");
    let tree = base.join(format!("stacks-{stacks}"));
    let complete = base.join(format!("stacks-{stacks}.complete"));
    if !complete.exists() {
        eprintln!("generating {} stacks in {}", stacks, tree.display());
        if tree.exists() {
            std::fs::remove_dir_all(&tree)
                .with_context(|| format!("cannot clear {}", tree.display()))?;
        }
        write_tree(&tree, stacks)?;
        std::fs::write(&complete, "")?;
    }
    Ok(tree)
}

fn stack_dir(i: usize) -> String {
    format!("stacks/g{:03}/s{i:05}", i / 100)
}

fn write_tree(root: &Path, stacks: usize) -> Result<()> {
    std::fs::create_dir_all(root)?;
    std::fs::write(
        root.join("slipway.hcl"),
        "project {\n  name   = \"discovery\"\n  engine = \"terraform\"\n}\n\nstage \"dev\" {}\nstage \"prod\" {}\n",
    )?;
    for k in 0..MODULES {
        let dir = root.join(format!("modules/m{k:02}"));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("main.tf"),
            format!("variable \"name\" {{\n  default = \"m{k}\"\n}}\n"),
        )?;
    }
    for i in 0..stacks {
        let dir = root.join(stack_dir(i));
        std::fs::create_dir_all(&dir)?;
        let mut hcl = format!("stack {{\n  team = \"team{}\"\n}}\n", i % 17);
        if !i.is_multiple_of(5) {
            let _ = write!(
                hcl,
                "\ndependency \"previous\" {{\n  path = \"../../{}\"\n}}\n\ninputs = {{\n  previous = dependency.previous.outputs.id\n}}\n",
                stack_dir(i - 1).trim_start_matches("stacks/")
            );
        }
        std::fs::write(dir.join("stack.hcl"), hcl)?;
        let mut tf = String::new();
        if !i.is_multiple_of(5) {
            tf.push_str("variable \"previous\" {\n  type = string\n}\n\n");
        }
        let _ = write!(
            tf,
            "variable \"size\" {{\n  default = {i}\n}}\n\noutput \"id\" {{\n  value = \"s{i}\"\n}}\n"
        );
        if i.is_multiple_of(10) {
            let _ = write!(
                tf,
                "\nmodule \"shared\" {{\n  source = \"../../../modules/m{:02}\"\n}}\n",
                (i / 10) % MODULES
            );
        }
        std::fs::write(dir.join("main.tf"), tf)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(stacks: usize, baseline_ms: u64, slipway_ms: u64, peak_mb: f64) -> Row {
        Row {
            stacks,
            baseline: Duration::from_millis(baseline_ms),
            slipway: Duration::from_millis(slipway_ms),
            peak_mb,
        }
    }

    #[test]
    fn figures_judge_ratio_growth_and_memory() {
        let figures = figures(&[row(5_000, 100, 140, 30.0), row(50_000, 1_000, 1_600, 310.0)]);
        let verdicts: Vec<(&str, Option<bool>)> = figures
            .iter()
            .map(|f| (f.measured.as_str(), f.met))
            .collect();
        assert_eq!(
            verdicts,
            [
                ("1.40x", Some(true)),
                ("1.60x", Some(false)),
                // 32 µs per stack against 28 µs: 1.14x.
                ("1.14x", Some(true)),
                ("310 MB", Some(false)),
            ]
        );
        assert!(figures[2].name.contains("50,000 vs 5,000"));
    }

    #[test]
    fn one_size_has_no_growth_figure() {
        assert_eq!(figures(&[row(5_000, 100, 100, 10.0)]).len(), 2);
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(5), "5");
        assert_eq!(thousands(5_000), "5,000");
        assert_eq!(thousands(50_000), "50,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
