//! `cargo xtask bench changed`: how long `slipway changed` takes on a large monorepo,
//! measured against `git diff --name-only` over the same commits in the same run.
//!
//! The monorepo (5,000 stacks, 10,000 commits by default) is generated once with one
//! `git fast-import` stream into `target/bench-changed/` and reused. Stacks come in chains of
//! five (each depends on the one before), every tenth stack calls a shared local module, and
//! half the modules call another module. Each commit edits two stacks and a note; every 40th
//! also edits a module.
//!
//! `slipway changed` keeps a change index in the repository's git folder, and answers in
//! one of three ways, each timed and held to its own target against the same pair's
//! baseline (medians of `--runs` runs):
//!
//! - cold, the first run after a clone: no index (its folder is removed before each run);
//!   target at most 10x, timed on the first pair;
//! - update, the first run at a new head: the index describes the pair's base and is
//!   brought forward `--distance` commits (the index folder is restored before each run);
//!   target at most 3x;
//! - warm: the index already describes the head; target at most 1.5x.
//!
//! The ratios of updates and warm runs are medians over the pairs.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::bench_discovery::thousands;
use crate::figure::Figure;
use crate::support::{cached_repository, mix, slipway_binary, target_dir};

use anyhow::{Context, Result, bail, ensure};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of stacks in the generated monorepo.
    #[arg(long, default_value_t = 5000)]
    pub stacks: usize,
    /// Number of commits in its history.
    #[arg(long, default_value_t = 10_000)]
    pub commits: usize,
    /// Commits between base and head of each measured pair.
    #[arg(long, default_value_t = 100)]
    pub distance: usize,
    /// How many commit pairs to measure, spread over the history.
    #[arg(long, default_value_t = 5)]
    pub pairs: usize,
    /// Runs per pair and command; the median counts.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Use this slipway binary instead of building `target/release/slipway`.
    #[arg(long, value_name = "PATH")]
    pub slipway: Option<PathBuf>,
    /// Generate the monorepo again even if a cached one exists.
    #[arg(long)]
    pub regenerate: bool,
}

