//! The record's part in the delivery service (`slipway serve`): its queue of jobs and the
//! API tokens people and machines use.
//!
//! Kept apart from [`crate::Store`] as its own trait, [`ServiceRecord`], with the same
//! shape: one implementation written once for every SQL backend ([`impl_service!`]).
//!
//! A job is a run to start (from a webhook delivery or an API request) or an approved run to
//! resume. Jobs are taken oldest first. A newer run job for the same repository and branch
//! supersedes every queued run job before it: those stay on record, `superseded`, naming the
//! job that replaced them, so nothing is dropped silently. A job being worked on names the
//! process working on it; a server that starts after a crash marks its own abandoned jobs
//! `interrupted` (never re-running them: a half-applied run is a person's decision).

use std::future::Future;

use serde::Serialize;
pub use slipway_core::Labels;

use crate::error::Result;
use crate::liveness::EngineProcess;
use crate::model::{Delivery, text_enum};
use crate::time::UnixMillis;

text_enum! {
    /// What a job does.
    JobKind {
        /// Starts a run for a commit (`slipway run` at that commit).
        Run => "run",
        /// Resumes an approved run (`slipway resume`).
        Resume => "resume",
        /// Checks a stage for drift (`slipway drift`), on a schedule.
        Drift => "drift",
        /// Drills a stage (`slipway drill`), on a schedule.
        Drill => "drill",
        /// Plans a pull request's (merge request's) head against a stage and comments on it.
        PullRequest => "pull_request",
        /// Applies one stack instance of a run's stage, for the worker delivering that stage.
        Step => "step",
    }
}

text_enum! {
    /// Where a job stands.
    JobStatus {
        /// Waiting its turn.
        Queued => "queued",
        /// Being worked on by the process it names.
        Running => "running",
        /// Worked on to the end; `outcome` says how the run stands.
        Done => "done",
        /// Could not be worked on (the commit could not be fetched, the configuration at it
        /// is broken...); `outcome` says why.
        Failed => "failed",
        /// A newer run job for the same branch replaced it before it started.
        Superseded => "superseded",
        /// Its process stopped while working on it; never re-run by itself.
        Interrupted => "interrupted",
    }
}

text_enum! {
    /// What an API token may do. Each role may do what the ones before it may.
    Role {
        /// Read everything but secrets.
        Viewer => "viewer",
        /// Also start runs and resume approved ones.
        Deployer => "deployer",
        /// Also approve and reject.
        Approver => "approver",
        /// Also manage tokens.
        Admin => "admin",
    }
}

impl Role {
    /// Whether this role may do what `needed` may.
    pub fn covers(self, needed: Role) -> bool {
        self.rank() >= needed.rank()
    }

    fn rank(self) -> u8 {
        match self {
            Role::Viewer => 0,
            Role::Deployer => 1,
            Role::Approver => 2,
            Role::Admin => 3,
        }
    }
}

/// A job about to be queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub kind: JobKind,
    /// `owner/name` as the forge names it, or the project's name for jobs from the API.
    pub repository: String,
    /// The branch (`refs/heads/main`); jobs of one branch supersede each other.
    pub git_ref: String,
    pub commit: String,
    /// The stage a drift check or drill is of.
    pub stage: Option<String>,
    /// The run to resume (resume jobs), or whose stack a step job applies.
    pub run_id: Option<i64>,
    /// The stack a step job applies.
    pub stack: Option<String>,
    pub delivery_id: Option<String>,
    pub requested_by: String,
    /// The labels a worker must carry to take it (empty: any worker).
    pub labels: Labels,
}

/// A job on record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    pub id: i64,
    pub kind: JobKind,
    pub repository: String,
    pub git_ref: String,
    pub commit: String,
    /// The stage a drift check or drill is of.
    pub stage: Option<String>,
    /// The run it resumes, or the run it started once it did.
    pub run_id: Option<i64>,
    /// The stack a step job applies.
    pub stack: Option<String>,
    pub delivery_id: Option<String>,
    pub requested_by: String,
    pub queued_at: UnixMillis,
    pub status: JobStatus,
    pub started_at: Option<UnixMillis>,
    pub finished_at: Option<UnixMillis>,
    pub superseded_by: Option<i64>,
    /// The process working on it, while it runs.
    pub worker: Option<EngineProcess>,
    /// How it ended, in words.
    pub outcome: Option<String>,
    /// When the process working on it last said it still does.
    pub heartbeat_at: Option<UnixMillis>,
    /// The labels a worker must carry to take it (empty: any worker).
    pub labels: Labels,
}

/// A worker (a `slipway worker`, or a server that runs jobs itself) about to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWorker {
    pub process: EngineProcess,
    pub labels: Labels,
    /// Jobs it runs at once.
    pub max_jobs: u32,
    /// The slipway version it runs.
    pub version: String,
}

/// A worker on record, with what the record makes of it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Worker {
    pub id: i64,
    pub process: EngineProcess,
    pub labels: Labels,
    pub max_jobs: u32,
    pub version: String,
    pub started_at: UnixMillis,
    pub heartbeat_at: UnixMillis,
    /// Finishing its running jobs and taking no more.
    pub draining: bool,
    /// When it said it stopped.
    pub stopped_at: Option<UnixMillis>,
    /// Why it counts as gone without saying so (its process ended, or it was silent past the
    /// record's lease); `None` while it lives or after a clean stop.
    pub gone: Option<String>,
    /// The jobs it runs now.
    pub running_jobs: Vec<i64>,
}

impl Worker {
    /// `working`, `idle`, `draining`, `stopped` or `gone`.
    pub fn state(&self) -> &'static str {
        if self.stopped_at.is_some() {
            "stopped"
        } else if self.gone.is_some() {
            "gone"
        } else if self.draining {
            "draining"
        } else if self.running_jobs.is_empty() {
            "idle"
        } else {
            "working"
        }
    }
}

