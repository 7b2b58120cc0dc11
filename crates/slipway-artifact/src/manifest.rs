//! The manifest, `slipway-manifest.json`: the first entry of every bundle, describing what
//! the bundle holds. It is part of the hashed bytes, so it holds nothing that varies for the
//! same content (no commit, no time); see docs/artifacts.md.

use serde::{Deserialize, Serialize};

/// The manifest's file name inside the bundle.
pub const MANIFEST_NAME: &str = "slipway-manifest.json";

/// The manifest schema this crate writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// The description of a bundle. Fields are declared in alphabetical order so that the JSON
/// keys come out sorted whatever serde_json features other crates switch on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Every bundled file, sorted by path.
    pub files: Vec<ManifestFile>,
    /// The local module folders bundled with the stack, sorted.
    pub module_dirs: Vec<String>,
    /// Always [`SCHEMA_VERSION`] when written by this crate.
    pub schema_version: u32,
    /// The slipway version that built the bundle.
    pub slipway_version: String,
    /// The stack's name.
    pub stack: String,
    /// The stack's folder, relative to the repository root.
    pub stack_dir: String,
}

/// How a bundled file is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileMode {
    /// A regular file, unpacked with mode 0644.
    File,
    /// An executable file, unpacked with mode 0755.
    Executable,
    /// A symbolic link; `target` holds where it points.
    Symlink,
}

/// One bundled file. Fields in alphabetical order, as for [`Manifest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    pub mode: FileMode,
    /// Path relative to the repository root.
    pub path: String,
    /// Lowercase hex SHA-256 of the content (of the target text, for a symbolic link).
    pub sha256: String,
    /// Size in bytes of the content (of the target text, for a symbolic link).
    pub size: u64,
    /// The link target, for symbolic links only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}
