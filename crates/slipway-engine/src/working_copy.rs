//! One stack instance's working copy under the data folder.
//!
//! The copy mirrors the repository layout (`<data>/work/<instance>/<stack>/tree/<repo paths>`)
//! and holds the stack folder plus every local module it calls, so relative module sources
//! keep working. Terraform's own `.terraform` folder and lock file survive a refresh, so a
//! second run does not re-initialise from scratch.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Component, Path, PathBuf};

use slipway_core::config::{GeneratedFile, STACK_FILE};
use slipway_core::source::SourceFile;
use slipway_core::terraform::ModuleDeclarations;
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

/// Folders (relative to the project root) of the local modules a stack calls, transitively.
pub fn local_module_dirs(project_root: &Path, stack_dir: &str) -> io::Result<Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut pending = vec![stack_dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let declarations = ModuleDeclarations::read(&read_tf_files(&project_root.join(&dir))?);
        for source in declarations.local_module_sources {
            let Some(module) = join_inside(&dir, &source) else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("module source `{source}` in `{dir}` points outside the project"),
                ));
            };
            if module != stack_dir && seen.insert(module.clone()) {
                pending.push(module);
            }
        }
    }
    Ok(seen.into_iter().collect())
}

/// The `.tf` files of one folder, as sources.
pub fn read_tf_files(dir: &Path) -> io::Result<Vec<SourceFile>> {
    let mut files = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "tf") && path.is_file() {
            files.push(SourceFile::new(
                path.clone(),
                std::fs::read_to_string(&path)?,
            ));
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn join_inside(dir: &str, relative: &str) -> Option<String> {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

fn skip(name: &str) -> bool {
    name == ".terraform"
        || name == ".git"
        || name.ends_with(".tfstate")
        || name.ends_with(".tfstate.backup")
}

impl WorkingCopy {
    /// Lays out (or refreshes) the working copy of `stack_dir` and `module_dirs` from
    /// `source_root` under `work_dir`.
    pub fn prepare(
        source_root: &Path,
        work_dir: &Path,
        stack_dir: &str,
        module_dirs: &[String],
    ) -> io::Result<Self> {
        let tree = work_dir.join("tree");
        let stack_path = tree.join(stack_dir);
        clear_except_engine_cache(&tree, &stack_path)?;
        for dir in std::iter::once(stack_dir.to_owned()).chain(module_dirs.iter().cloned()) {
            copy_folder(&source_root.join(&dir), &tree.join(&dir), dir == stack_dir)?;
        }
        let has_lock_file = source_root.join(stack_dir).join(LOCK_FILE).is_file();
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

fn copy_folder(from: &Path, to: &Path, is_stack: bool) -> io::Result<()> {
    if !from.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("folder `{}` does not exist", from.display()),
        ));
    }
    let walker = WalkDir::new(from)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            // Nested stacks are stacks of their own, not part of this one.
            let nested_stack =
                e.depth() > 0 && e.file_type().is_dir() && e.path().join(STACK_FILE).is_file();
            !skip(&name) && !nested_stack
        });
    for entry in walker {
        let entry = entry.map_err(io::Error::other)?;
        let relative = entry.path().strip_prefix(from).map_err(io::Error::other)?;
        let target = to.join(relative);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target)?;
        } else if entry.file_type().is_file() {
            if is_stack && relative == Path::new(LOCK_FILE) {
                // The stack's own lock file replaces whatever the engine wrote before.
                let _ = std::fs::remove_file(&target);
            }
            std::fs::copy(entry.path(), &target)?;
        } else if entry.file_type().is_symlink() {
            let link = std::fs::read_link(entry.path())?;
            let _ = std::fs::remove_file(&target);
            std::os::unix::fs::symlink(link, &target)?;
        }
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
    fn copies_stack_and_modules_and_keeps_engine_cache_on_refresh() {
        let src = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        write(
            src.path(),
            "stacks/data/main.tf",
            "module \"b\" { source = \"../../modules/bucket\" }\n",
        );
        write(src.path(), "stacks/data/stack.hcl", "");
        write(src.path(), "stacks/data/terraform.tfstate", "{}");
        write(
            src.path(),
            "modules/bucket/main.tf",
            "module \"t\" { source = \"../tags\" }\n",
        );
        write(src.path(), "modules/tags/main.tf", "");
        write(src.path(), "modules/unused/main.tf", "");

        let modules = local_module_dirs(src.path(), "stacks/data").unwrap();
        assert_eq!(modules, vec!["modules/bucket", "modules/tags"]);

        let wc = WorkingCopy::prepare(src.path(), work.path(), "stacks/data", &modules).unwrap();
        assert!(wc.stack_dir.join("main.tf").is_file());
        assert!(
            !wc.stack_dir.join("terraform.tfstate").exists(),
            "state never travels"
        );
        assert!(wc.tree.join("modules/tags/main.tf").is_file());
        assert!(!wc.tree.join("modules/unused").exists());

        write(&wc.stack_dir, ".terraform/providers/x", "cached");
        write(&wc.stack_dir, "stale.tf", "");
        let wc = WorkingCopy::prepare(src.path(), work.path(), "stacks/data", &modules).unwrap();
        assert!(wc.stack_dir.join(".terraform/providers/x").is_file());
        assert!(
            !wc.stack_dir.join("stale.tf").exists(),
            "refresh drops files gone from the source"
        );
    }

    #[test]
    fn module_source_escaping_the_project_is_refused() {
        let src = tempfile::tempdir().unwrap();
        write(
            src.path(),
            "a/main.tf",
            "module \"x\" { source = \"../../../x\" }\n",
        );
        assert!(local_module_dirs(src.path(), "a").is_err());
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
