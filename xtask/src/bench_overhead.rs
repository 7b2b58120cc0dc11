//! `cargo xtask bench overhead`: what slipway itself costs per stack instance when the
//! engine costs nothing (target: at most 20 ms per stack instance).
//!
//! A project of 1,000 stacks is generated in a temporary folder, in groups of 50: each
//! group's base stack depends on the previous group's base (a chain through the project),
//! seven chains of seven stacks fan out from each base, and the last stack of each chain
//! also takes the last output of the chain before it (fan-in). Every dependency passes an
//! output as an input, so outputs are read and handed on as in a real project.
//!
//! The engine is a stand-in that answers at once: this xtask binary itself, started through
//! a symbolic link named [`STAND_IN`] (see [`stand_in`]). It answers `init`, `plan`,
//! `show -json`, `apply`, `output -json` and the rest the way slipway reads them, writes the
//! plan and local state files slipway looks at, and appends its command and its own elapsed
//! time to the file `SLIPWAY_BENCH_ENGINE_LOG` names. `slipway apply --stage dev` runs with
//! `--parallelism 1` by default, so its wall time is slipway's own time plus the engine's:
//! the figure is (wall time − the stand-ins' summed time) / stacks. Starting a process is
//! counted as slipway's (the stand-in cannot time its own `exec`), which slightly
//! overstates slipway's share.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};

use crate::figure::Figure;
use crate::support::{slipway_binary, target_dir};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of stacks in the generated project (a multiple of 50).
    #[arg(long, default_value_t = 1000)]
    stacks: usize,
    /// Stack instances slipway runs at once. With 1 the engine's time adds up to the wall
    /// time, and what is left is slipway's.
    #[arg(long, default_value_t = 1)]
    parallelism: u16,
    /// Use this slipway binary instead of building `target/release/slipway`.
    #[arg(long, value_name = "PATH")]
    slipway: Option<PathBuf>,
    /// Keep the generated project (and slipway's data folder) in this folder instead of a
    /// temporary one, to look at or profile.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
}

/// The file name under which this binary acts as the engine.
pub const STAND_IN: &str = "slipway-bench-engine";
/// The environment variable naming the file the stand-in appends its timings to.
const LOG_VAR: &str = "SLIPWAY_BENCH_ENGINE_LOG";
const TARGET: Duration = Duration::from_millis(20);
const GROUP: usize = 1 + CHAINS * CHAIN;
const CHAINS: usize = 7;
const CHAIN: usize = 7;

