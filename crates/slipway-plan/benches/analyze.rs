//! Benchmark: slipway's plan analysis against `jq` on a generated 100,000-resource plan,
//! through the library's path (a plan file read by `read_plan_file`).
//!
//! Generates a plan JSON with mixed actions and realistic nested values into a temporary
//! file (`slipway_plan::bench::generate`), then times, in the same run, (a) slipway reading
//! and measuring it in a child process (this binary re-executed with `--child PATH`, so its
//! peak memory, VmHWM, is its own) and (b) `jq` computing the same per-action counts. Both
//! counts must agree. Targets: at least 20x faster than jq; peak memory at most the file's
//! size. The CLI's path (`show -json` piped into the reader) is measured by
//! `cargo bench -p slipway-runner --bench plan_stream`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use slipway_plan::bench::{
    JQ_FILTER, MEMORY_TARGET, SPEED_TARGET, Speed, figure_lines, generate, peak_memory_kib,
};
use slipway_plan::{StackLinks, StatefulTypes, blast_radius, read_plan_file};

const RESOURCES: usize = 100_000;
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
        return match args.get(at + 1) {
            Some(path) => child(Path::new(path)),
            None => {
                eprintln!("--child needs a plan path");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(at) = args.iter().position(|a| a == "--generate") {
        // Writes the plan only, for profiling the child by hand.
        return match args
            .get(at + 1)
            .map(|path| generate(Path::new(path), RESOURCES))
        {
            Some(Ok(_)) => ExitCode::SUCCESS,
            _ => ExitCode::FAILURE,
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

/// The measured work: read the plan and compute its blast radius, then report the
/// per-action counts and this process's peak resident memory.
fn child(path: &Path) -> ExitCode {
    let plan = match read_plan_file(path) {
        Ok(plan) => plan,
        Err(error) => {
            eprintln!("{error}");
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
    let counts = serde_json::to_string(&radius.actions).unwrap_or_default();
    println!("{counts}");
    println!("{peak_kib}");
    ExitCode::SUCCESS
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

    // Best of a few runs each, alternating, so load from other processes on the machine
    // skews neither side more than the other.
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut slipway_time = Duration::MAX;
    let mut jq_time = Duration::MAX;
    let mut slipway_counts = BTreeMap::new();
    let mut jq_counts = BTreeMap::new();
    let mut peak_kib: u64 = 0;
    for _ in 0..RUNS {
        let (output, elapsed) = timed(Command::new(&exe).arg("--child").arg(&path))?;
        slipway_time = slipway_time.min(elapsed);
        let mut lines = output.lines();
        slipway_counts =
            serde_json::from_str(lines.next().unwrap_or_default()).map_err(|e| e.to_string())?;
        let peak: u64 = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or("child reported no peak memory")?;
        peak_kib = peak_kib.max(peak);

        let (jq_output, elapsed) = timed(Command::new("jq").arg("-c").arg(JQ_FILTER).arg(&path))?;
        jq_time = jq_time.min(elapsed);
        jq_counts = serde_json::from_str(jq_output.trim()).map_err(|e| e.to_string())?;
    }

    if slipway_counts != jq_counts || slipway_counts != expected {
        return Err(format!(
            "counts disagree:\n  slipway   {slipway_counts:?}\n  jq        {jq_counts:?}\n  generated {expected:?}"
        ));
    }
    let ratio = jq_time.as_secs_f64() / slipway_time.as_secs_f64();
    let throughput = size as f64 / 1e6 / slipway_time.as_secs_f64();
    let peak = peak_kib * 1024;
    let memory_ratio = peak as f64 / size as f64;
    println!("counts agree: {slipway_counts:?}");
    println!(
        "library path, best of {RUNS}: slipway {slipway_time:.2?} ({throughput:.0} MB/s), jq {jq_time:.2?}: slipway is {ratio:.1}x faster (target >= {SPEED_TARGET}x)"
    );
    println!(
        "slipway peak memory (VmHWM): {:.1} MB = {memory_ratio:.2}x the file's {:.1} MB (target <= {MEMORY_TARGET}x)",
        peak as f64 / 1e6,
        size as f64 / 1e6
    );
    println!(
        "{}",
        figure_lines("file", Speed::Target, ratio, memory_ratio)
    );
    Ok(())
}

fn timed(command: &mut Command) -> Result<(String, Duration), String> {
    let started = Instant::now();
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok((
        String::from_utf8_lossy(&output.stdout).into_owned(),
        elapsed,
    ))
}
