//! `cargo xtask bench jobs`: how fast `slipway worker` processes empty a queue of 1,000
//! cheap jobs, on 1, 2 and 4 workers on this machine (target: scheduling overhead under
//! 20 ms per job).
//!
//! The project has one stack whose only content is an output, in a stage `dev`, with its
//! state declared in S3 (workers refuse local state) and delivered once (`slipway deploy`),
//! so that a drift check has a release to check. The engine is the stand-in of `bench
//! overhead`, which answers at once and contacts nothing: what is measured is slipway's
//! own work around a job. Each round queues `--jobs` drift checks of `dev` straight into the
//! record, then starts the workers, each in a folder of its own with a clone of the project,
//! and waits until every job of the round has ended. From the record:
//!
//! - jobs per second: jobs / (last job's end − first job's start);
//! - scheduling overhead per job: on each worker, the time between one job's end and the
//!   next one's start (the claim, the record's writes around a job, reloading the project),
//!   median and p99 over every worker;
//! - queue latency: from a job being queued to its start, p99; with the whole round queued
//!   at once, it is dominated by the backlog and says how long the last jobs waited.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use slipway_store::{JobKind, JobStatus, NewJob, ServiceRecord as _};

use crate::bench_overhead::STAND_IN;
use crate::figure::Figure;
use crate::support::{slipway_binary, target_dir};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Jobs queued in each round.
    #[arg(long, default_value_t = 1000)]
    jobs: usize,
    /// The worker counts to measure, one round each.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    workers: Vec<u16>,
    /// The record the workers share (`postgres://...`); default: an SQLite file in the
    /// benchmark's folder.
    #[arg(long, value_name = "URL")]
    store_url: Option<String>,
    /// Use this slipway binary instead of building `target/release/slipway`.
    #[arg(long, value_name = "PATH")]
    slipway: Option<PathBuf>,
}

const TARGET: Duration = Duration::from_millis(20);

