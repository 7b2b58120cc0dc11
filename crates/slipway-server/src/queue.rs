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
use slipway_runner::pipeline::step;
use slipway_runner::project::{self, Workspace};
use slipway_runner::stage_executor::ExecutorOptions;
use slipway_runner::verify::{drift, drill};
use slipway_store::{
    EngineProcess, Job, JobKind, JobStatus, Labels, NewJob, ServiceRecord as _, UnixMillis,
};

use crate::job::{JobObserver, move_checkout};
use crate::{AppState, RunnerConfig};

/// How long the worker sleeps when nothing wakes it: jobs queued by another process (a
/// second server, `slipway` on the command line) are found this late at most.
const IDLE_POLL: Duration = Duration::from_secs(5);

/// How long a worker that takes step jobs sleeps when nothing wakes it.
const STEP_IDLE_POLL: Duration = Duration::from_secs(1);

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
            // One server running its own jobs applies each stage itself.
            work(state, runner, false).await;
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
/// With `spread` (a `slipway worker`), a run's stage applies become step jobs that any
/// worker may take (see [`slipway_runner::pipeline::spread`]).
pub(crate) async fn work(state: AppState, runner: RunnerConfig, spread: bool) {
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
            // A worker spreading steps looks more often: a stage's next stack waits on it.
            let most = if spread { STEP_IDLE_POLL } else { IDLE_POLL };
            let idle = runner.poll.map_or(most, |every| every.min(most));
            tokio::select! {
                () = state.queued.notified() => {}
                () = state.stopping.drained() => return,
                () = tokio::time::sleep(idle) => {}
            }
            continue;
        };
        run_claimed(&state, &runner, &job, &me, Checkout::Move, spread).await;
        reload_project(&state, &runner);
    }
}

/// Where a job's work happens: in the working copy moved to the job's commit, or (a step
/// the delivering worker runs itself) in the working copy as its run left it, at that commit
/// already and in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checkout {
    Move,
    AsItIs,
}

