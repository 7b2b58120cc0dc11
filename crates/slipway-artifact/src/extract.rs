//! Safe extraction: verify an artifact's bytes against its id, then unpack it into a
//! working copy, refusing anything that could write outside it or exhaust the disk.
//!
//! The archive is read twice. The first pass only inspects headers, so a hostile bundle
//! is refused before a single file is written. The second pass writes, and checks each
//! parent folder on the way so that nothing is ever written through a symbolic link.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::error::{ArtifactError, Result};
use crate::id::ArtifactId;
use crate::manifest::{MANIFEST_NAME, Manifest};
use crate::relpath::{RelPath, climbs_then_descends};

/// Limits on what one bundle may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtractLimits {
    /// Most bytes of file content, all entries together.
    pub max_total_bytes: u64,
    /// Most entries (files, folders and links).
    pub max_entries: u64,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        Self {
            max_total_bytes: 512 * 1024 * 1024,
            max_entries: 100_000,
        }
    }
}

/// Tar headers, long names and padding allowed per entry on top of the content, when
/// bounding how much the decompressor may produce.
const OVERHEAD_PER_ENTRY: u64 = 4096;

/// Verifies `bytes` against `expected`, then unpacks the bundle into `dest` (created if
/// missing; it should be empty). Returns the bundle's manifest, which is not written to
/// `dest`. On error `dest` may hold part of the bundle: throw it away.
pub fn extract(
    bytes: &[u8],
    expected: &ArtifactId,
    dest: &Path,
    limits: &ExtractLimits,
) -> Result<Manifest> {
    expected.verify(bytes)?;
    inspect(bytes, limits)?;
    fs::create_dir_all(dest).map_err(|source| ArtifactError::ExtractIo {
        path: dest.to_owned(),
        source,
    })?;
    unpack(bytes, dest, limits)
}

/// What the first pass decided about an entry.
enum Kind {
    File,
    Dir,
    Symlink(String),
    HardLink(RelPath),
}

/// The first pass: every header is checked; nothing is written.
fn inspect(bytes: &[u8], limits: &ExtractLimits) -> Result<()> {
    let mut seen_files = HashSet::new();
    let mut total: u64 = 0;
    let mut count: u64 = 0;
    each_entry(bytes, limits, |index, entry| {
        count += 1;
        if count > limits.max_entries {
            return Err(ArtifactError::TooManyEntries {
                limit: limits.max_entries,
            });
        }
        let (path, kind) = classify(entry)?;
        if index == 0 && (path.as_str() != MANIFEST_NAME || !matches!(kind, Kind::File)) {
            return Err(ArtifactError::MissingManifest);
        }
        match kind {
            Kind::File => {
                total = total.saturating_add(entry.header().size().unwrap_or(u64::MAX));
                if total > limits.max_total_bytes {
                    return Err(ArtifactError::TooLarge {
                        entry: path.to_string(),
                        limit: limits.max_total_bytes,
                    });
                }
                if !seen_files.insert(path.clone()) {
                    return Err(ArtifactError::AlreadyExists {
                        entry: path.to_string(),
                    });
                }
            }
            Kind::HardLink(target) => {
                // A hard link may only repeat a file this bundle already wrote.
                if !seen_files.contains(&target) {
                    return Err(ArtifactError::LinkEscapes {
                        entry: path.to_string(),
                        kind: "hard link",
                        target: target.to_string(),
                    });
                }
            }
            Kind::Dir | Kind::Symlink(_) => {}
        }
        Ok(())
    })?;
    if count == 0 {
        return Err(ArtifactError::MissingManifest);
    }
    Ok(())
}

