//! What the benchmarks and the demo share: where cargo builds, the slipway binary they
//! measure, scratch copies of an example project, and generated repositories cached between
//! runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result, ensure};

/// Cargo's target folder (`CARGO_TARGET_DIR`, else `target` at the workspace root).
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || {
            // The workspace root, spelled without `..` since paths under it are shown.
            let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
            xtask.parent().unwrap_or(xtask).join("target")
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

/// Copies the folder `from` to `to`, leaving out slipway's and Terraform's working folders
/// (`.slipway`, `.terraform`) so the copy starts from a clean state.
pub(crate) fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == ".slipway" || name == ".terraform" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// The generated repository `<name>-<stacks>-<commits>` below cargo's target folder (`name`
/// such as `bench-advise/repo`). Unless a complete one is cached there (or `regenerate` asks
/// for a new one), the folder is emptied and `generate` makes the repository in it; it counts
/// as complete once `generate` has succeeded.
pub(crate) fn cached_repository(
    name: &str,
    (stacks, commits): (usize, usize),
    regenerate: bool,
    generate: impl FnOnce(&Path, usize, usize) -> Result<()>,
) -> Result<PathBuf> {
    let repo = target_dir().join(format!("{name}-{stacks}-{commits}"));
    let complete = repo.join(".git").join("bench-complete");
    if regenerate || !complete.exists() {
        let started = Instant::now();
        if repo.exists() {
            std::fs::remove_dir_all(&repo)
                .with_context(|| format!("cannot clear {}", repo.display()))?;
        }
        std::fs::create_dir_all(&repo)?;
        generate(&repo, stacks, commits)?;
        std::fs::write(&complete, "")?;
        eprintln!(
            "generated {stacks} stacks and {commits} commits in {:.1?}",
            started.elapsed()
        );
    }
    Ok(repo)
}

/// A small deterministic mixer, so a generated history is the same on every run.
pub(crate) fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}
