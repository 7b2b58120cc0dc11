//! `cargo xtask bench recover`: how long `slipway recover` takes to bring back a stage whose
//! cloud resources were all lost, against the recovery time `slipway drill` measured for the
//! same stage, in the same run on the same sandbox.
//!
//! The project is the platform test fixture (crates/slipway/tests/fixtures/platform): four
//! stacks, the network one a VPC module with four subnets, three route tables and their
//! associations, an internet gateway and a route. The AWS provider retries reads of missing
//! route table associations for minutes, which is what a recovery on the stage's own state
//! has to get past. Each run: a fresh moto, the project deployed to prod, `slipway drill
//! --stage prod` (its recovery time), moto wiped, `slipway recover --stage prod` (its
//! recovery time). Target: the recovery at most 1.5x the drill's.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, Result, ensure};
use slipway_sandbox::{Moto, Sandbox, default_dir};

use crate::figure::Figure;
use crate::section;
use crate::support::{copy_tree, slipway_binary, target_dir};

/// The recovery's time may be at most this many times the drill's.
const TARGET: f64 = 1.5;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Use this slipway binary instead of building `target/release/slipway`.
    #[arg(long, value_name = "PATH")]
    slipway: Option<PathBuf>,
    /// How many times to run it all (fresh moto and state each time); the median ratio counts.
    #[arg(long, default_value_t = 1)]
    runs: usize,
}

/// One run's figures, in seconds as slipway reports them.
#[derive(Debug, Clone, Copy)]
struct Measured {
    drill: f64,
    /// The drill's estimate of a recovery on the stage's own state.
    estimate: Option<f64>,
    recover: f64,
    /// The part of the recovery spent establishing what was gone.
    probe: f64,
}

impl Measured {
    fn ratio(&self) -> f64 {
        self.recover / self.drill
    }
}

pub fn run(args: Args) -> Result<Vec<Figure>> {
    let sandbox = Sandbox::ensure_installed(&default_dir()).context("installing the sandbox")?;
    let slipway = slipway_binary(args.slipway.as_deref(), &target_dir())?;
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/slipway/tests/fixtures/platform");
    let mut runs = Vec::new();
    for run in 1..=args.runs.max(1) {
        let measured = measure(&sandbox, &slipway, &fixture, run)?;
        eprintln!(
            "run {run}: drill {:.1}s, recover {:.1}s ({:.1}s establishing what was gone): {:.2}x",
            measured.drill,
            measured.recover,
            measured.probe,
            measured.ratio()
        );
        runs.push(measured);
    }
    runs.sort_by(|a, b| a.ratio().total_cmp(&b.ratio()));
    let median = runs[runs.len() / 2];
    let ratio = median.ratio();
    section("result");
    println!(
        "slipway drill --stage prod, recovery time:            {:.1}s",
        median.drill
    );
    if let Some(estimate) = median.estimate {
        println!("  the drill's estimate of a recovery on prod's state: {estimate:.1}s");
    }
    println!(
        "slipway recover --stage prod after the cloud is wiped: {:.1}s ({:.1}s of it establishing what was gone)",
        median.recover, median.probe
    );
    println!(
        "ratio: {ratio:.2}x (target: at most {TARGET:.1}x) {}",
        if ratio <= TARGET { "ok" } else { "OVER TARGET" }
    );
    Ok(vec![Figure::new(
        "recover: recover / drill recovery time (VPC platform, sandbox)",
        format!("{ratio:.2}x"),
        "at most 1.5x",
        ratio <= TARGET,
    )])
}

fn measure(sandbox: &Sandbox, slipway: &Path, fixture: &Path, run: usize) -> Result<Measured> {
    let moto = sandbox.start_moto().context("starting moto")?;
    moto.inventory().context("warming moto up")?;
    let work = tempfile::tempdir()?;
    let project = work.path().join("platform");
    copy_tree(fixture, &project)?;
    git(&project, &["init", "-q", "-b", "main"])?;
    std::fs::write(project.join(".gitignore"), ".slipway/\n")?;
    git(&project, &["add", "-A"])?;
    git(&project, &["commit", "-q", "-m", "platform"])?;

    section(&format!("run {run}: slipway deploy --stage prod"));
    slipway_ok(
        slipway,
        &project,
        &moto,
        &["deploy", "--stage", "prod", "--approve", "bench"],
    )?;
    section(&format!("run {run}: slipway drill --stage prod"));
    let drill = slipway_ok(slipway, &project, &moto, &["drill", "--stage", "prod"])?;
    eprint!("{drill}");
    let drill_time = seconds_after(&drill, "recovery time: ").context("the drill's time")?;
    let estimate = seconds_after(&drill, "own state (`slipway recover`): about ");

    section(&format!(
        "run {run}: the cloud is wiped; slipway recover --stage prod"
    ));
    moto.reset().context("wiping moto")?;
    let started = Instant::now();
    let recover = slipway_ok(slipway, &project, &moto, &["recover", "--stage", "prod"])?;
    let wall = started.elapsed();
    eprint!("{recover}");
    eprintln!("(wall clock: {:.1}s)", wall.as_secs_f64());
    ensure!(
        recover.contains("4 of 4 stacks recovered"),
        "the recovery did not bring every stack back:\n{recover}"
    );
    Ok(Measured {
        drill: drill_time,
        estimate,
        recover: seconds_after(&recover, "recovery time: ").context("the recovery's time")?,
        probe: recover
            .lines()
            .find(|line| line.starts_with("recovery time: "))
            .and_then(|line| seconds_after(line, "; "))
            .unwrap_or(0.0),
    })
}

/// The seconds (`12.3s`) printed right after the first `prefix` on a line that has one
/// followed by a number.
fn seconds_after(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let (_, rest) = line.split_once(prefix)?;
        let number = rest.split_once('s')?.0;
        number.parse().ok()
    })
}

fn slipway_ok(slipway: &Path, project: &Path, moto: &Moto, args: &[&str]) -> Result<String> {
    let output = Command::new(slipway)
        .args(args)
        .current_dir(project)
        .envs(moto.env())
        .env("SLIPWAY_ACTOR", "bench")
        // A throwaway project with local state, also on a CI runner.
        .env_remove("CI")
        .stdin(Stdio::null())
        .output()
        .context("running slipway")?;
    ensure!(
        output.status.success(),
        "slipway {} failed:\n{}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let status = Command::new("git")
        .args([
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.com",
        ])
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .status()
        .context("running git")?;
    ensure!(status.success(), "git {args:?} failed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::seconds_after;

    #[test]
    fn reads_the_times_slipway_prints() {
        let recover = "recovery of prod from its released artifacts: succeeded\n\
            recovery time: 31.4s (19 resources rebuilt, 4 of 4 stacks recovered; 8.2s of it establishing what was gone)\n";
        assert_eq!(seconds_after(recover, "recovery time: "), Some(31.4));
        assert_eq!(seconds_after(recover, "; "), Some(8.2));
        let drill = "recovery time: 26.2s (4 of 4 stacks rebuilt)\n\
            recovery on prod's own state (`slipway recover`): about 33.0s (6.8s to establish what is gone, then the rebuild)\n";
        assert_eq!(
            seconds_after(drill, "own state (`slipway recover`): about "),
            Some(33.0)
        );
        assert_eq!(seconds_after("nothing", "recovery time: "), None);
    }
}
