//! Building a bundle: a deterministic zstd-compressed tar of one stack, its local modules
//! and a manifest. Same content in, same bytes out, so the bytes' SHA-256 is the artifact id.

use std::collections::BTreeMap;

use crate::error::{ArtifactError, Result};
use crate::id::{ArtifactId, sha256_hex};
use crate::manifest::{FileMode, MANIFEST_NAME, Manifest, ManifestFile, SCHEMA_VERSION};
use crate::relpath::{RelPath, climbs_then_descends};
use crate::select::Selection;
use crate::source::{EntryKind, FileSource};

/// The zstd level every bundle is compressed with. Changing it changes every artifact id.
pub const ZSTD_LEVEL: i32 = 9;

/// What to bundle.
#[derive(Debug, Clone)]
pub struct BundleInput {
    /// The stack's name, recorded in the manifest.
    pub stack: String,
    /// The stack's code (see [`crate::select`]); its folder must hold a `stack.hcl`.
    pub selection: Selection,
    /// The version of slipway building the bundle, recorded in the manifest.
    pub slipway_version: String,
}

/// A built bundle: its id, its bytes and the manifest inside it.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub id: ArtifactId,
    pub bytes: Vec<u8>,
    pub manifest: Manifest,
    /// The commit the files were read from, or `None` for the working tree. Not part of
    /// the bytes: the same content at two commits is the same artifact.
    pub commit: Option<String>,
}

/// Builds the bundle for one stack from `source`.
pub fn build_bundle(source: &dyn FileSource, input: &BundleInput) -> Result<Bundle> {
    let mut module_dirs = input.selection.module_dirs();
    module_dirs.sort();

    let files: BTreeMap<RelPath, EntryKind> = input
        .selection
        .files
        .iter()
        .map(|e| (e.path.clone(), e.kind.clone()))
        .collect();
    let stack_dir = &input.selection.stack_dir;
    let stack_file = stack_dir.child("stack.hcl");
    if !matches!(files.get(&stack_file), Some(EntryKind::File { .. })) {
        return Err(ArtifactError::NotAStack {
            stack_dir: stack_dir.to_string(),
        });
    }
    for (path, kind) in &files {
        if let EntryKind::Symlink { target } = kind {
            check_symlink(path, target, &files)?;
        }
    }

    let mut manifest_files = Vec::with_capacity(files.len());
    let mut contents = Vec::with_capacity(files.len());
    for (path, kind) in &files {
        let (mode, data, target) = match kind {
            EntryKind::File { executable } => {
                let mode = if *executable {
                    FileMode::Executable
                } else {
                    FileMode::File
                };
                (mode, source.read(path)?, None)
            }
            EntryKind::Symlink { target } => (
                FileMode::Symlink,
                target.clone().into_bytes(),
                Some(target.clone()),
            ),
        };
        manifest_files.push(ManifestFile {
            mode,
            path: path.as_str().to_owned(),
            sha256: sha256_hex(&data),
            size: data.len() as u64,
            target,
        });
        contents.push(data);
    }
    let manifest = Manifest {
        files: manifest_files,
        module_dirs,
        schema_version: SCHEMA_VERSION,
        slipway_version: input.slipway_version.clone(),
        stack: input.stack.clone(),
        stack_dir: stack_dir.as_str().to_owned(),
    };
    let bytes = encode(&manifest, &contents)?;
    Ok(Bundle {
        id: ArtifactId::of(&bytes),
        bytes,
        manifest,
        commit: source.commit().map(str::to_owned),
    })
}

/// A link is kept only if it resolves, lexically and without `a/../b` detours, to a file
/// in the bundle or to a folder holding one.
fn check_symlink(path: &RelPath, target: &str, files: &BTreeMap<RelPath, EntryKind>) -> Result<()> {
    let outside = || ArtifactError::SymlinkOutsideBundle {
        path: path.to_string(),
        target: target.to_owned(),
    };
    if !climbs_then_descends(target) {
        return Err(outside());
    }
    let resolved = path.parent().join_relative(target).ok_or_else(outside)?;
    let inside = files.keys().any(|p| p.starts_with(&resolved));
    if inside && !resolved.is_root() {
        Ok(())
    } else {
        Err(outside())
    }
}

/// Writes the tar (manifest first, then the files in manifest order) and compresses it.
fn encode(manifest: &Manifest, contents: &[Vec<u8>]) -> Result<Vec<u8>> {
    let mut manifest_json = serde_json::to_vec_pretty(manifest).map_err(ArtifactError::Manifest)?;
    manifest_json.push(b'\n');

    let mut tar = tar::Builder::new(Vec::new());
    let mut header = fixed_header(tar::EntryType::Regular, 0o644);
    header.set_size(manifest_json.len() as u64);
    tar.append_data(&mut header, MANIFEST_NAME, manifest_json.as_slice())
        .map_err(ArtifactError::Encode)?;
    for (file, data) in manifest.files.iter().zip(contents) {
        match file.mode {
            FileMode::File | FileMode::Executable => {
                let mode = if file.mode == FileMode::Executable {
                    0o755
                } else {
                    0o644
                };
                let mut header = fixed_header(tar::EntryType::Regular, mode);
                header.set_size(data.len() as u64);
                tar.append_data(&mut header, &file.path, data.as_slice())
                    .map_err(ArtifactError::Encode)?;
            }
            FileMode::Symlink => {
                let mut header = fixed_header(tar::EntryType::Symlink, 0o777);
                header.set_size(0);
                let target = file.target.as_deref().unwrap_or_default();
                tar.append_link(&mut header, &file.path, target)
                    .map_err(ArtifactError::Encode)?;
            }
        }
    }
    let tar = tar.into_inner().map_err(ArtifactError::Encode)?;
    zstd::stream::encode_all(tar.as_slice(), ZSTD_LEVEL).map_err(ArtifactError::Encode)
}

/// A GNU header with every field that could vary between machines fixed.
fn fixed_header(kind: tar::EntryType, mode: u32) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    // Empty names cannot fail to fit; ignore the impossible error.
    let _ = header.set_username("");
    let _ = header.set_groupname("");
    header
}
