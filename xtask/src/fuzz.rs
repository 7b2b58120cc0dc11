//! `cargo xtask fuzz`: runs the fuzz targets in `fuzz/` (the configuration loader and the
//! plan reader) one after another with `cargo +nightly fuzz run`, for `--seconds` each.
//!
//! Installs `cargo-fuzz` when `cargo fuzz` is missing. Each target starts from its committed
//! seeds (`fuzz/corpus/<target>/`) and a working corpus kept between runs in cargo's target
//! folder (`target/fuzz/corpus/<target>/`), so the committed seeds stay as they are; libFuzzer's
//! output goes to `target/fuzz/<target>.log`. A crashing input is copied into the target's
//! regression folder, where the crate's `fuzz_regressions` test replays it from then on.
//! Exits non-zero when any target crashed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context as _, Result, bail, ensure};

use crate::section;
use crate::support::target_dir;

/// Each fuzz target and the folder (from the workspace root) that keeps its crashing inputs.
const TARGETS: [(&str, &str); 3] = [
    (
        "project_config",
        "crates/slipway-core/tests/fuzz_regressions/project_config",
    ),
    (
        "stack_config",
        "crates/slipway-core/tests/fuzz_regressions/stack_config",
    ),
    (
        "plan_reader",
        "crates/slipway-plan/tests/fuzz_regressions/plan_reader",
    ),
];

/// libFuzzer's flags besides the time limit: the final statistics (runs executed, also after
/// a crash), and one input taking over a minute counts as a hang.
const LIBFUZZER_FLAGS: [&str; 2] = ["-print_final_stats=1", "-timeout=60"];

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How long to fuzz each target, in seconds.
    #[arg(long, default_value_t = 600)]
    pub seconds: u64,
    /// Fuzz only this target (default: every one, in turn).
    #[arg(long, value_name = "NAME", value_parser = TARGETS.map(|(name, _)| name))]
    pub target: Option<String>,
}

/// How one target's run ended.
enum Outcome {
    Clean,
    /// libFuzzer found an input that panics, hangs or runs out of memory; kept here.
    Crashed(PathBuf),
}

