//! Cross-site request forgery: every form carries a token in a hidden `csrf` field, and
//! every POST is refused (403) unless it carries the right one.
//!
//! - A session's token is the HMAC-SHA256 of a fixed label under the session id: the same
//!   for every form of the session, different for every session, and not to be worked out
//!   from what the record keeps (the SHA-256 of the id).
//! - The login form, sent before there is a session, carries a random token that is also in
//!   a cookie of its own (`slipway_login`, `SameSite=Strict`); the two must match.
//!
//! Tokens are compared in constant time. `SameSite=Strict` cookies already keep other sites'
//! forms from acting as the person; the token also stops a page that shares the site.

use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

const LABEL: &[u8] = b"slipway web form v1";

/// The CSRF token of the session with this id.
pub(crate) fn token(session_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(session_id.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(LABEL);
    hex::encode(mac.finalize().into_bytes())
}

/// Whether a form's token is `expected`.
pub(crate) fn matches(sent: Option<&str>, expected: &str) -> bool {
    match sent {
        Some(sent) if !expected.is_empty() => {
            bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_belongs_to_its_session() {
        let a = token(&"aa".repeat(32));
        assert_eq!(a, token(&"aa".repeat(32)));
        assert_ne!(a, token(&"bb".repeat(32)));
        assert_ne!(
            a,
            crate::auth::hash_token(&"aa".repeat(32)),
            "not the record's hash"
        );
        assert!(matches(Some(&a), &a));
        assert!(!matches(Some(&a[1..]), &a));
        assert!(!matches(None, &a));
        assert!(!matches(Some(""), ""));
    }
}
