//! The worker that runs the server's jobs, one at a time, in this process.
//!
//! Jobs live in the record (`jobs`): a queued push or an API request queues a run, an
//! approval queues the run's resume. The worker takes the oldest, moves the server's own
//! working copy to the job's commit (fetched from the source first), loads the project as
//! that commit has it, and drives the runner exactly as `slipway run` and `slipway resume`
//! do; the run's events go to the record, to live streams and to the metrics.
//!
//! One job at a time keeps one active run per stage and instance without further
//! bookkeeping: a run that stops at a stage awaiting approval is over as a job, so it holds
//! nothing up, and its resume queues behind what came before it.
//!
//! On start, jobs this host's earlier server left `running` are marked `interrupted` (the
//! runner reports their stack runs as interrupted as it does after any crash); they are
//! never re-run by themselves. On shutdown no new job starts, and the running one gets the
//! engine's single interrupt and grace period.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::extract::State;
use axum::http::StatusCode;
use slipway_engine::{Interrupt, InterruptTrigger};
use slipway_runner::events::{Event, InterruptSource, Observer};
use slipway_runner::pipeline::stages::{self, RunOutcome};
use slipway_runner::project;
use slipway_runner::stage_executor::ExecutorOptions;
use slipway_store::{EngineProcess, Job, JobKind, JobStatus, ServiceRecord as _};

use crate::{AppState, RunnerConfig};

/// How long the worker sleeps when nothing wakes it: jobs queued by another process (a
/// second server, `slipway` on the command line) are found this late at most.
const IDLE_POLL: Duration = Duration::from_secs(5);

/// Whether the server is shutting down, and the interrupt its running engine steps obey.
#[derive(Clone)]
pub(crate) struct Stopping {
    flag: tokio::sync::watch::Sender<bool>,
    trigger: Arc<std::sync::Mutex<Option<InterruptTrigger>>>,
    interrupt: Interrupt,
}

impl Default for Stopping {
    fn default() -> Self {
        let (trigger, interrupt) = Interrupt::channel();
        Self {
            flag: tokio::sync::watch::Sender::new(false),
            trigger: Arc::new(std::sync::Mutex::new(Some(trigger))),
            interrupt,
        }
    }
}

impl Stopping {
    pub fn stop(&self) {
        self.flag.send_replace(true);
        if let Some(trigger) = self.trigger.lock().ok().and_then(|mut t| t.take()) {
            trigger.fire();
        }
    }

    pub fn is_stopping(&self) -> bool {
        *self.flag.borrow()
    }

    async fn stopped(&self) {
        let mut watch = self.flag.subscribe();
        let _ = watch.wait_for(|stopping| *stopping).await;
    }

    fn interrupts(&self) -> InterruptSource {
        let interrupt = self.interrupt.clone();
        InterruptSource::new(move || interrupt.clone())
    }
}

/// Starts the worker when the server runs jobs; first marks what an earlier server here
/// left running as interrupted, and loads the project for the API.
pub(crate) async fn start(state: &AppState) -> Option<tokio::task::JoinHandle<()>> {
    let runner = state.config.runner.clone()?;
    match state.store.interrupt_abandoned_jobs().await {
        Ok(jobs) => {
            for job in jobs {
                tracing::warn!(job = job.id, run = ?job.run_id, "job left running by a stopped server marked interrupted");
            }
        }
        Err(error) => tracing::error!(error = %error, "cannot check for abandoned jobs"),
    }
    reload_project(state, &runner);
    let state = state.clone();
    // The runner's futures are not all `Send` (its async closures), so the worker drives
    // them on a thread of its own rather than as a task the runtime may move.
    let runtime = tokio::runtime::Handle::current();
    Some(tokio::task::spawn_blocking(move || {
        runtime.block_on(work(state, runner));
    }))
}

/// `GET /readyz`: 200 while the record answers and the server is not shutting down. It says
/// nothing else: it is open to anyone, like `/healthz`.
pub(crate) async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.stopping.is_stopping() {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopping\n");
    }
    match state.store.jobs(1).await {
        Ok(_) => (StatusCode::OK, "ready\n"),
        Err(error) => {
            tracing::error!(error = %error, "not ready: the record does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
        }
    }
}

async fn work(state: AppState, runner: RunnerConfig) {
    let me = EngineProcess::here(std::process::id());
    loop {
        if state.stopping.is_stopping() {
            return;
        }
        let claimed = match state.store.claim_job(&me).await {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::error!(error = %error, "cannot read the queue");
                None
            }
        };
        let Some(job) = claimed else {
            tokio::select! {
                () = state.queued.notified() => {}
                () = state.stopping.stopped() => return,
                () = tokio::time::sleep(IDLE_POLL) => {}
            }
            continue;
        };
        tracing::info!(job = job.id, kind = %job.kind, commit = %job.commit, by = %job.requested_by, "job started");
        let (status, outcome) = match run_job(&state, &runner, &job).await {
            Ok(outcome) => (JobStatus::Done, outcome),
            Err(error) => {
                let message = format!("{error:#}");
                tracing::error!(job = job.id, error = %message, "job failed");
                (JobStatus::Failed, message)
            }
        };
        let status = if status == JobStatus::Done && state.stopping.is_stopping() {
            // The run saw the shutdown's interrupt; what it left is reported by the runner.
            JobStatus::Interrupted
        } else {
            status
        };
        match state.store.finish_job(job.id, status, &outcome).await {
            Ok(job) => {
                tracing::info!(job = job.id, status = %job.status, outcome = %outcome, "job ended")
            }
            Err(error) => {
                tracing::error!(job = job.id, error = %error, "cannot record the job's end")
            }
        }
        state.metrics.job_ended(status);
        reload_project(&state, &runner);
    }
}