/// The second pass: writes every entry, never through a link.
fn unpack(bytes: &[u8], dest: &Path, limits: &ExtractLimits) -> Result<Manifest> {
    let mut manifest = None;
    each_entry(bytes, limits, |index, entry| {
        let (path, kind) = classify(entry)?;
        if index == 0 {
            let mut json = Vec::new();
            entry
                .read_to_end(&mut json)
                .map_err(ArtifactError::Corrupt)?;
            manifest = Some(serde_json::from_slice(&json).map_err(ArtifactError::Manifest)?);
            return Ok(());
        }
        let target = prepare_parent(dest, &path)?;
        let io_err = |source| ArtifactError::ExtractIo {
            path: target.clone(),
            source,
        };
        match kind {
            Kind::File => {
                let executable = entry.header().mode().unwrap_or(0) & 0o111 != 0;
                let mut file = create_new(&target, executable).map_err(|e| {
                    exists_or(e, &path, |source| ArtifactError::ExtractIo {
                        path: target.clone(),
                        source,
                    })
                })?;
                io::copy(entry, &mut file).map_err(io_err)?;
            }
            Kind::Dir => match fs::symlink_metadata(&target) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(ArtifactError::AlreadyExists {
                        entry: path.to_string(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&target).map_err(io_err)?;
                }
                Err(e) => return Err(io_err(e)),
            },
            Kind::Symlink(link_target) => {
                make_symlink(&link_target, &target).map_err(|e| {
                    exists_or(e, &path, |source| ArtifactError::ExtractIo {
                        path: target.clone(),
                        source,
                    })
                })?;
            }
            Kind::HardLink(original) => {
                let original_path = prepare_parent(dest, &original)?;
                match fs::symlink_metadata(&original_path) {
                    Ok(meta) if meta.is_file() => {}
                    _ => {
                        return Err(ArtifactError::LinkEscapes {
                            entry: path.to_string(),
                            kind: "hard link",
                            target: original.to_string(),
                        });
                    }
                }
                fs::hard_link(&original_path, &target).map_err(|e| {
                    exists_or(e, &path, |source| ArtifactError::ExtractIo {
                        path: target.clone(),
                        source,
                    })
                })?;
            }
        }
        Ok(())
    })?;
    manifest.ok_or(ArtifactError::MissingManifest)
}

type Reader<'b> = LimitedReader<zstd::stream::read::Decoder<'static, io::BufReader<&'b [u8]>>>;

/// Runs `visit` on each entry, mapping stream failures to typed errors.
fn each_entry<'b>(
    bytes: &'b [u8],
    limits: &ExtractLimits,
    mut visit: impl for<'x> FnMut(u64, &mut tar::Entry<'x, Reader<'b>>) -> Result<()>,
) -> Result<()> {
    let decoder = zstd::stream::read::Decoder::new(bytes).map_err(ArtifactError::Corrupt)?;
    let budget = limits
        .max_total_bytes
        .saturating_add(limits.max_entries.saturating_mul(OVERHEAD_PER_ENTRY))
        .saturating_add(1024 * 1024);
    let mut archive = tar::Archive::new(LimitedReader {
        inner: decoder,
        remaining: budget,
    });
    let mut last_entry = String::from("(start of bundle)");
    let too_large = |e: &io::Error, entry: &str| {
        e.get_ref()
            .is_some_and(|inner| inner.is::<BudgetExceeded>())
            .then(|| ArtifactError::TooLarge {
                entry: entry.to_owned(),
                limit: limits.max_total_bytes,
            })
    };
    let entries = archive.entries().map_err(ArtifactError::Corrupt)?;
    for (index, entry) in (0u64..).zip(entries) {
        let mut entry =
            entry.map_err(|e| too_large(&e, &last_entry).unwrap_or(ArtifactError::Corrupt(e)))?;
        last_entry = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        match visit(index, &mut entry) {
            Err(ArtifactError::Corrupt(e) | ArtifactError::ExtractIo { source: e, .. })
                if too_large(&e, &last_entry).is_some() =>
            {
                return Err(too_large(&e, &last_entry).unwrap_or(ArtifactError::Corrupt(e)));
            }
            other => other?,
        }
    }
    Ok(())
}

/// Checks an entry's path and kind; everything a bundle never holds is refused here.
fn classify<R: Read>(entry: &tar::Entry<'_, R>) -> Result<(RelPath, Kind)> {
    let raw = entry.path_bytes();
    let name = String::from_utf8_lossy(&raw).into_owned();
    let path = checked_path(&name)?;
    let header = entry.header();
    let kind = match header.entry_type() {
        tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
        tar::EntryType::Directory => Kind::Dir,
        tar::EntryType::Symlink => {
            let target = link_name(entry, &name)?;
            let escapes = target.starts_with('/')
                || !climbs_then_descends(&target)
                || path.parent().join_relative(&target).is_none();
            if escapes {
                return Err(ArtifactError::LinkEscapes {
                    entry: name,
                    kind: "symbolic link",
                    target,
                });
            }
            Kind::Symlink(target)
        }
        tar::EntryType::Link => {
            let target = link_name(entry, &name)?;
            let Ok(original) = RelPath::new(&target) else {
                return Err(ArtifactError::LinkEscapes {
                    entry: name,
                    kind: "hard link",
                    target,
                });
            };
            Kind::HardLink(original)
        }
        other => {
            let kind = match other {
                tar::EntryType::Char => "character device".to_owned(),
                tar::EntryType::Block => "block device".to_owned(),
                tar::EntryType::Fifo => "fifo".to_owned(),
                other => format!("tar entry of type {:?}", other.as_byte() as char),
            };
            return Err(ArtifactError::UnsupportedEntry { entry: name, kind });
        }
    };
    Ok((path, kind))
}

