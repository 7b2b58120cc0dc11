//! Benchmark: the blast radius through the CLI's path on a plan over 100 MB: `show -json`
//! piped from the engine process straight into the streaming reader (what `slipway plan`
//! and `slipway apply` do for each planned stack, `Executor::measure`), against `jq`, and
//! against the path before it streamed (the whole output buffered, then parsed).
//!
//! The engine is a stand-in that prints a generated plan to stdout as `show -json` would
//! (`exec cat PLAN`), only here. Each measured run is a child process (this binary
//! re-executed with `--child MODE ENGINE PLAN`), so its peak memory (VmHWM) is its own; the
//! stand-in's `cat` is not counted, as Terraform's own memory would not be. Reported, from
//! the same run: times (best of a few), the ratio to jq, MB/s, and peak memory relative to
//! the file (target <= 1x). The speed target (>= 20x jq) is the reader's on the plan file
//! (`slipway-plan`'s `analyze` bench); here the engine's pipe is part of the time, and the
//! ratio is reported beside it.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use slipway_engine::{Engine, Interrupt, Log, StackCredentials, StepContext, WorkingCopy};
use slipway_plan::bench::{
    JQ_FILTER, MEMORY_TARGET, SPEED_TARGET, Speed, figure_lines, generate, peak_memory_kib,
};
use slipway_plan::{Plan, StackLinks, StatefulTypes, blast_radius, parse_plan};
use slipway_runner::analysis::read_plan_output;

/// About 111 MB of plan JSON.
const RESOURCES: usize = 120_000;
const RUNS: usize = 3;

/// The allocator the `slipway` binary ships with, set up as its `main` sets it (freed
/// memory returned after 1 ms): what is measured is what users run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // SAFETY: sets one integer option (15: `mi_option_purge_delay`) as slipway's main does.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(15, 1);
    }
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--child") {
        return match (args.get(at + 1), args.get(at + 2), args.get(at + 3)) {
            (Some(mode), Some(engine), Some(plan)) => {
                child(mode, Path::new(engine), Path::new(plan))
            }
            _ => {
                eprintln!("--child needs MODE ENGINE PLAN");
                ExitCode::FAILURE
            }
        };
    }
    match parent() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("benchmark failed: {message}");
            ExitCode::FAILURE
        }
    }
}

/// One measured run: `show -json` through the engine adapter, read `stream`ed or
/// `buffered`, then the blast radius; prints the per-action counts and the peak memory.
fn child(mode: &str, engine: &Path, plan_file: &Path) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let plan = match runtime.block_on(show(mode, engine, plan_file)) {
        Ok(plan) => plan,
        Err(error) => {
            eprintln!("{error:#}");
            return ExitCode::FAILURE;
        }
    };
    let radius = blast_radius(
        "bench",
        &plan,
        &StatefulTypes::builtin(),
        &StackLinks::default(),
    );
    let peak_kib = peak_memory_kib().unwrap_or(0);
    println!(
        "{}",
        serde_json::to_string(&radius.actions).unwrap_or_default()
    );
    println!("{peak_kib}");
    ExitCode::SUCCESS
}

async fn show(mode: &str, engine: &Path, plan_file: &Path) -> anyhow::Result<Plan> {
    let work = tempfile::tempdir()?;
    let engine = Engine::new(
        engine.to_path_buf(),
        work.path(),
        Vec::new(),
        Duration::from_secs(600),
        Duration::from_secs(5),
    );
    let working_copy = WorkingCopy::in_place(work.path());
    let log = Log::create(&work.path().join("show.log"))?;
    let credentials = StackCredentials::default();
    let interrupt = Interrupt::never();
    let ctx = StepContext::quiet(&working_copy, &log, &interrupt, &credentials);
    Ok(match mode {
        "stream" => {
            engine
                .show_json_with(ctx, plan_file, read_plan_output)
                .await??
        }
        _ => parse_plan(&engine.show_json(ctx, plan_file).await?)?,
    })
}

struct Measured {
    time: Duration,
    peak: u64,
    counts: BTreeMap<String, u64>,
}

fn measure(command: &mut Command, reports_peak: bool) -> Result<Measured, String> {
    let started = Instant::now();
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    let time = started.elapsed();
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let counts = serde_json::from_str(lines.next().unwrap_or_default().trim())
        .map_err(|e| format!("{command:?}: {e}"))?;
    let peak = if reports_peak {
        lines
            .next()
            .and_then(|l| l.trim().parse::<u64>().ok())
            .ok_or("child reported no peak memory")?
            * 1024
    } else {
        0
    };
    Ok(Measured { time, peak, counts })
}

fn parent() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("plan.json");
    let started = Instant::now();
    let expected = generate(&path, RESOURCES).map_err(|e| format!("generating the plan: {e}"))?;
    let size = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
    println!(
        "generated {RESOURCES} resource changes, {:.1} MB, in {:.2?}",
        size as f64 / 1e6,
        started.elapsed()
    );
    // `show -json -no-color PLANFILE`: the plan file is `$4`.
    let engine = dir.path().join("show-json-stand-in");
    std::fs::write(&engine, "#!/bin/sh\nexec cat \"$4\"\n").map_err(|e| e.to_string())?;
    std::fs::set_permissions(&engine, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;

    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let run = |mode: &str| {
        measure(
            Command::new(&exe)
                .arg("--child")
                .arg(mode)
                .arg(&engine)
                .arg(&path),
            true,
        )
    };
    // Best of a few runs each, alternating, so load from other processes on the machine
    // skews no side more than another.
    let mut best: BTreeMap<&str, Measured> = BTreeMap::new();
    for _ in 0..RUNS {
        for (name, measured) in [
            ("stream", run("stream")?),
            ("buffered", run("buffered")?),
            (
                "jq",
                measure(
                    Command::new("jq").arg("-c").arg(JQ_FILTER).arg(&path),
                    false,
                )?,
            ),
        ] {
            if measured.counts != expected {
                return Err(format!(
                    "{name} counts {:?}, the plan has {expected:?}",
                    measured.counts
                ));
            }
            let entry = best.entry(name).or_insert(Measured {
                time: Duration::MAX,
                peak: 0,
                counts: BTreeMap::new(),
            });
            entry.time = entry.time.min(measured.time);
            entry.peak = entry.peak.max(measured.peak);
        }
    }
    let (stream, buffered, jq) = (&best["stream"], &best["buffered"], &best["jq"]);
    let mb = size as f64 / 1e6;
    let ratio = jq.time.as_secs_f64() / stream.time.as_secs_f64();
    let memory_ratio = stream.peak as f64 / size as f64;
    println!("counts agree: {expected:?}");
    println!(
        "CLI path (`show -json` piped into the reader), best of {RUNS}: slipway {:.2?} ({:.0} MB/s), jq {:.2?}: slipway is {ratio:.1}x faster (the file path's target: >= {SPEED_TARGET}x)",
        stream.time,
        mb / stream.time.as_secs_f64(),
        jq.time,
    );
    println!(
        "peak memory (VmHWM): streamed {:.1} MB = {memory_ratio:.2}x the file's {mb:.1} MB (target <= {MEMORY_TARGET}x); buffered whole, as before: {:.1} MB = {:.2}x, {:.2?}",
        stream.peak as f64 / 1e6,
        buffered.peak as f64 / 1e6,
        buffered.peak as f64 / size as f64,
        buffered.time,
    );
    println!(
        "{}",
        figure_lines("`show -json` piped", Speed::Context, ratio, memory_ratio)
    );
    Ok(())
}