/// Runs claimed job `job` to its end: renews its heartbeat meanwhile and records how it
/// ended (unless the record says it is no longer this process's).
async fn run_claimed(
    state: &AppState,
    runner: &RunnerConfig,
    job: &Job,
    me: &EngineProcess,
    checkout: Checkout,
    spread: bool,
) {
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
    let ran = run_job(state, runner, job, interrupts, checkout, spread).await;
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
    checkout: Checkout,
    spread: bool,
) -> Result<String> {
    if job.kind == JobKind::PullRequest {
        return crate::pull_request::run(state, runner, job).await;
    }
    // Drift checks and drills work from released artifacts: the working copy stays where
    // the last delivery left it.
    if matches!(job.kind, JobKind::Run | JobKind::Resume | JobKind::Step)
        && checkout == Checkout::Move
    {
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
    let workspace = if spread && matches!(job.kind, JobKind::Run | JobKind::Resume) {
        workspace.spreading_through(Arc::new(JobSteps {
            state: state.clone(),
            runner: runner.clone(),
            job: job.clone(),
            swept: std::sync::Mutex::new(None),
        }))
    } else {
        workspace
    };
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
        JobKind::Step => {
            let run = job.run_id.context("a step job names no run")?;
            let stage = job.stage.as_deref().context("a step job names no stage")?;
            let stack = job.stack.as_deref().context("a step job names no stack")?;
            let done = step::run_step(&workspace, run, stage, stack, &options).await?;
            if !done.done {
                // The stack run says why; the job did its part.
                tracing::warn!(job = job.id, run, stage, stack, outcome = %done.summary, "step did not succeed");
            }
            return Ok(done.summary);
        }
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

/// The queue a delivering job spreads its stages' applies over: step jobs in the record, at
/// the job's commit, taken by any worker carrying the stage's labels (this one included).
struct JobSteps {
    state: AppState,
    runner: RunnerConfig,
    /// The job delivering the run.
    job: Job,
    /// When this worker last looked for abandoned jobs while it waited for a step: its own
    /// loop does not while it delivers, and a step's worker may have died.
    swept: std::sync::Mutex<Option<std::time::Instant>>,
}

impl slipway_runner::project::StepQueue for JobSteps {
    fn queue<'a>(
        &'a self,
        step: &'a slipway_runner::project::StepRequest,
    ) -> slipway_runner::project::StepFuture<'a, Result<i64>> {
        Box::pin(async move {
            let queued = self
                .state
                .store
                .enqueue_job(&NewJob {
                    kind: JobKind::Step,
                    repository: self.job.repository.clone(),
                    git_ref: self.job.git_ref.clone(),
                    commit: self.job.commit.clone(),
                    stage: Some(step.stage.clone()),
                    run_id: Some(step.run),
                    stack: Some(step.stack.clone()),
                    delivery_id: None,
                    requested_by: self.job.requested_by.clone(),
                    labels: step.labels.clone(),
                })
                .await?;
            tracing::info!(job = queued.id, run = step.run, stage = %step.stage, stack = %step.stack, "step queued");
            self.state.queued.notify_waiters();
            Ok(queued.id)
        })
    }

    fn run_one_of(
        &self,
        run: i64,
    ) -> slipway_runner::project::LocalFuture<'_, Result<Option<i64>>> {
        Box::pin(async move {
            let me = EngineProcess::here(std::process::id());
            let queued: Vec<Job> = self
                .state
                .store
                .jobs(200)
                .await?
                .into_iter()
                .filter(|j| {
                    j.kind == JobKind::Step
                        && j.run_id == Some(run)
                        && j.status == JobStatus::Queued
                })
                .collect();
            if queued.is_empty() {
                return Ok(None);
            }
            let workers = self.state.store.workers(UnixMillis::now()).await?;
            if !takes_own_step(&me, &queued, &workers, UnixMillis::now()) {
                return Ok(None);
            }
            let Some(step) = self.state.store.claim_step_of(&me, run).await? else {
                return Ok(None);
            };
            run_claimed(
                &self.state,
                &self.runner,
                &step,
                &me,
                Checkout::AsItIs,
                false,
            )
            .await;
            Ok(Some(step.id))
        })
    }

    fn withdraw(&self, job: i64) -> slipway_runner::project::StepFuture<'_, Result<bool>> {
        Box::pin(async move {
            Ok(self
                .state
                .store
                .withdraw_job(
                    job,
                    "withdrawn: the worker delivering its run stopped before anyone took it",
                )
                .await?)
        })
    }

    fn ended(
        &self,
        job: i64,
    ) -> slipway_runner::project::StepFuture<'_, Result<Option<slipway_runner::project::StepEnd>>>
    {
        Box::pin(async move {
            let job = self
                .state
                .store
                .job(job)
                .await?
                .with_context(|| format!("step job {job} is gone from the record"))?;
            if job.status == JobStatus::Running {
                let due = self.swept.lock().is_ok_and(|mut swept| {
                    let due = swept.is_none_or(|at| at.elapsed() >= IDLE_POLL);
                    if due {
                        *swept = Some(std::time::Instant::now());
                    }
                    due
                });
                if due {
                    interrupt_abandoned(&self.state).await;
                }
            }
            let completed = match job.status {
                JobStatus::Queued | JobStatus::Running => return Ok(None),
                JobStatus::Done => true,
                JobStatus::Failed | JobStatus::Superseded | JobStatus::Interrupted => false,
            };
            Ok(Some(slipway_runner::project::StepEnd {
                completed,
                outcome: job.outcome.unwrap_or_else(|| job.status.to_string()),
            }))
        })
    }
}

/// How long a step waits for another worker before the worker delivering its run runs it.
const STEP_GRACE: Duration = Duration::from_secs(15);

