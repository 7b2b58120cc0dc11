//! What the benchmarks and the demo share: where cargo builds, the slipway binary they
//! measure, and generated repositories cached between runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result, ensure};

/// Cargo's target folder (`CARGO_TARGET_DIR`, else `target` at the workspace root).
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
        },
        PathBuf::from,
    )
}

/// The slipway binary to measure: `given`, else a fresh release build.
pub(crate) fn slipway_binary(given: Option<&Path>, target: &Path) -> Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    eprintln!("building the release binary (cargo build --release -p slipway)");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--release", "-p", "slipway"])
        .status()
        .context("cannot run cargo")?;
    ensure!(status.success(), "cargo build --release -p slipway failed");
    Ok(target.join("release").join("slipway"))
}

/// A generated repository at `repo`, made by `generate` unless a complete one is cached
/// there (or `regenerate` asks for a new one).
pub(crate) fn cached_repository(
    repo: &Path,
    regenerate: bool,
    (stacks, commits): (usize, usize),
    generate: impl FnOnce(&Path, usize, usize) -> Result<()>,
) -> Result<()> {
    if regenerate || !repo.join(".git").join("bench-complete").exists() {
        let started = Instant::now();
        generate(repo, stacks, commits)?;
        eprintln!(
            "generated {stacks} stacks and {commits} commits in {:.1?}",
            started.elapsed()
        );
    }
    Ok(())
}
