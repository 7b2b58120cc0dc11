//! Whether a working copy is already initialised for what `init` would be given.
//!
//! One stack instance is initialised several times in a run (its plan and apply, a re-plan,
//! reading outputs, a destroy, a state read), each time with the same code, lock file and
//! backend; every `init` starts the engine and its provider once more for nothing. After a
//! successful `init`, slipway writes what it was given (a digest of the working copy's
//! Terraform files and lock file, the backend settings, the engine binary and its `TF_*`
//! settings) into `.terraform/`; the next `init` with the same digest, into a working copy
//! whose backend record, providers and modules are all still there, is skipped. Anything
//! else runs `init` as before, and the record is removed before `init` runs and whenever a
//! step fails, so an interrupted `init` or a broken working copy is never taken as ready.

use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use walkdir::WalkDir;

use crate::working_copy::WorkingCopy;

/// The file, inside the stack's `.terraform/`, that holds the digests `init` was run for.
const RECORD_FILE: &str = "slipway-init";

/// What one `init` would be given, as a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InitInputs(String);

impl InitInputs {
    /// The digest of what `init` reads in `working_copy`, with `backend_config` and the
    /// engine's `binary` and environment.
    pub(crate) fn of(
        working_copy: &WorkingCopy,
        backend_config: &[(String, String)],
        binary: &Path,
        env: &[(String, String)],
    ) -> io::Result<Self> {
        let mut hash = Sha256::new();
        let mut field = |name: &str, value: &[u8]| {
            hash.update(name.as_bytes());
            hash.update((value.len() as u64).to_le_bytes());
            hash.update(value);
        };
        field("binary", binary.as_os_str().as_encoded_bytes());
        if let Ok(meta) = std::fs::metadata(binary) {
            field("binary-size", &meta.len().to_le_bytes());
            if let Ok(modified) = meta.modified()
                && let Ok(since) = modified.duration_since(std::time::UNIX_EPOCH)
            {
                field("binary-modified", &since.as_nanos().to_le_bytes());
            }
        }
        // Only the engine's own settings: where providers come from and are cached. Other
        // variables (credentials among them) do not change what `init` installs.
        let mut engine_settings: Vec<&(String, String)> =
            env.iter().filter(|(k, _)| k.starts_with("TF_")).collect();
        engine_settings.sort();
        for (key, value) in engine_settings {
            field("env", key.as_bytes());
            field("value", value.as_bytes());
        }
        for (key, value) in backend_config {
            field("backend", key.as_bytes());
            field("value", value.as_bytes());
        }
        for path in init_files(&working_copy.tree)? {
            let relative = path.strip_prefix(&working_copy.tree).unwrap_or(&path);
            field("file", relative.as_os_str().as_encoded_bytes());
            field("contents", &std::fs::read(&path)?);
        }
        let digest = hash.finalize();
        Ok(Self(digest.iter().map(|b| format!("{b:02x}")).collect()))
    }
}

/// The Terraform files and lock files of the tree, outside any `.terraform` folder, in a
/// stable order.
fn init_files(tree: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let walk = WalkDir::new(tree)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.file_name() != ".terraform");
    for entry in walk {
        let entry = entry.map_err(io::Error::other)?;
        let name = entry.file_name().to_string_lossy();
        if entry.file_type().is_file()
            && (name.ends_with(".tf")
                || name.ends_with(".tf.json")
                || name == ".terraform.lock.hcl")
        {
            files.push(entry.into_path());
        }
    }
    Ok(files)
}

fn record_path(working_copy: &WorkingCopy) -> PathBuf {
    working_copy.stack_dir.join(".terraform").join(RECORD_FILE)
}

/// Whether `working_copy` was initialised for `inputs` and still holds what that `init`
/// installed.
pub(crate) fn is_initialised_for(working_copy: &WorkingCopy, inputs: &InitInputs) -> bool {
    let Ok(text) = std::fs::read_to_string(record_path(working_copy)) else {
        return false;
    };
    text.lines().any(|line| line == inputs.0) && installed_parts_present(&working_copy.stack_dir)
}

/// The backend record, every provider package (links into the cache resolve) and every
/// module folder the module manifest names.
fn installed_parts_present(stack_dir: &Path) -> bool {
    let dot = stack_dir.join(".terraform");
    if !dot.join("terraform.tfstate").is_file() {
        return false;
    }
    let providers = dot.join("providers");
    if providers.exists() {
        // host/namespace/type/version/platform
        for entry in WalkDir::new(&providers).min_depth(5).max_depth(5) {
            let Ok(entry) = entry else { return false };
            if std::fs::metadata(entry.path()).is_err() {
                return false;
            }
        }
    }
    let manifest = dot.join("modules").join("modules.json");
    if let Ok(text) = std::fs::read_to_string(&manifest) {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
            return false;
        };
        let modules = value["Modules"].as_array().cloned().unwrap_or_default();
        for module in modules {
            let Some(dir) = module["Dir"].as_str() else {
                return false;
            };
            if !stack_dir.join(dir).is_dir() {
                return false;
            }
        }
    }
    true
}

/// Records that `working_copy` is initialised for each of `inputs` (what `init` was
/// given, and what the working copy holds after it, which differ when `init` wrote the
/// lock file).
pub(crate) fn record(working_copy: &WorkingCopy, inputs: &[InitInputs]) -> io::Result<()> {
    let text: String = inputs.iter().map(|i| format!("{}\n", i.0)).collect();
    std::fs::write(record_path(working_copy), text)
}

