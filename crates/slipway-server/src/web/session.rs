//! Who is signed in: passwords, sessions and their cookie.
//!
//! - A password is kept as an Argon2id hash (a PHC string, [`hash_password`]); checking one
//!   runs on a blocking thread, and a name that is not on record costs the same check, so
//!   the answer's time does not tell which names exist.
//! - A session id is 32 random bytes in hex, sent once in the `Set-Cookie` of the login and
//!   kept in the record only as its SHA-256 ([`crate::auth::hash_token`]), with the time it
//!   ends ([`SESSION_LENGTH`]). Logging out, or removing the user, ends it.
//! - The cookie is `HttpOnly`, `SameSite=Strict`, `Path=/`, and `Secure` unless the request
//!   is plain http on loopback ([`secure_cookie`]): the `Host` names `localhost`, `127.x.x.x`
//!   or `[::1]`, and no proxy said `X-Forwarded-Proto: https`. (A browser never sends a
//!   `Secure` cookie over plain http, and on a loopback address there is nobody in between.)
//!
//! A signed-in person acts as a [`Caller`] with their user name as the actor and their role
//! over every stage: the same value an API token yields, checked by the same code.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use slipway_store::{UnixMillis, UserRecord as _};

use super::WebError;
use crate::AppState;
use crate::auth::{Caller, hash_token};

/// The session cookie's name.
pub(crate) const COOKIE: &str = "slipway_session";
/// The cookie that carries the login form's token until the form is sent.
pub(crate) const LOGIN_COOKIE: &str = "slipway_login";
/// How long a session lasts.
pub(crate) const SESSION_LENGTH: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// Hashes a password for the record: Argon2id with a random salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::PasswordHasher as _;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|error| format!("cannot hash the password: {error}"))
}

/// Whether `password` is the one `hash` was made from. A hash that does not parse matches
/// nothing.
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::PasswordVerifier as _;
    let Ok(parsed) = argon2::password_hash::phc::PasswordHash::new(hash) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// A hash no password matches, checked against when the name is not on record, so that
/// both answers take as long.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("not a password anyone has").unwrap_or_default())
}

/// Checks a password against a user's hash (or the decoy) on a blocking thread.
pub(crate) async fn check_password(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| decoy_hash().to_owned());
        verify_password(&password, &hash) && known
    })
    .await
    .unwrap_or(false)
}

/// 32 random bytes, in hex.
pub(crate) fn random_id() -> Result<String, WebError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| WebError::internal(format!("{error}")))?;
    Ok(hex::encode(bytes))
}

/// A cookie's value in the request, if it has it.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

/// Whether a cookie set in answer to this request is marked `Secure`: always, unless the
/// request is plain http to a loopback host.
pub(crate) fn secure_cookie(headers: &HeaderMap) -> bool {
    let forwarded_https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    if forwarded_https {
        return true;
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    !is_loopback_host(host)
}

/// Whether a `Host` header's value names the loopback interface.
fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, `Secure` per [`secure_cookie`].
pub(crate) fn set_cookie(
    headers: &HeaderMap,
    name: &str,
    value: &str,
    path: &str,
    max_age: std::time::Duration,
) -> String {
    format!(
        "{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Strict{}",
        max_age.as_secs(),
        if secure_cookie(headers) {
            "; Secure"
        } else {
            ""
        }
    )
}

/// A signed-in person, as read from the session cookie.
#[derive(Debug, Clone)]
pub(crate) struct WebUser {
    /// Who they act as, checked by the same code as an API token's holder.
    pub caller: Caller,
    /// The session id from the cookie (never logged, never shown).
    session_id: String,
}

impl WebUser {
    /// The CSRF token every form of this session carries.
    pub fn csrf(&self) -> String {
        super::csrf::token(&self.session_id)
    }

    /// The hash the record keeps the session under.
    pub fn session_hash(&self) -> String {
        hash_token(&self.session_id)
    }
}

/// The signed-in person, or `None` without a live session.
pub(crate) struct MaybeUser(pub Option<WebUser>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let Some(id) = cookie(&parts.headers, COOKIE)
            .filter(|id| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        else {
            return Ok(Self(None));
        };
        let session = state
            .store
            .session(&hash_token(id), UnixMillis::now())
            .await
            .map_err(WebError::internal)?;
        Ok(Self(session.map(|session| WebUser {
            caller: Caller {
                actor: session.user.name,
                role: session.user.role,
                stage: None,
            },
            session_id: id.to_owned(),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_kept_as_an_argon2id_hash() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
        assert_ne!(hash, hash_password("correct horse").unwrap(), "salted");
    }

    #[test]
    fn secure_is_left_out_only_for_plain_http_on_loopback() {
        let headers = |host: &str, proto: Option<&str>| {
            let mut h = HeaderMap::new();
            h.insert(axum::http::header::HOST, host.parse().unwrap());
            if let Some(proto) = proto {
                h.insert("x-forwarded-proto", proto.parse().unwrap());
            }
            h
        };
        for host in [
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST:1",
            "[::1]:8080",
            "127.1.2.3",
        ] {
            assert!(!secure_cookie(&headers(host, None)), "{host}");
            assert!(secure_cookie(&headers(host, Some("https"))), "{host}");
        }
        for host in [
            "slipway.example.com",
            "10.0.0.1:8080",
            "[2001:db8::1]:80",
            "localhost.evil.com",
        ] {
            assert!(secure_cookie(&headers(host, None)), "{host}");
        }
        assert!(secure_cookie(&HeaderMap::new()), "no Host: secure");
        let set = set_cookie(
            &headers("ci.example.com", None),
            COOKIE,
            "abc",
            "/",
            SESSION_LENGTH,
        );
        assert_eq!(
            set,
            "slipway_session=abc; Path=/; Max-Age=43200; HttpOnly; SameSite=Strict; Secure"
        );
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            "a=1; slipway_session=ff; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, COOKIE), Some("ff"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
