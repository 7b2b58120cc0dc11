//! Where each stack instance keeps its Terraform state.
//!
//! The backend is chosen once per project; the rest of slipway only asks it for the backend
//! block to generate and the `-backend-config` arguments for one instance, so a remote
//! backend can replace the local one without touching the core.

use std::path::{Path, PathBuf};

/// The state backend of a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateBackend {
    /// One state file per (instance, stack) under `root`.
    Local { root: PathBuf },
}

impl StateBackend {
    /// Local state in the project's data folder.
    pub fn local(data_dir: &Path) -> Self {
        StateBackend::Local {
            root: data_dir.join("state"),
        }
    }

    /// The Terraform backend type name.
    pub fn kind(&self) -> &'static str {
        match self {
            StateBackend::Local { .. } => "local",
        }
    }

    /// The state file of one instance of one stack (for the local backend).
    pub fn state_path(&self, instance: &str, stack: &str) -> PathBuf {
        match self {
            StateBackend::Local { root } => {
                root.join(instance).join(stack).join("terraform.tfstate")
            }
        }
    }

    /// Partial backend configuration passed to `init` as `-backend-config=KEY=VALUE`.
    pub fn backend_config(&self, instance: &str, stack: &str) -> Vec<(String, String)> {
        match self {
            StateBackend::Local { .. } => vec![(
                "path".to_owned(),
                self.state_path(instance, stack)
                    .to_string_lossy()
                    .into_owned(),
            )],
        }
    }

    /// The empty backend block slipway writes into the working copy; its settings arrive
    /// through [`Self::backend_config`].
    pub fn backend_block(&self) -> String {
        format!(
            "# Written by slipway: state lives where slipway's configuration says.\nterraform {{\n  backend \"{}\" {{}}\n}}\n",
            self.kind()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_state_is_one_file_per_instance_and_stack() {
        let backend = StateBackend::local(Path::new("/p/.slipway"));
        assert_eq!(
            backend.state_path("dev", "network"),
            PathBuf::from("/p/.slipway/state/dev/network/terraform.tfstate")
        );
        assert_eq!(
            backend.backend_config("zero-1", "app"),
            vec![(
                "path".to_owned(),
                "/p/.slipway/state/zero-1/app/terraform.tfstate".to_owned()
            )]
        );
        assert!(backend.backend_block().contains("backend \"local\" {}"));
    }
}
