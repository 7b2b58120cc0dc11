//! The record's queries and their mapping to domain types, written once for every SQL
//! backend.
//!
//! The statements use only SQL that SQLite and PostgreSQL both accept (`$N` placeholders,
//! `RETURNING`, `ON CONFLICT ... DO NOTHING`, integer times). [`impl_store!`] expands the one
//! implementation of [`crate::Store`] for each backend's concrete `sqlx` types, so the
//! compiler checks it against each of them. A backend supplies `pool`, `lease` and
//! `write_tx()` (a transaction that holds the write lock from its first statement).

use crate::error::{CorruptValue, StoreError};
use crate::liveness::{
    EngineProcess, HeldLock, InstanceLock, LockOwner, ProcessState, Surroundings, assess,
    probe_process,
};
use crate::time::UnixMillis;

macro_rules! run_columns {
    () => {
        "id, commit_id, run_trigger, actor, status, started_at, finished_at"
    };
}
macro_rules! approval_columns {
    () => {
        "id, run_id, stage, actor, reason, plans, approved_at"
    };
}
macro_rules! stage_run_columns {
    () => {
        "id, run_id, stage, status, started_at, finished_at"
    };
}
macro_rules! stack_run_columns {
    () => {
        "id, run_id, stage, instance, stack, artifact_id, status, created_at, started_at, \
         finished_at, plan_summary, log_path, owner_pid, owner_process_started, owner_host, \
         owner_since, note, failure_reason, engine_pid, engine_process_started, engine_host"
    };
}
macro_rules! artifact_columns {
    () => {
        "id, stack, commit_id, created_at, size, manifest"
    };
}
macro_rules! release_columns {
    () => {
        "id, stage, stack, artifact_id, commit_id, released_at, released_by, run_id"
    };
}
macro_rules! audit_columns {
    () => {
        "seq, at, actor, action, stage, stack, run_id, details"
    };
}
macro_rules! lock_columns {
    () => {
        "stack, instance, run_id, pid, process_started, host, since, heartbeat_at, fence"
    };
}
/// A lock's columns and the engine applying its holder's stack run there, if any: an owner
/// that died while its engine still applies does not make the lock stale.
macro_rules! lock_with_engine {
    () => {
        concat!(
            lock_columns!(),
            ", ",
            engine_of_lock!("engine_pid"),
            ", ",
            engine_of_lock!("engine_process_started"),
            ", ",
            engine_of_lock!("engine_host")
        )
    };
}
macro_rules! engine_of_lock {
    ($column:literal) => {
        concat!(
            "(SELECT r.",
            $column,
            " FROM stack_runs r WHERE r.run_id = instance_locks.run_id \
             AND r.stack = instance_locks.stack AND r.instance = instance_locks.instance \
             AND r.status = 'applying') AS ",
            $column
        )
    };
}

/// The heartbeat of the lock a stack run's own run holds on its instance, if any.
macro_rules! lock_heartbeat_of_stack_run {
    () => {
        "(SELECT l.heartbeat_at FROM instance_locks l WHERE l.stack = stack_runs.stack \
         AND l.instance = stack_runs.instance AND l.run_id = stack_runs.run_id) AS lock_heartbeat"
    };
}

pub(crate) const INSERT_RUN: &str = concat!(
    "INSERT INTO runs (commit_id, run_trigger, actor, status, started_at) \
     VALUES ($1, $2, $3, 'running', $4) RETURNING ",
    run_columns!()
);
pub(crate) const FINISH_RUN: &str = concat!(
    "UPDATE runs SET status = $2, finished_at = $3 WHERE id = $1 AND status = 'running' RETURNING ",
    run_columns!()
);
pub(crate) const SELECT_RUN: &str = concat!("SELECT ", run_columns!(), " FROM runs WHERE id = $1");
pub(crate) const RECENT_RUNS: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM runs ORDER BY id DESC LIMIT $1"
);

pub(crate) const INSERT_STAGE_RUN: &str = concat!(
    "INSERT INTO stage_runs (run_id, stage, status, started_at) \
     VALUES ($1, $2, 'running', $3) RETURNING ",
    stage_run_columns!()
);
pub(crate) const SET_STAGE_RUN_STATUS: &str = concat!(
    "UPDATE stage_runs SET status = $2, finished_at = $3 \
     WHERE id = $1 AND finished_at IS NULL RETURNING ",
    stage_run_columns!()
);
pub(crate) const SELECT_STAGE_RUN: &str = concat!(
    "SELECT ",
    stage_run_columns!(),
    " FROM stage_runs WHERE id = $1"
);
pub(crate) const STAGE_RUNS_OF_RUN: &str = concat!(
    "SELECT ",
    stage_run_columns!(),
    " FROM stage_runs WHERE run_id = $1 ORDER BY id"
);

pub(crate) const INSERT_STACK_RUN: &str = concat!(
    "INSERT INTO stack_runs (run_id, stage, instance, stack, artifact_id, status, created_at) \
     VALUES ($1, $2, $3, $4, $5, 'pending', $6) RETURNING ",
    stack_run_columns!()
);
pub(crate) const RECORD_PLAN: &str = concat!(
    "UPDATE stack_runs SET plan_summary = $2 \
     WHERE id = $1 AND status IN ('pending', 'applying') RETURNING ",
    stack_run_columns!()
);
/// Proves, inside a write transaction, that the holder's grant is still current (and holds
/// the row until commit, so a takeover waits for the fenced write to finish).
pub(crate) const CHECK_FENCE: &str = "UPDATE instance_locks SET heartbeat_at = $4 \
     WHERE stack = $1 AND instance = $2 AND fence = $3";
pub(crate) const RECORD_ENGINE: &str = concat!(
    "UPDATE stack_runs SET engine_pid = $2, engine_process_started = $3, engine_host = $4 \
     WHERE id = $1 AND status = 'applying' RETURNING ",
    stack_run_columns!()
);
pub(crate) const MARK_APPLYING: &str = concat!(
    "UPDATE stack_runs SET status = 'applying', started_at = $2, owner_pid = $3, \
     owner_process_started = $4, owner_host = $5, owner_since = $6 \
     WHERE id = $1 AND status = 'pending' RETURNING ",
    stack_run_columns!()
);
pub(crate) const FINISH_STACK_RUN: &str = concat!(
    "UPDATE stack_runs SET status = $2, finished_at = $3, \
     plan_summary = COALESCE($4, plan_summary), log_path = COALESCE($5, log_path), \
     failure_reason = $6 \
     WHERE id = $1 AND status IN ('pending', 'applying') RETURNING ",
    stack_run_columns!()
);
pub(crate) const SELECT_STACK_RUN: &str = concat!(
    "SELECT ",
    stack_run_columns!(),
    " FROM stack_runs WHERE id = $1"
);
pub(crate) const STACK_RUNS_OF_RUN: &str = concat!(
    "SELECT ",
    stack_run_columns!(),
    " FROM stack_runs WHERE run_id = $1 ORDER BY id"
);
pub(crate) const APPLYING_STACK_RUNS: &str = concat!(
    "SELECT ",
    stack_run_columns!(),
    ", ",
    lock_heartbeat_of_stack_run!(),
    " FROM stack_runs WHERE status = 'applying' ORDER BY id"
);
pub(crate) const APPLYING_STACK_RUN: &str = concat!(
    "SELECT ",
    stack_run_columns!(),
    ", ",
    lock_heartbeat_of_stack_run!(),
    " FROM stack_runs WHERE id = $1"
);
pub(crate) const MARK_INTERRUPTED: &str = concat!(
    "UPDATE stack_runs SET status = 'interrupted', finished_at = $2, note = $3 \
     WHERE id = $1 AND status = 'applying' RETURNING ",
    stack_run_columns!()
);