fn checked_path(name: &str) -> Result<RelPath> {
    if name.starts_with('/') || name.starts_with('\\') || name.as_bytes().get(1) == Some(&b':') {
        return Err(ArtifactError::AbsolutePath {
            entry: name.to_owned(),
        });
    }
    if name.split(['/', '\\']).any(|part| part == "..") {
        return Err(ArtifactError::ParentComponent {
            entry: name.to_owned(),
        });
    }
    let path = RelPath::new(name)?;
    if path.is_root() {
        return Err(ArtifactError::InvalidRelPath {
            path: name.to_owned(),
            reason: "it names the working copy itself",
        });
    }
    Ok(path)
}

fn link_name<R: Read>(entry: &tar::Entry<'_, R>, name: &str) -> Result<String> {
    match entry.link_name_bytes() {
        Some(target) if !target.is_empty() => Ok(String::from_utf8_lossy(&target).into_owned()),
        _ => Err(ArtifactError::LinkEscapes {
            entry: name.to_owned(),
            kind: "link",
            target: String::new(),
        }),
    }
}

/// Makes sure every folder above `path` in `dest` is a real folder (creating missing
/// ones) and returns the path to write. A symbolic link on the way is refused.
fn prepare_parent(dest: &Path, path: &RelPath) -> Result<PathBuf> {
    let mut current = dest.to_owned();
    let parts: Vec<&str> = path.as_str().split('/').collect();
    let (last, folders) = parts
        .split_last()
        .ok_or_else(|| ArtifactError::InvalidRelPath {
            path: path.to_string(),
            reason: "it is empty",
        })?;
    let mut walked = RelPath::root();
    for folder in folders {
        current.push(folder);
        walked = walked.child(folder);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(ArtifactError::ThroughSymlink {
                    entry: path.to_string(),
                    link: walked.to_string(),
                });
            }
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(ArtifactError::AlreadyExists {
                    entry: path.to_string(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&current).map_err(|source| ArtifactError::ExtractIo {
                    path: current.clone(),
                    source,
                })?;
            }
            Err(source) => {
                return Err(ArtifactError::ExtractIo {
                    path: current,
                    source,
                });
            }
        }
    }
    current.push(last);
    Ok(current)
}

fn exists_or(
    e: io::Error,
    path: &RelPath,
    other: impl FnOnce(io::Error) -> ArtifactError,
) -> ArtifactError {
    if e.kind() == io::ErrorKind::AlreadyExists {
        ArtifactError::AlreadyExists {
            entry: path.to_string(),
        }
    } else {
        other(e)
    }
}

#[cfg(unix)]
fn create_new(path: &Path, executable: bool) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    // create_new (O_EXCL) also refuses to follow a symbolic link sitting at `path`.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if executable { 0o755 } else { 0o644 })
        .open(path)
}

#[cfg(not(unix))]
fn create_new(path: &Path, _executable: bool) -> io::Result<fs::File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

#[cfg(unix)]
fn make_symlink(target: &str, path: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, path)
}

#[cfg(not(unix))]
fn make_symlink(_target: &str, _path: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "symbolic links are only extracted on Unix",
    ))
}

/// Marks the decompressor producing more than the limits allow (a compression bomb).
#[derive(Debug)]
struct BudgetExceeded;

impl std::fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("decompressed bundle exceeds the unpack limit")
    }
}

impl std::error::Error for BudgetExceeded {}

/// A reader that fails once more than `remaining` bytes have been read.
struct LimitedReader<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            // Only an error if there really is more to read.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::other(BudgetExceeded)),
            };
        }
        let cap = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..cap])?;
        self.remaining -= n as u64;
        Ok(n)
    }
}
