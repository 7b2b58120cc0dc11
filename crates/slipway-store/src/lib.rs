//! slipway-store: the run record.
//!
//! It holds runs, their stage runs and stack runs, artifacts, releases (which artifact of
//! which stack each stage runs, since when, from which commit, by whom), an append-only
//! audit log, the users of the server's web pages and their sessions, and the locks that
//! keep two runs from applying the same stack instance at once. Everything goes through the
//! [`Store`] trait over plain domain types; the backend is chosen once, from the URL scheme,
//! by [`open`]:
//!
//! - `sqlite://PATH` ([`SqliteStore`]), the embedded default at [`default_url`];
//! - `postgres://...` ([`PostgresStore`]), for many processes on many hosts.
//!
//! Each backend has its own migrations, applied on open. The tables, and the lock and
//! interruption semantics, are described in docs/record.md.
//!
//! This crate knows the record only. It does not read the project configuration, run
//! Terraform, or decide what a run does.

mod error;
mod liveness;
mod migrate;
mod model;
mod postgres;
mod service;
mod sql;
mod sqlite;
mod store;
mod time;
mod users;
mod verification;

use std::path::Path;
use std::time::Duration;

pub use error::{CorruptValue, Result, StoreError};
pub use liveness::{
    DEFAULT_LEASE, EngineProcess, Fence, HeldLock, InstanceLock, LockOwner, ProcessState,
    StaleReason, Surroundings, assess, name_this_host, probe_process, this_host,
};
pub use model::{
    Approval, Artifact, AuditAction, AuditEntry, Delivery, DeliveryHistory, DeliveryStatus, Intake,
    NewApproval, NewAuditEntry, NewDelivery, NewRelease, NewRun, NewStackRun, Release, Run,
    RunEvent, RunStatus, StackRun, StackRunOutcome, StackRunStatus, StageRun, StageRunStatus,
    UnknownValue,
};
pub use postgres::PostgresStore;
pub use service::{
    ApiToken, Job, JobKind, JobStatus, Labels, NewJob, NewToken, NewWorker, PullRequestKey,
    PullRequestRecord, Role, ServiceRecord, Worker,
};
pub use sqlite::{BUSY_TIMEOUT, SqliteStore};
pub use store::Store;
pub use time::{UnixMillis, human_duration};
pub use users::{NewUser, Session, User, UserRecord};
pub use verification::{
    DriftCheck, Drill, DrillStatus, EphemeralInstance, NewInstance, VerificationRecord,
};

/// The record's file name inside the project's data folder.
pub const DEFAULT_FILE_NAME: &str = "slipway.db";

/// The default store URL: an SQLite file in the project's data folder.
pub fn default_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join(DEFAULT_FILE_NAME).display())
}

/// Which backend a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Reads the backend from the URL scheme.
    pub fn of_url(url: &str) -> Result<Self> {
        let scheme = url.split_once(':').map(|(scheme, _)| scheme);
        match scheme {
            Some("sqlite") => Ok(Self::Sqlite),
            Some("postgres" | "postgresql") => Ok(Self::Postgres),
            _ => Err(StoreError::UnsupportedUrl {
                url: error::redact(url),
            }),
        }
    }
}

/// A store of either backend, chosen at run time.
#[derive(Debug, Clone)]
pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

/// Opens the record at `url`, migrating it if needed, with the [`DEFAULT_LEASE`].
pub async fn open(url: &str) -> Result<AnyStore> {
    open_with_lease(url, DEFAULT_LEASE).await
}

/// Opens the record at `url` with a given lease for owners on other hosts.
pub async fn open_with_lease(url: &str, lease: Duration) -> Result<AnyStore> {
    Ok(match Backend::of_url(url)? {
        Backend::Sqlite => AnyStore::Sqlite(SqliteStore::open(url, lease).await?),
        Backend::Postgres => AnyStore::Postgres(PostgresStore::open(url, lease).await?),
    })
}

impl AnyStore {
    /// The backend behind this store.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// Closes every connection.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(store) => store.close().await,
            Self::Postgres(store) => store.close().await,
        }
    }
}

/// Implements a trait of the record for [`AnyStore`] by forwarding each method to the
/// backend inside. Every method is async and returns [`Result`].
macro_rules! delegate {
    (impl $trait:path { $($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)+ }) => {
        impl $trait for $crate::AnyStore {
            $(
                async fn $name(&self, $($arg: $ty),*) -> $crate::Result<$ret> {
                    match self {
                        Self::Sqlite(store) => store.$name($($arg),*).await,
                        Self::Postgres(store) => store.$name($($arg),*).await,
                    }
                }
            )+
        }
    };
}
pub(crate) use delegate;

