//! `cargo xtask bench serve`: `slipway serve` under load on loopback. A closed loop of
//! readers (100 by default) asks for the release matrix and a finished run's events, as JSON
//! and as server-sent events, while a paced sender posts signed GitHub pushes (50 a second by
//! default, each a new delivery of a new commit) for a fixed time (60 s by default).
//!
//! The project is generated in a temporary folder (eight stacks, three stages, one commit);
//! its record is seeded through `slipway-store` before the server starts: six finished runs
//! of 113 events each, their artifacts and the releases they made. The server runs with
//! `--no-jobs`, so the queued pushes stay in the record and the measure is the intake and the
//! API, not Terraform.
//!
//! The load is bounded: a fixed number of readers, each with one request in flight, and a
//! fixed number of webhooks, each due at its own time and sent by one of a few senders (a
//! slow answer makes the following ones late, which is reported, rather than piling them up).
//! Latencies go into histograms of fixed size. Targets: no errors, and webhooks acknowledged
//! within 50 ms at the 99th percentile. Missing the latency target is reported, not failed:
//! the command fails only on errors, on a delivery acknowledged but not in the record, or on
//! a server that died or did not stop cleanly on SIGTERM.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;
use slipway_store::{
    Artifact, NewRelease, NewRun, RunStatus, ServiceRecord as _, Store as _, UnixMillis,
};

use crate::figure::{Figure, Report};
use crate::section;
use crate::support::{mix, slipway_binary, target_dir};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How long the load runs, in seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Readers, each in a closed loop with one request in flight.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Signed GitHub push webhooks sent per second, each a new delivery of a new commit.
    #[arg(long, default_value_t = 50)]
    webhooks_per_second: u32,
    /// Use this slipway binary instead of building `target/release/slipway`.
    #[arg(long, value_name = "PATH")]
    slipway: Option<PathBuf>,
}

/// The webhooks' repository, the one the server is told to accept.
const REPOSITORY: &str = "acme/bench";
const SECRET: &str = "the bench's webhook secret";
const STAGES: &[&str] = &["dev", "test", "prod"];
const STACKS: &[&str] = &[
    "network", "dns", "data", "cache", "queue", "search", "app", "edge",
];
const RUNS: usize = 6;
/// Every request, the body included, must be answered within this or counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The latency target of a webhook's acknowledgement at the 99th percentile.
const ACK_TARGET: Duration = Duration::from_millis(50);
/// How long after a run finished the server's event stream still waits for late events
/// (`SETTLE` in slipway-server's `live.rs`); the load starts after it, so that every stream
/// of a seeded run ends once its events are sent.
const SETTLE: Duration = Duration::from_millis(2500);