pub(crate) const INSERT_ARTIFACT: &str = concat!(
    "INSERT INTO artifacts (",
    artifact_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING"
);
pub(crate) const SELECT_ARTIFACT: &str = concat!(
    "SELECT ",
    artifact_columns!(),
    " FROM artifacts WHERE id = $1"
);

pub(crate) const INSERT_RELEASE: &str = concat!(
    "INSERT INTO releases (stage, stack, artifact_id, commit_id, released_at, released_by, run_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
    release_columns!()
);
pub(crate) const RELEASE_HISTORY: &str = concat!(
    "SELECT ",
    release_columns!(),
    " FROM releases WHERE stage = $1 AND stack = $2 ORDER BY id DESC LIMIT $3 OFFSET $4"
);
pub(crate) const CURRENT_RELEASES: &str = concat!(
    "SELECT ",
    release_columns!(),
    " FROM releases WHERE id = (SELECT MAX(r.id) FROM releases r \
     WHERE r.stage = releases.stage AND r.stack = releases.stack)"
);

pub(crate) const INSERT_APPROVAL: &str = concat!(
    "INSERT INTO approvals (run_id, stage, actor, reason, plans, approved_at) \
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
    approval_columns!()
);
pub(crate) const APPROVALS_OF_RUN: &str = concat!(
    "SELECT ",
    approval_columns!(),
    " FROM approvals WHERE run_id = $1 ORDER BY id"
);

/// Numbered after the run's last event, inside the write transaction that appends them.
pub(crate) const LAST_RUN_EVENT: &str =
    "SELECT COALESCE(MAX(seq), 0) FROM run_events WHERE run_id = $1";
pub(crate) const INSERT_RUN_EVENT: &str =
    "INSERT INTO run_events (run_id, seq, at, event) VALUES ($1, $2, $3, $4)";
pub(crate) const RUN_EVENTS_AFTER: &str = "SELECT run_id, seq, at, event FROM run_events \
     WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";

macro_rules! delivery_columns {
    () => {
        "id, provider, kind, repository, git_ref, commit_id, pull_number, received_at, status, \
         reason, base_ref"
    };
}
pub(crate) const INSERT_DELIVERY: &str = concat!(
    "INSERT INTO webhook_deliveries (",
    delivery_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING"
);
/// The delivery that made a new one a duplicate.
pub(crate) const EARLIER_DELIVERY: &str = "SELECT id FROM webhook_deliveries WHERE id = $1 \
     OR (repository = $2 AND kind = $3 AND commit_id = $4 AND status = 'queued') \
     ORDER BY received_at LIMIT 1";
pub(crate) const RECENT_DELIVERIES: &str = concat!(
    "SELECT ",
    delivery_columns!(),
    " FROM webhook_deliveries ORDER BY received_at DESC, id LIMIT $1"
);

pub(crate) const INSERT_AUDIT: &str = concat!(
    "INSERT INTO audit_log (at, actor, action, stage, stack, run_id, details) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
    audit_columns!()
);
pub(crate) const AUDIT_AFTER: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
);
pub(crate) const RESTORATIONS_SINCE: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM audit_log WHERE at >= $1 AND action IN ('rollback', 'recover') ORDER BY seq"
);
pub(crate) const RELEASES_SINCE: &str = concat!(
    "SELECT ",
    release_columns!(),
    // The window is found through its index; the rows, in id order, by their id (SQLite
    // would rather scan the whole table in id order than sort what the index finds).
    " FROM releases WHERE id IN (SELECT id FROM releases WHERE released_at >= $1) ORDER BY id"
);
pub(crate) const STAGE_RUNS_SINCE: &str = concat!(
    "SELECT ",
    stage_run_columns!(),
    " FROM stage_runs WHERE id IN (SELECT id FROM stage_runs WHERE started_at >= $1) ORDER BY id"
);
pub(crate) const RUNS_OF_STAGE_RUNS_SINCE: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM runs WHERE id IN (SELECT run_id FROM stage_runs WHERE started_at >= $1) ORDER BY id"
);

/// Numbers the next grant of a stack instance's lock.
pub(crate) const NEXT_FENCE: &str = "INSERT INTO lock_fences (stack, instance, last_fence) \
     VALUES ($1, $2, 1) ON CONFLICT (stack, instance) \
     DO UPDATE SET last_fence = lock_fences.last_fence + 1 RETURNING last_fence";
pub(crate) const INSERT_LOCK: &str = concat!(
    "INSERT INTO instance_locks (",
    lock_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (stack, instance) DO NOTHING"
);
pub(crate) const SELECT_LOCK: &str = concat!(
    "SELECT ",
    lock_with_engine!(),
    " FROM instance_locks WHERE stack = $1 AND instance = $2"
);
pub(crate) const ALL_LOCKS: &str = concat!(
    "SELECT ",
    lock_with_engine!(),
    " FROM instance_locks ORDER BY stack, instance"
);
pub(crate) const HEARTBEAT_LOCK: &str = "UPDATE instance_locks SET heartbeat_at = $6 \
     WHERE stack = $1 AND instance = $2 AND run_id = $3 AND pid = $4 AND host = $5";
pub(crate) const DELETE_LOCK: &str = "DELETE FROM instance_locks \
     WHERE stack = $1 AND instance = $2 AND run_id = $3 AND pid = $4 AND host = $5";
/// Takes a lock over only from the exact owner that was judged stale.
pub(crate) const TAKE_OVER_LOCK: &str = "UPDATE instance_locks SET run_id = $7, pid = $8, \
     process_started = $9, host = $10, since = $11, heartbeat_at = $11, fence = $12 \
     WHERE stack = $1 AND instance = $2 AND run_id = $3 AND pid = $4 AND host = $5 AND since = $6";

/// Reads a stored enum's text.
pub(crate) fn parse_text<T>(
    table: &'static str,
    column: &'static str,
    text: &str,
) -> Result<T, StoreError>
where
    T: std::str::FromStr<Err = crate::model::UnknownValue>,
{
    text.parse()
        .map_err(|source: crate::model::UnknownValue| StoreError::Corrupt {
            table,
            column,
            source: source.into(),
        })
}

