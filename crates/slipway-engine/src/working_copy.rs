//! One stack instance's working copy under the data folder.
//!
//! The copy mirrors the repository layout (`<data>/work/<instance>/<stack>/tree/<repo paths>`)
//! and holds exactly the files it is handed: the stack's code as the artifact crate selects
//! it (the stack folder, its local modules' Terraform files and the files they read), so
//! relative module sources keep working and a working copy holds what an artifact of the
//! same commit holds. Terraform's own `.terraform` folder and lock file survive a refresh,
//! so a second run does not re-initialise from scratch.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Component, Path, PathBuf};

use slipway_core::config::GeneratedFile;
use walkdir::WalkDir;

use crate::state::StateBackend;

/// Name of the variables file slipway writes; `*.auto.tfvars.json` is loaded automatically.
pub const VARIABLES_FILE: &str = "slipway.auto.tfvars.json";
/// Name of the saved plan inside the stack folder of the working copy.
pub const PLAN_FILE: &str = "slipway.tfplan";
const LOCK_FILE: &str = ".terraform.lock.hcl";

/// A prepared working copy.
#[derive(Debug, Clone)]
pub struct WorkingCopy {
    /// Root of the mirrored tree.
    pub tree: PathBuf,
    /// The stack folder inside the tree, where the engine runs.
    pub stack_dir: PathBuf,
    /// Whether the stack's own code carries a lock file (then `init` must not change it).
    pub has_lock_file: bool,
}

impl WorkingCopy {
    /// The folder `dir` as it is, as a working copy of its own: the engine runs in it, and
    /// no committed lock file is known.
    pub fn in_place(dir: &Path) -> Self {
        Self {
            tree: dir.to_path_buf(),
            stack_dir: dir.to_path_buf(),
            has_lock_file: false,
        }
    }

    /// Lays out (or refreshes) the working copy of `stack_dir` under `work_dir`, holding
    /// `files` (paths relative to `source_root`, `/`-separated) and nothing else.
    pub fn prepare(
        source_root: &Path,
        work_dir: &Path,
        stack_dir: &str,
        files: &[&str],
    ) -> io::Result<Self> {
        let tree = work_dir.join("tree");
        let stack_path = tree.join(stack_dir);
        clear_except_engine_cache(&tree, &stack_path)?;
        let lock_file = if stack_dir.is_empty() {
            LOCK_FILE.to_owned()
        } else {
            format!("{stack_dir}/{LOCK_FILE}")
        };
        for file in files {
            if Path::new(file)
                .components()
                .any(|c| !matches!(c, Component::Normal(_)))
            {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("`{file}` is not a path inside the repository"),
                ));
            }
            copy_file(
                &source_root.join(file),
                &tree.join(file),
                *file == lock_file,
            )?;
        }
        let has_lock_file = files.contains(&lock_file.as_str());
        std::fs::create_dir_all(&stack_path)?;
        Ok(Self {
            tree,
            stack_dir: stack_path,
            has_lock_file,
        })
    }

    /// Writes the project's and stage's generated files into the stack folder.
    pub fn write_generated(&self, files: &[GeneratedFile]) -> io::Result<()> {
        for file in files {
            let path = Path::new(&file.path);
            if path.is_absolute()
                || path
                    .components()
                    .any(|c| !matches!(c, Component::Normal(_)))
            {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("generate path `{}` leaves the stack folder", file.path),
                ));
            }
            let target = self.stack_dir.join(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(target, &file.contents)?;
        }
        Ok(())
    }

    /// Writes the backend block: an override when the stack declares its own backend (so
    /// slipway's wins), a plain file otherwise.
    pub fn write_backend(
        &self,
        backend: &StateBackend,
        stack_declares_backend: bool,
    ) -> io::Result<()> {
        let name = if stack_declares_backend {
            "slipway_backend_override.tf"
        } else {
            "slipway_backend.tf"
        };
        std::fs::write(self.stack_dir.join(name), backend.backend_block())
    }

    /// Writes the stage's variables and the resolved inputs the stack declares.
    pub fn write_variables(
        &self,
        values: &BTreeMap<String, serde_json::Value>,
        declared: &BTreeSet<String>,
    ) -> io::Result<()> {
        // Terraform only warns about undeclared variables in a tfvars file, but the warnings
        // are noise in every log: pass only what the stack declares.
        let values: serde_json::Map<String, serde_json::Value> = values
            .iter()
            .filter(|(k, _)| declared.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let text = serde_json::to_string_pretty(&serde_json::Value::Object(values))
            .map_err(io::Error::other)?;
        std::fs::write(self.stack_dir.join(VARIABLES_FILE), text)
    }

    pub fn plan_file(&self) -> PathBuf {
        self.stack_dir.join(PLAN_FILE)
    }
}

