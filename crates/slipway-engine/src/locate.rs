//! Finding the engine binary: `SLIPWAY_ENGINE` first, then the project's `engine` on `PATH`.

use std::path::{Path, PathBuf};

use slipway_core::config::EngineKind;

#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    #[error("SLIPWAY_ENGINE names `{0}`, which is not an executable file")]
    NotExecutable(PathBuf),
    #[error(
        "`{binary}` was not found on PATH\n  help: install {binary}, or point SLIPWAY_ENGINE at the binary (for the test sandbox: `cargo xtask sandbox`)"
    )]
    NotFound { binary: &'static str },
}

/// The engine binary: `explicit` (the value of `SLIPWAY_ENGINE`) when given, else the kind's
/// binary found on `path` (the value of `PATH`).
pub fn locate_engine(
    kind: EngineKind,
    explicit: Option<&str>,
    path: Option<&str>,
) -> Result<PathBuf, LocateError> {
    if let Some(explicit) = explicit.filter(|s| !s.is_empty()) {
        let candidate = PathBuf::from(explicit);
        return if is_executable(&candidate) {
            Ok(candidate)
        } else {
            Err(LocateError::NotExecutable(candidate))
        };
    }
    let binary = kind.binary_name();
    std::env::split_paths(path.unwrap_or_default())
        .map(|dir| dir.join(binary))
        .find(|candidate| is_executable(candidate))
        .ok_or(LocateError::NotFound { binary })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