/// Runs the benchmark and hands back its three ratios (cold, update, warm) against their
/// targets.
pub fn run(args: Args) -> Result<Vec<Figure>> {
    ensure!(
        args.stacks >= 10 && args.commits > args.distance && args.pairs > 0 && args.runs > 0,
        "need at least 10 stacks, more commits than --distance, and at least one pair and run"
    );
    let slipway = slipway_binary(args.slipway.as_deref(), &target_dir())?;
    let size = (args.stacks, args.commits);
    let repo = cached_repository("bench-changed/monorepo", size, args.regenerate, generate)?;
    let commits = git_lines(&repo, &["rev-list", "--reverse", "HEAD"])?;
    ensure!(
        commits.len() == args.commits,
        "the cached monorepo has {} commits, expected {}; run with --regenerate",
        commits.len(),
        args.commits
    );

    println!(
        "slipway changed vs git diff --name-only, {} stacks, {} commits, {} commits apart, median of {} runs",
        args.stacks, args.commits, args.distance, args.runs
    );
    let span = args.commits - args.distance;
    let slipway_changed = |base: &str, head: &str| {
        quiet(
            Command::new(&slipway)
                .current_dir(&repo)
                .args(["changed", "--base", base, "--head", head]),
        )
    };
    let index_dir = repo.join(".git").join("slipway");
    let pairs: Vec<(usize, usize)> = (0..args.pairs)
        .map(|pair| {
            let base = span * (2 * pair + 1) / (2 * args.pairs);
            (base, base + args.distance)
        })
        .collect();
    let baseline = |base: &str, head: &str| {
        median_time(args.runs, || {
            let started = Instant::now();
            quiet(Command::new("git").current_dir(&repo).args([
                "diff",
                "--name-only",
                base,
                head,
            ]))?;
            Ok(started.elapsed())
        })
    };

    // Cold: no index, as after a clone.
    let (base, head) = (&commits[pairs[0].0], &commits[pairs[0].1]);
    let cold_baseline = baseline(base, head)?;
    let cold = median_time(args.runs, || {
        remove_index(&index_dir)?;
        let started = Instant::now();
        slipway_changed(base, head)?;
        Ok(started.elapsed())
    })?;

    println!(
        "{:>7} {:>7} {:>7} {:>10} {:>10} {:>7} {:>10} {:>7}",
        "base", "head", "files", "git diff", "update", "ratio", "warm", "ratio"
    );
    // `(slipway, git diff)` per pair.
    let (mut updates, mut warms) = (Vec::new(), Vec::new());
    for &(base_index, head_index) in &pairs {
        let (base, head) = (&commits[base_index], &commits[head_index]);
        let files = git_lines(&repo, &["diff", "--name-only", base, head])?.len();
        let diff = baseline(base, head)?;
        // The index describes the base, as after the run that released it.
        slipway_changed(base, base)?;
        let saved = save_index(&index_dir)?;
        let update = median_time(args.runs, || {
            restore_index(&index_dir, &saved)?;
            let started = Instant::now();
            slipway_changed(base, head)?;
            Ok(started.elapsed())
        })?;
        let warm = median_time(args.runs, || {
            let started = Instant::now();
            slipway_changed(base, head)?;
            Ok(started.elapsed())
        })?;
        println!(
            "{:>7} {:>7} {:>7} {:>10} {:>10} {:>6.2}x {:>10} {:>6.2}x",
            base_index + 1,
            head_index + 1,
            files,
            format!("{diff:.1?}"),
            format!("{update:.1?}"),
            ratio(update, diff),
            format!("{warm:.1?}"),
            ratio(warm, diff)
        );
        updates.push((update, diff));
        warms.push((warm, diff));
    }
    println!();
    println!(
        "{:<22} {:>10} {:>10} {:>8} {:>8}  result",
        "", "slipway", "git diff", "ratio", "target"
    );
    let measured = [
        ("cold", "cold (first pair)", (cold, cold_baseline), 10.0),
        ("update", "update (median pair)", median_pair(&updates), 3.0),
        ("warm", "warm (median pair)", median_pair(&warms), 1.5),
    ];
    let mut figures = Vec::new();
    for (answer, name, (time, diff), target) in measured {
        let ratio = ratio(time, diff);
        let met = ratio <= target;
        println!(
            "{name:<22} {:>10} {:>10} {ratio:>7.2}x {target:>7}x  {}",
            format!("{time:.1?}"),
            format!("{diff:.1?}"),
            if met { "met" } else { "MISSED" }
        );
        figures.push(Figure::new(
            &format!(
                "changed: {answer} / git diff, {} stacks",
                thousands(args.stacks)
            ),
            format!("{ratio:.2}x ({time:.1?} / {diff:.1?})"),
            &format!("at most {target}x"),
            met,
        ));
    }
    Ok(figures)
}

fn ratio(time: Duration, baseline: Duration) -> f64 {
    time.as_secs_f64() / baseline.as_secs_f64().max(1e-6)
}

/// The pair whose ratio is the median.
fn median_pair(pairs: &[(Duration, Duration)]) -> (Duration, Duration) {
    let mut sorted = pairs.to_vec();
    sorted.sort_by(|a, b| ratio(a.0, a.1).total_cmp(&ratio(b.0, b.1)));
    sorted[sorted.len() / 2]
}

/// Removes the change index, as a fresh clone has none.
fn remove_index(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).context("cannot remove the change index")
        }
        _ => Ok(()),
    }
}

/// The index folder's files, to put back before each timed update.
fn save_index(dir: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut files = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        entries => entries.context("cannot read the change index")?,
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_file() {
            let bytes = std::fs::read(&path)?;
            files.push((path, bytes));
        }
    }
    Ok(files)
}

fn restore_index(dir: &Path, files: &[(PathBuf, Vec<u8>)]) -> Result<()> {
    remove_index(dir)?;
    std::fs::create_dir_all(dir)?;
    for (path, bytes) in files {
        std::fs::write(path, bytes).context("cannot restore the change index")?;
    }
    Ok(())
}

/// Runs a command with its output discarded; fails unless it exits 0.
fn quiet(command: &mut Command) -> Result<()> {
    let output = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("cannot start the measured command")?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// One warm-up run, then the median of `runs` timed ones; `f` returns the time it measured.
fn median_time(runs: usize, mut f: impl FnMut() -> Result<Duration>) -> Result<Duration> {
    f()?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        times.push(f()?);
    }
    times.sort();
    Ok(times[times.len() / 2])
}

fn git(repo: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .current_dir(repo)
        .args(["-c", "commit.gpgsign=false"])
        .env("GIT_CONFIG_NOSYSTEM", "1");
    command
}

