//! Bringing a record's schema up to date when it is opened. Each backend keeps its own
//! migration files, since the SQL dialects differ; applying them is the same for both.

use std::ops::Deref;

use sqlx::migrate::{Migrate, Migration, MigrationType, Migrator};
use sqlx::{Acquire, AssertSqlSafe, SqlSafeStr as _};

use crate::error::{Result, StoreError};

/// One step of a backend's schema history: version, description and SQL. A step whose SQL
/// starts with `-- no-transaction` runs outside the migrator's transaction and manages its
/// own (SQLite cannot switch foreign keys off inside one).
pub(crate) type Step = (i64, &'static str, &'static str);

/// Applies the `steps` the database behind `pool` has not seen yet, in version order.
/// `url` names the record in the error, as it may be shown to people.
pub(crate) async fn apply<'a, A>(pool: A, steps: &[Step], url: &str) -> Result<()>
where
    A: Acquire<'a>,
    <A::Connection as Deref>::Target: Migrate,
{
    let migrations = steps
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                description.into(),
                MigrationType::Simple,
                AssertSqlSafe(sql).into_sql_str(),
                sql.starts_with("-- no-transaction"),
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
        .run(pool)
        .await
        .map_err(|source| StoreError::Migrate {
            url: url.to_owned(),
            source,
        })
}