pub(crate) fn parse_json(
    table: &'static str,
    column: &'static str,
    text: &str,
) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Corrupt {
        table,
        column,
        source: source.into(),
    })
}

/// Integers that are unsigned in the domain but stored as signed 64-bit columns.
pub(crate) fn to_unsigned<T: TryFrom<i64>>(
    table: &'static str,
    column: &'static str,
    value: i64,
) -> Result<T, StoreError> {
    T::try_from(value).map_err(|_| StoreError::Corrupt {
        table,
        column,
        source: CorruptValue::OutOfRange(value),
    })
}

/// Saturates: process start ticks and bundle sizes never come near `i64::MAX`.
pub(crate) fn to_signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Judges a lock found in the record, with the engine its holder started there, if any.
pub(crate) fn held(
    lock: InstanceLock,
    engine: Option<&EngineProcess>,
    surroundings: &Surroundings,
) -> HeldLock {
    held_with(lock, engine, surroundings, probe_process)
}

pub(crate) fn held_with(
    lock: InstanceLock,
    engine: Option<&EngineProcess>,
    surroundings: &Surroundings,
    probe: impl Fn(u32) -> ProcessState + Copy,
) -> HeldLock {
    let stale = assess(&lock.owner, lock.heartbeat_at, surroundings, probe)
        .filter(|_| !engine.is_some_and(|engine| engine.alive(surroundings, probe)));
    HeldLock {
        age: surroundings.now.since(lock.owner.since),
        stale,
        lock,
    }
}

/// Two owners are the same holder when run, process and host agree (`since` differs when
/// the same process takes the lock again).
pub(crate) fn same_holder(a: &LockOwner, b: &LockOwner) -> bool {
    a.run_id == b.run_id && a.pid == b.pid && a.host == b.host
}

/// `finished_at` for a stage run entering `status`.
pub(crate) fn stage_finish_time(
    status: crate::model::StageRunStatus,
    now: UnixMillis,
) -> Option<i64> {
    use crate::model::StageRunStatus as S;
    match status {
        S::Pending | S::Running | S::AwaitingApproval => None,
        S::Succeeded | S::Failed | S::Skipped => Some(now.0),
    }
}

