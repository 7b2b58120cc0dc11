//! The record's part in verification and recovery: ephemeral instances (kept until they
//! are destroyed, so leftovers can be found and cleaned up), drills with their recovery
//! times, and drift checks.
//!
//! Kept apart from [`crate::Store`] as its own trait, [`VerificationRecord`], with the same
//! shape: one implementation written once for every SQL backend ([`impl_verification!`]).

use std::future::Future;

use serde::Serialize;

use crate::error::Result;
use crate::time::UnixMillis;

/// An ephemeral instance about to be made by this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInstance {
    /// Unique, e.g. `drill-3f9a`; used for state and passed to stacks as `instance.name`.
    pub name: String,
    /// Why it exists: `zero`, `latest`, `drill`, `preview`.
    pub purpose: String,
    /// The stage whose variables, credentials and policy it borrows.
    pub stage: String,
    /// The pipeline run it belongs to, if any.
    pub run_id: Option<i64>,
}

/// An ephemeral instance on record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EphemeralInstance {
    pub name: String,
    pub purpose: String,
    pub stage: String,
    pub run_id: Option<i64>,
    /// The process that made it; while it lives, the instance is not a leftover.
    pub owner_pid: u32,
    pub owner_host: String,
    pub created_at: UnixMillis,
    /// Set once every stack of the instance was destroyed.
    pub destroyed_at: Option<UnixMillis>,
}

/// How a drill ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DrillStatus {
    Running,
    Succeeded,
    Failed,
}

impl DrillStatus {
    /// The text stored in the record.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "running" => Some(Self::Running),
            "succeeded" => Some(Self::Succeeded),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

impl std::fmt::Display for DrillStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One drill: a timed rebuild of a stage into an ephemeral instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drill {
    pub id: i64,
    pub stage: String,
    pub instance: String,
    pub status: DrillStatus,
    pub started_at: UnixMillis,
    pub finished_at: Option<UnixMillis>,
    /// The recovery time: from the start of the drill until every stack was rebuilt.
    pub total_ms: Option<u64>,
    /// Per-stack times, the comparison with the stage, checks and errors (JSON).
    pub details: serde_json::Value,
}

/// One drift check of a stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftCheck {
    pub id: i64,
    pub stage: String,
    pub checked_at: UnixMillis,
    /// How many resources had drifted.
    pub drifted: u64,
    /// The drifted resources and attributes per stack (JSON).
    pub details: serde_json::Value,
}

