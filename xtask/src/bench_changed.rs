//! `cargo xtask bench changed`: how long `slipway changed` takes on a large monorepo,
//! measured against `git diff --name-only` over the same commits in the same run.
//!
//! The monorepo (5,000 stacks, 10,000 commits by default) is generated once with one
//! `git fast-import` stream into `target/bench-changed/` and reused. Stacks come in chains of
//! five (each depends on the one before), every tenth stack calls a shared local module, and
//! half the modules call another module. Each commit edits two stacks and a note; every 40th
//! also edits a module. Timings are medians over several runs per commit pair; the target is
//! `slipway changed` under three times the `git diff` baseline.
//!
//! `slipway changed` keeps a change index in the repository's git folder. The first run
//! after a clone reads every stack (the cold read, timed once); a run at a new head brings
//! the index forward from the diff since the commit it describes (the update, timed once per
//! pair); the median is taken over runs where the index already describes the head, after
//! one untimed warm-up run.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

pub fn run(args: Args) -> Result<()> {
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
    // No index: the first run after a clone.
    let index = repo.join(".git").join("slipway").join("changes-v1.json");
    if index.exists() {
        std::fs::remove_file(&index).context("cannot remove the change index")?;
    }
    let first_head = &commits[span / (2 * args.pairs) + args.distance];
    let started = Instant::now();
    slipway_changed(&commits[0], first_head)?;
    println!("cold read (no index): {:.1?}", started.elapsed());
    println!(
        "{:>7} {:>7} {:>7} {:>10} {:>10} {:>12} {:>7}",
        "base", "head", "files", "git diff", "update", "slipway", "ratio"
    );
    let mut ratios = Vec::new();
    for pair in 0..args.pairs {
        let base_index = span * (2 * pair + 1) / (2 * args.pairs);
        let head_index = base_index + args.distance;
        let (base, head) = (&commits[base_index], &commits[head_index]);
        let diff_args = ["diff", "--name-only", base.as_str(), head.as_str()];
        let files = git_lines(&repo, &diff_args)?.len();
        let baseline = median_time(args.runs, || {
            quiet(Command::new("git").current_dir(&repo).args(diff_args))
        })?;
        // The index describes the previous pair's head: bring it forward once.
        let started = Instant::now();
        slipway_changed(base, head)?;
        let update = started.elapsed();
        let changed = median_time(args.runs, || slipway_changed(base, head))?;
        let ratio = changed.as_secs_f64() / baseline.as_secs_f64().max(1e-6);
        ratios.push(ratio);
        println!(
            "{:>7} {:>7} {:>7} {:>10} {:>10} {:>12} {:>6.2}x",
            base_index + 1,
            head_index + 1,
            files,
            format!("{:.1?}", baseline),
            format!("{:.1?}", update),
            format!("{:.1?}", changed),
            ratio
        );
    }
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    println!(
        "median ratio {median:.2}x (target: under 3x) {}",
        if median < 3.0 { "ok" } else { "OVER TARGET" }
    );
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

/// One warm-up run, then the median of `runs` timed ones.
fn median_time(runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    f()?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        f()?;
        times.push(started.elapsed());
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
