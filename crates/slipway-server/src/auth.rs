//! Who is asking, and what they may do.
//!
//! An API token is 32 random bytes, shown once as `slw_<64 hex digits>` and kept only as its
//! SHA-256: a leaked record opens nothing. (A slow password hash buys nothing for a secret of
//! 256 random bits, and every request pays for the lookup.) A token acts as one person or
//! machine (`actor`) with one role, over every stage or over one stage only; elsewhere a
//! stage-bound token is a viewer. Roles: viewer < deployer < approver < admin.
//!
//! Every action asked of the API, allowed or refused, is appended to the audit log by the
//! handler that decides it; refusals with [`refuse`].

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest as _, Sha256};
use slipway_store::{AuditAction, NewAuditEntry, Role, ServiceRecord as _, Store as _};

use crate::AppState;
use crate::error::ApiError;

/// The prefix that makes a slipway token recognisable (to secret scanners, to people).
pub const TOKEN_PREFIX: &str = "slw_";

/// A token as made: the secret, to show once, and the hash to keep.
#[derive(Clone)]
pub struct NewTokenSecret {
    pub token: String,
    pub hash: String,
}

impl std::fmt::Debug for NewTokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewTokenSecret")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// Makes a new token from the operating system's random source.
pub fn new_token() -> std::io::Result<NewTokenSecret> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    let hash = hash_token(&token);
    Ok(NewTokenSecret { token, hash })
}

/// The form a token is kept and looked up in.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The holder of the token a request carried.
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: String,
    pub role: Role,
    /// The one stage the role applies to; elsewhere the caller is a viewer.
    pub stage: Option<String>,
}

impl Caller {
    /// The caller's role at `stage` (`None`: the project as a whole).
    pub fn role_at(&self, stage: Option<&str>) -> Role {
        match (&self.stage, stage) {
            (None, _) => self.role,
            (Some(own), Some(stage)) if own == stage => self.role,
            _ => Role::Viewer,
        }
    }

    /// Whether the caller may act as `needed` at `stage`.
    pub fn may(&self, needed: Role, stage: Option<&str>) -> bool {
        self.role_at(stage).covers(needed)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| t.starts_with(TOKEN_PREFIX));
        let Some(token) = token else {
            return Err(ApiError::unauthorized());
        };
        match state.store.token_by_hash(&hash_token(token)).await? {
            Some(found) => Ok(Caller {
                actor: found.actor,
                role: found.role,
                stage: found.stage,
            }),
            None => Err(ApiError::unauthorized()),
        }
    }
}

/// Checks that `caller` may act as `needed` at `stage` for `what`; a refusal is audited and
/// returned as 403.
pub(crate) async fn require(
    state: &AppState,
    caller: &Caller,
    needed: Role,
    stage: Option<&str>,
    what: &str,
    run_id: Option<i64>,
) -> Result<(), ApiError> {
    if caller.may(needed, stage) {
        return Ok(());
    }
    let why = format!(
        "{what} needs the {needed} role{}; {} is {}{}",
        stage.map(|s| format!(" at stage {s}")).unwrap_or_default(),
        caller.actor,
        caller.role_at(stage),
        stage
            .filter(|_| caller.stage.is_some())
            .map(|_| format!(
                " there (their token is bound to stage {})",
                caller.stage.as_deref().unwrap_or_default()
            ))
            .unwrap_or_default(),
    );
    Err(refuse(state, caller, what, stage, run_id, why).await)
}

/// Audits a refusal and makes its 403.
pub(crate) async fn refuse(
    state: &AppState,
    caller: &Caller,
    what: &str,
    stage: Option<&str>,
    run_id: Option<i64>,
    why: String,
) -> ApiError {
    state.metrics.refusal();
    let entry = NewAuditEntry {
        actor: caller.actor.clone(),
        action: AuditAction::Refused,
        stage: stage.map(str::to_owned),
        stack: None,
        run_id,
        details: serde_json::json!({ "asked": what, "reason": why }),
    };
    if let Err(error) = state.store.append_audit(&entry).await {
        return ApiError::internal(error);
    }
    ApiError::forbidden(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_random_prefixed_and_kept_as_its_hash() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_ne!(a.token, b.token);
        assert!(a.token.starts_with(TOKEN_PREFIX) && a.token.len() == 4 + 64);
        assert_eq!(a.hash, hash_token(&a.token));
        assert_eq!(a.hash.len(), 64);
        assert!(
            !format!("{a:?}").contains(&a.token),
            "never in debug output"
        );
    }

    #[test]
    fn a_stage_bound_role_holds_at_its_stage_only() {
        let caller = Caller {
            actor: "bob".to_owned(),
            role: Role::Approver,
            stage: Some("prod".to_owned()),
        };
        assert!(caller.may(Role::Approver, Some("prod")));
        assert!(!caller.may(Role::Approver, Some("test")));
        assert!(!caller.may(Role::Deployer, None));
        assert!(caller.may(Role::Viewer, Some("test")));
        let deployer = Caller {
            actor: "dee".to_owned(),
            role: Role::Deployer,
            stage: None,
        };
        assert!(deployer.may(Role::Deployer, Some("prod")));
        assert!(!deployer.may(Role::Approver, Some("prod")));
    }
}
