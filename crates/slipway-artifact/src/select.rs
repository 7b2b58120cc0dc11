//! Choosing the files of one stack's code from a [`FileSource`], by the one rule in
//! [`slipway_core::module_files`]: the stack's folder, the Terraform files of the local
//! modules it calls, and the files their code reads.
//!
//! Artifacts and working copies are both built from a [`Selection`], so a working copy of a
//! commit holds exactly the files the artifact of that commit holds. A selection larger
//! than its cap is refused, naming the module that brought in the most.

use std::collections::{BTreeMap, BTreeSet};

use slipway_core::SourceFile;
use slipway_core::module_files::{StackFiles, is_below};
use slipway_core::terraform::{ModuleDeclarations, is_terraform_file};

use crate::error::{ArtifactError, Result};
use crate::relpath::RelPath;
use crate::source::{Entry, FileSource};

/// The default cap on a stack's code: far above any real stack, far below a disk.
pub const DEFAULT_SIZE_CAP: u64 = 256 * 1024 * 1024;

/// The files of one stack's code.
#[derive(Debug, Clone)]
pub struct Selection {
    pub stack_dir: RelPath,
    /// The rule the files were chosen by.
    pub stack_files: StackFiles,
    /// Sorted by path.
    pub files: Vec<Entry>,
}

impl Selection {
    /// The local module folders the stack calls, transitively.
    pub fn module_dirs(&self) -> Vec<String> {
        self.stack_files.module_dirs().map(str::to_owned).collect()
    }

    /// Bytes of every file.
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Chooses the files of the stack in `stack_dir`; refuses a selection over `size_cap` bytes.
pub fn select(source: &dyn FileSource, stack_dir: &RelPath, size_cap: u64) -> Result<Selection> {
    let stack_files = StackFiles::resolve(stack_dir.as_str(), |dir| declarations(source, dir))?;
    if let Some((caller, module_source)) = stack_files.escaping_sources.first() {
        return Err(ArtifactError::ModuleSourceEscapes {
            file: if caller.is_empty() {
                "the repository root".into()
            } else {
                caller.clone()
            },
            source_path: module_source.clone(),
        });
    }

    // Each file once, with the part that brought it in (for the size message).
    let mut chosen: BTreeMap<RelPath, (Entry, usize)> = BTreeMap::new();
    for (index, part) in stack_files.parts.iter().enumerate() {
        let dir = RelPath::new(&part.dir)?;
        let listed = if part.whole_folder.is_some() {
            match source.list(&dir) {
                Ok(entries) => entries,
                Err(ArtifactError::DirNotFound { .. }) if index > 0 => Vec::new(),
                Err(error) => return Err(error),
            }
        } else {
            source
                .list_direct(&dir)?
                .into_iter()
                .filter(|e| is_terraform_file(e.path.file_name()))
                .collect()
        };
        let mut found = listed;
        for read in &part.reads {
            match source.list(&RelPath::new(read.root())?) {
                Ok(entries) => found.extend(
                    entries
                        .into_iter()
                        .filter(|e| read.contains(e.path.as_str())),
                ),
                // A path the code writes (an archive's output) or that does not exist yet:
                // nothing to carry.
                Err(ArtifactError::DirNotFound { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        for entry in found {
            chosen.entry(entry.path.clone()).or_insert((entry, index));
        }
    }

    // Other stacks below a folder taken whole are stacks of their own: the deepest folder
    // holding a file decides, between other stacks' folders and the folders (and reads) of
    // this stack's own parts.
    let mine: BTreeSet<&str> = stack_files
        .parts
        .iter()
        .flat_map(|p| std::iter::once(p.dir.as_str()).chain(p.reads.iter().map(|r| r.root())))
        .collect();
    let theirs: BTreeSet<String> = chosen
        .keys()
        .filter(|p| p.file_name() == "stack.hcl")
        .map(|p| p.parent().as_str().to_owned())
        .filter(|dir| !mine.contains(dir.as_str()))
        .collect();
    if !theirs.is_empty() {
        chosen.retain(|path, _| {
            let deepest_theirs = theirs
                .iter()
                .filter(|d| is_below(path.as_str(), d))
                .map(String::len)
                .max();
            let deepest_mine = mine
                .iter()
                .filter(|d| is_below(path.as_str(), d))
                .map(|d| d.len())
                .max();
            deepest_theirs.is_none_or(|theirs| deepest_mine.is_some_and(|mine| mine > theirs))
        });
    }

    let total: u64 = chosen.values().map(|(e, _)| e.size).sum();
    if total > size_cap {
        let mut by_part: BTreeMap<usize, u64> = BTreeMap::new();
        for (entry, index) in chosen.values() {
            *by_part.entry(*index).or_default() += entry.size;
        }
        let (largest, largest_size) = by_part
            .into_iter()
            .max_by_key(|(_, size)| *size)
            .unwrap_or((0, 0));
        return Err(ArtifactError::StackTooLarge {
            stack_dir: stack_dir.to_string(),
            size: total,
            cap: size_cap,
            module: stack_files.parts[largest].describe(),
            module_size: largest_size,
        });
    }
    Ok(Selection {
        stack_dir: stack_dir.clone(),
        files: chosen.into_values().map(|(e, _)| e).collect(),
        stack_files,
    })
}

/// What the Terraform files directly in `dir` declare; `None` for a folder without any.
fn declarations(source: &dyn FileSource, dir: &str) -> Result<Option<ModuleDeclarations>> {
    let dir = RelPath::new(dir)?;
    let mut files = Vec::new();
    for entry in source.list_direct(&dir)? {
        if !is_terraform_file(entry.path.file_name()) {
            continue;
        }
        let bytes = source.read(&entry.path)?;
        // Non-UTF-8 code does not parse: its module is then taken whole, and says so.
        let text = String::from_utf8_lossy(&bytes).into_owned();
        files.push(SourceFile::new(entry.path.as_str(), text));
    }
    if files.is_empty() {
        return Ok(None);
    }
    Ok(Some(ModuleDeclarations::read(&files)))
}
