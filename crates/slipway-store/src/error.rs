//! Errors of the record. Database errors stay opaque to callers: they carry the backend's
//! message for people, not its types.

use crate::liveness::HeldLock;
use crate::model::UnknownValue;

/// What went wrong while reading or writing the record.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL is not one slipway understands.
    #[error(
        "unsupported store URL `{url}`: expected `sqlite://PATH` or `postgres://USER@HOST:PORT/DATABASE`"
    )]
    UnsupportedUrl { url: String },

    /// The database could not be opened.
    #[error("cannot open the record at `{url}`")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
    },

    /// The schema could not be brought up to date.
    #[error("cannot migrate the record at `{url}`")]
    Migrate {
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },

    /// A query failed.
    #[error("the record failed to {action}")]
    Database {
        action: &'static str,
        #[source]
        source: sqlx::Error,
    },

    /// Something the caller named is not in the record.
    #[error("{what} {id} is not in the record")]
    NotFound { what: &'static str, id: String },

    /// A status change the record does not allow (e.g. finishing a stack run twice).
    #[error("{what} {id} cannot go from {from} to {to}")]
    InvalidTransition {
        what: &'static str,
        id: i64,
        from: String,
        to: String,
    },

    /// The stack instance is locked by another owner.
    #[error("{0}")]
    InstanceLocked(Box<HeldLock>),

    /// [`crate::Store::break_stale_lock`] was asked to take over a lock whose holder lives.
    #[error("{0}; its holder is alive, so the lock was not broken")]
    LockNotStale(Box<HeldLock>),

    /// The lock changed hands between being read and being taken over.
    #[error(
        "the lock on stack `{stack}` in instance `{instance}` changed while it was being taken over"
    )]
    LockChanged { stack: String, instance: String },

    /// A stack run marked applying whose process still lives cannot be called interrupted.
    /// A write made under an instance lock found the lock granted to someone else since.
    #[error(
        "the lock on stack `{stack}` in instance `{instance}` was taken over since this run took it; nothing was written"
    )]
    LockLost { stack: String, instance: String },
    #[error("stack run {id} is still applying in a live process ({owner})")]
    StillApplying { id: i64, owner: String },

    /// The record holds a value this version of slipway cannot read.
    #[error("the record holds a value slipway cannot read in {table}.{column}")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        #[source]
        source: CorruptValue,
    },
}

/// Why a stored value could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CorruptValue {
    #[error(transparent)]
    Unknown(#[from] UnknownValue),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("{0} is out of range")]
    OutOfRange(i64),
    #[error("{0}")]
    Labels(String),
}

/// The record's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Tags an `sqlx` error with what the record was doing.
pub(crate) fn db(action: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Database { action, source }
}

/// Hides the password of a database URL before it reaches a message.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or_default();
            let hidden = if user_info.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://slipway:s3cret@db:5432/record"),
            "postgres://slipway:***@db:5432/record"
        );
        assert_eq!(
            redact("postgres://slipway@db/record"),
            "postgres://slipway@db/record"
        );
        assert_eq!(
            redact("sqlite:///var/lib/slipway.db"),
            "sqlite:///var/lib/slipway.db"
        );
    }
}