/// Ephemeral instances, drills and drift checks in the record.
pub trait VerificationRecord: Send + Sync {
    /// Records an ephemeral instance made by this process (before any of it is built).
    fn record_instance(
        &self,
        new: &NewInstance,
    ) -> impl Future<Output = Result<EphemeralInstance>> + Send;
    /// Records the long-lived ephemeral instance `new.name` (a pull request's preview) as
    /// made now by this process: a new row, or the row of the same name made live again
    /// with its `created_at` moved to now (a preview re-applied restarts its time to live).
    fn renew_instance(
        &self,
        new: &NewInstance,
    ) -> impl Future<Output = Result<EphemeralInstance>> + Send;
    /// Says every stack of `name` was destroyed; `false` if it was not on record or had
    /// been marked before.
    fn instance_destroyed(&self, name: &str) -> impl Future<Output = Result<bool>> + Send;
    /// Instances not yet destroyed, oldest first.
    fn live_instances(&self) -> impl Future<Output = Result<Vec<EphemeralInstance>>> + Send;
    /// Starts a drill of `stage` into `instance` (status `running`).
    fn start_drill(
        &self,
        stage: &str,
        instance: &str,
    ) -> impl Future<Output = Result<Drill>> + Send;
    /// Ends a running drill.
    fn finish_drill(
        &self,
        id: i64,
        status: DrillStatus,
        total_ms: u64,
        details: &serde_json::Value,
    ) -> impl Future<Output = Result<Drill>> + Send;
    /// The latest drills, newest first; of one stage when `stage` is given.
    fn drills(
        &self,
        stage: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Drill>>> + Send;
    /// Records a drift check.
    fn record_drift(
        &self,
        stage: &str,
        drifted: u64,
        details: &serde_json::Value,
    ) -> impl Future<Output = Result<DriftCheck>> + Send;
    /// The latest drift checks, newest first; of one stage when `stage` is given.
    fn drift_checks(
        &self,
        stage: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<DriftCheck>>> + Send;
}

pub(crate) const INSTANCE_COLUMNS: &str =
    "name, purpose, stage, run_id, owner_pid, owner_host, created_at, destroyed_at";
pub(crate) const DRILL_COLUMNS: &str =
    "id, stage, instance, status, started_at, finished_at, total_ms, details";
pub(crate) const DRIFT_COLUMNS: &str = "id, stage, checked_at, drifted, details";

pub(crate) fn drill_status(text: &str) -> Result<DrillStatus> {
    DrillStatus::parse(text).ok_or_else(|| crate::StoreError::Corrupt {
        table: "drills",
        column: "status",
        source: crate::model::UnknownValue {
            kind: "DrillStatus",
            value: text.to_owned(),
        }
        .into(),
    })
}

/// Expands [`VerificationRecord`] for one backend (`$store` with `pool`, `$row` its row).
macro_rules! impl_verification {
    ($store:ty, $row:ty) => {
        mod verification_impl {
            use sqlx::Row as _;

            use $crate::error::{Result, StoreError, db};
            use $crate::sql::{parse_json, to_signed, to_unsigned};
            use $crate::time::UnixMillis;
            use $crate::verification::{
                DRIFT_COLUMNS, DRILL_COLUMNS, DriftCheck, Drill, DrillStatus, EphemeralInstance,
                INSTANCE_COLUMNS, NewInstance, drill_status,
            };

            type Store = $store;

            fn instance_from_row(row: &$row) -> Result<EphemeralInstance> {
                let pid: i64 = row.try_get("owner_pid").map_err(db("read instances"))?;
                Ok(EphemeralInstance {
                    name: row.try_get("name").map_err(db("read instances"))?,
                    purpose: row.try_get("purpose").map_err(db("read instances"))?,
                    stage: row.try_get("stage").map_err(db("read instances"))?,
                    run_id: row.try_get("run_id").map_err(db("read instances"))?,
                    owner_pid: to_unsigned("instances", "owner_pid", pid)?,
                    owner_host: row.try_get("owner_host").map_err(db("read instances"))?,
                    created_at: UnixMillis(
                        row.try_get("created_at").map_err(db("read instances"))?,
                    ),
                    destroyed_at: row
                        .try_get::<Option<i64>, _>("destroyed_at")
                        .map_err(db("read instances"))?
                        .map(UnixMillis),
                })
            }

            fn drill_from_row(row: &$row) -> Result<Drill> {
                let status: String = row.try_get("status").map_err(db("read drills"))?;
                let details: String = row.try_get("details").map_err(db("read drills"))?;
                let total: Option<i64> = row.try_get("total_ms").map_err(db("read drills"))?;
                Ok(Drill {
                    id: row.try_get("id").map_err(db("read drills"))?,
                    stage: row.try_get("stage").map_err(db("read drills"))?,
                    instance: row.try_get("instance").map_err(db("read drills"))?,
                    status: drill_status(&status)?,
                    started_at: UnixMillis(row.try_get("started_at").map_err(db("read drills"))?),
                    finished_at: row
                        .try_get::<Option<i64>, _>("finished_at")
                        .map_err(db("read drills"))?
                        .map(UnixMillis),
                    total_ms: total
                        .map(|ms| to_unsigned("drills", "total_ms", ms))
                        .transpose()?,
                    details: parse_json("drills", "details", &details)?,
                })
            }

            fn drift_from_row(row: &$row) -> Result<DriftCheck> {
                let details: String = row.try_get("details").map_err(db("read drift_checks"))?;
                let drifted: i64 = row.try_get("drifted").map_err(db("read drift_checks"))?;
                Ok(DriftCheck {
                    id: row.try_get("id").map_err(db("read drift_checks"))?,
                    stage: row.try_get("stage").map_err(db("read drift_checks"))?,
                    checked_at: UnixMillis(
                        row.try_get("checked_at").map_err(db("read drift_checks"))?,
                    ),
                    drifted: to_unsigned("drift_checks", "drifted", drifted)?,
                    details: parse_json("drift_checks", "details", &details)?,
                })
            }

            /// The latest `limit` rows of `table`, newest first; of one stage when `stage` is
            /// given. For the tables listed by stage, drills and drift checks, whose ids grow
            /// with time.
            async fn newest<T>(
                store: &Store,
                table: &str,
                columns: &str,
                stage: Option<&str>,
                limit: u32,
                action: &'static str,
                from_row: fn(&$row) -> Result<T>,
            ) -> Result<Vec<T>> {
                let sql = format!(
                    "SELECT {columns} FROM {table} WHERE ($1 IS NULL OR stage = $1) \
                     ORDER BY id DESC LIMIT $2"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(stage)
                    .bind(i64::from(limit))
                    .fetch_all(&store.pool)
                    .await
                    .map_err(db(action))?
                    .iter()
                    .map(from_row)
                    .collect()
            }

            impl $crate::verification::VerificationRecord for Store {
                async fn record_instance(&self, new: &NewInstance) -> Result<EphemeralInstance> {
                    let sql = format!(
                        "INSERT INTO instances (name, purpose, stage, run_id, owner_pid, owner_host, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {INSTANCE_COLUMNS}"
                    );
                    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(&new.name)
                        .bind(&new.purpose)
                        .bind(&new.stage)
                        .bind(new.run_id)
                        .bind(i64::from(std::process::id()))
                        .bind($crate::this_host())
                        .bind(UnixMillis::now().0)
                        .fetch_one(&self.pool)
                        .await
                        .map_err(db("record an ephemeral instance"))?;
                    instance_from_row(&row)
                }

                async fn renew_instance(&self, new: &NewInstance) -> Result<EphemeralInstance> {
                    let sql = format!(
                        "INSERT INTO instances (name, purpose, stage, run_id, owner_pid, owner_host, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (name) DO UPDATE SET purpose = excluded.purpose, \
                         stage = excluded.stage, run_id = excluded.run_id, \
                         owner_pid = excluded.owner_pid, owner_host = excluded.owner_host, \
                         created_at = excluded.created_at, destroyed_at = NULL \
                         RETURNING {INSTANCE_COLUMNS}"
                    );
                    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(&new.name)
                        .bind(&new.purpose)
                        .bind(&new.stage)
                        .bind(new.run_id)
                        .bind(i64::from(std::process::id()))
                        .bind($crate::this_host())
                        .bind(UnixMillis::now().0)
                        .fetch_one(&self.pool)
                        .await
                        .map_err(db("renew an ephemeral instance"))?;
                    instance_from_row(&row)
                }

                async fn instance_destroyed(&self, name: &str) -> Result<bool> {
                    let done = sqlx::query(
                        "UPDATE instances SET destroyed_at = $2 WHERE name = $1 AND destroyed_at IS NULL",
                    )
                    .bind(name)
                    .bind(UnixMillis::now().0)
                    .execute(&self.pool)
                    .await
                    .map_err(db("mark an instance destroyed"))?;
                    Ok(done.rows_affected() == 1)
                }

                async fn live_instances(&self) -> Result<Vec<EphemeralInstance>> {
                    let sql = format!(
                        "SELECT {INSTANCE_COLUMNS} FROM instances WHERE destroyed_at IS NULL \
                         ORDER BY created_at, name"
                    );
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(db("list live instances"))?
                        .iter()
                        .map(instance_from_row)
                        .collect()
                }

                async fn start_drill(&self, stage: &str, instance: &str) -> Result<Drill> {
                    let sql = format!(
                        "INSERT INTO drills (stage, instance, status, started_at, details) \
                         VALUES ($1, $2, 'running', $3, '{{}}') RETURNING {DRILL_COLUMNS}"
                    );
                    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(stage)
                        .bind(instance)
                        .bind(UnixMillis::now().0)
                        .fetch_one(&self.pool)
                        .await
                        .map_err(db("start a drill"))?;
                    drill_from_row(&row)
                }

                async fn finish_drill(
                    &self,
                    id: i64,
                    status: DrillStatus,
                    total_ms: u64,
                    details: &serde_json::Value,
                ) -> Result<Drill> {
                    let sql = format!(
                        "UPDATE drills SET status = $2, finished_at = $3, total_ms = $4, details = $5 \
                         WHERE id = $1 AND status = 'running' RETURNING {DRILL_COLUMNS}"
                    );
                    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(id)
                        .bind(status.as_str())
                        .bind(UnixMillis::now().0)
                        .bind(to_signed(total_ms))
                        .bind(details.to_string())
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(db("finish a drill"))?;
                    match row {
                        Some(row) => drill_from_row(&row),
                        None => Err(StoreError::InvalidTransition {
                            what: "drill",
                            id,
                            from: "finished (or missing)".to_owned(),
                            to: status.to_string(),
                        }),
                    }
                }

                async fn drills(&self, stage: Option<&str>, limit: u32) -> Result<Vec<Drill>> {
                    newest(
                        self,
                        "drills",
                        DRILL_COLUMNS,
                        stage,
                        limit,
                        "list drills",
                        drill_from_row,
                    )
                    .await
                }

                async fn record_drift(
                    &self,
                    stage: &str,
                    drifted: u64,
                    details: &serde_json::Value,
                ) -> Result<DriftCheck> {
                    let sql = format!(
                        "INSERT INTO drift_checks (stage, checked_at, drifted, details) \
                         VALUES ($1, $2, $3, $4) RETURNING {DRIFT_COLUMNS}"
                    );
                    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(stage)
                        .bind(UnixMillis::now().0)
                        .bind(to_signed(drifted))
                        .bind(details.to_string())
                        .fetch_one(&self.pool)
                        .await
                        .map_err(db("record a drift check"))?;
                    drift_from_row(&row)
                }

                async fn drift_checks(
                    &self,
                    stage: Option<&str>,
                    limit: u32,
                ) -> Result<Vec<DriftCheck>> {
                    newest(
                        self,
                        "drift_checks",
                        DRIFT_COLUMNS,
                        stage,
                        limit,
                        "list drift checks",
                        drift_from_row,
                    )
                    .await
                }
            }
        }
    };
}
pub(crate) use impl_verification;

crate::delegate! { impl VerificationRecord {
    record_instance(new: &NewInstance) -> EphemeralInstance;
    renew_instance(new: &NewInstance) -> EphemeralInstance;
    instance_destroyed(name: &str) -> bool;
    live_instances() -> Vec<EphemeralInstance>;
    start_drill(stage: &str, instance: &str) -> Drill;
    finish_drill(id: i64, status: DrillStatus, total_ms: u64, details: &serde_json::Value) -> Drill;
    drills(stage: Option<&str>, limit: u32) -> Vec<Drill>;
    record_drift(stage: &str, drifted: u64, details: &serde_json::Value) -> DriftCheck;
    drift_checks(stage: Option<&str>, limit: u32) -> Vec<DriftCheck>;
}}
