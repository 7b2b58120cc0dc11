//! `cargo xtask bench advise`: how long `slipway advise` takes, and how much memory it
//! needs, on a generated repository (2,000 stacks and 20,000 commits by default; target:
//! well under a minute).
//!
//! The repository is generated with one `git fast-import` stream into
//! `target/bench-advise/` and reused. Stacks come in chains of ten, hold four to twelve
//! resources of mixed types, and belong to one of eight teams; commits over the last 170
//! days by twenty authors touch one to three stacks each. Peak memory is the child's
//! maximum resident set size, read through Python's `resource` module (the sandbox
//! already needs Python), so xtask stays free of `unsafe`.

use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};

use crate::figure::Figure;
use crate::support::{cached_repository, mix, slipway_binary, target_dir};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of stacks in the generated repository.
    #[arg(long, default_value_t = 2000)]
    pub stacks: usize,
    /// Number of commits in its history.
    #[arg(long, default_value_t = 20_000)]
    pub commits: usize,
    /// Use this slipway binary instead of building `target/release/slipway`.
    #[arg(long, value_name = "PATH")]
    pub slipway: Option<PathBuf>,
    /// Generate the repository again even if a cached one exists.
    #[arg(long)]
    pub regenerate: bool,
}

const TEAMS: &[&str] = &[
    "platform",
    "network",
    "data",
    "shop",
    "payments",
    "search",
    "identity",
    "observability",
];
const KINDS: &[&str] = &[
    "aws_vpc",
    "aws_subnet",
    "aws_security_group",
    "aws_iam_role",
    "aws_s3_bucket",
    "aws_dynamodb_table",
    "aws_sqs_queue",
    "aws_lambda_function",
    "aws_kms_key",
    "aws_route53_record",
];

pub fn run(args: Args) -> Result<Vec<Figure>> {
    ensure!(
        args.stacks >= 10 && args.commits >= 1,
        "need at least 10 stacks and one commit"
    );
    let slipway = slipway_binary(args.slipway.as_deref(), &target_dir())?;
    let size = (args.stacks, args.commits);
    let repo = cached_repository("bench-advise/repo", size, args.regenerate, generate)?;
    let script = "import resource, subprocess, sys, time\n\
        t = time.monotonic()\n\
        r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n\
        e = time.monotonic() - t\n\
        print(r.returncode, e, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n";
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&slipway)
        .args(["-C"])
        .arg(&repo)
        .args(["advise", "--format", "json"])
        .output()
        .context("cannot run python3 to measure slipway advise")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut fields = text.split_whitespace();
    let (Some(code), Some(seconds), Some(rss_kib)) = (fields.next(), fields.next(), fields.next())
    else {
        anyhow::bail!("unexpected measurement output: {text}");
    };
    ensure!(code == "0", "slipway advise failed (exit {code})");
    let seconds: f64 = seconds.parse()?;
    let rss_mib = rss_kib.parse::<f64>()? / 1024.0;
    println!(
        "slipway advise on {} stacks and {} commits: {seconds:.2} s, peak memory {rss_mib:.0} MiB (target: well under 60 s)",
        args.stacks, args.commits
    );
    Ok(vec![
        Figure::new(
            "advise: time (2,000 stacks, 20,000 commits)",
            format!("{seconds:.1} s"),
            "well under 60 s (counted: under 30 s)",
            seconds < 30.0,
        ),
        Figure {
            name: "advise: peak memory".to_owned(),
            measured: format!("{rss_mib:.0} MiB"),
            target: "none set".to_owned(),
            met: None,
        },
    ])
}

fn stack_dir(i: usize) -> String {
    format!("stacks/s{i:04}")
}

fn stack_files(i: usize, revision: usize) -> Vec<(String, String)> {
    let dir = stack_dir(i);
    let mut hcl = format!("stack {{\n  team = \"{}\"\n}}\n", TEAMS[i % TEAMS.len()]);
    if !i.is_multiple_of(10) {
        let _ = write!(
            hcl,
            "dependency \"s{0:04}\" {{\n  path = \"../s{0:04}\"\n}}\n",
            i - 1
        );
    }
    let mut tf = format!("# revision {revision}\n");
    for r in 0..(4 + i % 9) {
        let kind = KINDS[(i + r) % KINDS.len()];
        let _ = writeln!(tf, "resource \"{kind}\" \"r{r}\" {{}}");
    }
    vec![
        (format!("{dir}/stack.hcl"), hcl),
        (format!("{dir}/main.tf"), tf),
    ]
}

/// Writes the repository into the empty folder `repo`.
fn generate(repo: &Path, stacks: usize, commits: usize) -> Result<()> {
    let git = |args: &[&str]| -> Result<()> {
        let status = Command::new("git").current_dir(repo).args(args).status()?;
        ensure!(status.success(), "git {args:?} failed");
        Ok(())
    };
    git(&["init", "-q", "-b", "main"])?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let start = now - 170 * 86_400;
    let mut child = Command::new("git")
        .current_dir(repo)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()?;
    let mut out = BufWriter::new(child.stdin.take().context("no stdin")?);
    let mut config = String::from(
        "project {\n  name = \"bench\"\n}\nstage \"dev\" {}\nadvisor {\n  teams = {\n",
    );
    for a in 0..20 {
        let _ = writeln!(
            config,
            "    \"dev{a}@example.com\" = \"{}\"",
            TEAMS[a % TEAMS.len()]
        );
    }
    config.push_str("  }\n}\n");
    let mut first: Vec<(String, String)> = vec![("slipway.hcl".into(), config)];
    for i in 0..stacks {
        first.extend(stack_files(i, 0));
    }
    let mut emit = |n: usize, when: u64, author: &str, files: &[(String, String)]| -> Result<()> {
        let message = format!("change {n}");
        write!(
            out,
            "commit refs/heads/main\nauthor {author} <{author}> {when} +0000\ncommitter {author} <{author}> {when} +0000\ndata {}\n{message}\n",
            message.len()
        )?;
        for (path, text) in files {
            write!(out, "M 100644 inline {path}\ndata {}\n{text}\n", text.len())?;
        }
        Ok(())
    };
    emit(0, start, "dev0@example.com", &first)?;
    for n in 1..=commits {
        let h = mix(n as u64);
        let when = start + (n as u64 * 170 * 86_400) / (commits as u64 + 1);
        let author = format!("dev{}@example.com", h % 20);
        let mut files = Vec::new();
        for k in 0..(1 + (h >> 8) % 3) {
            let i = (mix(h ^ k) % stacks as u64) as usize;
            files.extend(stack_files(i, n).into_iter().skip(1));
        }
        emit(n, when, &author, &files)?;
    }
    out.flush()?;
    drop(out);
    ensure!(child.wait()?.success(), "git fast-import failed");
    git(&["reset", "-q", "--hard", "main"])?;
    Ok(())
}