pub fn run(args: Args) -> Result<Vec<Figure>> {
    ensure!(
        args.jobs > 0 && !args.workers.is_empty() && args.workers.iter().all(|w| *w > 0),
        "--jobs and every --workers count must be at least 1"
    );
    let slipway = slipway_binary(args.slipway.as_deref(), &target_dir())?;
    let work = tempfile::tempdir()?;
    let project = work.path().join("project");
    write_project(&project)?;
    let engine = work.path().join(STAND_IN);
    std::os::unix::fs::symlink(std::env::current_exe()?, &engine)
        .context("cannot link the stand-in engine")?;
    let store_url = match &args.store_url {
        Some(url) => url.clone(),
        None => format!("sqlite://{}", work.path().join("record.db").display()),
    };
    let env = Env {
        engine,
        store_url: store_url.clone(),
        artifacts: work.path().join("artifacts"),
    };
    let deployed = env
        .command(&slipway, &project)
        .args(["deploy", "--stage", "dev"])
        .output()
        .context("cannot run slipway deploy")?;
    if !deployed.status.success() {
        bail!(
            "slipway deploy failed ({}):\n{}",
            deployed.status,
            String::from_utf8_lossy(&deployed.stderr)
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let store = runtime.block_on(slipway_store::open(&store_url))?;
    let repo = format!("file://{}", project.display());

    println!(
        "{} drift checks of an outputs-only stack per round, engine: the stand-in, record: {}",
        args.jobs,
        if store_url.starts_with("postgres") {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    println!(
        "| workers | wall | jobs/s | overhead per job, median | p99 | queue latency p99 |\n| --- | --- | --- | --- | --- | --- |"
    );
    let mut figures = Vec::new();
    for (round, &workers) in args.workers.iter().enumerate() {
        let measured = runtime.block_on(round_of(
            &store,
            &slipway,
            &env,
            &repo,
            work.path(),
            round,
            workers,
            args.jobs,
        ))?;
        println!(
            "| {workers} | {:.2} s | {:.1} | {:.1} ms | {:.1} ms | {:.2} s |",
            measured.wall.as_secs_f64(),
            measured.jobs_per_second,
            millis(measured.overhead_median),
            millis(measured.overhead_p99),
            measured.latency_p99.as_secs_f64()
        );
        figures.push(Figure::new(
            &format!("jobs: overhead per job, {workers} worker(s)"),
            format!(
                "{:.1} ms ({:.1} jobs/s)",
                millis(measured.overhead_median),
                measured.jobs_per_second
            ),
            "under 20 ms",
            measured.overhead_median < TARGET,
        ));
    }
    runtime.block_on(store.close());
    Ok(figures)
}

/// What every slipway process of the benchmark is given.
struct Env {
    engine: PathBuf,
    store_url: String,
    artifacts: PathBuf,
}

impl Env {
    fn command(&self, slipway: &Path, dir: &Path) -> Command {
        let mut command = Command::new(slipway);
        command
            .current_dir(dir)
            .env("SLIPWAY_ENGINE", &self.engine)
            .env("SLIPWAY_STORE_URL", &self.store_url)
            .env(
                "SLIPWAY_ARTIFACTS_URL",
                format!("file://{}", self.artifacts.display()),
            )
            .env("SLIPWAY_ACTOR", "bench")
            // A throwaway project, also on a CI runner.
            .env_remove("CI")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    }
}

/// One round's figures.
struct Measured {
    wall: Duration,
    jobs_per_second: f64,
    overhead_median: Duration,
    overhead_p99: Duration,
    latency_p99: Duration,
}

#[allow(clippy::too_many_arguments)]
async fn round_of(
    store: &slipway_store::AnyStore,
    slipway: &Path,
    env: &Env,
    repo: &str,
    work: &Path,
    round: usize,
    workers: u16,
    jobs: usize,
) -> Result<Measured> {
    let mut ids = Vec::with_capacity(jobs);
    for n in 0..jobs {
        let job = store
            .enqueue_job(&NewJob {
                kind: JobKind::Drift,
                repository: "bench".to_owned(),
                git_ref: format!("bench/round-{round}/job-{n}"),
                commit: String::new(),
                stage: Some("dev".to_owned()),
                run_id: None,
                stack: None,
                delivery_id: None,
                requested_by: "bench".to_owned(),
                labels: slipway_store::Labels::default(),
            })
            .await?;
        ids.push(job.id);
    }
    let (first, last) = (ids[0], ids[jobs - 1]);
    let mut children: Vec<Child> = Vec::new();
    for w in 0..workers {
        let home = work.join(format!("round-{round}-worker-{w}"));
        std::fs::create_dir_all(&home)?;
        let child = env
            .command(slipway, &home)
            .args(["worker", "--repo", repo])
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start slipway worker")?;
        children.push(child);
    }
    let ended = loop {
        let recent = store
            .jobs(u32::try_from(jobs).unwrap_or(u32::MAX) + 50)
            .await?;
        let round_jobs: Vec<slipway_store::Job> = recent
            .into_iter()
            .filter(|j| (first..=last).contains(&j.id))
            .collect();
        if round_jobs.len() == jobs
            && round_jobs
                .iter()
                .all(|j| !matches!(j.status, JobStatus::Queued | JobStatus::Running))
        {
            break round_jobs;
        }
        for child in &mut children {
            if let Some(status) = child.try_wait()? {
                bail!("a worker exited early ({status})");
            }
        }
        // Polling the record: the benchmark's own reads are cheap beside a job.
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for child in &mut children {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
    }
    for mut child in children {
        let _ = child.wait();
    }
    // Each job checked the stack: its outcome names the drift check and says in sync.
    let failed: Vec<&slipway_store::Job> = ended
        .iter()
        .filter(|j| {
            j.status != JobStatus::Done
                || !j
                    .outcome
                    .as_deref()
                    .is_some_and(|o| o.starts_with("drift check") && o.ends_with("in sync"))
        })
        .collect();
    if let Some(job) = failed.first() {
        bail!(
            "{} of {jobs} jobs did not end well; job {}: {} ({})",
            failed.len(),
            job.id,
            job.status,
            job.outcome.as_deref().unwrap_or_default()
        );
    }
    // From the first job's start: queueing the round and cloning for the workers is not the
    // queue's throughput.
    let finish = ended
        .iter()
        .filter_map(|j| j.finished_at)
        .map(|at| at.0)
        .max()
        .unwrap_or_default();
    let first_start = ended
        .iter()
        .filter_map(|j| j.started_at)
        .map(|at| at.0)
        .min()
        .unwrap_or_default();
    let wall = Duration::from_millis(
        u64::try_from(finish - first_start)
            .unwrap_or_default()
            .max(1),
    );
    let gaps = gaps_between_jobs(&ended);
    let mut latencies: Vec<u64> = ended
        .iter()
        .filter_map(|j| u64::try_from(j.started_at?.0 - j.queued_at.0).ok())
        .collect();
    latencies.sort_unstable();
    Ok(Measured {
        wall,
        jobs_per_second: jobs as f64 / wall.as_secs_f64().max(f64::EPSILON),
        overhead_median: Duration::from_millis(percentile(&gaps, 50)),
        overhead_p99: Duration::from_millis(percentile(&gaps, 99)),
        latency_p99: Duration::from_millis(percentile(&latencies, 99)),
    })
}

/// On each worker (process), the milliseconds between one job's end and its next job's
/// start, sorted.
fn gaps_between_jobs(jobs: &[slipway_store::Job]) -> Vec<u64> {
    let mut by_worker: std::collections::BTreeMap<(String, u32), Vec<(i64, i64)>> =
        std::collections::BTreeMap::new();
    for job in jobs {
        if let (Some(worker), Some(start), Some(end)) =
            (&job.worker, job.started_at, job.finished_at)
        {
            by_worker
                .entry((worker.host.clone(), worker.pid))
                .or_default()
                .push((start.0, end.0));
        }
    }
    let mut gaps = Vec::new();
    for spans in by_worker.values_mut() {
        spans.sort_unstable();
        for pair in spans.windows(2) {
            gaps.push(u64::try_from(pair[1].0 - pair[0].1).unwrap_or_default());
        }
    }
    gaps.sort_unstable();
    gaps
}

/// The `p`th percentile of sorted values (0 when there are none).
fn percentile(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (sorted.len() * p).div_ceil(100).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn write_project(root: &Path) -> Result<()> {
    let stack = root.join("stacks/outputs");
    std::fs::create_dir_all(&stack)?;
    std::fs::write(
        root.join("slipway.hcl"),
        "project {\n  name   = \"jobs\"\n  engine = \"terraform\"\n}\n\n\
         # Declared in S3, as workers need; the stand-in engine never reaches it.\n\
         state {\n  backend                     = \"s3\"\n  bucket                      = \"bench-state\"\n  region                      = \"us-east-1\"\n  endpoint                    = \"http://127.0.0.1:9\"\n  force_path_style            = true\n  skip_credentials_validation = true\n}\n\n\
         stage \"dev\" {}\n",
    )?;
    std::fs::write(stack.join("stack.hcl"), "stack {}\n")?;
    std::fs::write(
        stack.join("main.tf"),
        "output \"id\" {\n  value = \"outputs\"\n}\n",
    )?;
    std::fs::write(root.join(".gitignore"), ".slipway/\n")?;
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.com",
            "commit",
            "-q",
            "-m",
            "one outputs-only stack",
        ],
    ] {
        let status = Command::new("git").args(args).current_dir(root).status()?;
        ensure!(status.success(), "git {args:?} failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_rank_from_the_bottom() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50), 50);
        assert_eq!(percentile(&values, 99), 99);
        assert_eq!(percentile(&[7], 99), 7);
        assert_eq!(percentile(&[], 50), 0);
    }

    #[test]
    fn gaps_are_measured_per_worker_between_its_own_jobs() {
        let job = |pid: u32, start: i64, end: i64| slipway_store::Job {
            id: start,
            kind: JobKind::Drift,
            repository: String::new(),
            git_ref: String::new(),
            commit: String::new(),
            stage: None,
            run_id: None,
            stack: None,
            delivery_id: None,
            requested_by: String::new(),
            queued_at: slipway_store::UnixMillis(0),
            status: JobStatus::Done,
            started_at: Some(slipway_store::UnixMillis(start)),
            finished_at: Some(slipway_store::UnixMillis(end)),
            superseded_by: None,
            worker: Some(slipway_store::EngineProcess {
                pid,
                process_started: None,
                host: "h".to_owned(),
            }),
            outcome: None,
            heartbeat_at: None,
            labels: slipway_store::Labels::default(),
        };
        // Worker 1: 0-10, 13-20; worker 2: 5-9, 30-40. Interleaved, but each its own.
        let gaps =
            gaps_between_jobs(&[job(1, 0, 10), job(2, 5, 9), job(1, 13, 20), job(2, 30, 40)]);
        assert_eq!(gaps, vec![3, 21]);
    }
}