/// An API token about to be kept (only its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    pub actor: String,
    pub role: Role,
    /// The one stage the role applies to; `None`: every stage.
    pub stage: Option<String>,
    /// The SHA-256 of the token, in hex.
    pub token_hash: String,
    pub created_by: String,
}

/// An API token on record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub actor: String,
    pub role: Role,
    pub stage: Option<String>,
    #[serde(skip)]
    pub token_hash: String,
    pub created_at: UnixMillis,
    pub created_by: String,
    pub revoked_at: Option<UnixMillis>,
}

/// The server's queue and its API tokens.
pub trait ServiceRecord: Send + Sync {
    /// Queues a job; a run job supersedes the queued run jobs of its repository and branch.
    /// A run of a commit already queued, running, done or interrupted is not queued again: the earlier
    /// job is returned.
    fn enqueue_job(&self, new: &NewJob) -> impl Future<Output = Result<Job>> + Send;
    /// Takes the oldest queued job `worker`, carrying `labels`, may run, if any: a job
    /// asking for labels it lacks waits for another worker. Of two processes racing for a
    /// job, one gets it (on PostgreSQL, `FOR UPDATE SKIP LOCKED`: racers take different
    /// jobs instead of waiting on each other).
    fn claim_job(
        &self,
        worker: &EngineProcess,
        labels: &Labels,
    ) -> impl Future<Output = Result<Option<Job>>> + Send;
    /// Takes the oldest queued step job of run `run_id`, whatever labels it asks for: the
    /// worker delivering the run's stage (which carries them) runs a step itself when no
    /// other worker took it.
    fn claim_step_of(
        &self,
        worker: &EngineProcess,
        run_id: i64,
    ) -> impl Future<Output = Result<Option<Job>>> + Send;
    /// Ends queued job `id` before anyone took it (`failed`, with `outcome`); `false` when it
    /// was no longer queued.
    fn withdraw_job(&self, id: i64, outcome: &str) -> impl Future<Output = Result<bool>> + Send;
    /// Names the run a job started.
    fn job_started_run(&self, id: i64, run_id: i64) -> impl Future<Output = Result<()>> + Send;
    /// Ends a running job; a job no longer running (marked interrupted meanwhile) is left as
    /// it is and returned as it stands.
    fn finish_job(
        &self,
        id: i64,
        status: JobStatus,
        outcome: &str,
    ) -> impl Future<Output = Result<Job>> + Send;
    fn job(&self, id: i64) -> impl Future<Output = Result<Option<Job>>> + Send;
    /// The latest jobs, newest first.
    fn jobs(&self, limit: u32) -> impl Future<Output = Result<Vec<Job>>> + Send;
    /// Marks `interrupted` the running jobs whose process on this host is gone, or whose
    /// process on another host sent no heartbeat for the record's lease; returns them.
    fn interrupt_abandoned_jobs(&self) -> impl Future<Output = Result<Vec<Job>>> + Send;
    /// Renews the heartbeat of running job `id` held by `worker`; `false` when the job is no
    /// longer that worker's to run (marked interrupted after its lease ran out, or finished).
    fn heartbeat_job(
        &self,
        id: i64,
        worker: &EngineProcess,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Registers a worker that starts taking jobs.
    fn register_worker(&self, new: &NewWorker) -> impl Future<Output = Result<Worker>> + Send;
    /// Renews worker `id`'s heartbeat and says whether it drains; `false` when it is marked
    /// stopped.
    fn worker_heartbeat(
        &self,
        id: i64,
        draining: bool,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Marks worker `id` stopped.
    fn worker_stopped(&self, id: i64) -> impl Future<Output = Result<()>> + Send;
    /// The workers not stopped, and those stopped since `since`, oldest first, each with its
    /// running jobs and whether it is gone.
    fn workers(&self, since: UnixMillis) -> impl Future<Output = Result<Vec<Worker>>> + Send;

    /// Each schedule's last time acted on.
    fn schedule_marks(&self) -> impl Future<Output = Result<Vec<(String, UnixMillis)>>> + Send;
    /// Moves schedule `name` from `seen` (its last time as read; `None`: never marked) to
    /// `due`, and queues `job` with it, in one transaction; `false` (and nothing queued) if
    /// another process moved it first.
    fn mark_schedule(
        &self,
        name: &str,
        seen: Option<UnixMillis>,
        due: UnixMillis,
        job: Option<&NewJob>,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Keeps a new token's hash.
    fn create_token(&self, new: &NewToken) -> impl Future<Output = Result<ApiToken>> + Send;
    /// The live (not revoked) token with this hash.
    fn token_by_hash(&self, hash: &str) -> impl Future<Output = Result<Option<ApiToken>>> + Send;
    /// Every token, revoked ones too, oldest first.
    fn tokens(&self) -> impl Future<Output = Result<Vec<ApiToken>>> + Send;
    /// Revokes a token; `false` if there was no live token with that id.
    fn revoke_token(&self, id: i64) -> impl Future<Output = Result<bool>> + Send;

    /// The delivery kept with this id (`github:<id>`).
    fn delivery(&self, id: &str) -> impl Future<Output = Result<Option<Delivery>>> + Send;
    /// What is kept of a pull request, if the server planned it before.
    fn pull_request(
        &self,
        key: &PullRequestKey,
    ) -> impl Future<Output = Result<Option<PullRequestRecord>>> + Send;
    fn pull_request_by_id(
        &self,
        id: i64,
    ) -> impl Future<Output = Result<Option<PullRequestRecord>>> + Send;
    /// The pull requests numbered `number` (one per repository and forge), latest first.
    fn pull_requests_numbered(
        &self,
        number: i64,
    ) -> impl Future<Output = Result<Vec<PullRequestRecord>>> + Send;
    /// Keeps the latest full report of a pull request (made at `commit`); the comment id
    /// already kept stays.
    fn save_pull_request_report(
        &self,
        key: &PullRequestKey,
        commit: &str,
        report: &str,
    ) -> impl Future<Output = Result<PullRequestRecord>> + Send;
    /// Remembers the forge's comment the server keeps up to date on a pull request.
    fn set_pull_request_comment(
        &self,
        id: i64,
        comment_id: &str,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// A pull request (merge request) as a forge names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestKey {
    /// `github` or `gitlab`.
    pub provider: String,
    /// `owner/name` or `group/project`.
    pub repository: String,
    /// The pull request's number (GitLab: the merge request's iid).
    pub number: i64,
}

/// What the server keeps of a pull request it planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullRequestRecord {
    pub id: i64,
    pub provider: String,
    pub repository: String,
    pub number: i64,
    /// The head commit the latest report was made at.
    pub commit: String,
    /// The forge's id of the comment kept up to date; `None` until one was posted.
    pub comment_id: Option<String>,
    /// The latest full report, in Markdown.
    pub report: String,
    pub updated_at: UnixMillis,
}

macro_rules! job_columns {
    () => {
        "id, kind, repository, git_ref, commit_id, stage, run_id, delivery_id, requested_by, \
         queued_at, status, started_at, finished_at, superseded_by, owner_pid, \
         owner_process_started, owner_host, outcome, heartbeat_at, labels, stack"
    };
}
macro_rules! token_columns {
    () => {
        "id, actor, role, stage, token_hash, created_at, created_by, revoked_at"
    };
}
pub(crate) const JOB_BY_ID: &str = concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1");
pub(crate) const RECENT_JOBS: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM jobs ORDER BY id DESC LIMIT $1"
);
pub(crate) const RUNNING_JOBS: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM jobs WHERE status = 'running' ORDER BY id"
);
pub(crate) const INSERT_TOKEN: &str = concat!(
    "INSERT INTO api_tokens (actor, role, stage, token_hash, created_at, created_by) \
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
    token_columns!()
);
pub(crate) const TOKEN_BY_HASH: &str = concat!(
    "SELECT ",
    token_columns!(),
    " FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL"
);
pub(crate) const ALL_TOKENS: &str =
    concat!("SELECT ", token_columns!(), " FROM api_tokens ORDER BY id");

/// Queues a job (in the caller's transaction).
pub(crate) const INSERT_JOB: &str = "INSERT INTO jobs (kind, repository, git_ref, commit_id, \
     stage, run_id, delivery_id, requested_by, queued_at, status, labels, stack) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued', $10, $11) RETURNING id";
/// Marks the queued pull request jobs of a branch as replaced by job `$3`.
pub(crate) const SUPERSEDE_PULL_JOBS: &str = "UPDATE jobs SET status = 'superseded', \
     superseded_by = $3, finished_at = $4 WHERE status = 'queued' AND kind = 'pull_request' \
     AND repository = $1 AND git_ref = $2 AND id < $3";
pub(crate) const PULL_REQUEST_BY_KEY: &str = "SELECT id, provider, repository, number, \
     commit_id, comment_id, report, updated_at FROM pull_requests \
     WHERE provider = $1 AND repository = $2 AND number = $3";
pub(crate) const PULL_REQUEST_BY_ID: &str = "SELECT id, provider, repository, number, \
     commit_id, comment_id, report, updated_at FROM pull_requests WHERE id = $1";
/// Marks the queued run jobs of a branch as replaced by job `$3`.
pub(crate) const SUPERSEDE_JOBS: &str = "UPDATE jobs SET status = 'superseded', \
     superseded_by = $3, finished_at = $4 WHERE status = 'queued' AND kind = 'run' \
     AND repository = $1 AND git_ref = $2 AND id < $3";

pub(crate) fn job_kind(text: &str) -> Result<JobKind> {
    crate::sql::parse_text("jobs", "kind", text)
}

pub(crate) fn job_status(text: &str) -> Result<JobStatus> {
    crate::sql::parse_text("jobs", "status", text)
}

pub(crate) fn labels(table: &'static str, text: &str) -> Result<Labels> {
    Labels::parse(text).map_err(|problem| crate::error::StoreError::Corrupt {
        table,
        column: "labels",
        source: crate::error::CorruptValue::Labels(problem),
    })
}

pub(crate) fn role(text: &str) -> Result<Role> {
    crate::sql::parse_text("api_tokens", "role", text)
}

/// A run job of the same commit already queued, running, done or interrupted: a commit is
/// delivered once, whether a webhook, the poller or a person asked first, and a run whose
/// process died is never started again by itself (what it left is a person's to resolve).
pub(crate) const SAME_RUN: &str = "SELECT id FROM jobs WHERE kind = 'run' AND repository = $1 \
     AND commit_id = $2 AND status IN ('queued', 'running', 'done', 'interrupted') \
     ORDER BY id LIMIT 1";

/// Queues `new` in `tx`, superseding what it replaces; returns the job's id (for a run of a
/// commit already asked for, the earlier job's).
/// What a transaction that queues a job runs first, so that two processes queueing at once
/// (two servers polling the same commit) take turns: SQLite's write transactions already do
/// (`BEGIN IMMEDIATE`); on PostgreSQL a transaction-scoped advisory lock of the queue does.
pub(crate) trait QueueLock {
    const LOCK_QUEUE: &'static str;
    /// What a claim's `SELECT` of queued jobs ends with, so that two claimants take
    /// different jobs instead of one waiting for the other's.
    const SKIP_LOCKED: &'static str;
    /// What a transaction that numbers run `$1`'s new events runs first, so that two
    /// processes writing one run's events (a step on another worker) take turns.
    const LOCK_RUN_EVENTS: &'static str;
}

impl QueueLock for sqlx::Sqlite {
    const LOCK_QUEUE: &'static str = "SELECT 1";
    /// A write transaction already holds the whole database.
    const SKIP_LOCKED: &'static str = "";
    const LOCK_RUN_EVENTS: &'static str = "SELECT $1";
}

impl QueueLock for sqlx::Postgres {
    /// The key is slipway's own ("slip" in ASCII), held until the transaction ends.
    const LOCK_QUEUE: &'static str = "SELECT pg_advisory_xact_lock(1936486768)";
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    /// Keyed by slipway's own class ("sliq") and the run.
    const LOCK_RUN_EVENTS: &'static str =
        "SELECT pg_advisory_xact_lock(1936486769, ($1 % 2147483647)::integer)";
}

/// The oldest queued job whose labels are one of `$1..$n` (`n` of them), locked for the
/// claim in `_tx`'s database.
pub(crate) fn next_job_sql<DB: sqlx::Database + QueueLock>(
    _tx: &sqlx::Transaction<'_, DB>,
    n: usize,
) -> String {
    let placeholders: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
    format!(
        "SELECT id FROM jobs WHERE status = 'queued' AND labels IN ({}) ORDER BY id LIMIT 1{}",
        placeholders.join(", "),
        DB::SKIP_LOCKED
    )
}

/// The oldest queued step job of run `$1`, locked for the claim in `_tx`'s database.
pub(crate) fn next_step_sql<DB: sqlx::Database + QueueLock>(
    _tx: &sqlx::Transaction<'_, DB>,
) -> String {
    format!(
        "SELECT id FROM jobs WHERE status = 'queued' AND kind = 'step' AND run_id = $1 \
         ORDER BY id LIMIT 1{}",
        DB::SKIP_LOCKED
    )
}

/// The statement that takes run `$1`'s events lock in transaction `_tx`'s database.
pub(crate) fn lock_run_events_sql<DB: sqlx::Database + QueueLock>(
    _tx: &sqlx::Transaction<'_, DB>,
) -> &'static str {
    DB::LOCK_RUN_EVENTS
}