/// Empties the tree but keeps the stack's `.terraform` folder and (engine-written) lock file.
fn clear_except_engine_cache(tree: &Path, stack_path: &Path) -> io::Result<()> {
    if !tree.exists() {
        return Ok(());
    }
    let keep_dir = stack_path.join(".terraform");
    let keep_lock = stack_path.join(LOCK_FILE);
    for entry in WalkDir::new(tree).min_depth(1).contents_first(true) {
        let entry = entry.map_err(io::Error::other)?;
        let path = entry.path();
        if path.starts_with(&keep_dir) || path == keep_lock || keep_dir.starts_with(path) {
            continue;
        }
        if entry.file_type().is_dir() {
            // Not empty when it holds a kept path; that is fine.
            let _ = std::fs::remove_dir(path);
        } else {
            std::fs::remove_file(path)?;
        }
    }
    Ok(())
}

/// Copies one file or link; `replace` for the stack's own lock file, which replaces
/// whatever the engine wrote before.
fn copy_file(from: &Path, to: &Path, replace: bool) -> io::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let meta = std::fs::symlink_metadata(from)?;
    if meta.file_type().is_symlink() {
        let link = std::fs::read_link(from)?;
        let _ = std::fs::remove_file(to);
        std::os::unix::fs::symlink(link, to)?;
    } else {
        if replace {
            let _ = std::fs::remove_file(to);
        }
        std::fs::copy(from, to)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, path: &str, text: &str) {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn holds_the_files_it_is_handed_and_keeps_engine_cache_on_refresh() {
        let src = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        write(src.path(), "stacks/data/main.tf", "");
        write(src.path(), "stacks/data/stack.hcl", "");
        write(src.path(), "modules/tags/main.tf", "");
        write(src.path(), "modules/tags/README.md", "");
        let files = [
            "stacks/data/main.tf",
            "stacks/data/stack.hcl",
            "modules/tags/main.tf",
        ];

        let wc = WorkingCopy::prepare(src.path(), work.path(), "stacks/data", &files).unwrap();
        assert!(wc.stack_dir.join("main.tf").is_file());
        assert!(wc.tree.join("modules/tags/main.tf").is_file());
        assert!(!wc.tree.join("modules/tags/README.md").exists());
        assert!(!wc.has_lock_file);

        write(&wc.stack_dir, ".terraform/providers/x", "cached");
        write(&wc.stack_dir, "stale.tf", "");
        let wc = WorkingCopy::prepare(src.path(), work.path(), "stacks/data", &files).unwrap();
        assert!(wc.stack_dir.join(".terraform/providers/x").is_file());
        assert!(
            !wc.stack_dir.join("stale.tf").exists(),
            "refresh drops files gone from the source"
        );
    }

    #[test]
    fn a_path_leaving_the_tree_is_refused() {
        let src = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let error = WorkingCopy::prepare(src.path(), work.path(), "a", &["a/../../x"]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn variables_file_holds_only_declared_variables() {
        let work = tempfile::tempdir().unwrap();
        let wc = WorkingCopy {
            tree: work.path().to_path_buf(),
            stack_dir: work.path().to_path_buf(),
            has_lock_file: false,
        };
        let values = BTreeMap::from([
            ("env".to_owned(), serde_json::json!("dev")),
            ("region".to_owned(), serde_json::json!("x")),
        ]);
        let declared = BTreeSet::from(["env".to_owned()]);
        wc.write_variables(&values, &declared).unwrap();
        let text = std::fs::read_to_string(work.path().join(VARIABLES_FILE)).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value, serde_json::json!({"env": "dev"}));
    }
}
