//! The worker that runs the queue's jobs, one at a time per working copy.
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
//! The same loop runs in `slipway worker` processes ([`crate::work`]), one per working copy,
//! when servers leave the jobs to them (`serve --workers`); such a server only polls and
//! keeps its working copy at the branch's head. While a job runs, its process renews the
//! job's heartbeat; a process that finds the job no longer its own (marked interrupted after
//! its lease ran out) interrupts the job's engine steps.
//!
//! On start, and from time to time while idle, jobs whose process is gone are marked
//! `interrupted`: on this host a process no longer running, on another one silent past the
//! record's lease (the runner reports their stack runs as interrupted as it does after any
//! crash); they are never re-run by themselves. On shutdown no new job starts, and the
//! running one gets the engine's single interrupt and grace period; draining (a worker's
//! first SIGTERM) lets it finish.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::extract::State;
use axum::http::StatusCode;
use slipway_engine::{Interrupt, InterruptTrigger};
use slipway_runner::events::InterruptSource;
use slipway_runner::pipeline::stages::{self, RunOutcome};
use slipway_runner::project::{self, Workspace};
use slipway_runner::stage_executor::ExecutorOptions;
use slipway_runner::verify::{drift, drill};
use slipway_store::{EngineProcess, Job, JobKind, JobStatus, Labels, NewJob, ServiceRecord as _};

use crate::job::{JobObserver, move_checkout};
use crate::{AppState, RunnerConfig};

/// How long the worker sleeps when nothing wakes it: jobs queued by another process (a
/// second server, `slipway` on the command line) are found this late at most.
const IDLE_POLL: Duration = Duration::from_secs(5);

/// Whether the server is shutting down, and the interrupt its running engine steps obey.
/// Draining (a worker's first SIGTERM) only stops new jobs; stopping also interrupts the
/// running ones.
#[derive(Clone)]
pub(crate) struct Stopping {
    flag: tokio::sync::watch::Sender<bool>,
    draining: tokio::sync::watch::Sender<bool>,
    trigger: Arc<std::sync::Mutex<Option<InterruptTrigger>>>,
    interrupt: Interrupt,
}

impl Default for Stopping {
    fn default() -> Self {
        let (trigger, interrupt) = Interrupt::channel();
        Self {
            flag: tokio::sync::watch::Sender::new(false),
            draining: tokio::sync::watch::Sender::new(false),
            trigger: Arc::new(std::sync::Mutex::new(Some(trigger))),
            interrupt,
        }
    }
}

impl Stopping {
    /// No new job starts; running ones finish.
    pub fn drain(&self) {
        self.draining.send_replace(true);
    }

    /// Whether new jobs may no longer start.
    pub fn is_draining(&self) -> bool {
        *self.draining.borrow() || self.is_stopping()
    }

    /// Resolves once new jobs may no longer start.
    pub async fn drained(&self) {
        let mut draining = self.draining.subscribe();
        tokio::select! {
            _ = draining.wait_for(|d| *d) => {}
            () = self.stopped() => {}
        }
    }

    pub fn stop(&self) {
        self.draining.send_replace(true);
        self.flag.send_replace(true);
        if let Some(trigger) = self.trigger.lock().ok().and_then(|mut t| t.take()) {
            trigger.fire();
        }
    }

    pub fn is_stopping(&self) -> bool {
        *self.flag.borrow()
    }

    pub async fn stopped(&self) {
        let mut watch = self.flag.subscribe();
        let _ = watch.wait_for(|stopping| *stopping).await;
    }

    pub(crate) fn interrupts(&self) -> InterruptSource {
        let interrupt = self.interrupt.clone();
        InterruptSource::new(move || interrupt.clone())
    }
}

/// Marks interrupted the jobs whose process is gone: on this host, a process no longer
/// running; on another, one silent past the record's lease. They are never run again by
/// themselves.
pub(crate) async fn interrupt_abandoned(state: &AppState) {
    match state.store.interrupt_abandoned_jobs().await {
        Ok(jobs) => {
            for job in jobs {
                tracing::warn!(job = job.id, run = ?job.run_id, outcome = ?job.outcome, "job left running by a stopped process marked interrupted");
            }
        }
        Err(error) => tracing::error!(error = %error, "cannot check for abandoned jobs"),
    }
}

