//! People who sign in to the web pages of `slipway serve`, and their sessions.
//!
//! Kept apart from [`crate::Store`] as its own trait, [`UserRecord`], with the same shape:
//! one implementation written once for every SQL backend ([`impl_users!`]). The record
//! keeps a password only as the hash it is handed (the server makes Argon2id PHC strings)
//! and a session only as the hash of its id: a leaked record opens nothing.

use std::future::Future;

use serde::Serialize;

use crate::error::Result;
use crate::service::Role;
use crate::time::UnixMillis;

/// A user about to be kept.
#[derive(Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Who they are: the actor the audit log names, and four eyes compares.
    pub name: String,
    pub role: Role,
    /// The password's hash (a PHC string); never the password.
    pub password_hash: String,
    pub created_by: String,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("created_by", &self.created_by)
            .finish_non_exhaustive()
    }
}

/// A user on record.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: Role,
    #[serde(skip)]
    pub password_hash: String,
    pub created_at: UnixMillis,
    pub created_by: String,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("role", &self.role)
            .field("created_at", &self.created_at)
            .field("created_by", &self.created_by)
            .finish_non_exhaustive()
    }
}

/// A live session: whose, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: User,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
}

/// The users of the web pages and their sessions.
pub trait UserRecord: Send + Sync {
    /// Keeps a new user; `None` (and nothing kept) if the name is taken.
    fn create_user(&self, new: &NewUser) -> impl Future<Output = Result<Option<User>>> + Send;
    /// The user with this name.
    fn user(&self, name: &str) -> impl Future<Output = Result<Option<User>>> + Send;
    /// Every user, by name.
    fn users(&self) -> impl Future<Output = Result<Vec<User>>> + Send;
    /// Removes a user and ends their sessions; `false` if there was no such user.
    fn remove_user(&self, name: &str) -> impl Future<Output = Result<bool>> + Send;
    /// Keeps a session of user `user_id` under the hash of its id, until `expires_at`; forgets
    /// the sessions that have ended.
    fn create_session(
        &self,
        id_hash: &str,
        user_id: i64,
        expires_at: UnixMillis,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The session with this id hash, if it has not ended by `now`, with its user.
    fn session(
        &self,
        id_hash: &str,
        now: UnixMillis,
    ) -> impl Future<Output = Result<Option<Session>>> + Send;
    /// Ends a session; `false` if there was none.
    fn end_session(&self, id_hash: &str) -> impl Future<Output = Result<bool>> + Send;
}

macro_rules! user_columns {
    () => {
        "users.id, users.name, users.role, users.password_hash, users.created_at, users.created_by"
    };
}
pub(crate) const INSERT_USER: &str = concat!(
    "INSERT INTO users (name, role, password_hash, created_at, created_by) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING RETURNING ",
    user_columns!()
);
pub(crate) const USER_BY_NAME: &str =
    concat!("SELECT ", user_columns!(), " FROM users WHERE name = $1");
pub(crate) const ALL_USERS: &str = concat!("SELECT ", user_columns!(), " FROM users ORDER BY name");
pub(crate) const SESSION_BY_HASH: &str = concat!(
    "SELECT ",
    user_columns!(),
    ", web_sessions.created_at AS session_created_at, web_sessions.expires_at \
     FROM web_sessions JOIN users ON users.id = web_sessions.user_id \
     WHERE web_sessions.id_hash = $1 AND web_sessions.expires_at > $2"
);

pub(crate) fn user_role(text: &str) -> Result<Role> {
    crate::sql::parse_text("users", "role", text)
}

/// Expands [`UserRecord`] for one backend (`$store` with `pool` and `write_tx()`, `$row` its
/// row).
macro_rules! impl_users {
    ($store:ty, $row:ty) => {
        mod users_impl {
            use sqlx::Row as _;

            use $crate::error::{Result, db};
            use $crate::time::UnixMillis;
            use $crate::users::{
                ALL_USERS, INSERT_USER, NewUser, SESSION_BY_HASH, Session, USER_BY_NAME, User,
                user_role,
            };

            type Store = $store;

            fn user_from_row(row: &$row) -> Result<User> {
                let role: String = row.try_get("role").map_err(db("read users"))?;
                Ok(User {
                    id: row.try_get("id").map_err(db("read users"))?,
                    name: row.try_get("name").map_err(db("read users"))?,
                    role: user_role(&role)?,
                    password_hash: row.try_get("password_hash").map_err(db("read users"))?,
                    created_at: UnixMillis(row.try_get("created_at").map_err(db("read users"))?),
                    created_by: row.try_get("created_by").map_err(db("read users"))?,
                })
            }

            impl $crate::users::UserRecord for Store {
                async fn create_user(&self, new: &NewUser) -> Result<Option<User>> {
                    sqlx::query(INSERT_USER)
                        .bind(&new.name)
                        .bind(new.role.as_str())
                        .bind(&new.password_hash)
                        .bind(UnixMillis::now().0)
                        .bind(&new.created_by)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(db("keep a user"))?
                        .as_ref()
                        .map(user_from_row)
                        .transpose()
                }

                async fn user(&self, name: &str) -> Result<Option<User>> {
                    sqlx::query(USER_BY_NAME)
                        .bind(name)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(db("read a user"))?
                        .as_ref()
                        .map(user_from_row)
                        .transpose()
                }

                async fn users(&self) -> Result<Vec<User>> {
                    sqlx::query(ALL_USERS)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(db("list users"))?
                        .iter()
                        .map(user_from_row)
                        .collect()
                }

                async fn remove_user(&self, name: &str) -> Result<bool> {
                    let mut tx = self.write_tx().await?;
                    sqlx::query(
                        "DELETE FROM web_sessions WHERE user_id IN \
                         (SELECT id FROM users WHERE name = $1)",
                    )
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("end a user's sessions"))?;
                    let done = sqlx::query("DELETE FROM users WHERE name = $1")
                        .bind(name)
                        .execute(&mut *tx)
                        .await
                        .map_err(db("remove a user"))?;
                    tx.commit().await.map_err(db("remove a user"))?;
                    Ok(done.rows_affected() == 1)
                }

                async fn create_session(
                    &self,
                    id_hash: &str,
                    user_id: i64,
                    expires_at: UnixMillis,
                ) -> Result<()> {
                    let now = UnixMillis::now();
                    let mut tx = self.write_tx().await?;
                    sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
                        .bind(now.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(db("forget ended sessions"))?;
                    sqlx::query(
                        "INSERT INTO web_sessions (id_hash, user_id, created_at, expires_at) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(id_hash)
                    .bind(user_id)
                    .bind(now.0)
                    .bind(expires_at.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("keep a session"))?;
                    tx.commit().await.map_err(db("keep a session"))?;
                    Ok(())
                }

                async fn session(&self, id_hash: &str, now: UnixMillis) -> Result<Option<Session>> {
                    let Some(row) = sqlx::query(SESSION_BY_HASH)
                        .bind(id_hash)
                        .bind(now.0)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(db("read a session"))?
                    else {
                        return Ok(None);
                    };
                    Ok(Some(Session {
                        user: user_from_row(&row)?,
                        created_at: UnixMillis(
                            row.try_get("session_created_at")
                                .map_err(db("read a session"))?,
                        ),
                        expires_at: UnixMillis(
                            row.try_get("expires_at").map_err(db("read a session"))?,
                        ),
                    }))
                }

                async fn end_session(&self, id_hash: &str) -> Result<bool> {
                    let done = sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1")
                        .bind(id_hash)
                        .execute(&self.pool)
                        .await
                        .map_err(db("end a session"))?;
                    Ok(done.rows_affected() == 1)
                }
            }
        }
    };
}
pub(crate) use impl_users;