delegate! { impl Store {
    create_run(new: &NewRun) -> Run;
    finish_run(run_id: i64, status: RunStatus) -> Run;
    run(run_id: i64) -> Option<Run>;
    recent_runs(limit: u32) -> Vec<Run>;
    start_stage_run(run_id: i64, stage: &str) -> StageRun;
    set_stage_run_status(stage_run_id: i64, status: StageRunStatus) -> StageRun;
    stage_runs(run_id: i64) -> Vec<StageRun>;
    add_stack_run(new: &NewStackRun) -> StackRun;
    record_plan(stack_run_id: i64, plan_summary: &str) -> StackRun;
    mark_applying(stack_run_id: i64, lock: &InstanceLock) -> StackRun;
    record_engine_process(stack_run_id: i64, engine: &EngineProcess) -> StackRun;
    finish_stack_run(stack_run_id: i64, outcome: &StackRunOutcome) -> StackRun;
    stack_run(stack_run_id: i64) -> Option<StackRun>;
    stack_runs(run_id: i64) -> Vec<StackRun>;
    interrupted_stack_runs() -> Vec<StackRun>;
    resolve_interrupted(stack_run_id: i64, actor: &str, note: &str) -> StackRun;
    record_artifact(artifact: &Artifact) -> bool;
    artifact(id: &str) -> Option<Artifact>;
    record_release(new: &NewRelease) -> Release;
    current_release(stage: &str, stack: &str) -> Option<Release>;
    previous_release(stage: &str, stack: &str) -> Option<Release>;
    release_history(stage: &str, stack: &str, limit: u32) -> Vec<Release>;
    current_releases() -> Vec<Release>;
    append_audit(entry: &NewAuditEntry) -> AuditEntry;
    audit_log(after_seq: Option<i64>, limit: u32) -> Vec<AuditEntry>;
    delivery_history(since: UnixMillis) -> DeliveryHistory;
    record_approval(new: &NewApproval) -> Approval;
    approvals(run_id: i64) -> Vec<Approval>;
    append_run_events(run_id: i64, events: &[serde_json::Value]) -> ();
    run_events(run_id: i64, after_seq: i64, limit: u32) -> Vec<RunEvent>;
    record_delivery(new: &NewDelivery) -> Intake;
    deliveries(limit: u32) -> Vec<Delivery>;
    acquire_instance_lock(stack: &str, instance: &str, owner: &LockOwner) -> InstanceLock;
    heartbeat_instance_lock(stack: &str, instance: &str, owner: &LockOwner) -> bool;
    release_instance_lock(stack: &str, instance: &str, owner: &LockOwner) -> bool;
    break_stale_lock(seen: &HeldLock, new_owner: &LockOwner, actor: &str) -> InstanceLock;
    instance_locks() -> Vec<HeldLock>;
}}

delegate! { impl ServiceRecord {
    enqueue_job(new: &NewJob) -> Job;
    claim_job(worker: &EngineProcess, labels: &Labels) -> Option<Job>;
    claim_step_of(worker: &EngineProcess, run_id: i64) -> Option<Job>;
    withdraw_job(id: i64, outcome: &str) -> bool;
    job_started_run(id: i64, run_id: i64) -> ();
    finish_job(id: i64, status: JobStatus, outcome: &str) -> Job;
    job(id: i64) -> Option<Job>;
    jobs(limit: u32) -> Vec<Job>;
    interrupt_abandoned_jobs() -> Vec<Job>;
    heartbeat_job(id: i64, worker: &EngineProcess) -> bool;
    register_worker(new: &NewWorker) -> Worker;
    worker_heartbeat(id: i64, draining: bool) -> bool;
    worker_stopped(id: i64) -> ();
    workers(since: UnixMillis) -> Vec<Worker>;
    schedule_marks() -> Vec<(String, UnixMillis)>;
    mark_schedule(name: &str, seen: Option<UnixMillis>, due: UnixMillis, job: Option<&NewJob>) -> bool;
    create_token(new: &NewToken) -> ApiToken;
    token_by_hash(hash: &str) -> Option<ApiToken>;
    tokens() -> Vec<ApiToken>;
    revoke_token(id: i64) -> bool;
    delivery(id: &str) -> Option<Delivery>;
    pull_request(key: &PullRequestKey) -> Option<PullRequestRecord>;
    pull_request_by_id(id: i64) -> Option<PullRequestRecord>;
    pull_requests_numbered(number: i64) -> Vec<PullRequestRecord>;
    save_pull_request_report(key: &PullRequestKey, commit: &str, report: &str) -> PullRequestRecord;
    set_pull_request_comment(id: i64, comment_id: &str) -> ();
}}

delegate! { impl UserRecord {
    create_user(new: &NewUser) -> Option<User>;
    user(name: &str) -> Option<User>;
    users() -> Vec<User>;
    remove_user(name: &str) -> bool;
    create_session(id_hash: &str, user_id: i64, expires_at: UnixMillis) -> ();
    session(id_hash: &str, now: UnixMillis) -> Option<Session>;
    end_session(id_hash: &str) -> bool;
}}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_is_chosen_from_the_scheme() {
        assert_eq!(
            Backend::of_url("sqlite:///data/slipway.db").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::of_url("sqlite::memory:").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::of_url("postgres://u@h/db").ok(),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::of_url("postgresql://u@h/db").ok(),
            Some(Backend::Postgres)
        );
        let error = Backend::of_url("mysql://root:pw@h/db").unwrap_err();
        insta::assert_snapshot!(error.to_string(), @"unsupported store URL `mysql://root:***@h/db`: expected `sqlite://PATH` or `postgres://USER@HOST:PORT/DATABASE`");
    }

    #[test]
    fn default_url_is_a_file_in_the_data_folder() {
        assert_eq!(
            default_url(Path::new("/srv/project/.slipway")),
            "sqlite:///srv/project/.slipway/slipway.db"
        );
    }
}