pub fn run(args: Args) -> Result<Vec<Figure>> {
    ensure!(
        args.stacks >= GROUP && args.stacks.is_multiple_of(GROUP) && args.parallelism > 0,
        "--stacks must be a positive multiple of {GROUP}, --parallelism at least 1"
    );
    let slipway = slipway_binary(args.slipway.as_deref(), &target_dir())?;
    let temporary = tempfile::tempdir()?;
    let work = match &args.keep {
        Some(dir) => {
            let dir = crate::support::resolve_against(dir, &std::env::current_dir()?);
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("cannot clear {}", dir.display()))?;
            }
            dir
        }
        None => temporary.path().to_path_buf(),
    };
    let project = work.join("project");
    write_project(&project, args.stacks)?;
    let engine = work.join(STAND_IN);
    std::os::unix::fs::symlink(std::env::current_exe()?, &engine)
        .context("cannot link the stand-in engine")?;
    let log = work.join("engine-times.log");

    eprintln!(
        "slipway apply --stage dev --parallelism {} on {} stacks, engine: the stand-in",
        args.parallelism, args.stacks
    );
    let started = Instant::now();
    let output = Command::new(&slipway)
        .args(["apply", "--stage", "dev", "--parallelism"])
        .arg(args.parallelism.to_string())
        .current_dir(&project)
        .env("SLIPWAY_ENGINE", &engine)
        .env(LOG_VAR, &log)
        // A throwaway project with local state, also on a CI runner.
        .env_remove("CI")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("cannot run slipway")?;
    let wall = started.elapsed();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
        bail!(
            "slipway apply failed ({}):\n{}",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    let times = EngineTimes::parse(&std::fs::read_to_string(&log).context("no engine log")?)?;
    let parallel = usize::from(args.parallelism);
    // With stacks at once, engine time overlaps: an estimate of slipway's share.
    let engine_share = times.total() / u32::from(args.parallelism);
    let overhead = overhead_per_stack(wall, engine_share, args.stacks);

    println!(
        "slipway apply --stage dev --parallelism {parallel}, {} stacks on a stand-in engine",
        args.stacks
    );
    println!(
        "wall time {:.2} s ({:.1} ms per stack instance)",
        wall.as_secs_f64(),
        millis(wall) / args.stacks as f64
    );
    println!(
        "engine: {} starts, {:.2} s of its own time ({})",
        times.starts(),
        times.total().as_secs_f64(),
        times.summary()
    );
    let met = overhead <= TARGET;
    let what = if parallel == 1 {
        "slipway's own time per stack instance (wall − engine) / stacks"
    } else {
        "(wall − engine / parallelism) / stacks, an estimate when stacks run at once"
    };
    println!(
        "{what}: {:.1} ms (target: at most {} ms) {}",
        millis(overhead),
        TARGET.as_millis(),
        if met { "ok" } else { "OVER TARGET" }
    );
    Ok(vec![Figure::new(
        &format!(
            "overhead: slipway's time per stack instance ({} stacks)",
            args.stacks
        ),
        format!("{:.1} ms", millis(overhead)),
        &format!("at most {} ms", TARGET.as_millis()),
        met,
    )])
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// (wall − engine) / stacks; zero when the engine took longer than the wall time said.
fn overhead_per_stack(wall: Duration, engine: Duration, stacks: usize) -> Duration {
    wall.saturating_sub(engine) / u32::try_from(stacks.max(1)).unwrap_or(u32::MAX)
}

/// The stand-in's log: per command, how many times it ran and its summed own time.
#[derive(Debug, Default, PartialEq, Eq)]
struct EngineTimes(BTreeMap<String, (usize, Duration)>);

impl EngineTimes {
    /// Reads lines of `COMMAND NANOSECONDS`.
    fn parse(text: &str) -> Result<Self> {
        let mut times = Self::default();
        for line in text.lines().filter(|l| !l.is_empty()) {
            let (command, nanos) = line
                .rsplit_once(' ')
                .with_context(|| format!("bad engine log line `{line}`"))?;
            let nanos: u64 = nanos
                .parse()
                .with_context(|| format!("bad engine log line `{line}`"))?;
            let entry = times.0.entry(command.to_owned()).or_default();
            entry.0 += 1;
            entry.1 += Duration::from_nanos(nanos);
        }
        Ok(times)
    }

    fn starts(&self) -> usize {
        self.0.values().map(|(n, _)| n).sum()
    }

    fn total(&self) -> Duration {
        self.0.values().map(|(_, t)| *t).sum()
    }

    fn summary(&self) -> String {
        let mut out = String::new();
        for (command, (n, time)) in &self.0 {
            if !out.is_empty() {
                out.push_str(", ");
            }
            let _ = write!(out, "{command} {n}× {:.2} ms", millis(*time) / *n as f64);
        }
        out
    }
}

/// Where stack `i` lives.
fn stack_dir(i: usize) -> String {
    format!("stacks/g{:02}/s{i:04}", i / GROUP)
}

/// The stacks stack `i` depends on (see the module docs for the shape).
fn dependencies(i: usize) -> Vec<usize> {
    let (group, j) = (i / GROUP, i % GROUP);
    let base = group * GROUP;
    if j == 0 {
        return if group == 0 {
            vec![]
        } else {
            vec![base - GROUP]
        };
    }
    let (chain, position) = ((j - 1) / CHAIN, (j - 1) % CHAIN);
    let mut on = vec![if position == 0 { base } else { i - 1 }];
    if position == CHAIN - 1 && chain > 0 {
        on.push(i - CHAIN);
    }
    on
}

fn stack_hcl(i: usize) -> String {
    let mut text = format!("stack {{\n  team = \"team{}\"\n}}\n", i % 13);
    let on = dependencies(i);
    for (k, d) in on.iter().enumerate() {
        let _ = write!(
            text,
            "\ndependency \"d{k}\" {{\n  path = \"../../{}\"\n}}\n",
            stack_dir(*d).trim_start_matches("stacks/")
        );
    }
    if !on.is_empty() {
        text.push_str("\ninputs = {\n");
        for k in 0..on.len() {
            let _ = writeln!(text, "  up_{k} = dependency.d{k}.outputs.id");
        }
        text.push_str("}\n");
    }
    text
}

fn stack_tf(i: usize) -> String {
    let mut text = String::new();
    for k in 0..dependencies(i).len() {
        let _ = write!(text, "variable \"up_{k}\" {{\n  type = string\n}}\n\n");
    }
    let _ = write!(
        text,
        "resource \"terraform_data\" \"this\" {{\n  input = \"s{i}\"\n}}\n\noutput \"id\" {{\n  value = \"s{i}\"\n}}\n"
    );
    text
}

fn write_project(root: &Path, stacks: usize) -> Result<()> {
    std::fs::create_dir_all(root)?;
    std::fs::write(
        root.join("slipway.hcl"),
        "project {\n  name   = \"overhead\"\n  engine = \"terraform\"\n}\n\nstage \"dev\" {}\n",
    )?;
    for i in 0..stacks {
        let dir = root.join(stack_dir(i));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("stack.hcl"), stack_hcl(i))?;
        std::fs::write(dir.join("main.tf"), stack_tf(i))?;
    }
    Ok(())
}

/// Whether this process was started as the stand-in engine (through the link).
pub fn is_stand_in() -> bool {
    std::env::args_os()
        .next()
        .is_some_and(|argv0| Path::new(&argv0).file_name() == Some(OsStr::new(STAND_IN)))
}

