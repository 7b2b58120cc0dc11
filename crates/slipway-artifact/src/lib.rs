//! slipway-artifact: immutable, content-addressed artifacts of one stack's code.
//!
//! - [`select`] chooses a stack's code (its folder, its local modules' Terraform files and
//!   the files they read, by the rule in `slipway_core::module_files`) from a [`FileSource`];
//! - [`build_bundle`] packs that selection from a [`FileSource`]
//!   (the [`WorkingTree`] or a [`GitCommit`]) into a deterministic zstd-compressed tar
//!   whose SHA-256 is the [`ArtifactId`];
//! - [`ArtifactStore`] keeps bundles write-once, locally or in S3 ([`open_store`]);
//! - [`extract`] verifies a bundle's hash and unpacks it safely into a working copy.
//!
//! This crate knows files, bundles and stores. It does not parse `stack.hcl` or the
//! project configuration, run Terraform, or decide which stacks to build.
//! The format is described in docs/artifacts.md.

mod bundle;
mod error;
mod extract;
mod id;
mod manifest;
mod relpath;
mod select;
mod source;
mod store;

pub use bundle::{Bundle, BundleInput, ZSTD_LEVEL, build_bundle};
pub use error::{ArtifactError, Result};
pub use extract::{ExtractLimits, extract};
pub use id::{ArtifactId, InvalidArtifactId};
pub use manifest::{FileMode, MANIFEST_NAME, Manifest, ManifestFile, SCHEMA_VERSION};
pub use relpath::RelPath;
pub use select::{DEFAULT_SIZE_CAP, Selection, select};
pub use source::{Entry, EntryKind, FileSource, GitCommit, WorkingTree, is_excluded};
pub use store::{ArtifactStore, LocalStore, PutOutcome, S3Options, S3Store, Store, open_store};