/// Moves the working copy and drives the runner; returns how the run stands, in words.
async fn run_job(state: &AppState, runner: &RunnerConfig, job: &Job) -> Result<String> {
    let checkout = runner.checkout.clone();
    let source = runner.source.clone();
    let commit = job.commit.clone();
    tokio::task::spawn_blocking(move || move_checkout(&checkout, source.as_deref(), &commit))
        .await
        .context("the checkout task stopped")??;
    let mut settings = runner.settings.clone();
    if !job.requested_by.is_empty() {
        settings.actor.clone_from(&job.requested_by);
    }
    let observer = Arc::new(JobObserver {
        state: state.clone(),
        job: job.id,
    });
    let workspace = project::open(Some(&runner.checkout), &runner.checkout, settings)
        .with_context(|| format!("cannot load the project at {}", job.commit))?
        .observed_by(observer)
        .interrupted_by(state.stopping.interrupts());
    let options = ExecutorOptions::default();
    let outcome = match job.kind {
        JobKind::Run => stages::start(&workspace, None, &options).await?,
        JobKind::Resume => {
            let run = job.run_id.context("a resume job names no run")?;
            stages::resume(&workspace, run, &options).await?
        }
    };
    Ok(describe(&outcome))
}

fn describe(outcome: &RunOutcome) -> String {
    match outcome {
        RunOutcome::NothingToDeliver => "no stack changed: nothing to deliver".to_owned(),
        RunOutcome::Delivered { run } => format!("run {run} delivered to every stage"),
        RunOutcome::AwaitingApproval { run, stage } => {
            format!("run {run} awaits approval at stage {stage}")
        }
        RunOutcome::Failed { run, stage: None } => format!("run {run} failed verification"),
        RunOutcome::Failed {
            run,
            stage: Some(stage),
        } => format!("run {run} failed at stage {stage}"),
    }
}

/// Fetches and checks out `commit`, refusing to carry changes made by hand in the working
/// copy into a delivery.
fn move_checkout(checkout: &Path, source: Option<&str>, commit: &str) -> Result<()> {
    let repo = slipway_git::Repo::open(checkout)?;
    if let Some(source) = source {
        repo.fetch_from(source)
            .with_context(|| format!("cannot fetch from {source}"))?;
    }
    if !repo.is_clean()? {
        anyhow::bail!(
            "the server's working copy {} has changes made by hand; a delivery runs committed code only\n  help: give the server a clone of its own (`git clone URL DIR && slipway --project DIR serve`)",
            checkout.display()
        );
    }
    repo.check_out(commit)
        .with_context(|| format!("cannot check out {commit}"))?;
    Ok(())
}

/// Loads the project as the working copy holds it now, for the API to read.
fn reload_project(state: &AppState, runner: &RunnerConfig) {
    match project::open(
        Some(&runner.checkout),
        &runner.checkout,
        runner.settings.clone(),
    ) {
        Ok(workspace) => {
            if let Ok(mut project) = state.project.write() {
                *project = Some(Arc::new(workspace));
            }
        }
        Err(error) => tracing::error!(error = %format!("{error:#}"), "cannot load the project"),
    }
}

/// Where a job's events go besides the record: live streams, metrics, the log, and the
/// job's own row once its run has an id.
struct JobObserver {
    state: AppState,
    job: i64,
}

impl Observer for JobObserver {
    fn observe(&self, event: &Event) {
        self.state.events.pulse();
        self.state.metrics.observe(event);
        match event {
            Event::RunStarted { run, commit } => {
                tracing::info!(job = self.job, run, commit = %commit, "run started");
                let store = self.state.store.clone();
                let (job, run) = (self.job, *run);
                tokio::spawn(async move {
                    if let Err(error) = store.job_started_run(job, run).await {
                        tracing::error!(job, run, error = %error, "cannot name the job's run");
                    }
                });
            }
            Event::AwaitingApproval { run, stage, .. } => {
                tracing::info!(run, stage = %stage, "run awaits approval");
            }
            Event::RunFinished {
                run,
                delivered,
                stage,
            } => {
                tracing::info!(run, delivered, stage = ?stage, "run finished");
            }
            Event::StackFinished {
                stage,
                instance,
                stack,
                outcome,
                elapsed_ms,
                ..
            } => {
                tracing::info!(stage = %stage, instance = %instance, stack = %stack, outcome = ?outcome, elapsed_ms, "stack finished");
            }
            _ => {}
        }
    }
}
