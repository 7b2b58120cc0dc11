//! Artifact identity: `sha256:<hex>` of the compressed bundle bytes.
//!
//! This module stands on its own, with its own parse error ([`InvalidArtifactId`]), so that
//! the crate error, which names artifacts by id, can depend on it without a cycle. Checking
//! bytes against an id fails with the crate error, so [`ArtifactId::verify`] is in error.rs.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

const PREFIX: &str = "sha256:";

/// The identity of an artifact: the SHA-256 of its compressed bundle bytes.
///
/// Displayed and parsed as `sha256:<64 lowercase hex digits>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArtifactId {
    hex: String,
}

impl ArtifactId {
    /// The id of these bundle bytes.
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            hex: sha256_hex(bytes),
        }
    }

    /// The 64 hex digits, without the `sha256:` prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The short form shown to people: the first 12 hex digits.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

/// A string is not an artifact id of the form `sha256:<64 hex digits>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not an artifact id (expected sha256:<64 hex digits>)")]
pub struct InvalidArtifactId {
    value: String,
}

impl InvalidArtifactId {
    /// The text that did not parse.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for ArtifactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", self.hex)
    }
}

impl fmt::Debug for ArtifactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for ArtifactId {
    type Err = InvalidArtifactId;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidArtifactId {
            value: value.to_owned(),
        };
        let hex = value.strip_prefix(PREFIX).ok_or_else(invalid)?;
        let well_formed = hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !well_formed {
            return Err(invalid());
        }
        Ok(Self {
            hex: hex.to_owned(),
        })
    }
}

impl serde::Serialize for ArtifactId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ArtifactId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        value.parse().map_err(serde::de::Error::custom)
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for byte in digest {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_malformed_ids() {
        let id = ArtifactId::of(b"bundle");
        let parsed: ArtifactId = id.to_string().parse().expect("own id parses");
        assert_eq!(parsed, id);
        assert_eq!(id.short().len(), 12);
        assert!(id.to_string().starts_with("sha256:"));
        for bad in [
            "",
            "sha256:",
            "md5:abc",
            &format!("sha256:{}", "A".repeat(64)),
        ] {
            assert!(bad.parse::<ArtifactId>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn a_malformed_id_is_named_in_the_message() {
        let err = "md5:abc".parse::<ArtifactId>().expect_err("not an id");
        assert_eq!(err.value(), "md5:abc");
        assert_eq!(
            err.to_string(),
            "`md5:abc` is not an artifact id (expected sha256:<64 hex digits>)"
        );
    }
}