/// Expands the shared [`crate::Store`] implementation for one backend.
///
/// `$store` is the backend's store type and `$row` its `sqlx` row type.
macro_rules! impl_store {
    ($store:ty, $row:ty) => {
        use sqlx::Row as _;

        use $crate::error::{Result, StoreError, db};
        use $crate::liveness::{EngineProcess, HeldLock, InstanceLock, LockOwner, Surroundings};
        use $crate::model::{
            Approval, Artifact, AuditAction, AuditEntry, Delivery, DeliveryHistory, Intake, NewApproval,
            NewAuditEntry, NewDelivery, NewRelease, NewRun, NewStackRun,
            Release, Run, RunEvent, RunStatus, StackRun, StackRunOutcome, StackRunStatus,
            StageRun, StageRunStatus,
        };
        use $crate::sql::{self, parse_json, parse_text, to_signed, to_unsigned};
        use $crate::time::UnixMillis;

        /// Reads a column, tagging a failure with the table being read.
        macro_rules! get {
            ($r:expr, $table:literal, $col:literal) => {
                $r.try_get($col).map_err(db(concat!("read ", $table, ".", $col)))?
            };
        }

        fn run_from_row(row: &$row) -> Result<Run> {
            let status: String = get!(row, "runs", "status");
            Ok(Run {
                id: get!(row, "runs", "id"),
                commit: get!(row, "runs", "commit_id"),
                trigger: get!(row, "runs", "run_trigger"),
                actor: get!(row, "runs", "actor"),
                status: parse_text("runs", "status", &status)?,
                started_at: UnixMillis(get!(row, "runs", "started_at")),
                finished_at: row
                    .try_get::<Option<i64>, _>("finished_at")
                    .map_err(db("read runs.finished_at"))?
                    .map(UnixMillis),
            })
        }

        fn stage_run_from_row(row: &$row) -> Result<StageRun> {
            let status: String = get!(row, "stage_runs", "status");
            Ok(StageRun {
                id: get!(row, "stage_runs", "id"),
                run_id: get!(row, "stage_runs", "run_id"),
                stage: get!(row, "stage_runs", "stage"),
                status: parse_text("stage_runs", "status", &status)?,
                started_at: UnixMillis(get!(row, "stage_runs", "started_at")),
                finished_at: row
                    .try_get::<Option<i64>, _>("finished_at")
                    .map_err(db("read stage_runs.finished_at"))?
                    .map(UnixMillis),
            })
        }

        fn stack_run_from_row(row: &$row) -> Result<StackRun> {
            let status: String = get!(row, "stack_runs", "status");
            let run_id: i64 = get!(row, "stack_runs", "run_id");
            let owner_pid: Option<i64> = get!(row, "stack_runs", "owner_pid");
            let owner_started: Option<i64> = get!(row, "stack_runs", "owner_process_started");
            let owner_host: Option<String> = get!(row, "stack_runs", "owner_host");
            let owner_since: Option<i64> = get!(row, "stack_runs", "owner_since");
            let owner = match (owner_pid, owner_host, owner_since) {
                (Some(pid), Some(host), Some(since)) => Some(LockOwner {
                    run_id,
                    pid: to_unsigned("stack_runs", "owner_pid", pid)?,
                    process_started: owner_started
                        .map(|ticks| to_unsigned("stack_runs", "owner_process_started", ticks))
                        .transpose()?,
                    host,
                    since: UnixMillis(since),
                }),
                _ => None,
            };
            let engine_pid: Option<i64> = get!(row, "stack_runs", "engine_pid");
            let engine_started: Option<i64> = get!(row, "stack_runs", "engine_process_started");
            let engine_host: Option<String> = get!(row, "stack_runs", "engine_host");
            let engine = engine_from("stack_runs", engine_pid, engine_started, engine_host)?;
            let optional_time = |column: &'static str| -> Result<Option<UnixMillis>> {
                Ok(row
                    .try_get::<Option<i64>, _>(column)
                    .map_err(db("read a stack run time"))?
                    .map(UnixMillis))
            };
            Ok(StackRun {
                id: get!(row, "stack_runs", "id"),
                run_id,
                stage: get!(row, "stack_runs", "stage"),
                instance: get!(row, "stack_runs", "instance"),
                stack: get!(row, "stack_runs", "stack"),
                artifact_id: get!(row, "stack_runs", "artifact_id"),
                status: parse_text("stack_runs", "status", &status)?,
                created_at: UnixMillis(get!(row, "stack_runs", "created_at")),
                started_at: optional_time("started_at")?,
                finished_at: optional_time("finished_at")?,
                plan_summary: get!(row, "stack_runs", "plan_summary"),
                log_path: get!(row, "stack_runs", "log_path"),
                owner,
                engine,
                note: get!(row, "stack_runs", "note"),
                failure_reason: get!(row, "stack_runs", "failure_reason"),
            })
        }

        /// A stack run still applying, with the heartbeat that speaks for its process.
        fn applying_from_row(row: &$row) -> Result<(StackRun, UnixMillis)> {
            let stack_run = stack_run_from_row(row)?;
            let lock_heartbeat: Option<i64> = get!(row, "instance_locks", "lock_heartbeat");
            let since = stack_run.owner.as_ref().map(|owner| owner.since);
            let heartbeat = lock_heartbeat
                .map(UnixMillis)
                .or(since)
                .unwrap_or(stack_run.created_at);
            Ok((stack_run, heartbeat))
        }

        fn artifact_from_row(row: &$row) -> Result<Artifact> {
            let size: i64 = get!(row, "artifacts", "size");
            Ok(Artifact {
                id: get!(row, "artifacts", "id"),
                stack: get!(row, "artifacts", "stack"),
                commit: get!(row, "artifacts", "commit_id"),
                created_at: UnixMillis(get!(row, "artifacts", "created_at")),
                size: to_unsigned("artifacts", "size", size)?,
                manifest: get!(row, "artifacts", "manifest"),
            })
        }

        fn release_from_row(row: &$row) -> Result<Release> {
            Ok(Release {
                id: get!(row, "releases", "id"),
                stage: get!(row, "releases", "stage"),
                stack: get!(row, "releases", "stack"),
                artifact_id: get!(row, "releases", "artifact_id"),
                commit: get!(row, "releases", "commit_id"),
                released_at: UnixMillis(get!(row, "releases", "released_at")),
                released_by: get!(row, "releases", "released_by"),
                run_id: get!(row, "releases", "run_id"),
            })
        }

        fn audit_from_row(row: &$row) -> Result<AuditEntry> {
            let action: String = get!(row, "audit_log", "action");
            let details: String = get!(row, "audit_log", "details");
            Ok(AuditEntry {
                seq: get!(row, "audit_log", "seq"),
                at: UnixMillis(get!(row, "audit_log", "at")),
                actor: get!(row, "audit_log", "actor"),
                action: parse_text("audit_log", "action", &action)?,
                stage: get!(row, "audit_log", "stage"),
                stack: get!(row, "audit_log", "stack"),
                run_id: get!(row, "audit_log", "run_id"),
                details: parse_json("audit_log", "details", &details)?,
            })
        }

        fn approval_from_row(row: &$row) -> Result<Approval> {
            let plans: String = get!(row, "approvals", "plans");
            Ok(Approval {
                id: get!(row, "approvals", "id"),
                run_id: get!(row, "approvals", "run_id"),
                stage: get!(row, "approvals", "stage"),
                actor: get!(row, "approvals", "actor"),
                reason: get!(row, "approvals", "reason"),
                plans: serde_json::from_str(&plans).map_err(|source| StoreError::Corrupt {
                    table: "approvals",
                    column: "plans",
                    source: source.into(),
                })?,
                approved_at: UnixMillis(get!(row, "approvals", "approved_at")),
            })
        }

        fn engine_from(
            table: &'static str,
            pid: Option<i64>,
            started: Option<i64>,
            host: Option<String>,
        ) -> Result<Option<EngineProcess>> {
            let (Some(pid), Some(host)) = (pid, host) else {
                return Ok(None);
            };
            Ok(Some(EngineProcess {
                pid: to_unsigned(table, "engine_pid", pid)?,
                process_started: started
                    .map(|ticks| to_unsigned(table, "engine_process_started", ticks))
                    .transpose()?,
                host,
            }))
        }

        /// A lock read with [`sql::SELECT_LOCK`] or [`sql::ALL_LOCKS`], judged.
        fn held_from_row(row: &$row, surroundings: &Surroundings) -> Result<HeldLock> {
            let lock = lock_from_row(row)?;
            let engine = engine_from(
                "stack_runs",
                get!(row, "stack_runs", "engine_pid"),
                get!(row, "stack_runs", "engine_process_started"),
                get!(row, "stack_runs", "engine_host"),
            )?;
            Ok(sql::held(lock, engine.as_ref(), surroundings))
        }

        /// Whether the process applying a stack run is gone: slipway's process (judged by
        /// its lock's heartbeat from other hosts) and the engine it started there.
        fn applying_gone(
            stack_run: &StackRun,
            heartbeat: UnixMillis,
            surroundings: &Surroundings,
        ) -> bool {
            let owner_gone = match &stack_run.owner {
                Some(owner) => $crate::liveness::assess(
                    owner,
                    heartbeat,
                    surroundings,
                    $crate::liveness::probe_process,
                )
                .is_some(),
                // Applying with no owner cannot come from this crate; treat it as
                // abandoned so it is surfaced rather than hidden.
                None => true,
            };
            owner_gone
                && !stack_run.engine.as_ref().is_some_and(|engine| {
                    engine.alive(surroundings, $crate::liveness::probe_process)
                })
        }

        fn lock_from_row(row: &$row) -> Result<InstanceLock> {
            let pid: i64 = get!(row, "instance_locks", "pid");
            let started: Option<i64> = get!(row, "instance_locks", "process_started");
            Ok(InstanceLock {
                stack: get!(row, "instance_locks", "stack"),
                instance: get!(row, "instance_locks", "instance"),
                owner: LockOwner {
                    run_id: get!(row, "instance_locks", "run_id"),
                    pid: to_unsigned("instance_locks", "pid", pid)?,
                    process_started: started
                        .map(|ticks| to_unsigned("instance_locks", "process_started", ticks))
                        .transpose()?,
                    host: get!(row, "instance_locks", "host"),
                    since: UnixMillis(get!(row, "instance_locks", "since")),
                },
                heartbeat_at: UnixMillis(get!(row, "instance_locks", "heartbeat_at")),
                fence: get!(row, "instance_locks", "fence"),
            })
        }

        impl $store {
            fn surroundings(&self) -> Surroundings {
                Surroundings::here(self.lease)
            }

            /// Explains why a conditional update of a stack run touched nothing.
            async fn stack_run_refusal(&self, id: i64, to: StackRunStatus) -> StoreError {
                match $crate::Store::stack_run(self, id).await {
                    Ok(Some(found)) => StoreError::InvalidTransition {
                        what: "stack run",
                        id,
                        from: found.status.to_string(),
                        to: to.to_string(),
                    },
                    Ok(None) => StoreError::NotFound {
                        what: "stack run",
                        id: id.to_string(),
                    },
                    Err(error) => error,
                }
            }

            async fn insert_audit<'e, E>(executor: E, entry: &NewAuditEntry) -> Result<AuditEntry>
            where
                E: sqlx::Executor<'e, Database = <$row as sqlx::Row>::Database>,
            {
                let row = sqlx::query(sql::INSERT_AUDIT)
                    .bind(UnixMillis::now().0)
                    .bind(&entry.actor)
                    .bind(entry.action.as_str())
                    .bind(&entry.stage)
                    .bind(&entry.stack)
                    .bind(entry.run_id)
                    .bind(entry.details.to_string())
                    .fetch_one(executor)
                    .await
                    .map_err(db("append to the audit log"))?;
                audit_from_row(&row)
            }
        }

        impl $crate::Store for $store {
            async fn create_run(&self, new: &NewRun) -> Result<Run> {
                let row = sqlx::query(sql::INSERT_RUN)
                    .bind(&new.commit)
                    .bind(&new.trigger)
                    .bind(&new.actor)
                    .bind(UnixMillis::now().0)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db("start a run"))?;
                run_from_row(&row)
            }

            async fn finish_run(&self, run_id: i64, status: RunStatus) -> Result<Run> {
                let row = sqlx::query(sql::FINISH_RUN)
                    .bind(run_id)
                    .bind(status.as_str())
                    .bind(UnixMillis::now().0)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db("finish a run"))?;
                match row {
                    Some(row) => run_from_row(&row),
                    None => Err(match self.run(run_id).await? {
                        Some(found) => StoreError::InvalidTransition {
                            what: "run",
                            id: run_id,
                            from: found.status.to_string(),
                            to: status.to_string(),
                        },
                        None => StoreError::NotFound {
                            what: "run",
                            id: run_id.to_string(),
                        },
                    }),
                }
            }

            async fn run(&self, run_id: i64) -> Result<Option<Run>> {
                sqlx::query(sql::SELECT_RUN)
                    .bind(run_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db("read a run"))?
                    .as_ref()
                    .map(run_from_row)
                    .transpose()
            }

            async fn recent_runs(&self, limit: u32) -> Result<Vec<Run>> {
                sqlx::query(sql::RECENT_RUNS)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db("list runs"))?
                    .iter()
                    .map(run_from_row)
                    .collect()
            }

            async fn start_stage_run(&self, run_id: i64, stage: &str) -> Result<StageRun> {
                let row = sqlx::query(sql::INSERT_STAGE_RUN)
                    .bind(run_id)
                    .bind(stage)
                    .bind(UnixMillis::now().0)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db("start a stage run"))?;
                stage_run_from_row(&row)
            }

            async fn set_stage_run_status(
                &self,
                stage_run_id: i64,
                status: StageRunStatus,
            ) -> Result<StageRun> {
                let row = sqlx::query(sql::SET_STAGE_RUN_STATUS)
                    .bind(stage_run_id)
                    .bind(status.as_str())
                    .bind(sql::stage_finish_time(status, UnixMillis::now()))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db("update a stage run"))?;
                if let Some(row) = row {
                    return stage_run_from_row(&row);
                }
                let found = sqlx::query(sql::SELECT_STAGE_RUN)
                    .bind(stage_run_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db("read a stage run"))?;
                Err(match found {
                    Some(row) => StoreError::InvalidTransition {
                        what: "stage run",
                        id: stage_run_id,
                        from: stage_run_from_row(&row)?.status.to_string(),
                        to: status.to_string(),
                    },
                    None => StoreError::NotFound {
                        what: "stage run",
                        id: stage_run_id.to_string(),
                    },
                })
            }

            async fn stage_runs(&self, run_id: i64) -> Result<Vec<StageRun>> {
                sqlx::query(sql::STAGE_RUNS_OF_RUN)
                    .bind(run_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db("list stage runs"))?
                    .iter()
                    .map(stage_run_from_row)
                    .collect()
            }

            async fn add_stack_run(&self, new: &NewStackRun) -> Result<StackRun> {
                let row = sqlx::query(sql::INSERT_STACK_RUN)
                    .bind(new.run_id)
                    .bind(&new.stage)
                    .bind(&new.instance)
                    .bind(&new.stack)
                    .bind(&new.artifact_id)
                    .bind(UnixMillis::now().0)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db("add a stack run"))?;
                stack_run_from_row(&row)
            }

            async fn record_plan(&self, stack_run_id: i64, plan_summary: &str) -> Result<StackRun> {
                let row = sqlx::query(sql::RECORD_PLAN)
                    .bind(stack_run_id)
                    .bind(plan_summary)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db("record a plan"))?;
                match row {
                    Some(row) => stack_run_from_row(&row),
                    None => Err(self
                        .stack_run_refusal(stack_run_id, StackRunStatus::Pending)
                        .await),
                }
            }

            async fn mark_applying(
                &self,
                stack_run_id: i64,
                lock: &InstanceLock,
            ) -> Result<StackRun> {
                let owner = &lock.owner;
                let mut tx = self.write_tx().await?;
                Self::check_fence(&mut *tx, &lock.fence()).await?;
                let row = sqlx::query(sql::MARK_APPLYING)
                    .bind(stack_run_id)
                    .bind(UnixMillis::now().0)
                    .bind(i64::from(owner.pid))
                    .bind(owner.process_started.map(to_signed))
                    .bind(&owner.host)
                    .bind(owner.since.0)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db("mark a stack run applying"))?;
                match row {
                    Some(row) => {
                        tx.commit().await.map_err(db("commit \"applying\""))?;
                        stack_run_from_row(&row)
                    }
                    None => {
                        drop(tx);
                        Err(self
                            .stack_run_refusal(stack_run_id, StackRunStatus::Applying)
                            .await)
                    }
                }
            }

            async fn record_engine_process(
                &self,
                stack_run_id: i64,
                engine: &EngineProcess,
            ) -> Result<StackRun> {
                let row = sqlx::query(sql::RECORD_ENGINE)
                    .bind(stack_run_id)
                    .bind(i64::from(engine.pid))
                    .bind(engine.process_started.map(to_signed))
                    .bind(&engine.host)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db("record a stack run's engine process"))?;
                match row {
                    Some(row) => stack_run_from_row(&row),
                    None => Err(self
                        .stack_run_refusal(stack_run_id, StackRunStatus::Applying)
                        .await),
                }
            }

            async fn finish_stack_run(
                &self,
                stack_run_id: i64,
                outcome: &StackRunOutcome,
            ) -> Result<StackRun> {
                if !outcome.status.is_final() {
                    return Err(self.stack_run_refusal(stack_run_id, outcome.status).await);
                }
                let row = sqlx::query(sql::FINISH_STACK_RUN)
                    .bind(stack_run_id)
                    .bind(outcome.status.as_str())
                    .bind(UnixMillis::now().0)
                    .bind(&outcome.plan_summary)
                    .bind(&outcome.log_path)
                    .bind(&outcome.failure_reason)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db("finish a stack run"))?;
                match row {
                    Some(row) => stack_run_from_row(&row),
                    None => Err(self.stack_run_refusal(stack_run_id, outcome.status).await),
                }
            }

            async fn stack_run(&self, stack_run_id: i64) -> Result<Option<StackRun>> {
                sqlx::query(sql::SELECT_STACK_RUN)
                    .bind(stack_run_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db("read a stack run"))?
                    .as_ref()
                    .map(stack_run_from_row)
                    .transpose()
            }

            async fn stack_runs(&self, run_id: i64) -> Result<Vec<StackRun>> {
                sqlx::query(sql::STACK_RUNS_OF_RUN)
                    .bind(run_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db("list stack runs"))?
                    .iter()
                    .map(stack_run_from_row)
                    .collect()
            }

            async fn interrupted_stack_runs(&self) -> Result<Vec<StackRun>> {
                let rows = sqlx::query(sql::APPLYING_STACK_RUNS)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db("list applying stack runs"))?;
                let surroundings = self.surroundings();
                let mut interrupted = Vec::new();
                for row in &rows {
                    let (stack_run, heartbeat) = applying_from_row(row)?;
                    if applying_gone(&stack_run, heartbeat, &surroundings) {
                        interrupted.push(stack_run);
                    }
                }
                Ok(interrupted)
            }

            async fn resolve_interrupted(
                &self,
                stack_run_id: i64,
                actor: &str,
                note: &str,
            ) -> Result<StackRun> {
                let mut tx = self.write_tx().await?;
                let row = sqlx::query(sql::APPLYING_STACK_RUN)
                    .bind(stack_run_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db("read a stack run"))?
                    .ok_or_else(|| StoreError::NotFound {
                        what: "stack run",
                        id: stack_run_id.to_string(),
                    })?;
                let (stack_run, heartbeat) = applying_from_row(&row)?;
                if stack_run.status != StackRunStatus::Applying {
                    return Err(StoreError::InvalidTransition {
                        what: "stack run",
                        id: stack_run_id,
                        from: stack_run.status.to_string(),
                        to: StackRunStatus::Interrupted.to_string(),
                    });
                }
                if !applying_gone(&stack_run, heartbeat, &self.surroundings()) {
                    let owner = match (&stack_run.owner, &stack_run.engine) {
                        (Some(owner), Some(engine)) => format!("{owner}; {engine}"),
                        (Some(owner), None) => owner.to_string(),
                        (None, Some(engine)) => engine.to_string(),
                        (None, None) => "an unknown process".to_owned(),
                    };
                    return Err(StoreError::StillApplying {
                        id: stack_run_id,
                        owner,
                    });
                }
                let row = sqlx::query(sql::MARK_INTERRUPTED)
                    .bind(stack_run_id)
                    .bind(UnixMillis::now().0)
                    .bind(note)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db("mark a stack run interrupted"))?;
                let resolved = stack_run_from_row(&row)?;
                let entry = NewAuditEntry {
                    actor: actor.to_owned(),
                    action: AuditAction::Interrupted,
                    stage: Some(resolved.stage.clone()),
                    stack: Some(resolved.stack.clone()),
                    run_id: Some(resolved.run_id),
                    details: serde_json::json!({
                        "stack_run": resolved.id,
                        "instance": resolved.instance,
                        "owner": resolved.owner,
                        "note": note,
                    }),
                };
                Self::insert_audit(&mut *tx, &entry).await?;
                tx.commit().await.map_err(db("commit an interruption"))?;
                Ok(resolved)
            }

            async fn record_artifact(&self, artifact: &Artifact) -> Result<bool> {
                let done = sqlx::query(sql::INSERT_ARTIFACT)
                    .bind(&artifact.id)
                    .bind(&artifact.stack)
                    .bind(&artifact.commit)
                    .bind(artifact.created_at.0)
                    .bind(to_signed(artifact.size))
                    .bind(&artifact.manifest)
                    .execute(&self.pool)
                    .await
                    .map_err(db("record an artifact"))?;
                Ok(done.rows_affected() == 1)
            }

            async fn artifact(&self, id: &str) -> Result<Option<Artifact>> {
                sqlx::query(sql::SELECT_ARTIFACT)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db("read an artifact"))?
                    .as_ref()
                    .map(artifact_from_row)
                    .transpose()
            }

            async fn record_release(&self, new: &NewRelease) -> Result<Release> {
                let mut tx = self.write_tx().await?;
                if let Some(fence) = &new.fence {
                    Self::check_fence(&mut *tx, fence).await?;
                }
                let row = sqlx::query(sql::INSERT_RELEASE)
                    .bind(&new.stage)
                    .bind(&new.stack)
                    .bind(&new.artifact_id)
                    .bind(&new.commit)
                    .bind(UnixMillis::now().0)
                    .bind(&new.released_by)
                    .bind(new.run_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db("record a release"))?;
                tx.commit().await.map_err(db("commit a release"))?;
                release_from_row(&row)
            }

            async fn current_release(&self, stage: &str, stack: &str) -> Result<Option<Release>> {
                Ok(self.releases_page(stage, stack, 1, 0).await?.into_iter().next())
            }

            async fn previous_release(&self, stage: &str, stack: &str) -> Result<Option<Release>> {
                Ok(self.releases_page(stage, stack, 1, 1).await?.into_iter().next())
            }

            async fn release_history(
                &self,
                stage: &str,
                stack: &str,
                limit: u32,
            ) -> Result<Vec<Release>> {
                self.releases_page(stage, stack, limit, 0).await
            }

            async fn current_releases(&self) -> Result<Vec<Release>> {
                let mut releases = sqlx::query(sql::CURRENT_RELEASES)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db("list current releases"))?
                    .iter()
                    .map(release_from_row)
                    .collect::<Result<Vec<_>>>()?;
                // Sorted here: database collations disagree on the order of names.
                releases.sort_by(|a, b| (&a.stage, &a.stack).cmp(&(&b.stage, &b.stack)));
                Ok(releases)
            }

            async fn append_audit(&self, entry: &NewAuditEntry) -> Result<AuditEntry> {
                Self::insert_audit(&self.pool, entry).await
            }

            async fn audit_log(&self, after_seq: Option<i64>, limit: u32) -> Result<Vec<AuditEntry>> {
                sqlx::query(sql::AUDIT_AFTER)
                    .bind(after_seq.unwrap_or(i64::MIN))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db("read the audit log"))?
                    .iter()
                    .map(audit_from_row)
                    .collect()
            }

            async fn delivery_history(&self, since: UnixMillis) -> Result<DeliveryHistory> {
                let read = |what: &'static str| db(what);
                let runs = sqlx::query(sql::RUNS_OF_STAGE_RUNS_SINCE)
                    .bind(since.0)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read("list runs since"))?
                    .iter()
                    .map(run_from_row)
                    .collect::<Result<_>>()?;
                let stage_runs = sqlx::query(sql::STAGE_RUNS_SINCE)
                    .bind(since.0)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read("list stage runs since"))?
                    .iter()
                    .map(stage_run_from_row)
                    .collect::<Result<_>>()?;
                let releases = sqlx::query(sql::RELEASES_SINCE)
                    .bind(since.0)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read("list releases since"))?
                    .iter()
                    .map(release_from_row)
                    .collect::<Result<_>>()?;
                let restorations = sqlx::query(sql::RESTORATIONS_SINCE)
                    .bind(since.0)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read("read the audit log"))?
                    .iter()
                    .map(audit_from_row)
                    .collect::<Result<_>>()?;
                Ok(DeliveryHistory {
                    runs,
                    stage_runs,
                    releases,
                    restorations,
                })
            }

            async fn record_approval(&self, new: &NewApproval) -> Result<Approval> {
                let plans = serde_json::to_string(&new.plans).map_err(|source| {
                    StoreError::Corrupt {
                        table: "approvals",
                        column: "plans",
                        source: source.into(),
                    }
                })?;
                let row = sqlx::query(sql::INSERT_APPROVAL)
                    .bind(new.run_id)
                    .bind(&new.stage)
                    .bind(&new.actor)
                    .bind(&new.reason)
                    .bind(plans)
                    .bind(UnixMillis::now().0)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db("record an approval"))?;
                approval_from_row(&row)
            }

            async fn approvals(&self, run_id: i64) -> Result<Vec<Approval>> {
                sqlx::query(sql::APPROVALS_OF_RUN)
                    .bind(run_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db("read approvals"))?
                    .iter()
                    .map(approval_from_row)
                    .collect()
            }

            async fn append_run_events(
                &self,
                run_id: i64,
                events: &[serde_json::Value],
            ) -> Result<()> {
                if events.is_empty() {
                    return Ok(());
                }
                let mut tx = self.write_tx().await?;
                sqlx::query($crate::service::lock_run_events_sql(&tx))
                    .bind(run_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("lock run events"))?;
                let last: i64 = sqlx::query_scalar(sql::LAST_RUN_EVENT)
                    .bind(run_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db("number run events"))?;
                let at = UnixMillis::now().0;
                for (seq, event) in (last + 1..).zip(events) {
                    sqlx::query(sql::INSERT_RUN_EVENT)
                        .bind(run_id)
                        .bind(seq)
                        .bind(at)
                        .bind(event.to_string())
                        .execute(&mut *tx)
                        .await
                        .map_err(db("record run events"))?;
                }
                tx.commit().await.map_err(db("commit run events"))
            }

            async fn run_events(
                &self,
                run_id: i64,
                after_seq: i64,
                limit: u32,
            ) -> Result<Vec<RunEvent>> {
                sqlx::query(sql::RUN_EVENTS_AFTER)
                    .bind(run_id)
                    .bind(after_seq)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db("read run events"))?
                    .iter()
                    .map(|row| {
                        let event: String = get!(row, "run_events", "event");
                        Ok(RunEvent {
                            run_id: get!(row, "run_events", "run_id"),
                            seq: get!(row, "run_events", "seq"),
                            at: UnixMillis(get!(row, "run_events", "at")),
                            event: parse_json("run_events", "event", &event)?,
                        })
                    })
                    .collect()
            }

            async fn record_delivery(&self, new: &NewDelivery) -> Result<Intake> {
                let received_at = UnixMillis::now();
                // The delivery and the job it queues are kept together or not at all.
                let mut tx = self.write_tx().await?;
                let done = sqlx::query(sql::INSERT_DELIVERY)
                    .bind(&new.id)
                    .bind(&new.provider)
                    .bind(&new.kind)
                    .bind(&new.repository)
                    .bind(&new.git_ref)
                    .bind(&new.commit)
                    .bind(new.pull_number)
                    .bind(received_at.0)
                    .bind(new.status.as_str())
                    .bind(&new.reason)
                    .bind(&new.base_ref)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("keep a webhook delivery"))?;
                if done.rows_affected() == 1 {
                    let kind = match new.kind.as_str() {
                        "push" => Some($crate::service::JobKind::Run),
                        // A closed (or merged) pull request's job destroys its preview.
                        "pull_request" | "pull_request_closed" => {
                            Some($crate::service::JobKind::PullRequest)
                        }
                        _ => None,
                    };
                    if let (Some(kind), $crate::DeliveryStatus::Queued) = (kind, new.status) {
                        let job = $crate::service::NewJob {
                            kind,
                            repository: new.repository.clone(),
                            git_ref: new.git_ref.clone(),
                            commit: new.commit.clone(),
                            stage: None,
                            run_id: None,
                            stack: None,
                            delivery_id: Some(new.id.clone()),
                            requested_by: new.actor.clone(),
                            labels: $crate::service::Labels::default(),
                        };
                        $crate::service::insert_job!(tx, &job);
                    }
                    tx.commit().await.map_err(db("keep a webhook delivery"))?;
                    return Ok(Intake::Kept(Delivery {
                        id: new.id.clone(),
                        provider: new.provider.clone(),
                        kind: new.kind.clone(),
                        repository: new.repository.clone(),
                        git_ref: new.git_ref.clone(),
                        commit: new.commit.clone(),
                        pull_number: new.pull_number,
                        received_at,
                        status: new.status,
                        reason: new.reason.clone(),
                        base_ref: new.base_ref.clone(),
                    }));
                }
                tx.commit().await.map_err(db("keep a webhook delivery"))?;
                let of: Option<String> = sqlx::query_scalar(sql::EARLIER_DELIVERY)
                    .bind(&new.id)
                    .bind(&new.repository)
                    .bind(&new.kind)
                    .bind(&new.commit)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db("read a webhook delivery"))?;
                Ok(Intake::Duplicate {
                    of: of.unwrap_or_else(|| new.id.clone()),
                })
            }

            async fn deliveries(&self, limit: u32) -> Result<Vec<Delivery>> {
                sqlx::query(sql::RECENT_DELIVERIES)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db("list webhook deliveries"))?
                    .iter()
                    .map(|row| {
                        let status: String = get!(row, "webhook_deliveries", "status");
                        Ok(Delivery {
                            id: get!(row, "webhook_deliveries", "id"),
                            provider: get!(row, "webhook_deliveries", "provider"),
                            kind: get!(row, "webhook_deliveries", "kind"),
                            repository: get!(row, "webhook_deliveries", "repository"),
                            git_ref: get!(row, "webhook_deliveries", "git_ref"),
                            commit: get!(row, "webhook_deliveries", "commit_id"),
                            pull_number: get!(row, "webhook_deliveries", "pull_number"),
                            received_at: UnixMillis(get!(row, "webhook_deliveries", "received_at")),
                            status: parse_text("webhook_deliveries", "status", &status)?,
                            reason: get!(row, "webhook_deliveries", "reason"),
                            base_ref: get!(row, "webhook_deliveries", "base_ref"),
                        })
                    })
                    .collect()
            }

            async fn acquire_instance_lock(
                &self,
                stack: &str,
                instance: &str,
                owner: &LockOwner,
            ) -> Result<InstanceLock> {
                // One INSERT is atomic on both backends: of two owners racing, the primary key
                // lets exactly one in. The loop covers a holder leaving between our failed
                // INSERT and the SELECT that reads who it was.
                for _ in 0..3 {
                    let now = UnixMillis::now();
                    let fence = self.next_fence(stack, instance).await?;
                    let inserted = sqlx::query(sql::INSERT_LOCK)
                        .bind(stack)
                        .bind(instance)
                        .bind(owner.run_id)
                        .bind(i64::from(owner.pid))
                        .bind(owner.process_started.map(to_signed))
                        .bind(&owner.host)
                        .bind(owner.since.0)
                        .bind(now.0)
                        .bind(fence)
                        .execute(&self.pool)
                        .await
                        .map_err(db("take an instance lock"))?;
                    if inserted.rows_affected() == 1 {
                        return Ok(InstanceLock {
                            stack: stack.to_owned(),
                            instance: instance.to_owned(),
                            owner: owner.clone(),
                            heartbeat_at: now,
                            fence,
                        });
                    }
                    let Some(held) = self.lock(stack, instance).await? else {
                        continue;
                    };
                    if sql::same_holder(&held.lock.owner, owner) {
                        return Ok(held.lock);
                    }
                    return Err(StoreError::InstanceLocked(Box::new(held)));
                }
                Err(StoreError::LockChanged {
                    stack: stack.to_owned(),
                    instance: instance.to_owned(),
                })
            }

            async fn heartbeat_instance_lock(
                &self,
                stack: &str,
                instance: &str,
                owner: &LockOwner,
            ) -> Result<bool> {
                let done = sqlx::query(sql::HEARTBEAT_LOCK)
                    .bind(stack)
                    .bind(instance)
                    .bind(owner.run_id)
                    .bind(i64::from(owner.pid))
                    .bind(&owner.host)
                    .bind(UnixMillis::now().0)
                    .execute(&self.pool)
                    .await
                    .map_err(db("renew an instance lock"))?;
                Ok(done.rows_affected() == 1)
            }

            async fn release_instance_lock(
                &self,
                stack: &str,
                instance: &str,
                owner: &LockOwner,
            ) -> Result<bool> {
                let done = sqlx::query(sql::DELETE_LOCK)
                    .bind(stack)
                    .bind(instance)
                    .bind(owner.run_id)
                    .bind(i64::from(owner.pid))
                    .bind(&owner.host)
                    .execute(&self.pool)
                    .await
                    .map_err(db("release an instance lock"))?;
                Ok(done.rows_affected() == 1)
            }

            async fn break_stale_lock(
                &self,
                seen: &HeldLock,
                new_owner: &LockOwner,
                actor: &str,
            ) -> Result<InstanceLock> {
                let (stack, instance) = (&seen.lock.stack, &seen.lock.instance);
                let changed = || StoreError::LockChanged {
                    stack: stack.clone(),
                    instance: instance.clone(),
                };
                let mut tx = self.write_tx().await?;
                let row = sqlx::query(sql::SELECT_LOCK)
                    .bind(stack)
                    .bind(instance)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db("read an instance lock"))?
                    .ok_or_else(changed)?;
                let judged = held_from_row(&row, &self.surroundings())?;
                if judged.lock.owner != seen.lock.owner {
                    return Err(changed());
                }
                let Some(reason) = judged.stale.clone() else {
                    return Err(StoreError::LockNotStale(Box::new(judged)));
                };
                let old = &judged.lock.owner;
                let now = UnixMillis::now();
                let fence: i64 = sqlx::query_scalar(sql::NEXT_FENCE)
                    .bind(stack)
                    .bind(instance)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db("number a lock grant"))?;
                let done = sqlx::query(sql::TAKE_OVER_LOCK)
                    .bind(stack)
                    .bind(instance)
                    .bind(old.run_id)
                    .bind(i64::from(old.pid))
                    .bind(&old.host)
                    .bind(old.since.0)
                    .bind(new_owner.run_id)
                    .bind(i64::from(new_owner.pid))
                    .bind(new_owner.process_started.map(to_signed))
                    .bind(&new_owner.host)
                    .bind(now.0)
                    .bind(fence)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("take over an instance lock"))?;
                if done.rows_affected() != 1 {
                    return Err(changed());
                }
                let entry = NewAuditEntry {
                    actor: actor.to_owned(),
                    action: AuditAction::Unlock,
                    stage: None,
                    stack: Some(stack.clone()),
                    run_id: Some(new_owner.run_id),
                    details: serde_json::json!({
                        "instance": instance,
                        "previous_owner": old,
                        "age_ms": u64::try_from(judged.age.as_millis()).unwrap_or(u64::MAX),
                        "reason": reason,
                        "new_owner": new_owner,
                    }),
                };
                Self::insert_audit(&mut *tx, &entry).await?;
                tx.commit().await.map_err(db("commit a lock takeover"))?;
                let mut owner = new_owner.clone();
                owner.since = now;
                Ok(InstanceLock {
                    stack: stack.clone(),
                    instance: instance.clone(),
                    owner,
                    heartbeat_at: now,
                    fence,
                })
            }

            async fn instance_locks(&self) -> Result<Vec<HeldLock>> {
                let surroundings = self.surroundings();
                sqlx::query(sql::ALL_LOCKS)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db("list instance locks"))?
                    .iter()
                    .map(|row| held_from_row(row, &surroundings))
                    .collect()
            }
        }

        impl $store {
            async fn releases_page(
                &self,
                stage: &str,
                stack: &str,
                limit: u32,
                offset: u32,
            ) -> Result<Vec<Release>> {
                sqlx::query(sql::RELEASE_HISTORY)
                    .bind(stage)
                    .bind(stack)
                    .bind(i64::from(limit))
                    .bind(i64::from(offset))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db("read release history"))?
                    .iter()
                    .map(release_from_row)
                    .collect()
            }

            async fn lock(&self, stack: &str, instance: &str) -> Result<Option<HeldLock>> {
                let surroundings = self.surroundings();
                sqlx::query(sql::SELECT_LOCK)
                    .bind(stack)
                    .bind(instance)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db("read an instance lock"))?
                    .as_ref()
                    .map(|row| held_from_row(row, &surroundings))
                    .transpose()
            }

            async fn next_fence(&self, stack: &str, instance: &str) -> Result<i64> {
                sqlx::query_scalar(sql::NEXT_FENCE)
                    .bind(stack)
                    .bind(instance)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db("number a lock grant"))
            }

            /// Fails with [`StoreError::LockLost`] unless `fence` is still the current grant.
            async fn check_fence<'e, E>(executor: E, fence: &$crate::Fence) -> Result<()>
            where
                E: sqlx::Executor<'e, Database = <$row as sqlx::Row>::Database>,
            {
                let done = sqlx::query(sql::CHECK_FENCE)
                    .bind(&fence.stack)
                    .bind(&fence.instance)
                    .bind(fence.token)
                    .bind(UnixMillis::now().0)
                    .execute(executor)
                    .await
                    .map_err(db("check an instance lock's fence"))?;
                if done.rows_affected() == 1 {
                    Ok(())
                } else {
                    Err(StoreError::LockLost {
                        stack: fence.stack.clone(),
                        instance: fence.instance.clone(),
                    })
                }
            }
        }
    };
}
pub(crate) use impl_store;