/// The statement that takes the queue's lock in transaction `_tx`'s database.
pub(crate) fn lock_queue_sql<DB: sqlx::Database + QueueLock>(
    _tx: &sqlx::Transaction<'_, DB>,
) -> &'static str {
    DB::LOCK_QUEUE
}

macro_rules! insert_job {
    ($tx:expr, $new:expr) => {{
        let new: &$crate::service::NewJob = $new;
        sqlx::query($crate::service::lock_queue_sql(&$tx))
            .execute(&mut *$tx)
            .await
            .map_err($crate::error::db("lock the queue"))?;
        let now = $crate::time::UnixMillis::now();
        let earlier: Option<i64> = if new.kind == $crate::service::JobKind::Run {
            sqlx::query_scalar($crate::service::SAME_RUN)
                .bind(&new.repository)
                .bind(&new.commit)
                .fetch_optional(&mut *$tx)
                .await
                .map_err($crate::error::db("read the queue"))?
        } else {
            None
        };
        match earlier {
            Some(id) => id,
            None => $crate::service::insert_job!(@new $tx, new, now),
        }
    }};
    (@new $tx:expr, $new:expr, $now:expr) => {{
        let new: &$crate::service::NewJob = $new;
        let now: $crate::time::UnixMillis = $now;
        let id: i64 = sqlx::query_scalar($crate::service::INSERT_JOB)
            .bind(new.kind.as_str())
            .bind(&new.repository)
            .bind(&new.git_ref)
            .bind(&new.commit)
            .bind(&new.stage)
            .bind(new.run_id)
            .bind(&new.delivery_id)
            .bind(&new.requested_by)
            .bind(now.0)
            .bind(new.labels.to_string())
            .bind(&new.stack)
            .fetch_one(&mut *$tx)
            .await
            .map_err($crate::error::db("queue a job"))?;
        if new.kind == $crate::service::JobKind::PullRequest {
            sqlx::query($crate::service::SUPERSEDE_PULL_JOBS)
                .bind(&new.repository)
                .bind(&new.git_ref)
                .bind(id)
                .bind(now.0)
                .execute(&mut *$tx)
                .await
                .map_err($crate::error::db("supersede queued jobs"))?;
        }
        if new.kind == $crate::service::JobKind::Run {
            sqlx::query($crate::service::SUPERSEDE_JOBS)
                .bind(&new.repository)
                .bind(&new.git_ref)
                .bind(id)
                .bind(now.0)
                .execute(&mut *$tx)
                .await
                .map_err($crate::error::db("supersede queued jobs"))?;
        }
        id
    }};
}
pub(crate) use insert_job;

