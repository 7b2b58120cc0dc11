//! What the benchmarks and the demo share: where cargo builds, the slipway binary they
//! measure, scratch copies of an example project, and generated repositories cached between
//! runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

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

/// The slipway binary to measure: `given`, else a fresh release build. A relative `given`
/// is taken from the current folder: benchmarks start slipway in other folders, where a
/// relative program path would name a different file (or none).
pub(crate) fn slipway_binary(given: Option<&Path>, target: &Path) -> Result<PathBuf> {
    if let Some(path) = given {
        let cwd = std::env::current_dir().context("cannot read the current folder")?;
        let path = resolve_against(path, &cwd);
        ensure!(path.is_file(), "--slipway {}: no such file", path.display());
        return Ok(path);
    }
    eprintln!("building the release binary (cargo build --release -p slipway)");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--release", "-p", "slipway"])
        .status()
        .context("cannot run cargo")?;
    ensure!(status.success(), "cargo build --release -p slipway failed");
    Ok(target.join("release").join("slipway"))
}

/// `path` as an absolute path: itself when absolute, else below `cwd`.
pub(crate) fn resolve_against(path: &Path, cwd: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    }
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

/// What [`measure`] saw of one run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Measured {
    pub wall: Duration,
    /// The child's maximum resident set size (its `VmHWM`), in KiB.
    pub max_rss_kib: u64,
}

/// Runs `command` (its program, arguments and folder; output discarded) under Python's
/// `resource` module, which reads the child's peak memory from `wait4` without `unsafe` in
/// xtask (the sandbox already needs Python). Fails unless the command exits 0.
pub(crate) fn measure(command: &mut Command) -> Result<Measured> {
    let script = "import resource, subprocess, sys, time\n\
        t = time.monotonic()\n\
        r = subprocess.run(sys.argv[2:], cwd=sys.argv[1] or None, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n\
        e = time.monotonic() - t\n\
        sys.stderr.buffer.write(r.stderr[-4000:])\n\
        print(r.returncode, e, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n";
    let cwd = command
        .get_current_dir()
        .map(Path::as_os_str)
        .unwrap_or_default()
        .to_owned();
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(cwd)
        .arg(command.get_program())
        .args(command.get_args())
        .output()
        .context("cannot run python3 to measure a command")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [code, seconds, rss_kib] = fields[..] else {
        anyhow::bail!(
            "unexpected measurement output `{text}`: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    ensure!(
        code == "0",
        "{command:?} failed (exit {code}): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(Measured {
        wall: Duration::from_secs_f64(seconds.parse()?),
        max_rss_kib: rss_kib.parse()?,
    })
}

/// A small deterministic mixer, so a generated history is the same on every run.
pub(crate) fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_taken_from_the_given_folder() {
        let cwd = Path::new("/work/main");
        assert_eq!(
            resolve_against(Path::new("target/release/slipway"), cwd),
            PathBuf::from("/work/main/target/release/slipway")
        );
        assert_eq!(
            resolve_against(Path::new("./slipway"), cwd),
            PathBuf::from("/work/main/./slipway")
        );
        assert_eq!(
            resolve_against(Path::new("../other/slipway"), cwd),
            PathBuf::from("/work/main/../other/slipway")
        );
    }

    #[test]
    fn absolute_paths_are_kept() {
        assert_eq!(
            resolve_against(Path::new("/usr/bin/slipway"), Path::new("/work/main")),
            PathBuf::from("/usr/bin/slipway")
        );
    }
}