pub fn run(args: Args) -> Result<Report> {
    ensure!(
        args.seconds > 0 && args.clients > 0 && args.webhooks_per_second > 0,
        "--seconds, --clients and --webhooks-per-second must be at least 1"
    );
    let slipway = slipway_binary(args.slipway.as_deref(), &target_dir())?;
    let work = tempfile::tempdir()?;
    let project = work.path().join("project");

    section("project and record");
    let seeding = Instant::now();
    write_project(&project)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let url = slipway_store::default_url(&project.join(slipway_core::config::DEFAULT_DATA_DIR));
    let seeded = runtime.block_on(seed(&url))?;
    let token = slipway_command(&slipway, &project)
        .args(["token", "create", "--actor", "bench", "--role", "viewer"])
        .output()
        .context("cannot run slipway token create")?;
    ensure!(
        token.status.success(),
        "slipway token create failed: {}",
        String::from_utf8_lossy(&token.stderr)
    );
    let token = String::from_utf8(token.stdout)?.trim().to_owned();
    eprintln!(
        "{} stacks, {} stages, {} runs with {} events, {} releases on record",
        STACKS.len(),
        STAGES.len(),
        seeded.runs.len(),
        seeded.events,
        seeded.releases
    );

    section("slipway serve --no-jobs on 127.0.0.1:0");
    let mut server = Server::start(&slipway, &project)?;
    eprintln!("listening on {}", server.address);
    if let Some(wait) = SETTLE.checked_sub(seeding.elapsed()) {
        std::thread::sleep(wait);
    }

    section(&format!(
        "load: {} readers, {} webhooks/s for {} s",
        args.clients, args.webhooks_per_second, args.seconds
    ));
    let template = push_template()?;
    let load = Load {
        base: format!("http://{}", server.address),
        token: format!("Bearer {token}"),
        runs: seeded.runs.clone(),
        started: Instant::now(),
        seconds: args.seconds,
        webhooks: args.seconds * u64::from(args.webhooks_per_second),
        rate: f64::from(args.webhooks_per_second),
        next_webhook: AtomicU64::new(0),
        template,
        salt: mix(u64::from(std::process::id()) ^ UnixMillis::now().0.unsigned_abs()),
    };
    let (reads, webhooks, elapsed) = drive(&load, args.clients, args.webhooks_per_second);
    let server_cpu = server.cpu_seconds();
    let server_peak = server.peak_memory_kib();
    let client_cpu = cpu_seconds("/proc/self/stat");

    section("stopping the server (SIGTERM)");
    let died = server.child.try_wait()?;
    let stop = server.stop()?;
    let (log_lines, problems, tail) = server.log();

    section("the record");
    let kept = runtime.block_on(kept_deliveries(&url))?;
    let lost: Vec<&String> = webhooks
        .acknowledged
        .iter()
        .filter(|id| !kept.deliveries.contains(&format!("github:{id}")))
        .collect();

    // The report.
    section("result");
    let mut all_reads = Histogram::new();
    for kind in READ_KINDS {
        all_reads.merge(&reads.latency[kind as usize]);
    }
    let read_errors: u64 = reads.errors.iter().map(|e| e.count).sum();
    let errors = read_errors + webhooks.errors.count;
    let secs = elapsed.as_secs_f64();
    println!(
        "slipway serve on loopback: {} readers and {} signed pushes/s for {} s ({:.1} s measured)",
        args.clients, args.webhooks_per_second, args.seconds, secs
    );
    println!(
        "{:<28} {:>8} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "", "requests", "req/s", "p50", "p99", "max", "errors"
    );
    for kind in READ_KINDS {
        row(
            kind.label(),
            &reads.latency[kind as usize],
            reads.errors[kind as usize].count,
            secs,
        );
    }
    row("all reads", &all_reads, read_errors, secs);
    row(
        "webhook acknowledgements",
        &webhooks.ack,
        webhooks.errors.count,
        secs,
    );
    println!(
        "webhooks: {} of {} sent, {:.1}/s achieved (asked {}/s); sent late by p99 {}, max {}; answers: {}",
        webhooks.ack.count() + webhooks.errors.count,
        load.webhooks,
        (webhooks.ack.count() + webhooks.errors.count) as f64 / secs,
        args.webhooks_per_second,
        ms(webhooks.lag.quantile(0.99)),
        ms(webhooks.lag.max()),
        webhooks
            .statuses
            .iter()
            .map(|(status, n)| format!("{n} {status}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (what, errors) in READ_KINDS
        .iter()
        .map(|k| (k.label(), &reads.errors[*k as usize]))
        .chain([("webhooks", &webhooks.errors)])
    {
        for sample in &errors.samples {
            println!("  error ({what}): {sample}");
        }
    }
    println!(
        "record: {} deliveries kept for {} acknowledged with 202 ({}), {} jobs queued ({} superseded by newer pushes)",
        kept.deliveries.len(),
        webhooks.acknowledged.len(),
        if lost.is_empty() {
            "every one kept".to_owned()
        } else {
            format!("{} MISSING, such as {}", lost.len(), lost[0])
        },
        kept.jobs,
        kept.superseded
    );
    println!(
        "CPU (2 cores shared by server and load): server {} s, load generator {} s, of {:.0} s; server peak memory {}",
        opt(server_cpu.map(|s| format!("{s:.1}"))),
        opt(client_cpu.map(|s| format!("{s:.1}"))),
        secs * std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64),
        opt(server_peak.map(|k| format!("{:.0} MiB", k as f64 / 1024.0)))
    );
    let stopped_cleanly = died.is_none() && stop.clean;
    println!(
        "server: {}; {} log lines, {} warnings or errors",
        match (died, &stop) {
            (Some(status), _) => format!("DIED during the load ({status})"),
            (None, stop) if stop.clean =>
                format!("stopped cleanly on SIGTERM in {}", ms(stop.took)),
            (None, stop) => format!("did NOT stop cleanly on SIGTERM: {}", stop.how),
        },
        log_lines,
        problems.len()
    );
    for line in problems.iter().take(5) {
        println!("  log: {line}");
    }
    if !stopped_cleanly {
        for line in &tail {
            eprintln!("  log: {line}");
        }
    }
    let ack_p99 = webhooks.ack.quantile(0.99);
    let pass_errors = errors == 0;
    let pass_ack = webhooks.ack.count() > 0 && ack_p99 < ACK_TARGET;
    println!(
        "errors: {errors} (target 0) {}",
        if pass_errors { "PASS" } else { "FAIL" }
    );
    println!(
        "webhook acknowledgement p99: {} (target under {}) {}",
        ms(ack_p99),
        ms(ACK_TARGET),
        if pass_ack { "PASS" } else { "FAIL" }
    );
    Ok(Report {
        figures: vec![
            Figure::new(
                "serve: errors under load",
                errors.to_string(),
                "0",
                pass_errors,
            ),
            Figure::new(
                "serve: webhook acknowledgement p99",
                ms(ack_p99),
                &format!("under {}", ms(ACK_TARGET)),
                pass_ack,
            ),
            Figure::new(
                "serve: acknowledged deliveries kept",
                format!(
                    "{} of {}",
                    webhooks.acknowledged.len() - lost.len(),
                    webhooks.acknowledged.len()
                ),
                "all",
                lost.is_empty(),
            ),
            Figure::new(
                "serve: stops cleanly on SIGTERM",
                (if stopped_cleanly { "yes" } else { "no" }).to_owned(),
                "yes",
                stopped_cleanly,
            ),
        ],
        failed: !(pass_errors && lost.is_empty() && stopped_cleanly),
    })
}

fn row(label: &str, latency: &Histogram, errors: u64, secs: f64) {
    println!(
        "{:<28} {:>8} {:>9.0} {:>9} {:>9} {:>9} {:>7}",
        label,
        latency.count() + errors,
        (latency.count() + errors) as f64 / secs,
        ms(latency.quantile(0.50)),
        ms(latency.quantile(0.99)),
        ms(latency.max()),
        errors
    );
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

fn opt(value: Option<String>) -> String {
    value.unwrap_or_else(|| "?".to_owned())
}

// --- the project and its record ------------------------------------------------------------

/// Writes a small project of provider-free stacks and commits it.
fn write_project(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut config = "project {\n  name = \"bench\"\n}\n".to_owned();
    for stage in STAGES {
        config.push_str(&format!(
            "\nstage \"{stage}\" {{\n  variables = {{ env = instance.name }}\n{}}}\n",
            if *stage == "prod" {
                "  approval  = true\n"
            } else {
                ""
            }
        ));
    }
    std::fs::write(dir.join("slipway.hcl"), config)?;
    for (i, stack) in STACKS.iter().enumerate() {
        let folder = dir.join("stacks").join(stack);
        std::fs::create_dir_all(&folder)?;
        let mut hcl = format!("stack {{\n  team = \"team{}\"\n}}\n", i % 3);
        if i > 0 {
            hcl.push_str(&format!(
                "\ndependency \"up\" {{\n  path = \"../{}\"\n}}\n",
                STACKS[(i - 1) / 2]
            ));
        }
        std::fs::write(folder.join("stack.hcl"), hcl)?;
        std::fs::write(
            folder.join("main.tf"),
            format!(
                "variable \"env\" {{}}\n\noutput \"name\" {{\n  value = \"{stack}-${{var.env}}\"\n}}\n"
            ),
        )?;
    }
    std::fs::write(dir.join(".gitignore"), ".slipway/\n")?;
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &["commit", "-q", "-m", "bench project"],
    ] {
        let status = Command::new("git")
            .current_dir(dir)
            .args(["-c", "commit.gpgsign=false"])
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Bench")
            .env("GIT_AUTHOR_EMAIL", "bench@example.com")
            .env("GIT_COMMITTER_NAME", "Bench")
            .env("GIT_COMMITTER_EMAIL", "bench@example.com")
            .status()
            .context("cannot run git")?;
        ensure!(status.success(), "git {args:?} failed");
    }
    Ok(())
}

struct Seeded {
    /// Each finished run and how many events it has.
    runs: Vec<(i64, usize)>,
    events: usize,
    releases: usize,
}

/// Fills the record with finished runs, their events, artifacts and releases, as runs of
/// `slipway run` would have left them.
async fn seed(url: &str) -> Result<Seeded> {
    let store = slipway_store::open(url).await?;
    let mut seeded = Seeded {
        runs: Vec::new(),
        events: 0,
        releases: 0,
    };
    for r in 0..RUNS {
        let commit = fake_commit(r as u64, 0x5eed);
        let run = store
            .create_run(&NewRun {
                commit: commit.clone(),
                trigger: "push".to_owned(),
                actor: "octocat".to_owned(),
            })
            .await?;
        let mut events = vec![
            json!({"event": "run_started", "run": run.id, "commit": commit}),
            json!({"event": "changes_detected", "base": null, "head": commit,
                   "all_changed_because": "the first run", "stacks": STACKS}),
        ];
        for stack in STACKS {
            let artifact = format!(
                "{:016x}{:016x}",
                mix(r as u64 * 31 + 1),
                mix(stack.len() as u64 + r as u64)
            );
            store
                .record_artifact(&Artifact {
                    id: format!("{artifact}{stack}"),
                    stack: (*stack).to_owned(),
                    commit: commit.clone(),
                    created_at: UnixMillis::now(),
                    size: 4096,
                    manifest: json!({"files": [format!("stacks/{stack}/main.tf")]}).to_string(),
                })
                .await?;
            events.push(json!({"event": "artifact_built", "stack": stack,
                               "artifact": format!("{artifact}{stack}"), "short": &artifact[..12], "new": true}));
        }
        for stage in STAGES {
            events.push(json!({"event": "walk_started", "stage": stage, "instance": stage,
                               "operation": "apply", "stacks": STACKS, "run_dir": "/srv/bench/.slipway/runs/1"}));
            for stack in STACKS {
                for step in ["init", "plan", "apply"] {
                    events.push(
                        json!({"event": "step_started", "stage": stage, "instance": stage,
                                       "stack": stack, "step": step}),
                    );
                }
            }
            for stack in STACKS {
                events.push(json!({"event": "stack_finished", "stage": stage, "instance": stage,
                                   "stack": stack, "outcome": {"status": "applied", "changed": true},
                                   "elapsed_ms": 4200, "log": format!("/srv/bench/.slipway/logs/{stack}.log"),
                                   "plan": {"add": 1, "change": 0, "destroy": 0, "import": 0}}));
                let artifact = format!(
                    "{:016x}{:016x}{stack}",
                    mix(r as u64 * 31 + 1),
                    mix(stack.len() as u64 + r as u64)
                );
                store
                    .record_release(&NewRelease {
                        stage: (*stage).to_owned(),
                        stack: (*stack).to_owned(),
                        artifact_id: artifact,
                        commit: commit.clone(),
                        released_by: "octocat".to_owned(),
                        run_id: Some(run.id),
                        fence: None,
                    })
                    .await?;
                seeded.releases += 1;
            }
            events.push(
                json!({"event": "stage_finished", "stage": stage, "planned_only": false,
                               "succeeded": STACKS.len(), "total": STACKS.len(),
                               "run_dir": "/srv/bench/.slipway/runs/1", "failed": []}),
            );
        }
        events.push(
            json!({"event": "run_finished", "run": run.id, "delivered": true, "stage": null}),
        );
        store.append_run_events(run.id, &events).await?;
        store.finish_run(run.id, RunStatus::Succeeded).await?;
        seeded.events += events.len();
        seeded.runs.push((run.id, events.len()));
    }
    store.close().await;
    Ok(seeded)
}

/// A commit hash (40 hex digits) of its own for each `n`.
fn fake_commit(n: u64, salt: u64) -> String {
    format!(
        "{:016x}{:016x}{:08x}",
        mix(n ^ salt),
        mix(!n ^ salt),
        n as u32
    )
}

struct Kept {
    deliveries: HashSet<String>,
    jobs: usize,
    superseded: usize,
}

/// What the record holds of the webhooks once the server stopped.
async fn kept_deliveries(url: &str) -> Result<Kept> {
    let store = slipway_store::open(url).await?;
    let deliveries = store.deliveries(u32::MAX).await?;
    let jobs = store.jobs(u32::MAX).await?;
    store.close().await;
    Ok(Kept {
        deliveries: deliveries.into_iter().map(|d| d.id).collect(),
        jobs: jobs.iter().filter(|j| j.delivery_id.is_some()).count(),
        superseded: jobs
            .iter()
            .filter(|j| j.status == slipway_store::JobStatus::Superseded)
            .count(),
    })
}

// --- the server ----------------------------------------------------------------------------

/// `slipway` in the project, with nothing from the caller's environment that would point it
/// elsewhere.
fn slipway_command(slipway: &Path, project: &Path) -> Command {
    let mut command = Command::new(slipway);
    command
        .current_dir(project)
        .env_remove("CI")
        .env_remove("SLIPWAY_PROJECT_DIR")
        .env_remove("SLIPWAY_STORE_URL")
        .env_remove("SLIPWAY_ARTIFACTS_URL")
        .env_remove("SLIPWAY_ENGINE")
        .env_remove("SLIPWAY_GITLAB_WEBHOOK_TOKEN")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    command
}

struct Server {
    child: Child,
    address: String,
    log: Arc<Mutex<Log>>,
}

/// What the server wrote to stderr, in bounded memory.
#[derive(Default)]
struct Log {
    lines: u64,
    /// The first warnings and errors.
    problems: Vec<String>,
    /// The last lines.
    tail: VecDeque<String>,
}

struct Stop {
    clean: bool,
    took: Duration,
    how: String,
}

impl Server {
    fn start(slipway: &Path, project: &Path) -> Result<Self> {
        let mut child = slipway_command(slipway, project)
            .args(["serve", "--listen", "127.0.0.1:0", "--no-jobs"])
            .args(["--allow-repo", REPOSITORY])
            .env("SLIPWAY_GITHUB_WEBHOOK_SECRET", SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start slipway serve")?;
        let stderr = BufReader::new(child.stderr.take().context("no stderr")?);
        let log = Arc::new(Mutex::new(Log::default()));
        let (found, address) = mpsc::channel();
        let kept = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("slipway serve: listening on http://") {
                    let _ = found.send(rest.to_owned());
                }
                let Ok(mut log) = kept.lock() else { return };
                log.lines += 1;
                if (line.contains(" WARN ") || line.contains(" ERROR ") || line.contains("panic"))
                    && log.problems.len() < 20
                {
                    log.problems.push(line.clone());
                }
                if log.tail.len() == 20 {
                    log.tail.pop_front();
                }
                log.tail.push_back(line);
            }
        });
        match address.recv_timeout(Duration::from_secs(60)) {
            Ok(address) => Ok(Self {
                child,
                address,
                log,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let tail = log.lock().map(|l| l.tail.clone()).unwrap_or_default();
                bail!(
                    "slipway serve did not start:\n{}",
                    tail.into_iter().collect::<Vec<_>>().join("\n")
                )
            }
        }
    }

    /// Sends SIGTERM and waits up to 30 s for the server to exit.
    fn stop(&mut self) -> Result<Stop> {
        let started = Instant::now();
        if self.child.try_wait()?.is_none() {
            let status = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status()
                .context("cannot run kill")?;
            ensure!(status.success(), "kill -TERM failed");
        }
        loop {
            if let Some(status) = self.child.try_wait()? {
                let took = started.elapsed();
                // The log thread sees the last line once the pipe closes.
                std::thread::sleep(Duration::from_millis(100));
                let said_so = self
                    .log
                    .lock()
                    .is_ok_and(|l| l.tail.iter().any(|t| t == "slipway serve: stopped"));
                return Ok(Stop {
                    clean: status.success() && said_so,
                    took,
                    how: if status.success() {
                        "exited 0 without saying it stopped".to_owned()
                    } else {
                        format!("{status}")
                    },
                });
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Ok(Stop {
                    clean: false,
                    took: started.elapsed(),
                    how: "still running 30 s after SIGTERM; killed".to_owned(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> (u64, Vec<String>, Vec<String>) {
        self.log.lock().map_or_else(
            |_| (0, Vec::new(), Vec::new()),
            |l| {
                (
                    l.lines,
                    l.problems.clone(),
                    l.tail.iter().cloned().collect(),
                )
            },
        )
    }

    fn cpu_seconds(&self) -> Option<f64> {
        cpu_seconds(&format!("/proc/{}/stat", self.child.id()))
    }

    /// The server's peak resident memory (`VmHWM`), in KiB.
    fn peak_memory_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Server {
    /// A server left behind by a bench that failed half-way is killed.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// User and system CPU time of a process from its `/proc/PID/stat` (Linux; in the kernel's
/// fixed 100 ticks a second).
fn cpu_seconds(stat: &str) -> Option<f64> {
    let text = std::fs::read_to_string(stat).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / 100.0)
}

// --- the load ------------------------------------------------------------------------------

struct Load {
    base: String,
    token: String,
    runs: Vec<(i64, usize)>,
    started: Instant,
    seconds: u64,
    webhooks: u64,
    rate: f64,
    next_webhook: AtomicU64,
    template: Value,
    salt: u64,
}

#[derive(Debug, Clone, Copy)]
enum ReadKind {
    Releases = 0,
    EventsJson = 1,
    EventsSse = 2,
}

const READ_KINDS: [ReadKind; 3] = [
    ReadKind::Releases,
    ReadKind::EventsJson,
    ReadKind::EventsSse,
];

impl ReadKind {
    fn label(self) -> &'static str {
        match self {
            Self::Releases => "GET /releases",
            Self::EventsJson => "GET /runs/N/events (JSON)",
            Self::EventsSse => "GET /runs/N/events (SSE)",
        }
    }
}

#[derive(Default)]
struct Errors {
    count: u64,
    /// The first few, to show.
    samples: Vec<String>,
}

impl Errors {
    fn add(&mut self, error: String) {
        self.count += 1;
        if self.samples.len() < 3 {
            self.samples.push(error);
        }
    }

    fn merge(&mut self, other: Self) {
        self.count += other.count;
        for sample in other.samples {
            if self.samples.len() < 3 {
                self.samples.push(sample);
            }
        }
    }
}

struct Reads {
    latency: [Histogram; 3],
    errors: [Errors; 3],
}

impl Reads {
    fn new() -> Self {
        Self {
            latency: [Histogram::new(), Histogram::new(), Histogram::new()],
            errors: Default::default(),
        }
    }

    fn merge(&mut self, other: Self) {
        for (mine, theirs) in self.latency.iter_mut().zip(&other.latency) {
            mine.merge(theirs);
        }
        for (mine, theirs) in self.errors.iter_mut().zip(other.errors) {
            mine.merge(theirs);
        }
    }
}

struct Webhooks {
    ack: Histogram,
    /// How late each was sent after its due time.
    lag: Histogram,
    errors: Errors,
    statuses: BTreeMap<String, u64>,
    /// The delivery ids answered 202.
    acknowledged: Vec<String>,
}

impl Webhooks {
    fn new() -> Self {
        Self {
            ack: Histogram::new(),
            lag: Histogram::new(),
            errors: Errors::default(),
            statuses: BTreeMap::new(),
            acknowledged: Vec::new(),
        }
    }

    fn merge(&mut self, other: Self) {
        self.ack.merge(&other.ack);
        self.lag.merge(&other.lag);
        self.errors.merge(other.errors);
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.acknowledged.extend(other.acknowledged);
    }
}

/// Runs the readers and the webhook senders until the time is up and every webhook was sent.
fn drive(load: &Load, clients: usize, rate: u32) -> (Reads, Webhooks, Duration) {
    // Enough senders that acknowledgements of up to 200 ms keep the pace.
    let senders = (rate as usize).div_ceil(5).clamp(2, 64);
    let mut reads = Reads::new();
    let mut webhooks = Webhooks::new();
    std::thread::scope(|scope| {
        let readers: Vec<_> = (0..clients)
            .map(|i| scope.spawn(move || reader(load, i)))
            .collect();
        let senders: Vec<_> = (0..senders)
            .map(|_| scope.spawn(move || sender(load)))
            .collect();
        for reader in readers {
            if let Ok(stats) = reader.join() {
                reads.merge(stats);
            }
        }
        for sender in senders {
            if let Ok(stats) = sender.join() {
                webhooks.merge(stats);
            }
        }
    });
    (reads, webhooks, load.started.elapsed())
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(REQUEST_TIMEOUT).build()
}

/// One reader: requests one after the other until the time is up, taking turns between the
/// release matrix, a run's events as JSON, the matrix again, and a run's events as a stream.
fn reader(load: &Load, i: usize) -> Reads {
    let agent = agent();
    let deadline = load.started + Duration::from_secs(load.seconds);
    let mut stats = Reads::new();
    let mut body = String::with_capacity(64 * 1024);
    let mut turn = i;
    while Instant::now() < deadline {
        let kind = match turn % 4 {
            0 | 2 => ReadKind::Releases,
            1 => ReadKind::EventsJson,
            _ => ReadKind::EventsSse,
        };
        let (run, events) = load.runs[(turn / 4 + i) % load.runs.len()];
        turn += 1;
        let started = Instant::now();
        match read_once(load, &agent, kind, run, events, &mut body) {
            Ok(()) => stats.latency[kind as usize].record(started.elapsed()),
            Err(error) => stats.errors[kind as usize].add(format!("{error:#}")),
        }
    }
    stats
}

fn read_once(
    load: &Load,
    agent: &ureq::Agent,
    kind: ReadKind,
    run: i64,
    events: usize,
    body: &mut String,
) -> Result<()> {
    let url = match kind {
        ReadKind::Releases => format!("{}/api/v1/releases", load.base),
        ReadKind::EventsJson | ReadKind::EventsSse => {
            format!("{}/api/v1/runs/{run}/events", load.base)
        }
    };
    let mut request = agent.get(&url).set("Authorization", &load.token);
    if let ReadKind::EventsSse = kind {
        request = request.set("Accept", "text/event-stream");
    }
    let response = answer(request.call())?;
    let content_type = response.content_type().to_owned();
    body.clear();
    response
        .into_reader()
        .read_to_string(body)
        .context("reading the body")?;
    match kind {
        ReadKind::Releases => ensure!(
            content_type == "application/json"
                && body.matches("\"commit\":").count() == STACKS.len() * STAGES.len(),
            "not the release matrix: {}",
            body.chars().take(200).collect::<String>()
        ),
        ReadKind::EventsJson => {
            let seen = body.matches("\"seq\":").count();
            ensure!(
                content_type == "application/json" && seen == events,
                "{seen} of run {run}'s {events} events ({content_type})"
            );
        }
        ReadKind::EventsSse => {
            let seen = body.lines().filter(|line| line.starts_with("id:")).count();
            ensure!(
                content_type == "text/event-stream" && seen == events,
                "{seen} of run {run}'s {events} events streamed ({content_type})"
            );
        }
    }
    Ok(())
}

/// A response with a 2xx status, or what went wrong.
fn answer(result: Result<ureq::Response, ureq::Error>) -> Result<ureq::Response> {
    match result {
        Ok(response) => Ok(response),
        Err(ureq::Error::Status(code, response)) => {
            let text = response.into_string().unwrap_or_default();
            bail!(
                "HTTP {code}: {}",
                text.chars().take(200).collect::<String>()
            )
        }
        Err(ureq::Error::Transport(error)) => bail!("{error}"),
    }
}

/// The payload GitHub documents for a push, from the server's test fixtures.
fn push_template() -> Result<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/slipway-server/tests/fixtures/github/push.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut push: Value = serde_json::from_str(&text)?;
    push["repository"]["full_name"] = json!(REPOSITORY);
    push["repository"]["name"] = json!("bench");
    Ok(push)
}

/// One webhook sender: takes the next webhook, waits for its time, sends it, until all were.
fn sender(load: &Load) -> Webhooks {
    let agent = agent();
    let mut stats = Webhooks::new();
    let url = format!("{}/webhooks/github", load.base);
    let key = SECRET.as_bytes();
    loop {
        let n = load.next_webhook.fetch_add(1, Ordering::Relaxed);
        if n >= load.webhooks {
            break;
        }
        let due = load.started + Duration::from_secs_f64(n as f64 / load.rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let commit = fake_commit(n, load.salt);
        let before = fake_commit(n.wrapping_sub(1), load.salt);
        let delivery = delivery_id(n, load.salt);
        let mut push = load.template.clone();
        push["after"] = json!(commit);
        push["before"] = json!(before);
        push["head_commit"]["id"] = json!(commit);
        if let Some(first) = push["commits"].get_mut(0) {
            first["id"] = json!(commit);
        }
        let body = serde_json::to_vec(&push).unwrap_or_default();
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(&body);
        let signature: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let started = Instant::now();
        stats.lag.record(started.saturating_duration_since(due));
        let sent = agent
            .post(&url)
            .set("Content-Type", "application/json")
            .set("X-GitHub-Event", "push")
            .set("X-GitHub-Delivery", &delivery)
            .set("X-Hub-Signature-256", &format!("sha256={signature}"))
            .send_bytes(&body);
        let answered = answer(sent).and_then(|response| {
            let status = response.status();
            let text = response.into_string().context("reading the answer")?;
            let answer: Value = serde_json::from_str(&text).context("the answer is not JSON")?;
            Ok((status, answer["status"].as_str().unwrap_or("?").to_owned()))
        });
        let took = started.elapsed();
        match answered {
            Ok((status, what)) => {
                stats.ack.record(took);
                *stats.statuses.entry(what).or_default() += 1;
                if status == 202 {
                    stats.acknowledged.push(delivery);
                }
            }
            Err(error) => stats.errors.add(format!("{error:#}")),
        }
    }
    stats
}

/// A delivery id shaped like GitHub's (a UUID), of its own for each `n`.
fn delivery_id(n: u64, salt: u64) -> String {
    let (a, b) = (mix(n.wrapping_add(salt)), mix(n ^ salt.rotate_left(17)));
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

// --- latencies -----------------------------------------------------------------------------

/// Latencies in microseconds, in buckets under 2% wide: exact below 128 µs, then 64 buckets
/// per doubling, up to 71 minutes. Fixed size however many are recorded.
#[derive(Clone)]
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

const SUB_BITS: u32 = 7;

impl Histogram {
    fn new() -> Self {
        Self {
            counts: vec![0; bucket(u64::from(u32::MAX)) + 1],
            total: 0,
            max: 0,
        }
    }

    fn record(&mut self, duration: Duration) {
        let micros = u64::try_from(duration.as_micros())
            .unwrap_or(u64::MAX)
            .min(u64::from(u32::MAX));
        self.counts[bucket(micros)] += 1;
        self.total += 1;
        self.max = self.max.max(micros);
    }

    fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    fn count(&self) -> u64 {
        self.total
    }

    fn max(&self) -> Duration {
        Duration::from_micros(self.max)
    }

    /// The smallest recorded value at or above the `q` quantile, rounded up to its bucket's
    /// upper end (zero when nothing was recorded).
    fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Duration::from_micros(upper(index).min(self.max));
            }
        }
        self.max()
    }
}

fn bucket(micros: u64) -> usize {
    if micros < 1 << SUB_BITS {
        return micros as usize;
    }
    let shift = 64 - micros.leading_zeros() - SUB_BITS;
    ((shift as usize) << (SUB_BITS - 1)) + (micros >> shift) as usize
}

/// The largest value in bucket `index`.
fn upper(index: usize) -> u64 {
    if index < 1 << SUB_BITS {
        return index as u64;
    }
    let shift = (index >> (SUB_BITS - 1)) - 1;
    let top = (index - (shift << (SUB_BITS - 1))) as u64;
    ((top + 1) << shift) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_narrow() {
        let mut last = 0;
        for micros in 0..1_000_000u64 {
            let index = bucket(micros);
            assert!(index == last || index == last + 1, "{micros}");
            assert!(upper(index) >= micros, "{micros}");
            assert!(
                (upper(index) - micros) as f64 <= micros as f64 / 64.0 + 1.0,
                "{micros}"
            );
            last = index;
        }
        assert!(bucket(u64::from(u32::MAX)) < 2000);
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::new();
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.quantile(0.5).as_micros() as f64;
        assert!((50_000.0..=50_000.0 * 1.02).contains(&p50), "{p50}");
        let p99 = h.quantile(0.99).as_micros() as f64;
        assert!((99_000.0..=99_000.0 * 1.02).contains(&p99), "{p99}");
        assert_eq!(h.max(), Duration::from_millis(100));
        assert_eq!(h.count(), 100);
    }
}
