//! The crate's error type: every failure of building, storing or extracting an artifact,
//! each variant naming the file, entry or artifact it is about.
//!
//! [`ArtifactId::verify`] is defined here too: its failure is an [`ArtifactError`], and
//! id.rs must not depend on this module, which depends on it for the ids it names.

use std::path::PathBuf;

use crate::id::{ArtifactId, InvalidArtifactId};

/// Result alias used throughout the crate.
pub type Result<T, E = ArtifactError> = std::result::Result<T, E>;

/// Everything that can go wrong with an artifact.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArtifactError {
    // --- paths and sources -------------------------------------------------------------
    /// A path that must be relative to the repository root is not.
    #[error("path `{path}` is not relative to the repository root: {reason}")]
    InvalidRelPath { path: String, reason: &'static str },

    /// A folder the bundle needs has no files (missing, empty, or not tracked at the commit).
    #[error("folder `{dir}` has no files{at}", at = at_commit(.commit.as_deref()))]
    DirNotFound { dir: String, commit: Option<String> },

    /// A file could not be read from the file source.
    #[error("cannot read `{path}`: {message}")]
    ReadFile { path: String, message: String },

    /// Reading the working tree failed at the file system level.
    #[error("cannot read `{}` in the working tree", .path.display())]
    WorkingTree {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A git command failed or produced output we cannot read.
    #[error("git {command} failed: {message}")]
    Git { command: String, message: String },

    /// The revision does not name a commit in the repository.
    #[error("`{rev}` is not a commit in this repository")]
    UnknownCommit { rev: String },

    /// A git submodule sits inside a bundled folder; its content is not in the commit.
    #[error("`{path}` is a git submodule; a stack and its modules cannot contain submodules")]
    Submodule { path: String },

    // --- modules -----------------------------------------------------------------------
    /// A `.tf` file could not be parsed while looking for module blocks.
    #[error("cannot parse `{path}` as HCL: {message}")]
    HclParse { path: String, message: String },

    /// A local module `source` leads outside the repository.
    #[error(
        "a module called from `{file}` has source \"{source_path}\", which leads outside the repository"
    )]
    ModuleSourceEscapes { file: String, source_path: String },

    /// A stack's code (its folder, modules and the files they read) exceeds the cap.
    #[error(
        "the code of stack `{stack_dir}` comes to {}, over the cap of {}; module {module} brings in {} of it",
        mib(*.size), mib(*.cap), mib(*.module_size)
    )]
    StackTooLarge {
        stack_dir: String,
        size: u64,
        cap: u64,
        module: String,
        module_size: u64,
    },

    // --- bundles -----------------------------------------------------------------------
    /// The stack folder has no `stack.hcl`, so it is not a stack.
    #[error("`{stack_dir}` has no stack.hcl, so it is not a stack")]
    NotAStack { stack_dir: String },

    /// A symbolic link in the bundle points at something the bundle does not contain.
    #[error("symbolic link `{path}` -> `{target}` points outside the bundle")]
    SymlinkOutsideBundle { path: String, target: String },

    /// The bundle could not be written (tar or zstd failure).
    #[error("cannot write the bundle: {0}")]
    Encode(#[source] std::io::Error),

    /// The manifest could not be encoded or decoded.
    #[error("invalid artifact manifest: {0}")]
    Manifest(#[source] serde_json::Error),

    // --- identity ----------------------------------------------------------------------
    /// A string is not an artifact id of the form `sha256:<64 hex digits>`.
    #[error(transparent)]
    InvalidId(#[from] InvalidArtifactId),

    /// Bytes do not hash to the id they were presented under.
    #[error("artifact {id} was tampered with: its bytes hash to {actual}; refusing to use it")]
    Tampered { id: ArtifactId, actual: ArtifactId },

    // --- stores ------------------------------------------------------------------------
    /// The artifact is not in the store.
    #[error("artifact {id} is not in the store at {store}")]
    NotFound { id: ArtifactId, store: String },

    /// The store already holds different bytes under this id; artifacts are write-once.
    #[error(
        "artifact {id} already exists in the store at {store} with different bytes; artifacts are write-once"
    )]
    Conflict { id: ArtifactId, store: String },

    /// A store URL could not be understood.
    #[error("cannot use `{url}` as an artifact store: {reason}")]
    InvalidStoreUrl { url: String, reason: String },

    /// The local store's folder could not be read or written.
    #[error("artifact store I/O failed at `{}`", .path.display())]
    StoreIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The object store (S3) reported an error.
    #[error("artifact store {store} failed")]
    ObjectStore {
        store: String,
        #[source]
        source: object_store::Error,
    },

    // --- extraction --------------------------------------------------------------------
    /// An entry's path is absolute.
    #[error("bundle entry `{entry}` has an absolute path; refusing to extract")]
    AbsolutePath { entry: String },

    /// An entry's path contains a `..` component.
    #[error("bundle entry `{entry}` contains a `..` component; refusing to extract")]
    ParentComponent { entry: String },

    /// A symbolic or hard link points outside the working copy.
    #[error(
        "bundle entry `{entry}` is a {kind} to `{target}`, outside the working copy; refusing to extract"
    )]
    LinkEscapes {
        entry: String,
        kind: &'static str,
        target: String,
    },

    /// An entry is a device file, a fifo or another kind a bundle never contains.
    #[error(
        "bundle entry `{entry}` is a {kind}, which a bundle never contains; refusing to extract"
    )]
    UnsupportedEntry { entry: String, kind: String },

    /// Unpacking would write more bytes than the limit allows.
    #[error(
        "bundle is larger than the {limit}-byte unpack limit (at entry `{entry}`); refusing to extract"
    )]
    TooLarge { entry: String, limit: u64 },

    /// The bundle holds more entries than the limit allows.
    #[error("bundle has more than {limit} entries; refusing to extract")]
    TooManyEntries { limit: u64 },

    /// Two entries have the same path, or an entry would replace something already there.
    #[error("bundle entry `{entry}` would overwrite an existing file; refusing to extract")]
    AlreadyExists { entry: String },

    /// Writing an entry would go through a symbolic link created earlier.
    #[error(
        "bundle entry `{entry}` would be written through the symbolic link `{link}`; refusing to extract"
    )]
    ThroughSymlink { entry: String, link: String },

    /// The bundle has no `slipway-manifest.json` as its first entry.
    #[error("bundle has no slipway-manifest.json as its first entry")]
    MissingManifest,

    /// The bundle's bytes are not a readable zstd-compressed tar.
    #[error("bundle is not a readable zstd-compressed tar: {0}")]
    Corrupt(#[source] std::io::Error),

    /// Writing an extracted entry failed.
    #[error("cannot write `{}` while extracting", .path.display())]
    ExtractIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn at_commit(commit: Option<&str>) -> String {
    match commit {
        Some(c) => format!(" at commit {}", &c[..c.len().min(12)]),
        None => " in the working tree".to_owned(),
    }
}

impl ArtifactId {
    /// Checks that `bytes` are the artifact this id names.
    pub fn verify(&self, bytes: &[u8]) -> Result<(), ArtifactError> {
        let actual = Self::of(bytes);
        if actual == *self {
            Ok(())
        } else {
            Err(ArtifactError::Tampered {
                id: self.clone(),
                actual,
            })
        }
    }
}

/// `12.3 MiB`: sizes a person reads.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_refuses_other_bytes() {
        let id = ArtifactId::of(b"bundle");
        assert!(id.verify(b"bundle").is_ok());
        let err = id.verify(b"bundle!").expect_err("other bytes");
        assert!(matches!(err, ArtifactError::Tampered { .. }));
    }

    #[test]
    fn an_invalid_id_keeps_its_message() {
        let err = ArtifactError::from("sha256:".parse::<ArtifactId>().expect_err("not an id"));
        assert_eq!(
            err.to_string(),
            "`sha256:` is not an artifact id (expected sha256:<64 hex digits>)"
        );
    }
}