/// Whether the worker delivering a run (`me`) runs one of the run's `queued` steps itself:
/// when they outnumber the free slots of the other live workers carrying their labels, or
/// the oldest waited past [`STEP_GRACE`] (a worker that looks free but does not take it).
/// Otherwise the steps are left to the others, so a stage's stacks spread over workers.
fn takes_own_step(
    me: &EngineProcess,
    queued: &[Job],
    workers: &[slipway_store::Worker],
    now: UnixMillis,
) -> bool {
    let Some(oldest) = queued.iter().min_by_key(|j| j.queued_at) else {
        return false;
    };
    if now.0.saturating_sub(oldest.queued_at.0) >= STEP_GRACE.as_millis() as i64 {
        return true;
    }
    let free: usize = workers
        .iter()
        .filter(|w| {
            !(w.process.pid == me.pid && w.process.host == me.host)
                && w.stopped_at.is_none()
                && w.gone.is_none()
                && !w.draining
                && w.labels.satisfy(&oldest.labels)
        })
        .map(|w| (w.max_jobs as usize).saturating_sub(w.running_jobs.len()))
        .sum();
    queued.len() > free
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
            stack: None,
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
        stack: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: u32, host: &str) -> EngineProcess {
        EngineProcess {
            pid,
            process_started: None,
            host: host.to_owned(),
        }
    }

    fn step(id: i64, queued_at: i64, labels: &str) -> Job {
        Job {
            id,
            kind: JobKind::Step,
            repository: "acme/platform".to_owned(),
            git_ref: "refs/heads/main".to_owned(),
            commit: "c1".to_owned(),
            stage: Some("dev".to_owned()),
            run_id: Some(7),
            stack: Some(format!("stack-{id}")),
            delivery_id: None,
            requested_by: "ada".to_owned(),
            queued_at: UnixMillis(queued_at),
            status: JobStatus::Queued,
            started_at: None,
            finished_at: None,
            superseded_by: None,
            worker: None,
            outcome: None,
            heartbeat_at: None,
            labels: Labels::parse(labels).unwrap(),
        }
    }

    fn worker(
        pid: u32,
        host: &str,
        labels: &str,
        max_jobs: u32,
        running: usize,
    ) -> slipway_store::Worker {
        slipway_store::Worker {
            id: i64::from(pid),
            process: process(pid, host),
            labels: Labels::parse(labels).unwrap(),
            max_jobs,
            version: "0".to_owned(),
            started_at: UnixMillis(0),
            heartbeat_at: UnixMillis(0),
            draining: false,
            stopped_at: None,
            gone: None,
            running_jobs: (0..running as i64).collect(),
        }
    }

    #[test]
    fn the_delivering_worker_leaves_steps_to_free_workers_until_the_grace_runs_out() {
        let me = process(10, "a");
        let now = UnixMillis(100_000);
        let fresh = |n: i64| -> Vec<Job> { (0..n).map(|i| step(i, now.0 - 1_000, "")).collect() };
        let me_busy = worker(10, "a", "", 1, 1);
        // Nobody else: the delivering worker runs its steps.
        assert!(takes_own_step(
            &me,
            &fresh(1),
            std::slice::from_ref(&me_busy),
            now
        ));
        // One free slot elsewhere: one step is left to it, a second is run here.
        let other = worker(11, "b", "", 1, 0);
        assert!(!takes_own_step(
            &me,
            &fresh(1),
            &[me_busy.clone(), other.clone()],
            now
        ));
        assert!(takes_own_step(
            &me,
            &fresh(2),
            &[me_busy.clone(), other.clone()],
            now
        ));
        // The same pid on another host is another worker.
        let twin = worker(10, "b", "", 1, 0);
        assert!(!takes_own_step(
            &me,
            &fresh(1),
            &[me_busy.clone(), twin],
            now
        ));
        // Busy, draining, gone, stopped or lacking the labels: no free slot.
        let busy = worker(11, "b", "", 1, 1);
        let draining = slipway_store::Worker {
            draining: true,
            ..other.clone()
        };
        let gone = slipway_store::Worker {
            gone: Some("silent".to_owned()),
            ..other.clone()
        };
        let stopped = slipway_store::Worker {
            stopped_at: Some(now),
            ..other.clone()
        };
        for unavailable in [busy, draining, gone, stopped] {
            assert!(takes_own_step(
                &me,
                &fresh(1),
                &[me_busy.clone(), unavailable],
                now
            ));
        }
        let prod = vec![step(1, now.0 - 1_000, "tier=prod")];
        assert!(takes_own_step(
            &me,
            &prod,
            &[me_busy.clone(), other.clone()],
            now
        ));
        let prod_worker = worker(12, "c", "tier=prod,region=eu", 2, 1);
        assert!(!takes_own_step(
            &me,
            &prod,
            &[me_busy.clone(), prod_worker],
            now
        ));
        // A step nobody took within the grace is run here.
        let stale = vec![step(1, now.0 - STEP_GRACE.as_millis() as i64, "")];
        assert!(takes_own_step(&me, &stale, &[me_busy, other], now));
        assert!(!takes_own_step(&me, &[], &[], now));
    }
}