pub fn run(args: Args) -> Result<ExitCode> {
    ensure!(args.seconds > 0, "--seconds must be at least 1");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has no parent folder")?;
    install_cargo_fuzz()?;

    let mut results = Vec::new();
    for (target, regressions) in TARGETS {
        if args
            .target
            .as_deref()
            .is_some_and(|chosen| chosen != target)
        {
            continue;
        }
        let (runs, outcome) = fuzz(root, target, &root.join(regressions), args.seconds)?;
        results.push((target, runs, outcome));
    }

    section("summary");
    let mut crashed = false;
    for (target, runs, outcome) in &results {
        let runs = runs.map_or_else(|| "?".to_owned(), |n| n.to_string());
        match outcome {
            Outcome::Clean => eprintln!("{target:<15} {runs:>12} runs  no crash"),
            Outcome::Crashed(kept) => {
                crashed = true;
                eprintln!(
                    "{target:<15} {runs:>12} runs  CRASHED, input kept as {}",
                    kept.strip_prefix(root).unwrap_or(kept).display()
                );
            }
        }
    }
    Ok(if crashed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `cargo` as found on `PATH`: rustup's proxy, which understands `+nightly` (`$CARGO` is the
/// toolchain's own binary, which does not).
fn cargo() -> Command {
    Command::new("cargo")
}

fn install_cargo_fuzz() -> Result<()> {
    let installed = cargo()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !installed {
        section("installing cargo-fuzz (cargo install cargo-fuzz --locked)");
        let status = cargo()
            .args(["install", "cargo-fuzz", "--locked"])
            .status()
            .context("cannot run cargo install")?;
        ensure!(status.success(), "cargo install cargo-fuzz --locked failed");
    }
    let nightly = cargo()
        .args(["+nightly", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    ensure!(
        nightly,
        "cargo-fuzz needs the nightly toolchain\n  help: rustup toolchain install nightly"
    );
    Ok(())
}

/// Builds and runs one target; returns the runs libFuzzer executed and how it ended.
fn fuzz(
    root: &Path,
    target: &str,
    regressions: &Path,
    seconds: u64,
) -> Result<(Option<u64>, Outcome)> {
    section(&format!("{target}: cargo +nightly fuzz build {target}"));
    let built = cargo()
        .current_dir(root)
        .args(["+nightly", "fuzz", "build", target])
        .status()
        .context("cannot run cargo fuzz build")?;
    ensure!(built.success(), "cargo fuzz build {target} failed");

    let work = target_dir().join("fuzz");
    let corpus = work.join("corpus").join(target);
    std::fs::create_dir_all(&corpus)
        .with_context(|| format!("cannot create {}", corpus.display()))?;
    let log_path = work.join(format!("{target}.log"));
    let log =
        File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    section(&format!(
        "{target}: fuzzing for {seconds} s (libFuzzer's output: {})",
        log_path.display()
    ));
    let status = cargo()
        .current_dir(root)
        .args(["+nightly", "fuzz", "run", target])
        .arg(&corpus)
        .arg(root.join("fuzz/corpus").join(target))
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .args(LIBFUZZER_FLAGS)
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .context("cannot run cargo fuzz run")?;
    let output = std::fs::read_to_string(&log_path)
        .with_context(|| format!("cannot read {}", log_path.display()))?;
    let runs = executed_runs(&output);

    if status.success() {
        eprintln!(
            "{target}: {} runs, no crash",
            runs.map_or_else(|| "?".to_owned(), |n| n.to_string())
        );
        return Ok((runs, Outcome::Clean));
    }
    let tail: Vec<&str> = output.lines().rev().take(40).collect();
    for line in tail.iter().rev() {
        eprintln!("  {line}");
    }
    let Some(artifact) = crashing_input(&output) else {
        bail!(
            "cargo fuzz run {target} failed ({status}) without a crashing input; see {}",
            log_path.display()
        );
    };
    let artifact = root.join(artifact);
    let name = artifact
        .file_name()
        .with_context(|| format!("no file name in {}", artifact.display()))?;
    std::fs::create_dir_all(regressions)?;
    let kept = regressions.join(name);
    std::fs::copy(&artifact, &kept)
        .with_context(|| format!("cannot copy {} to {}", artifact.display(), kept.display()))?;
    eprintln!(
        "{target}: CRASHED after {} runs; the input is kept as {} (replayed by the crate's \
         fuzz_regressions test); reproduce with: cargo +nightly fuzz run {target} {}",
        runs.map_or_else(|| "?".to_owned(), |n| n.to_string()),
        kept.strip_prefix(root).unwrap_or(&kept).display(),
        artifact.strip_prefix(root).unwrap_or(&artifact).display(),
    );
    Ok((runs, Outcome::Crashed(kept)))
}

/// The runs libFuzzer executed: its final statistics, else its closing `Done N runs` line.
fn executed_runs(output: &str) -> Option<u64> {
    let stat = output.lines().rev().find_map(|line| {
        line.strip_prefix("stat::number_of_executed_units:")
            .and_then(|n| n.trim().parse().ok())
    });
    stat.or_else(|| {
        output.lines().rev().find_map(|line| {
            line.strip_prefix("Done ")
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
    })
}

/// The input libFuzzer wrote when it stopped on a crash, hang or memory blow-up (slow
/// inputs it reports on the way are not that).
fn crashing_input(output: &str) -> Option<&str> {
    output.lines().rev().find_map(|line| {
        let (_, path) = line.split_once("Test unit written to ")?;
        let path = path.trim();
        let name = Path::new(path).file_name()?.to_str()?;
        (!name.starts_with("slow-unit-")).then_some(path)
    })
}

#[cfg(test)]
mod tests {
    use super::{crashing_input, executed_runs};

    #[test]
    fn reads_libfuzzer_output() {
        let clean = "#1048576 pulse  cov: 10\nDone 2345 runs in 3 second(s)\n\
                     stat::number_of_executed_units: 2346\n";
        assert_eq!(executed_runs(clean), Some(2346));
        assert_eq!(executed_runs("Done 12 runs in 1 second(s)\n"), Some(12));
        assert_eq!(crashing_input(clean), None);
        let crash = "artifact_prefix='/w/fuzz/artifacts/x/'; Test unit written to /w/fuzz/artifacts/x/slow-unit-1\n\
                     ==1== ERROR: libFuzzer: deadly signal\n\
                     artifact_prefix='/w/fuzz/artifacts/x/'; Test unit written to /w/fuzz/artifacts/x/crash-ab12\n\
                     stat::number_of_executed_units: 99\n";
        assert_eq!(
            crashing_input(crash),
            Some("/w/fuzz/artifacts/x/crash-ab12")
        );
        assert_eq!(executed_runs(crash), Some(99));
    }
}
