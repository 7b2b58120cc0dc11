//! Paths relative to the repository root, normalised to `/`-separated components with no
//! `.`, `..`, or leading `/`: the only kind of path that goes into a bundle.

use std::fmt;

use crate::error::ArtifactError;

/// A normalised path relative to the repository root. The empty path is the root itself.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RelPath(String);

impl RelPath {
    /// The repository root.
    pub fn root() -> Self {
        Self(String::new())
    }

    /// Parses a repository-relative path; `.` components and repeated `/` are dropped,
    /// absolute paths and `..` are refused.
    pub fn new(path: &str) -> Result<Self, ArtifactError> {
        let invalid = |reason| ArtifactError::InvalidRelPath {
            path: path.to_owned(),
            reason,
        };
        if path.starts_with('/') {
            return Err(invalid("it is absolute"));
        }
        if path.contains('\\') || path.contains('\0') {
            return Err(invalid("it contains a backslash or NUL"));
        }
        let mut parts = Vec::new();
        for part in path.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(invalid("it contains `..`")),
                other => parts.push(other),
            }
        }
        Ok(Self(parts.join("/")))
    }

    /// The path as `/`-separated text; empty for the root.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for the repository root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The folder holding this path; the root's parent is the root.
    pub fn parent(&self) -> RelPath {
        match self.0.rfind('/') {
            Some(i) => Self(self.0[..i].to_owned()),
            None => Self::root(),
        }
    }

    /// The last component; empty for the root.
    pub fn file_name(&self) -> &str {
        match self.0.rfind('/') {
            Some(i) => &self.0[i + 1..],
            None => &self.0,
        }
    }

    /// True when `self` is `dir` or lies below it (component-wise, not by text prefix).
    pub fn starts_with(&self, dir: &RelPath) -> bool {
        dir.is_root()
            || self.0 == dir.0
            || (self.0.starts_with(&dir.0) && self.0.as_bytes().get(dir.0.len()) == Some(&b'/'))
    }

    /// Resolves a relative reference (which may use `..`) against this folder, lexically.
    /// Returns `None` when the result would leave the repository root.
    pub fn join_relative(&self, reference: &str) -> Option<RelPath> {
        if reference.starts_with('/') || reference.contains('\\') || reference.contains('\0') {
            return None;
        }
        let mut parts: Vec<&str> = if self.is_root() {
            Vec::new()
        } else {
            self.0.split('/').collect()
        };
        for part in reference.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop()?;
                }
                other => parts.push(other),
            }
        }
        Some(Self(parts.join("/")))
    }

    /// Appends one already-normalised relative path.
    pub(crate) fn child(&self, rest: &str) -> RelPath {
        if self.is_root() {
            Self(rest.to_owned())
        } else if rest.is_empty() {
            self.clone()
        } else {
            Self(format!("{}/{}", self.0, rest))
        }
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_root() {
            f.write_str(".")
        } else {
            f.write_str(&self.0)
        }
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelPath({:?})", self.0)
    }
}

/// True when a link target only climbs (`..`) before it descends: `../../a/b` is fine,
/// `a/../b` is not. Links of the first shape cannot be steered outside a folder by other
/// links inside it, so both bundling and extraction only accept them.
pub(crate) fn climbs_then_descends(target: &str) -> bool {
    let mut descending = false;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." if descending => return false,
            ".." => {}
            _ => descending = true,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_refuses_escapes() {
        assert_eq!(RelPath::new("./a//b/").expect("valid").as_str(), "a/b");
        assert!(RelPath::new("/etc").is_err());
        assert!(RelPath::new("a/../b").is_err());
        assert!(RelPath::new(".").expect("root").is_root());
    }

    #[test]
    fn joins_relative_sources() {
        let dir = RelPath::new("stacks/network").expect("valid");
        let joined = dir.join_relative("../../modules/vpc").expect("inside");
        assert_eq!(joined.as_str(), "modules/vpc");
        assert_eq!(
            dir.join_relative("./sub").expect("inside").as_str(),
            "stacks/network/sub"
        );
        assert!(dir.join_relative("../../../outside").is_none());
    }

    #[test]
    fn starts_with_is_component_wise() {
        let a = RelPath::new("modules/vpc").expect("valid");
        assert!(
            RelPath::new("modules/vpc/main.tf")
                .expect("valid")
                .starts_with(&a)
        );
        assert!(
            !RelPath::new("modules/vpc2/main.tf")
                .expect("valid")
                .starts_with(&a)
        );
        assert!(a.starts_with(&RelPath::root()));
    }

    #[test]
    fn link_targets_must_climb_before_descending() {
        assert!(climbs_then_descends("../../a/b"));
        assert!(climbs_then_descends("a/b"));
        assert!(!climbs_then_descends("a/../b"));
        assert!(!climbs_then_descends("../a/../../b"));
    }
}
