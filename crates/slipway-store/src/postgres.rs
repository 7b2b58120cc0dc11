//! The PostgreSQL backend: one record shared by many slipway processes on many hosts.
//!
//! PostgreSQL takes care of concurrent writers itself; every statement that takes a lock or
//! changes its holder is a single atomic statement or runs in a transaction whose last
//! write is conditional on what it read, so the default isolation level is enough.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::error::{Result, StoreError, db, redact};
use crate::migrate;

/// This backend's schema history; each file is applied once, in order.
const MIGRATIONS: &[migrate::Step] = &[
    (
        1,
        "record",
        include_str!("../migrations/postgres/0001_record.sql"),
    ),
    (
        2,
        "instances",
        include_str!("../migrations/postgres/0002_instances.sql"),
    ),
    (
        3,
        "failure reasons",
        include_str!("../migrations/postgres/0003_failure_reasons.sql"),
    ),
    (
        4,
        "approvals",
        include_str!("../migrations/postgres/0004_approvals.sql"),
    ),
    (
        5,
        "fencing tokens and engine processes",
        include_str!("../migrations/postgres/0005_fences_and_engines.sql"),
    ),
    (
        6,
        "run events",
        include_str!("../migrations/postgres/0006_run_events.sql"),
    ),
    (
        7,
        "webhook deliveries",
        include_str!("../migrations/postgres/0007_webhook_deliveries.sql"),
    ),
    (
        8,
        "jobs and API tokens",
        include_str!("../migrations/postgres/0008_jobs_and_tokens.sql"),
    ),
    (
        9,
        "users and sessions",
        include_str!("../migrations/postgres/0009_users_and_sessions.sql"),
    ),
    (
        10,
        "pull requests",
        include_str!("../migrations/postgres/0010_pull_requests.sql"),
    ),
    (
        11,
        "pull request base",
        include_str!("../migrations/postgres/0011_pull_request_base.sql"),
    ),
    (
        12,
        "job heartbeats",
        include_str!("../migrations/postgres/0012_job_heartbeats.sql"),
    ),
    (
        13,
        "workers and labels",
        include_str!("../migrations/postgres/0013_workers.sql"),
    ),
    (
        14,
        "step jobs",
        include_str!("../migrations/postgres/0014_step_jobs.sql"),
    ),
    (
        15,
        "delivery history indexes",
        include_str!("../migrations/postgres/0015_delivery_history_indexes.sql"),
    ),
];

/// The run record in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    lease: Duration,
}

impl PostgresStore {
    /// Connects to and migrates the record at `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`,
    /// with the query parameters libpq accepts, such as `sslmode` or `host=/socket/dir`).
    pub async fn open(url: &str, lease: Duration) -> Result<Self> {
        let shown = redact(url);
        let open_error = |source| StoreError::Open {
            url: shown.clone(),
            source,
        };
        let options = PgConnectOptions::from_str(url).map_err(open_error)?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(15))
            .connect_with(options)
            .await
            .map_err(open_error)?;
        migrate::apply(&pool, MIGRATIONS, &shown).await?;
        Ok(Self { pool, lease })
    }

    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool.begin().await.map_err(db("begin a write"))
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

mod record {
    use super::PostgresStore;

    crate::sql::impl_store!(PostgresStore, sqlx::postgres::PgRow);
    crate::verification::impl_verification!(crate::PostgresStore, sqlx::postgres::PgRow);
    crate::service::impl_service!(crate::PostgresStore, sqlx::postgres::PgRow);
    crate::users::impl_users!(crate::PostgresStore, sqlx::postgres::PgRow);
}