fn git_lines(repo: &Path, args: &[&str]) -> Result<Vec<String>> {
    let output = git(repo).args(args).output()?;
    ensure!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}

fn stack_dir(i: usize) -> String {
    format!("stacks/g{:02}/s{i:04}", i / 100)
}

const MODULES: usize = 20;

fn stack_hcl(i: usize) -> String {
    let mut text = format!("stack {{\n  team       = \"team{}\"\n}}\n", i % 17);
    if !i.is_multiple_of(5) {
        text.push_str(&format!(
            "\ndependency \"previous\" {{\n  path = \"../s{:04}\"\n}}\n",
            i - 1
        ));
    }
    text
}

fn stack_tf(i: usize, revision: usize) -> String {
    let mut text = format!(
        "variable \"size\" {{\n  default = {i}\n}}\n\noutput \"id\" {{\n  value = \"s{i}-{revision}\"\n}}\n"
    );
    if i.is_multiple_of(10) {
        text.push_str(&format!(
            "\nmodule \"shared\" {{\n  source = \"../../../modules/m{:02}\"\n}}\n",
            (i / 10) % MODULES
        ));
    }
    text
}

fn module_tf(k: usize, revision: usize) -> String {
    let mut text = format!("variable \"name\" {{\n  default = \"m{k}-{revision}\"\n}}\n");
    if k % 2 == 1 {
        text.push_str(&format!(
            "\nmodule \"inner\" {{\n  source = \"../m{:02}\"\n}}\n",
            k - 1
        ));
    }
    text
}

/// Writes the monorepo into the empty folder `repo`.
fn generate(repo: &Path, stacks: usize, commits: usize) -> Result<()> {
    let status = git(repo).args(["init", "-q", "-b", "main"]).status()?;
    ensure!(status.success(), "git init failed");
    let mut child = git(repo)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .context("cannot start git fast-import")?;
    let stdin = child.stdin.take().context("no stdin for git fast-import")?;
    let mut out = BufWriter::with_capacity(1 << 20, stdin);
    let file = |out: &mut BufWriter<_>, path: &str, text: &str| -> std::io::Result<()> {
        write!(out, "M 100644 inline {path}\ndata {}\n{text}\n", text.len())
    };
    for c in 1..=commits {
        let message = if c == 1 {
            "monorepo".to_owned()
        } else {
            format!("change {c}")
        };
        write!(
            out,
            "commit refs/heads/main\nmark :{c}\ncommitter Bench <bench@example.com> {} +0000\ndata {}\n{message}\n",
            1_700_000_000 + c,
            message.len()
        )?;
        if c == 1 {
            file(
                &mut out,
                "slipway.hcl",
                "project {\n  name   = \"monorepo\"\n  engine = \"terraform\"\n}\n\nstage \"dev\" {}\nstage \"prod\" {}\n",
            )?;
            for k in 0..MODULES {
                file(
                    &mut out,
                    &format!("modules/m{k:02}/main.tf"),
                    &module_tf(k, 0),
                )?;
            }
            for i in 0..stacks {
                let dir = stack_dir(i);
                file(&mut out, &format!("{dir}/stack.hcl"), &stack_hcl(i))?;
                file(&mut out, &format!("{dir}/main.tf"), &stack_tf(i, 0))?;
            }
        } else {
            let seed = mix(c as u64);
            for pick in [seed, mix(seed)] {
                let i = (pick % stacks as u64) as usize;
                file(
                    &mut out,
                    &format!("{}/main.tf", stack_dir(i)),
                    &stack_tf(i, c),
                )?;
            }
            file(
                &mut out,
                &format!("docs/notes-{:02}.md", c % 50),
                &format!("# notes\n\nchange {c}\n"),
            )?;
            if c.is_multiple_of(40) {
                let k = (mix(seed) as usize >> 8) % MODULES;
                file(
                    &mut out,
                    &format!("modules/m{k:02}/main.tf"),
                    &module_tf(k, c),
                )?;
            }
        }
        out.write_all(b"\n")?;
    }
    out.flush()?;
    drop(out);
    ensure!(child.wait()?.success(), "git fast-import failed");
    let status = git(repo).args(["reset", "-q", "--hard", "main"]).status()?;
    ensure!(status.success(), "git reset --hard failed");
    Ok(())
}