/// Moves what `init` installed in `staged` (a copy of the same stack laid out elsewhere and
/// initialised ahead of time) into `target`, when `staged` was initialised for exactly what
/// `init` would be given in `target` (`inputs`); then `target`'s own `init` is skipped.
/// Returns whether it did; `false` leaves `target`'s `.terraform` as it was.
pub(crate) fn adopt(staged: &WorkingCopy, target: &WorkingCopy, inputs: &InitInputs) -> bool {
    if !is_initialised_for(staged, inputs) {
        return false;
    }
    let from = staged.stack_dir.join(".terraform");
    let to = target.stack_dir.join(".terraform");
    let set_aside = target.stack_dir.join(".terraform.replaced");
    let _ = std::fs::remove_dir_all(&set_aside);
    if to.exists() && std::fs::rename(&to, &set_aside).is_err() {
        return false;
    }
    if std::fs::rename(&from, &to).is_err() {
        // Put the old one back: `init` runs as if nothing happened.
        let _ = std::fs::rename(&set_aside, &to);
        return false;
    }
    let _ = std::fs::remove_dir_all(&set_aside);
    is_initialised_for(target, inputs)
}

/// Forgets that `working_copy` was initialised: the next `init` runs.
pub(crate) fn forget(working_copy: &WorkingCopy) {
    // Missing already is the state wanted.
    let _ = std::fs::remove_file(record_path(working_copy));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn working_copy(root: &Path) -> WorkingCopy {
        let tree = root.join("tree");
        let stack_dir = tree.join("stacks/app");
        std::fs::create_dir_all(stack_dir.join(".terraform/providers/h/n/t/1.0.0")).unwrap();
        std::fs::create_dir_all(root.join("cache/t")).unwrap();
        std::os::unix::fs::symlink(
            root.join("cache/t"),
            stack_dir.join(".terraform/providers/h/n/t/1.0.0/linux_amd64"),
        )
        .unwrap();
        std::fs::write(stack_dir.join(".terraform/terraform.tfstate"), "{}").unwrap();
        std::fs::write(stack_dir.join("main.tf"), "resource \"x\" \"y\" {}").unwrap();
        std::fs::create_dir_all(tree.join("modules/m")).unwrap();
        std::fs::write(tree.join("modules/m/main.tf"), "").unwrap();
        WorkingCopy {
            tree,
            stack_dir,
            has_lock_file: false,
        }
    }

    fn inputs(copy: &WorkingCopy, state: &str) -> InitInputs {
        InitInputs::of(
            copy,
            &[("path".to_owned(), state.to_owned())],
            Path::new("/no/such/engine"),
            &[
                ("TF_PLUGIN_CACHE_DIR".to_owned(), "/cache".to_owned()),
                ("AWS_SECRET_ACCESS_KEY".to_owned(), "s3cr3t".to_owned()),
            ],
        )
        .unwrap()
    }

    #[test]
    fn an_init_is_skipped_only_for_the_same_code_backend_and_installed_parts() {
        let root = tempfile::tempdir().unwrap();
        let copy = working_copy(root.path());
        let first = inputs(&copy, "a.tfstate");
        assert!(!is_initialised_for(&copy, &first), "nothing recorded yet");
        record(&copy, std::slice::from_ref(&first)).unwrap();
        assert!(is_initialised_for(&copy, &first));

        // Another backend, a changed module file, a new lock file: `init` again.
        assert!(!is_initialised_for(&copy, &inputs(&copy, "b.tfstate")));
        std::fs::write(copy.tree.join("modules/m/main.tf"), "module {}").unwrap();
        assert!(!is_initialised_for(&copy, &inputs(&copy, "a.tfstate")));
        std::fs::write(copy.tree.join("modules/m/main.tf"), "").unwrap();
        assert!(is_initialised_for(&copy, &inputs(&copy, "a.tfstate")));
        std::fs::write(copy.stack_dir.join(".terraform.lock.hcl"), "x").unwrap();
        assert!(!is_initialised_for(&copy, &inputs(&copy, "a.tfstate")));
        std::fs::remove_file(copy.stack_dir.join(".terraform.lock.hcl")).unwrap();

        // Only the engine's own variables count: a credential does not.
        let other_secret = InitInputs::of(
            &copy,
            &[("path".to_owned(), "a.tfstate".to_owned())],
            Path::new("/no/such/engine"),
            &[
                ("TF_PLUGIN_CACHE_DIR".to_owned(), "/cache".to_owned()),
                ("AWS_SECRET_ACCESS_KEY".to_owned(), "other".to_owned()),
            ],
        )
        .unwrap();
        assert_eq!(other_secret, first);

        // A provider link whose package left the cache: `init` again.
        std::fs::remove_dir(root.path().join("cache/t")).unwrap();
        assert!(!is_initialised_for(&copy, &first));
        std::fs::create_dir_all(root.path().join("cache/t")).unwrap();
        assert!(is_initialised_for(&copy, &first));

        // A module the manifest names but that is gone: `init` again.
        std::fs::create_dir_all(copy.stack_dir.join(".terraform/modules")).unwrap();
        std::fs::write(
            copy.stack_dir.join(".terraform/modules/modules.json"),
            r#"{"Modules":[{"Key":"","Source":"","Dir":"."},{"Key":"vpc","Source":"x","Dir":".terraform/modules/vpc"}]}"#,
        )
        .unwrap();
        assert!(!is_initialised_for(&copy, &first));
        std::fs::create_dir_all(copy.stack_dir.join(".terraform/modules/vpc")).unwrap();
        assert!(is_initialised_for(&copy, &first));

        forget(&copy);
        assert!(!is_initialised_for(&copy, &first));
    }
}