/// Starts the worker when the server runs jobs (or only the poller when `slipway worker`
/// processes run them); first marks what an earlier server here left running as
/// interrupted, and loads the project for the API.
pub(crate) async fn start(state: &AppState) -> Option<tokio::task::JoinHandle<()>> {
    let runner = state.config.runner.clone()?;
    interrupt_abandoned(state).await;
    reload_project(state, &runner);
    let state = state.clone();
    if !state.config.run_jobs {
        return Some(tokio::spawn(watch_without_jobs(state, runner)));
    }
    // The runner's futures are not all `Send` (its async closures), so the worker drives
    // them on a thread of its own rather than as a task the runtime may move.
    let runtime = tokio::runtime::Handle::current();
    Some(tokio::task::spawn_blocking(move || {
        runtime.block_on(async move {
            let presence = crate::presence::Presence::join(
                &state,
                &runner.settings.worker_labels.clone().unwrap_or_default(),
                1,
                runner.settings.lock_heartbeat,
            )
            .await;
            work(state, runner).await;
            if let Some(presence) = presence {
                presence.leave().await;
            }
        });
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

/// A server whose jobs `slipway worker` processes run: it polls the source, keeps its
/// working copy at the delivered branch's head for the project it shows, and marks jobs
/// whose worker went silent as interrupted.
async fn watch_without_jobs(state: AppState, runner: RunnerConfig) {
    let every = runner.poll.unwrap_or(IDLE_POLL).min(IDLE_POLL);
    loop {
        if runner.poll.is_some() {
            if let Some(head) = poll(&state, &runner).await {
                let checkout = runner.checkout.clone();
                let source = runner.source.clone();
                let moved = tokio::task::spawn_blocking(move || {
                    move_checkout(&checkout, source.as_deref(), &head)
                })
                .await;
                if let Ok(Err(error)) = moved {
                    tracing::warn!(error = %format!("{error:#}"), "the working copy stays where it was");
                }
                reload_project(&state, &runner);
            }
        }
        interrupt_abandoned(&state).await;
        tokio::select! {
            () = state.stopping.stopped() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// Takes queued jobs one at a time and runs them in `runner`'s working copy, until the
/// server or worker drains.
pub(crate) async fn work(state: AppState, runner: RunnerConfig) {
    let me = EngineProcess::here(std::process::id());
    let carried = runner.settings.worker_labels.clone().unwrap_or_default();
    let mut polled: Option<std::time::Instant> = None;
    let mut looked_for_abandoned = std::time::Instant::now();
    loop {
        if state.stopping.is_draining() {
            return;
        }
        if let Some(every) = runner.poll {
            if polled.is_none_or(|at| at.elapsed() >= every) {
                polled = Some(std::time::Instant::now());
                poll(&state, &runner).await;
            }
        }
        // A worker on another host that went silent holds its job until someone notices.
        if looked_for_abandoned.elapsed() >= runner.settings.lock_heartbeat {
            looked_for_abandoned = std::time::Instant::now();
            interrupt_abandoned(&state).await;
        }
        let claimed = match state.store.claim_job(&me, &carried).await {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::error!(error = %error, "cannot read the queue");
                None
            }
        };
        let Some(job) = claimed else {
            let idle = runner.poll.map_or(IDLE_POLL, |every| every.min(IDLE_POLL));
            tokio::select! {
                () = state.queued.notified() => {}
                () = state.stopping.drained() => return,
                () = tokio::time::sleep(idle) => {}
            }
            continue;
        };
        tracing::info!(job = job.id, kind = %job.kind, commit = %job.commit, by = %job.requested_by, "job started");
        let (trigger, interrupt) = Interrupt::channel();
        let watcher = tokio::spawn(watch_job(
            state.clone(),
            job.id,
            me.clone(),
            runner.settings.lock_heartbeat,
            trigger,
        ));
        let interrupts = InterruptSource::new(move || interrupt.clone());
        let ran = run_job(&state, &runner, &job, interrupts).await;
        watcher.abort();
        let (status, outcome) = match ran {
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
            Ok(ended) if ended.status != status => {
                tracing::warn!(job = ended.id, status = %ended.status, outcome = ?ended.outcome, "the job was no longer this process's: its end is left as recorded");
            }
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

/// While job `id` runs: renews its heartbeat every `every`, and fires `trigger` (the job's
/// engine steps get their interrupt) when the process stops, or when the record says the
/// job is no longer this process's (its lease ran out while the process was paused or cut
/// off, and it was marked interrupted): what it would still do is nobody's to record.
async fn watch_job(
    state: AppState,
    id: i64,
    me: EngineProcess,
    every: Duration,
    trigger: InterruptTrigger,
) {
    loop {
        tokio::select! {
            () = state.stopping.stopped() => break,
            () = tokio::time::sleep(every) => {}
        }
        match state.store.heartbeat_job(id, &me).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!(
                    job = id,
                    "the job is no longer this process's (its lease ran out): interrupting its engine"
                );
                break;
            }
            Err(error) => {
                tracing::warn!(job = id, error = %error, "cannot renew the job's heartbeat")
            }
        }
    }
    trigger.fire();
}

/// A job held by this process, confirmed (its heartbeat renewed) before each apply and
/// release: one marked interrupted while this process was paused past its lease changes
/// nothing when it resumes.
struct JobClaim {
    store: slipway_store::AnyStore,
    job: i64,
    worker: EngineProcess,
}

impl slipway_runner::project::WorkClaim for JobClaim {
    fn confirm(&self) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        Box::pin(async move {
            // A record restarting is waited for a little (each try already waits for a
            // connection); one that stays away fails the apply rather than risk it.
            let mut tries = 0;
            loop {
                tries += 1;
                match self.store.heartbeat_job(self.job, &self.worker).await {
                    Ok(true) => return true,
                    Ok(false) => {
                        tracing::error!(
                            job = self.job,
                            "the job is no longer this process's (its lease ran out): nothing more is applied or released"
                        );
                        return false;
                    }
                    Err(error) if tries < 3 => {
                        tracing::warn!(job = self.job, error = %error, "cannot confirm the job is still this process's yet: trying again");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                    Err(error) => {
                        tracing::error!(job = self.job, error = %error, "cannot confirm the job is still this process's: nothing is applied");
                        return false;
                    }
                }
            }
        })
    }
}

/// Moves the working copy and drives the runner; returns how the run stands, in words.
async fn run_job(
    state: &AppState,
    runner: &RunnerConfig,
    job: &Job,
    interrupts: InterruptSource,
) -> Result<String> {
    if job.kind == JobKind::PullRequest {
        return crate::pull_request::run(state, runner, job).await;
    }
    // Drift checks and drills work from released artifacts: the working copy stays where
    // the last delivery left it.
    if matches!(job.kind, JobKind::Run | JobKind::Resume) {
        let checkout = runner.checkout.clone();
        let source = runner.source.clone();
        let commit = job.commit.clone();
        tokio::task::spawn_blocking(move || move_checkout(&checkout, source.as_deref(), &commit))
            .await
            .context("the checkout task stopped")??;
    }
    let mut settings = runner.settings.clone();
    if !job.requested_by.is_empty() {
        settings.actor.clone_from(&job.requested_by);
    }
    let observer = Arc::new(JobObserver {
        state: state.clone(),
        job: job.id,
    });
    let claim = Arc::new(JobClaim {
        store: state.store.clone(),
        job: job.id,
        worker: job
            .worker
            .clone()
            .unwrap_or_else(|| EngineProcess::here(std::process::id())),
    });
    let workspace = project::open(Some(&runner.checkout), &runner.checkout, settings)
        .with_context(|| format!("cannot load the project at {}", job.commit))?
        .observed_by(observer)
        .interrupted_by(interrupts)
        .claimed_by(claim);
    // The engines' lines become run events, so a stack's log can be followed while it runs.
    let options = ExecutorOptions {
        verbose: true,
        ..ExecutorOptions::default()
    };
    let outcome = match job.kind {
        JobKind::Run => stages::start(&workspace, None, &options).await?,
        JobKind::Resume => {
            let run = job.run_id.context("a resume job names no run")?;
            stages::resume(&workspace, run, &options).await?
        }
        JobKind::Drift => {
            let stage = stage_of(&workspace, job)?;
            let stacks = workspace
                .project
                .stacks
                .iter()
                .map(|s| s.name.clone())
                .collect();
            let drift = drift::check_stage(&workspace, stage, &stacks, &options).await?;
            return Ok(format!(
                "drift check {} of {}: {}",
                drift.recorded.id,
                stage.name,
                match (drift.failed(), drift.drifted()) {
                    (true, _) => "a stack could not be checked".to_owned(),
                    (false, 0) => "in sync".to_owned(),
                    (false, n) => format!("{n} resource(s) changed outside Terraform"),
                }
            ));
        }
        JobKind::PullRequest => unreachable!("pull request jobs return above"),
        JobKind::Drill => {
            let stage = stage_of(&workspace, job)?;
            let drill = drill::drill_stage(&workspace, stage, &options, false).await?;
            return Ok(format!(
                "drill {} of {}: {} in {} ms",
                drill.recorded.id,
                stage.name,
                if drill.succeeded() {
                    "recovered"
                } else {
                    "failed"
                },
                drill.recorded.total_ms.unwrap_or_default()
            ));
        }
    };
    if let RunOutcome::HandedOn { run, labels, .. } = &outcome {
        queue_handed_on(state, job, *run, labels).await?;
    }
    Ok(describe(&outcome))
}

/// The labels a worker needs for stage `stage`'s work, as the loaded project says (none
/// when no project is loaded or it has no such stage: the job then fails on any worker
/// with the reason).
pub(crate) fn worker_labels_of(state: &AppState, stage: &str) -> Labels {
    state
        .project
        .read()
        .ok()
        .and_then(|p| p.clone())
        .and_then(|w| w.project.stage(stage).map(|s| s.worker_labels.clone()))
        .unwrap_or_default()
}

/// Queues the resume of a run handed on to a worker carrying `labels`, at the commit the
/// job ran.
async fn queue_handed_on(state: &AppState, job: &Job, run: i64, labels: &Labels) -> Result<()> {
    let queued = state
        .store
        .enqueue_job(&NewJob {
            kind: JobKind::Resume,
            repository: job.repository.clone(),
            git_ref: job.git_ref.clone(),
            commit: job.commit.clone(),
            stage: None,
            run_id: Some(run),
            delivery_id: None,
            requested_by: job.requested_by.clone(),
            labels: labels.clone(),
        })
        .await
        .context("cannot queue the run's resume for a labelled worker")?;
    tracing::info!(job = queued.id, run, labels = %labels, "run handed on: its resume waits for a worker with these labels");
    state.queued.notify_one();
    Ok(())
}

/// The stage a drift check or drill job is of.
fn stage_of<'w>(workspace: &'w Workspace, job: &Job) -> Result<&'w slipway_core::Stage> {
    let name = job.stage.as_deref().context("the job names no stage")?;
    workspace
        .project
        .stage(name)
        .with_context(|| format!("the project no longer has a stage `{name}`"))
}

fn describe(outcome: &RunOutcome) -> String {
    match outcome {
        RunOutcome::NothingToDeliver => "no stack changed: nothing to deliver".to_owned(),
        RunOutcome::Delivered { run } => format!("run {run} delivered to every stage"),
        RunOutcome::AwaitingApproval { run, stage } => {
            format!("run {run} awaits approval at stage {stage}")
        }
        RunOutcome::HandedOn { run, stage, labels } => {
            format!("run {run} waits at stage {stage} for a worker labelled {labels}")
        }
        RunOutcome::Failed { run, stage: None } => format!("run {run} failed verification"),
        RunOutcome::Failed {
            run,
            stage: Some(stage),
        } => format!("run {run} failed at stage {stage}"),
    }
}

/// Fetches the source and queues a run of the delivered branch's head, unless that commit
/// was asked for already (by its webhook, an earlier poll or a person): what catches a
/// delivery the forge never made. Returns the head it found.
async fn poll(state: &AppState, runner: &RunnerConfig) -> Option<String> {
    let checkout = runner.checkout.clone();
    let source = runner.source.clone();
    let branch = state.config.branch.clone();
    let head = tokio::task::spawn_blocking(move || -> Result<Option<String>> {
        let repo = slipway_git::Repo::open(&checkout)?;
        let tip = match source {
            Some(source) => {
                repo.fetch_from(&source)
                    .with_context(|| format!("cannot fetch from {source}"))?;
                format!("refs/remotes/slipway-source/{branch}")
            }
            None => format!("refs/heads/{branch}"),
        };
        Ok(repo.resolve(&tip)?)
    })
    .await;
    let head = match head {
        Ok(Ok(Some(head))) => head,
        Ok(Ok(None)) => {
            tracing::warn!(branch = %state.config.branch, "polling: the branch does not exist in the source");
            return None;
        }
        Ok(Err(error)) => {
            tracing::warn!(error = %format!("{error:#}"), "polling the source failed");
            return None;
        }
        Err(error) => {
            tracing::error!(error = %error, "the polling task stopped");
            return None;
        }
    };
    let job = NewJob {
        kind: JobKind::Run,
        repository: crate::api::repository(state),
        git_ref: format!("refs/heads/{}", state.config.branch),
        commit: head.clone(),
        stage: None,
        run_id: None,
        delivery_id: None,
        requested_by: "poll".to_owned(),
        labels: Labels::default(),
    };
    match state.store.enqueue_job(&job).await {
        Ok(queued) if queued.status == JobStatus::Queued && queued.requested_by == "poll" => {
            tracing::info!(job = queued.id, commit = %head, "polling found a commit no webhook announced");
        }
        Ok(_) => {}
        Err(error) => tracing::error!(error = %error, "cannot queue a polled commit"),
    }
    Some(head)
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