/// The stand-in engine: answers one command, then appends `COMMAND NANOSECONDS` to the log.
pub fn stand_in() -> ExitCode {
    let started = Instant::now();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = answer(&args).unwrap_or_else(|error| {
        eprintln!("stand-in engine: {error:#}");
        1
    });
    if let Some(log) = std::env::var_os(LOG_VAR) {
        let command = args.first().map_or("(none)", String::as_str);
        let line = format!("{command} {}\n", started.elapsed().as_nanos());
        // One short write with O_APPEND: lines of concurrent stand-ins never interleave.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .and_then(|mut file| file.write_all(line.as_bytes()));
        if let Err(error) = written {
            eprintln!("stand-in engine: cannot write its log: {error}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::from(code)
}

/// Where `init` keeps the state path it was given, for `apply` and `output` to find.
const STATE_PATH_FILE: &str = ".terraform/bench-state-path";

fn answer(args: &[String]) -> Result<u8> {
    let flag = |name: &str| args.iter().find_map(|a| a.strip_prefix(name));
    let stack = std::env::current_dir()?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match args.first().map(String::as_str) {
        Some("version" | "-version" | "--version") => {
            println!("Terraform v1.5.7\non linux_amd64");
            Ok(0)
        }
        Some("init") => {
            std::fs::create_dir_all(".terraform")?;
            let path = flag("-backend-config=path=").unwrap_or("terraform.tfstate");
            std::fs::write(STATE_PATH_FILE, path)?;
            println!("Terraform has been successfully initialized!");
            Ok(0)
        }
        Some("plan") => {
            if let Some(out) = flag("-out=") {
                std::fs::write(out, "stand-in plan")?;
            }
            if args.iter().any(|a| a == "-refresh-only") {
                println!("No changes. Your infrastructure still matches the configuration.");
                return Ok(0);
            }
            println!("Plan: 1 to add, 0 to change, 0 to destroy.");
            Ok(2)
        }
        Some("show") => {
            println!("{}", plan_json());
            Ok(0)
        }
        Some("apply") => {
            let path = PathBuf::from(std::fs::read_to_string(STATE_PATH_FILE)?);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, state_json(&stack))?;
            println!("Apply complete! Resources: 1 added, 0 changed, 0 destroyed.");
            Ok(0)
        }
        Some("output") => {
            println!(
                "{}",
                serde_json::json!({"id": {"sensitive": false, "type": "string", "value": stack}})
            );
            Ok(0)
        }
        Some("state") if args.get(1).is_some_and(|a| a == "pull") => {
            let path = std::fs::read_to_string(STATE_PATH_FILE)?;
            print!("{}", std::fs::read_to_string(path).unwrap_or_default());
            Ok(0)
        }
        Some("destroy" | "validate" | "fmt" | "providers") => Ok(0),
        other => bail!("the stand-in does not answer {other:?}"),
    }
}

fn plan_json() -> serde_json::Value {
    serde_json::json!({
        "format_version": "1.2",
        "terraform_version": "1.5.7",
        "planned_values": {"root_module": {}},
        "resource_changes": [{
            "address": "terraform_data.this",
            "mode": "managed",
            "type": "terraform_data",
            "name": "this",
            "provider_name": "terraform.io/builtin/terraform",
            "change": {"actions": ["create"], "before": null, "after": {}, "after_unknown": {}}
        }],
        "configuration": {"root_module": {}}
    })
}

fn state_json(stack: &str) -> String {
    serde_json::json!({
        "version": 4,
        "terraform_version": "1.5.7",
        "serial": 1,
        "lineage": "slipway-bench",
        "outputs": {"id": {"value": stack, "type": "string"}},
        "resources": []
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_times_add_up_per_command() {
        let times = EngineTimes::parse("init 1000000\nplan 2000000\ninit 3000000\n").unwrap();
        assert_eq!(times.starts(), 3);
        assert_eq!(times.total(), Duration::from_millis(6));
        assert_eq!(times.0["init"], (2, Duration::from_millis(4)));
        assert_eq!(times.summary(), "init 2× 2.00 ms, plan 1× 2.00 ms");
        assert!(EngineTimes::parse("init soon\n").is_err());
    }

    #[test]
    fn overhead_is_what_the_engine_did_not_take() {
        let per = overhead_per_stack(Duration::from_secs(10), Duration::from_secs(4), 1000);
        assert_eq!(per, Duration::from_millis(6));
        assert_eq!(
            overhead_per_stack(Duration::from_secs(1), Duration::from_secs(2), 10),
            Duration::ZERO
        );
    }

    #[test]
    fn the_shape_has_chains_fan_out_and_fan_in() {
        assert_eq!(dependencies(0), Vec::<usize>::new());
        assert_eq!(dependencies(50), vec![0]);
        assert_eq!(dependencies(1), vec![0]);
        assert_eq!(dependencies(2), vec![1]);
        assert_eq!(dependencies(8), vec![0]); // the second chain starts at the base
        assert_eq!(dependencies(14), vec![13, 7]); // its end also takes the first chain's
        // Every dependency is an earlier stack: the graph has no cycle.
        for i in 0..1000 {
            assert!(dependencies(i).iter().all(|&d| d < i), "{i}");
        }
        assert!(stack_hcl(14).contains("path = \"../../g00/s0007\""));
        assert!(stack_tf(14).contains("variable \"up_1\""));
    }
}