/// Expands [`ServiceRecord`] for one backend (`$store` with `pool` and `write_tx()`, `$row`
/// its row).
macro_rules! impl_service {
    ($store:ty, $row:ty) => {
        mod service_impl {
            use sqlx::Row as _;

            use $crate::error::{Result, StoreError, db};
            use $crate::liveness::{EngineProcess, Surroundings, probe_process};
            use $crate::service::{
                ALL_TOKENS, ApiToken, INSERT_TOKEN, JOB_BY_ID, Job, JobStatus, NewJob, NewToken,
                Labels, NewWorker, PULL_REQUEST_BY_ID, PULL_REQUEST_BY_KEY, PullRequestKey,
                PullRequestRecord, RECENT_JOBS, RUNNING_JOBS, TOKEN_BY_HASH, Worker, insert_job,
                job_kind, job_status, labels, next_job_sql, next_step_sql, role,
            };
            use $crate::sql::{to_signed, to_unsigned};
            use $crate::time::UnixMillis;

            type Store = $store;

            fn job_from_row(row: &$row) -> Result<Job> {
                let read = db("read jobs");
                let kind: String = row.try_get("kind").map_err(db("read jobs"))?;
                let status: String = row.try_get("status").map_err(db("read jobs"))?;
                let millis = |column: &str| -> Result<Option<UnixMillis>> {
                    Ok(row
                        .try_get::<Option<i64>, _>(column)
                        .map_err(db("read jobs"))?
                        .map(UnixMillis))
                };
                let pid: Option<i64> = row.try_get("owner_pid").map_err(db("read jobs"))?;
                let host: Option<String> = row.try_get("owner_host").map_err(db("read jobs"))?;
                let started: Option<i64> = row
                    .try_get("owner_process_started")
                    .map_err(db("read jobs"))?;
                let worker = match (pid, host) {
                    (Some(pid), Some(host)) => Some(EngineProcess {
                        pid: to_unsigned("jobs", "owner_pid", pid)?,
                        process_started: started
                            .map(|s| to_unsigned("jobs", "owner_process_started", s))
                            .transpose()?,
                        host,
                    }),
                    _ => None,
                };
                Ok(Job {
                    id: row.try_get("id").map_err(read)?,
                    kind: job_kind(&kind)?,
                    repository: row.try_get("repository").map_err(db("read jobs"))?,
                    git_ref: row.try_get("git_ref").map_err(db("read jobs"))?,
                    commit: row.try_get("commit_id").map_err(db("read jobs"))?,
                    stage: row.try_get("stage").map_err(db("read jobs"))?,
                    run_id: row.try_get("run_id").map_err(db("read jobs"))?,
                    stack: row.try_get("stack").map_err(db("read jobs"))?,
                    delivery_id: row.try_get("delivery_id").map_err(db("read jobs"))?,
                    requested_by: row.try_get("requested_by").map_err(db("read jobs"))?,
                    queued_at: UnixMillis(row.try_get("queued_at").map_err(db("read jobs"))?),
                    status: job_status(&status)?,
                    started_at: millis("started_at")?,
                    finished_at: millis("finished_at")?,
                    superseded_by: row.try_get("superseded_by").map_err(db("read jobs"))?,
                    worker,
                    outcome: row.try_get("outcome").map_err(db("read jobs"))?,
                    heartbeat_at: millis("heartbeat_at")?,
                    labels: labels(
                        "jobs",
                        &row.try_get::<String, _>("labels").map_err(db("read jobs"))?,
                    )?,
                })
            }

            fn worker_from_row(row: &$row, here: &Surroundings) -> Result<Worker> {
                let read = || db("read workers");
                let pid: i64 = row.try_get("pid").map_err(read())?;
                let started: Option<i64> = row.try_get("process_started").map_err(read())?;
                let process = EngineProcess {
                    pid: to_unsigned("workers", "pid", pid)?,
                    process_started: started
                        .map(|s| to_unsigned("workers", "process_started", s))
                        .transpose()?,
                    host: row.try_get("host").map_err(read())?,
                };
                let heartbeat_at = UnixMillis(row.try_get("heartbeat_at").map_err(read())?);
                let stopped_at: Option<i64> = row.try_get("stopped_at").map_err(read())?;
                let gone = if stopped_at.is_some() {
                    None
                } else if process.host == here.host {
                    (!process.alive(here, probe_process))
                        .then(|| "its process ended without saying so".to_owned())
                } else {
                    let silent = u64::try_from(here.now.0.saturating_sub(heartbeat_at.0))
                        .unwrap_or_default();
                    (u128::from(silent) >= here.lease.as_millis()).then(|| {
                        format!(
                            "no heartbeat for {} s (the lease is {} s)",
                            silent / 1000,
                            here.lease.as_secs()
                        )
                    })
                };
                let max_jobs: i64 = row.try_get("max_jobs").map_err(read())?;
                Ok(Worker {
                    id: row.try_get("id").map_err(read())?,
                    process,
                    labels: labels(
                        "workers",
                        &row.try_get::<String, _>("labels").map_err(read())?,
                    )?,
                    max_jobs: u32::try_from(max_jobs).unwrap_or(u32::MAX),
                    version: row.try_get("version").map_err(read())?,
                    started_at: UnixMillis(row.try_get("started_at").map_err(read())?),
                    heartbeat_at,
                    draining: row.try_get::<i64, _>("draining").map_err(read())? != 0,
                    stopped_at: stopped_at.map(UnixMillis),
                    gone,
                    running_jobs: Vec::new(),
                })
            }

            fn token_from_row(row: &$row) -> Result<ApiToken> {
                let text: String = row.try_get("role").map_err(db("read api_tokens"))?;
                Ok(ApiToken {
                    id: row.try_get("id").map_err(db("read api_tokens"))?,
                    actor: row.try_get("actor").map_err(db("read api_tokens"))?,
                    role: role(&text)?,
                    stage: row.try_get("stage").map_err(db("read api_tokens"))?,
                    token_hash: row.try_get("token_hash").map_err(db("read api_tokens"))?,
                    created_at: UnixMillis(
                        row.try_get("created_at").map_err(db("read api_tokens"))?,
                    ),
                    created_by: row.try_get("created_by").map_err(db("read api_tokens"))?,
                    revoked_at: row
                        .try_get::<Option<i64>, _>("revoked_at")
                        .map_err(db("read api_tokens"))?
                        .map(UnixMillis),
                })
            }

            /// Marks queued job `id` running for `worker`; `false` if it was no longer queued.
            async fn take_job(
                tx: &mut sqlx::Transaction<'static, <$row as sqlx::Row>::Database>,
                id: i64,
                worker: &EngineProcess,
            ) -> Result<bool> {
                let claimed = sqlx::query(
                    "UPDATE jobs SET status = 'running', started_at = $2, \
                     heartbeat_at = $2, owner_pid = $3, owner_process_started = $4, \
                     owner_host = $5 WHERE id = $1 AND status = 'queued'",
                )
                .bind(id)
                .bind(UnixMillis::now().0)
                .bind(i64::from(worker.pid))
                .bind(worker.process_started.map(to_signed))
                .bind(&worker.host)
                .execute(&mut **tx)
                .await
                .map_err(db("claim a job"))?;
                Ok(claimed.rows_affected() == 1)
            }

            impl Store {
                async fn job_or_gone(&self, id: i64) -> Result<Job> {
                    $crate::service::ServiceRecord::job(self, id)
                        .await?
                        .ok_or(StoreError::NotFound {
                            what: "job",
                            id: id.to_string(),
                        })
                }
            }

            impl $crate::service::ServiceRecord for Store {
                async fn enqueue_job(&self, new: &NewJob) -> Result<Job> {
                    let mut tx = self.write_tx().await?;
                    let id = insert_job!(tx, new);
                    tx.commit().await.map_err(db("queue a job"))?;
                    self.job_or_gone(id).await
                }

                async fn claim_job(
                    &self,
                    worker: &EngineProcess,
                    carried: &Labels,
                ) -> Result<Option<Job>> {
                    let mut tx = self.write_tx().await?;
                    // Few distinct label sets wait at once: the worker picks those it
                    // satisfies, and the database the oldest job among them.
                    let waiting: Vec<String> = sqlx::query_scalar(
                        "SELECT DISTINCT labels FROM jobs WHERE status = 'queued'",
                    )
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db("read the queue"))?;
                    let mut takes = Vec::new();
                    for text in waiting {
                        if carried.satisfy(&labels("jobs", &text)?) {
                            takes.push(text);
                        }
                    }
                    if takes.is_empty() {
                        return Ok(None);
                    }
                    let sql = next_job_sql(&tx, takes.len());
                    let mut next = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
                    for text in &takes {
                        next = next.bind(text);
                    }
                    let Some(id) = next
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db("read the queue"))?
                    else {
                        return Ok(None);
                    };
                    let claimed = take_job(&mut tx, id, worker).await?;
                    tx.commit().await.map_err(db("claim a job"))?;
                    if claimed {
                        Ok(Some(self.job_or_gone(id).await?))
                    } else {
                        Ok(None)
                    }
                }

                async fn claim_step_of(
                    &self,
                    worker: &EngineProcess,
                    run_id: i64,
                ) -> Result<Option<Job>> {
                    let mut tx = self.write_tx().await?;
                    let sql = next_step_sql(&tx);
                    let Some(id) = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                        .bind(run_id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db("read the queue"))?
                    else {
                        return Ok(None);
                    };
                    let claimed = take_job(&mut tx, id, worker).await?;
                    tx.commit().await.map_err(db("claim a job"))?;
                    if claimed {
                        Ok(Some(self.job_or_gone(id).await?))
                    } else {
                        Ok(None)
                    }
                }

                async fn register_worker(&self, new: &NewWorker) -> Result<Worker> {
                    let now = UnixMillis::now().0;
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO workers (host, pid, process_started, labels, max_jobs, \
                         version, started_at, heartbeat_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
                    )
                    .bind(&new.process.host)
                    .bind(i64::from(new.process.pid))
                    .bind(new.process.process_started.map(to_signed))
                    .bind(new.labels.to_string())
                    .bind(i64::from(new.max_jobs))
                    .bind(&new.version)
                    .bind(now)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db("register a worker"))?;
                    $crate::service::ServiceRecord::workers(self, UnixMillis(now))
                        .await?
                        .into_iter()
                        .find(|w| w.id == id)
                        .ok_or(StoreError::NotFound {
                            what: "worker",
                            id: id.to_string(),
                        })
                }

                async fn worker_heartbeat(&self, id: i64, draining: bool) -> Result<bool> {
                    let done = sqlx::query(
                        "UPDATE workers SET heartbeat_at = $2, draining = $3 \
                         WHERE id = $1 AND stopped_at IS NULL",
                    )
                    .bind(id)
                    .bind(UnixMillis::now().0)
                    .bind(i64::from(draining))
                    .execute(&self.pool)
                    .await
                    .map_err(db("renew a worker's heartbeat"))?;
                    Ok(done.rows_affected() == 1)
                }

                async fn worker_stopped(&self, id: i64) -> Result<()> {
                    sqlx::query(
                        "UPDATE workers SET stopped_at = $2 WHERE id = $1 AND stopped_at IS NULL",
                    )
                    .bind(id)
                    .bind(UnixMillis::now().0)
                    .execute(&self.pool)
                    .await
                    .map_err(db("mark a worker stopped"))?;
                    Ok(())
                }

                async fn workers(&self, since: UnixMillis) -> Result<Vec<Worker>> {
                    let here = Surroundings::here(self.lease);
                    let mut workers: Vec<Worker> = sqlx::query(
                        "SELECT id, host, pid, process_started, labels, max_jobs, version, \
                         started_at, heartbeat_at, draining, stopped_at FROM workers \
                         WHERE stopped_at IS NULL OR stopped_at >= $1 ORDER BY id",
                    )
                    .bind(since.0)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db("list workers"))?
                    .iter()
                    .map(|row| worker_from_row(row, &here))
                    .collect::<Result<_>>()?;
                    let running: Vec<Job> = sqlx::query(RUNNING_JOBS)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(db("list running jobs"))?
                        .iter()
                        .map(job_from_row)
                        .collect::<Result<_>>()?;
                    for job in running {
                        let Some(owner) = &job.worker else { continue };
                        if let Some(worker) = workers.iter_mut().rev().find(|w| {
                            w.stopped_at.is_none()
                                && w.process.pid == owner.pid
                                && w.process.host == owner.host
                        }) {
                            worker.running_jobs.push(job.id);
                        }
                    }
                    Ok(workers)
                }

                async fn withdraw_job(&self, id: i64, outcome: &str) -> Result<bool> {
                    let done = sqlx::query(
                        "UPDATE jobs SET status = 'failed', finished_at = $2, outcome = $3 \
                         WHERE id = $1 AND status = 'queued'",
                    )
                    .bind(id)
                    .bind(UnixMillis::now().0)
                    .bind(outcome)
                    .execute(&self.pool)
                    .await
                    .map_err(db("withdraw a job"))?;
                    Ok(done.rows_affected() == 1)
                }

                async fn job_started_run(&self, id: i64, run_id: i64) -> Result<()> {
                    sqlx::query("UPDATE jobs SET run_id = $2 WHERE id = $1")
                        .bind(id)
                        .bind(run_id)
                        .execute(&self.pool)
                        .await
                        .map_err(db("name a job's run"))?;
                    Ok(())
                }

                async fn finish_job(&self, id: i64, status: JobStatus, outcome: &str) -> Result<Job> {
                    sqlx::query(
                        "UPDATE jobs SET status = $2, finished_at = $3, outcome = $4 \
                         WHERE id = $1 AND status = 'running'",
                    )
                    .bind(id)
                    .bind(status.as_str())
                    .bind(UnixMillis::now().0)
                    .bind(outcome)
                    .execute(&self.pool)
                    .await
                    .map_err(db("finish a job"))?;
                    self.job_or_gone(id).await
                }

                async fn heartbeat_job(&self, id: i64, worker: &EngineProcess) -> Result<bool> {
                    let done = sqlx::query(
                        "UPDATE jobs SET heartbeat_at = $2 WHERE id = $1 AND status = 'running' \
                         AND owner_pid = $3 AND owner_host = $4",
                    )
                    .bind(id)
                    .bind(UnixMillis::now().0)
                    .bind(i64::from(worker.pid))
                    .bind(&worker.host)
                    .execute(&self.pool)
                    .await
                    .map_err(db("renew a job's heartbeat"))?;
                    Ok(done.rows_affected() == 1)
                }

                async fn job(&self, id: i64) -> Result<Option<Job>> {
                    sqlx::query(JOB_BY_ID)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(db("read a job"))?
                        .as_ref()
                        .map(job_from_row)
                        .transpose()
                }

                async fn jobs(&self, limit: u32) -> Result<Vec<Job>> {
                    sqlx::query(RECENT_JOBS)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db("list jobs"))?
                    .iter()
                    .map(job_from_row)
                    .collect()
                }

                async fn interrupt_abandoned_jobs(&self) -> Result<Vec<Job>> {
                    let running: Vec<Job> = sqlx::query(RUNNING_JOBS)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db("list running jobs"))?
                    .iter()
                    .map(job_from_row)
                    .collect::<Result<_>>()?;
                    let here = Surroundings::here(self.lease);
                    let mut abandoned = Vec::new();
                    for job in running {
                        let why = match &job.worker {
                            None => Some("the process working on it stopped".to_owned()),
                            Some(worker) if worker.host == here.host => (!worker
                                .alive(&here, probe_process))
                            .then(|| "the process working on it stopped".to_owned()),
                            // Another host's process cannot be looked at: its heartbeat says.
                            Some(worker) => job.heartbeat_at.and_then(|at| {
                                let silent = u64::try_from(here.now.0.saturating_sub(at.0))
                                    .unwrap_or_default();
                                (u128::from(silent) >= here.lease.as_millis()).then(|| {
                                    format!(
                                        "its worker on {} sent no heartbeat for {} s (the lease is {} s)",
                                        worker.host,
                                        silent / 1000,
                                        here.lease.as_secs()
                                    )
                                })
                            }),
                        };
                        let Some(why) = why else {
                            continue;
                        };
                        let changed = sqlx::query(
                            "UPDATE jobs SET status = 'interrupted', finished_at = $2, \
                             outcome = $3 WHERE id = $1 AND status = 'running'",
                        )
                        .bind(job.id)
                        .bind(UnixMillis::now().0)
                        .bind(why)
                        .execute(&self.pool)
                        .await
                        .map_err(db("mark a job interrupted"))?;
                        if changed.rows_affected() == 1 {
                            abandoned.push(self.job_or_gone(job.id).await?);
                        }
                    }
                    Ok(abandoned)
                }

                async fn schedule_marks(&self) -> Result<Vec<(String, UnixMillis)>> {
                    sqlx::query("SELECT name, last_due FROM schedules ORDER BY name")
                        .fetch_all(&self.pool)
                        .await
                        .map_err(db("read schedules"))?
                        .iter()
                        .map(|row| {
                            Ok((
                                row.try_get("name").map_err(db("read schedules"))?,
                                UnixMillis(row.try_get("last_due").map_err(db("read schedules"))?),
                            ))
                        })
                        .collect()
                }

                async fn mark_schedule(
                    &self,
                    name: &str,
                    seen: Option<UnixMillis>,
                    due: UnixMillis,
                    job: Option<&NewJob>,
                ) -> Result<bool> {
                    let mut tx = self.write_tx().await?;
                    let moved = match seen {
                        None => sqlx::query(
                            "INSERT INTO schedules (name, last_due) VALUES ($1, $2) \
                             ON CONFLICT DO NOTHING",
                        )
                        .bind(name)
                        .bind(due.0)
                        .execute(&mut *tx)
                        .await,
                        Some(seen) => sqlx::query(
                            "UPDATE schedules SET last_due = $2 WHERE name = $1 AND last_due = $3",
                        )
                        .bind(name)
                        .bind(due.0)
                        .bind(seen.0)
                        .execute(&mut *tx)
                        .await,
                    }
                    .map_err(db("mark a schedule"))?;
                    if moved.rows_affected() != 1 {
                        return Ok(false);
                    }
                    if let Some(job) = job {
                        insert_job!(tx, job);
                    }
                    tx.commit().await.map_err(db("mark a schedule"))?;
                    Ok(true)
                }

                async fn create_token(&self, new: &NewToken) -> Result<ApiToken> {
                    let row = sqlx::query(INSERT_TOKEN)
                    .bind(&new.actor)
                    .bind(new.role.as_str())
                    .bind(&new.stage)
                    .bind(&new.token_hash)
                    .bind(UnixMillis::now().0)
                    .bind(&new.created_by)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db("keep an API token"))?;
                    token_from_row(&row)
                }

                async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>> {
                    sqlx::query(TOKEN_BY_HASH)
                    .bind(hash)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db("read an API token"))?
                    .as_ref()
                    .map(token_from_row)
                    .transpose()
                }

                async fn tokens(&self) -> Result<Vec<ApiToken>> {
                    sqlx::query(ALL_TOKENS)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(db("list API tokens"))?
                        .iter()
                        .map(token_from_row)
                        .collect()
                }

                async fn revoke_token(&self, id: i64) -> Result<bool> {
                    let done = sqlx::query(
                        "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                    )
                    .bind(id)
                    .bind(UnixMillis::now().0)
                    .execute(&self.pool)
                    .await
                    .map_err(db("revoke an API token"))?;
                    Ok(done.rows_affected() == 1)
                }

                async fn delivery(&self, id: &str) -> Result<Option<$crate::model::Delivery>> {
                    let read = |e| db("read a webhook delivery")(e);
                    let Some(row) = sqlx::query(
                        "SELECT id, provider, kind, repository, git_ref, commit_id, \
                         pull_number, received_at, status, reason, base_ref \
                         FROM webhook_deliveries WHERE id = $1",
                    )
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read)?
                    else {
                        return Ok(None);
                    };
                    let status: String = row.try_get("status").map_err(read)?;
                    Ok(Some($crate::model::Delivery {
                        id: row.try_get("id").map_err(read)?,
                        provider: row.try_get("provider").map_err(read)?,
                        kind: row.try_get("kind").map_err(read)?,
                        repository: row.try_get("repository").map_err(read)?,
                        git_ref: row.try_get("git_ref").map_err(read)?,
                        commit: row.try_get("commit_id").map_err(read)?,
                        pull_number: row.try_get("pull_number").map_err(read)?,
                        received_at: UnixMillis(row.try_get("received_at").map_err(read)?),
                        status: $crate::sql::parse_text("webhook_deliveries", "status", &status)?,
                        reason: row.try_get("reason").map_err(read)?,
                        base_ref: row.try_get("base_ref").map_err(read)?,
                    }))
                }

                async fn pull_request(&self, key: &PullRequestKey) -> Result<Option<PullRequestRecord>> {
                    sqlx::query(PULL_REQUEST_BY_KEY)
                    .bind(&key.provider)
                    .bind(&key.repository)
                    .bind(key.number)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db("read a pull request"))?
                    .as_ref()
                    .map(pull_request_from_row)
                    .transpose()
                }

                async fn pull_request_by_id(&self, id: i64) -> Result<Option<PullRequestRecord>> {
                    sqlx::query(PULL_REQUEST_BY_ID)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db("read a pull request"))?
                    .as_ref()
                    .map(pull_request_from_row)
                    .transpose()
                }

                async fn pull_requests_numbered(&self, number: i64) -> Result<Vec<PullRequestRecord>> {
                    sqlx::query(
                        "SELECT id, provider, repository, number, commit_id, comment_id, report, \
                         updated_at FROM pull_requests WHERE number = $1 \
                         ORDER BY updated_at DESC, id DESC",
                    )
                    .bind(number)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db("read pull requests"))?
                    .iter()
                    .map(pull_request_from_row)
                    .collect()
                }

                async fn save_pull_request_report(
                    &self,
                    key: &PullRequestKey,
                    commit: &str,
                    report: &str,
                ) -> Result<PullRequestRecord> {
                    let mut tx = self.write_tx().await?;
                    sqlx::query(
                        "INSERT INTO pull_requests (provider, repository, number, commit_id, \
                         report, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (provider, repository, number) DO UPDATE SET \
                         commit_id = excluded.commit_id, report = excluded.report, \
                         updated_at = excluded.updated_at",
                    )
                    .bind(&key.provider)
                    .bind(&key.repository)
                    .bind(key.number)
                    .bind(commit)
                    .bind(report)
                    .bind(UnixMillis::now().0)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("keep a pull request's report"))?;
                    tx.commit().await.map_err(db("keep a pull request's report"))?;
                    $crate::service::ServiceRecord::pull_request(self, key)
                        .await?
                        .ok_or(StoreError::NotFound {
                            what: "pull request",
                            id: format!("{}#{}", key.repository, key.number),
                        })
                }

                async fn set_pull_request_comment(&self, id: i64, comment_id: &str) -> Result<()> {
                    let mut tx = self.write_tx().await?;
                    sqlx::query("UPDATE pull_requests SET comment_id = $2 WHERE id = $1")
                        .bind(id)
                        .bind(comment_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(db("remember a pull request's comment"))?;
                    tx.commit().await.map_err(db("remember a pull request's comment"))?;
                    Ok(())
                }
            }

            fn pull_request_from_row(row: &$row) -> Result<PullRequestRecord> {
                let read = |e| db("read a pull request")(e);
                Ok(PullRequestRecord {
                    id: row.try_get("id").map_err(read)?,
                    provider: row.try_get("provider").map_err(read)?,
                    repository: row.try_get("repository").map_err(read)?,
                    number: row.try_get("number").map_err(read)?,
                    commit: row.try_get("commit_id").map_err(read)?,
                    comment_id: row.try_get("comment_id").map_err(read)?,
                    report: row.try_get("report").map_err(read)?,
                    updated_at: UnixMillis(row.try_get("updated_at").map_err(read)?),
                })
            }
        }
    };
}
pub(crate) use impl_service;
