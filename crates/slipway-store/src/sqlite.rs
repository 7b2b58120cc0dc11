//! The SQLite backend: the embedded default, one file in the project's data folder.
//!
//! Several slipway processes may share the file, so every connection runs in WAL mode
//! (readers never block the writer), waits up to [`BUSY_TIMEOUT`] for the write lock rather
//! than failing at once, and commits with `synchronous = FULL` so that "applying" is on disk
//! before Terraform starts. Transactions that read before they write begin with
//! `BEGIN IMMEDIATE`: a deferred transaction that later needs the write lock can fail with
//! `SQLITE_BUSY` at once, whatever the timeout.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::error::{Result, StoreError, db};
use crate::migrate;

/// How long a writer waits for another process's write to finish.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(15);

/// This backend's schema history; each file is applied once, in order.
const MIGRATIONS: &[migrate::Step] = &[
    (
        1,
        "record",
        include_str!("../migrations/sqlite/0001_record.sql"),
    ),
    (
        2,
        "instances",
        include_str!("../migrations/sqlite/0002_instances.sql"),
    ),
    (
        3,
        "failure reasons",
        include_str!("../migrations/sqlite/0003_failure_reasons.sql"),
    ),
    (
        4,
        "approvals",
        include_str!("../migrations/sqlite/0004_approvals.sql"),
    ),
    (
        5,
        "fencing tokens and engine processes",
        include_str!("../migrations/sqlite/0005_fences_and_engines.sql"),
    ),
    (
        6,
        "run events",
        include_str!("../migrations/sqlite/0006_run_events.sql"),
    ),
    (
        7,
        "webhook deliveries",
        include_str!("../migrations/sqlite/0007_webhook_deliveries.sql"),
    ),
    (
        8,
        "jobs and API tokens",
        include_str!("../migrations/sqlite/0008_jobs_and_tokens.sql"),
    ),
    (
        9,
        "users and sessions",
        include_str!("../migrations/sqlite/0009_users_and_sessions.sql"),
    ),
    (
        10,
        "pull requests",
        include_str!("../migrations/sqlite/0010_pull_requests.sql"),
    ),
    (
        11,
        "pull request base",
        include_str!("../migrations/sqlite/0011_pull_request_base.sql"),
    ),
    (
        12,
        "job heartbeats",
        include_str!("../migrations/sqlite/0012_job_heartbeats.sql"),
    ),
    (
        13,
        "workers and labels",
        include_str!("../migrations/sqlite/0013_workers.sql"),
    ),
    (
        14,
        "step jobs",
        include_str!("../migrations/sqlite/0014_step_jobs.sql"),
    ),
    (
        15,
        "delivery history indexes",
        include_str!("../migrations/sqlite/0015_delivery_history_indexes.sql"),
    ),
];

/// The run record in an SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The connection transactions that write begin on. SQLite lets one writer in at a
    /// time anyway; with a connection of their own, writes (a webhook's delivery, a run's
    /// events) never wait for a slot behind readers of the shared pool.
    writer: SqlitePool,
    lease: Duration,
}

impl SqliteStore {
    /// Opens (creating the file and its folder if needed) and migrates the record at
    /// `url` (`sqlite://PATH`, `sqlite:PATH` or `sqlite::memory:`).
    pub async fn open(url: &str, lease: Duration) -> Result<Self> {
        let open_error = |source| StoreError::Open {
            url: url.to_owned(),
            source,
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(open_error)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let filename = options.get_filename();
        let in_memory = filename.as_os_str().is_empty() || filename == Path::new(":memory:");
        if !in_memory {
            if let Some(folder) = filename.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(folder).map_err(|error| open_error(error.into()))?;
            }
        }
        // An in-memory database lives in one connection; more would each see an empty one.
        let max_connections = if in_memory { 1 } else { 4 };
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .connect_with(options.clone())
            .await
            .map_err(open_error)?;
        migrate::apply(&pool, MIGRATIONS, url).await?;
        let writer = if in_memory {
            pool.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .map_err(open_error)?
        };
        Ok(Self {
            pool,
            writer,
            lease,
        })
    }

    /// A transaction that holds the write lock from its first statement.
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db("begin a write"))
    }

    /// Closes every connection, so the file can be removed or copied.
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

mod record {
    use super::SqliteStore;

    crate::sql::impl_store!(SqliteStore, sqlx::sqlite::SqliteRow);
    crate::verification::impl_verification!(crate::SqliteStore, sqlx::sqlite::SqliteRow);
    crate::service::impl_service!(crate::SqliteStore, sqlx::sqlite::SqliteRow);
    crate::users::impl_users!(crate::SqliteStore, sqlx::sqlite::SqliteRow);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The delivery metrics' reads by time find their rows through an index, not by reading
    /// whole tables (SQLite's own query plan says which).
    #[tokio::test]
    async fn the_delivery_historys_reads_use_indexes() {
        let store = SqliteStore::open("sqlite::memory:", Duration::from_secs(60))
            .await
            .unwrap();
        for query in [
            crate::sql::RUNS_OF_STAGE_RUNS_SINCE,
            crate::sql::STAGE_RUNS_SINCE,
            crate::sql::RELEASES_SINCE,
            crate::sql::RESTORATIONS_SINCE,
        ] {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {query}")))
                .bind(0_i64)
                .fetch_all(&store.pool)
                .await
                .unwrap();
            let plan: Vec<String> = rows
                .iter()
                .map(|row| sqlx::Row::get::<String, _>(row, "detail"))
                .collect();
            let scans: Vec<&String> = plan
                .iter()
                .filter(|step| step.starts_with("SCAN") && !step.contains("USING"))
                .collect();
            assert!(scans.is_empty(), "{query}\n{plan:#?}");
        }
    }
}
