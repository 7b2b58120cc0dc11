//! Following a stack's local modules: `module` blocks whose `source` is a relative path
//! (`./…` or `../…`), transitively, so the bundle holds every module the stack calls.

use std::collections::{BTreeSet, VecDeque};

use hcl::Expression;

use crate::error::{ArtifactError, Result};
use crate::relpath::RelPath;
use crate::source::{EntryKind, FileSource};

/// The folders of every local module `stack_dir` uses, directly or through other local
/// modules: deduplicated, sorted, without `stack_dir` itself.
///
/// Only the `.tf` files directly in each folder are read, as Terraform does. Registry,
/// git and other remote sources are not followed: they are pinned by the lock file or
/// fetched at init. A relative source that climbs out of the repository is an error.
pub fn local_module_dirs(source: &dyn FileSource, stack_dir: &RelPath) -> Result<Vec<RelPath>> {
    let mut found = BTreeSet::new();
    let mut queue = VecDeque::from([stack_dir.clone()]);
    let mut visited = BTreeSet::from([stack_dir.clone()]);
    while let Some(dir) = queue.pop_front() {
        for module_dir in direct_local_modules(source, &dir)? {
            if visited.insert(module_dir.clone()) {
                found.insert(module_dir.clone());
                queue.push_back(module_dir);
            }
        }
    }
    Ok(found.into_iter().collect())
}

/// The local modules called by the `.tf` files directly inside `dir`.
fn direct_local_modules(source: &dyn FileSource, dir: &RelPath) -> Result<Vec<RelPath>> {
    let mut modules = Vec::new();
    for entry in source.list(dir)? {
        let is_tf_file = matches!(entry.kind, EntryKind::File { .. })
            && entry.path.parent() == *dir
            && entry.path.file_name().ends_with(".tf");
        if !is_tf_file {
            continue;
        }
        let bytes = source.read(&entry.path)?;
        let text = String::from_utf8(bytes).map_err(|_| ArtifactError::HclParse {
            path: entry.path.to_string(),
            message: "the file is not UTF-8".into(),
        })?;
        let body = hcl::parse(&text).map_err(|e| ArtifactError::HclParse {
            path: entry.path.to_string(),
            message: e.to_string(),
        })?;
        for block in body.blocks().filter(|b| b.identifier() == "module") {
            let Some(module_source) = block
                .body()
                .attributes()
                .find(|a| a.key() == "source")
                .and_then(|a| literal_string(a.expr()))
            else {
                continue;
            };
            if !(module_source.starts_with("./") || module_source.starts_with("../")) {
                continue;
            }
            let resolved = dir.join_relative(&module_source).ok_or_else(|| {
                ArtifactError::ModuleSourceEscapes {
                    file: entry.path.to_string(),
                    module: block
                        .labels()
                        .first()
                        .map(|l| l.as_str().to_owned())
                        .unwrap_or_default(),
                    source_path: module_source.clone(),
                }
            })?;
            modules.push(resolved);
        }
    }
    Ok(modules)
}

fn literal_string(expr: &Expression) -> Option<String> {
    match expr {
        Expression::String(s) => Some(s.clone()),
        Expression::Parenthesis(inner) => literal_string(inner),
        _ => None,
    }
}
