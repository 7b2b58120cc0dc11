//! Provider checksums are checked once, by `init`, not again by every later command.
//!
//! Terraform and OpenTofu check each provider package against the lock file's checksums
//! every time a command loads providers: `plan`, `apply` and `show` each read and hash the
//! whole package (the AWS provider is 170 MB; a third of a second of CPU per command with
//! Terraform 1.0), though `init` checked the very same package against the very same
//! checksums when it linked it into the working copy, and a package in the plugin cache is
//! never written again once it is there.
//!
//! So while any step other than `init` runs, the working copy's lock file is set aside in
//! `.terraform/` and a copy without checksums (the same providers at the same versions)
//! stands in for it; the lock file is put back when the step ends, before anything else
//! reads it. Every such step sees the same stand-in, so a plan saved by one step matches the
//! lock file of the step that applies it (newer engines compare them). A process killed
//! during a step leaves the set-aside file behind: the next step in that working copy puts
//! it back first, unless the lock file was replaced in the meantime (a refresh of the
//! working copy brought the committed one), and then the stale copy is dropped.

use std::io;
use std::path::{Path, PathBuf};

use crate::working_copy::WorkingCopy;

/// Where the full lock file waits inside `.terraform/` while a step runs.
const SET_ASIDE_FILE: &str = "slipway-lock-with-checksums.hcl";

/// The lock file, set aside for one step; dropping it puts the lock file back.
#[derive(Debug)]
pub(crate) struct SetAside {
    lock_file: PathBuf,
    set_aside: PathBuf,
}

impl SetAside {
    /// Sets the working copy's lock file aside and puts one without checksums in its place.
    /// `None` when there is nothing to take out (no lock file, no checksums in it, or one the
    /// engine would not read either): the step then runs on the lock file as it is.
    pub(crate) fn for_step(working_copy: &WorkingCopy) -> io::Result<Option<Self>> {
        put_back(working_copy)?;
        let (lock_file, set_aside) = paths(working_copy);
        let Ok(full) = std::fs::read_to_string(&lock_file) else {
            return Ok(None);
        };
        let Some(stand_in) = without_checksums(&full) else {
            return Ok(None);
        };
        let Some(folder) = set_aside.parent() else {
            return Ok(None);
        };
        if !folder.is_dir() {
            // Not initialised: the step fails on its own and says why.
            return Ok(None);
        }
        // The full copy is safe in `.terraform/` before the lock file changes, and each file
        // is replaced whole: a kill between any two calls leaves something `put_back` mends.
        write_whole(&set_aside, full.as_bytes())?;
        write_whole(&lock_file, stand_in.as_bytes())?;
        Ok(Some(Self {
            lock_file,
            set_aside,
        }))
    }
}

impl Drop for SetAside {
    fn drop(&mut self) {
        if let Err(e) = std::fs::rename(&self.set_aside, &self.lock_file) {
            // The next step in this working copy tries again (`put_back`).
            tracing::debug!(
                "cannot put back the lock file {}: {e}",
                self.lock_file.display()
            );
        }
    }
}

/// Puts back a lock file a step cut short left set aside, while the lock file is still the
/// stand-in made from it; a set-aside copy of anything else is out of date and dropped.
pub(crate) fn put_back(working_copy: &WorkingCopy) -> io::Result<()> {
    let (lock_file, set_aside) = paths(working_copy);
    let full = match std::fs::read_to_string(&set_aside) {
        Ok(full) => full,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let current = std::fs::read_to_string(&lock_file).ok();
    let still_the_stand_in = match &current {
        Some(current) => *current == full || Some(current) == without_checksums(&full).as_ref(),
        None => false,
    };
    if still_the_stand_in {
        std::fs::rename(&set_aside, &lock_file)
    } else {
        std::fs::remove_file(&set_aside)
    }
}

fn paths(working_copy: &WorkingCopy) -> (PathBuf, PathBuf) {
    let dir = &working_copy.stack_dir;
    (
        dir.join(".terraform.lock.hcl"),
        dir.join(".terraform").join(SET_ASIDE_FILE),
    )
}

/// The lock file without any provider's `hashes`; `None` when it has none to take out or
/// does not parse (the engine then reports it as it reads it).
fn without_checksums(lock_file: &str) -> Option<String> {
    let mut body = hcl::parse(lock_file).ok()?;
    let mut removed = false;
    for block in body.blocks_mut() {
        if block.identifier() != "provider" {
            continue;
        }
        let items = &mut block.body.0;
        let before = items.len();
        items.retain(|item| !matches!(item, hcl::Structure::Attribute(a) if a.key() == "hashes"));
        removed |= items.len() != before;
    }
    if !removed {
        return None;
    }
    hcl::to_string(&body).ok()
}

/// Replaces `path` with `contents` in one rename, never leaving it half written.
fn write_whole(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    std::fs::write(&partial, contents)?;
    std::fs::rename(&partial, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"# This file is maintained automatically by "terraform init".
# Manual edits may be lost in future updates.

provider "registry.terraform.io/hashicorp/aws" {
  version     = "3.39.0"
  constraints = "3.39.0"
  hashes = [
    "h1:goOMfGE4SjLps+hpxJFEM/pZFiNgvi6BMG8/w86+f6k=",
    "zh:0a2b9c5b6c3ae3dcbb8a1f3e0f87a4e0c4d5e9f7aa7f5d0f77b1e2e3d4c5b6a7",
  ]
}

provider "registry.terraform.io/hashicorp/random" {
  version = "3.1.0"
}
"#;

    fn working_copy(dir: &Path) -> WorkingCopy {
        std::fs::create_dir_all(dir.join(".terraform")).unwrap();
        WorkingCopy {
            tree: dir.to_path_buf(),
            stack_dir: dir.to_path_buf(),
            has_lock_file: true,
        }
    }

    /// A working copy whose lock file is [`LOCK`].
    fn locked_working_copy(dir: &Path) -> WorkingCopy {
        let copy = working_copy(dir);
        std::fs::write(copy.stack_dir.join(".terraform.lock.hcl"), LOCK).unwrap();
        copy
    }

    fn set_aside_exists(copy: &WorkingCopy) -> bool {
        paths(copy).1.exists()
    }

    fn lock_of(copy: &WorkingCopy) -> String {
        std::fs::read_to_string(copy.stack_dir.join(".terraform.lock.hcl")).unwrap()
    }

    #[test]
    fn the_stand_in_keeps_every_provider_and_version_but_no_checksum() {
        let stand_in = without_checksums(LOCK).unwrap();
        assert!(!stand_in.contains("h1:"), "{stand_in}");
        assert!(!stand_in.contains("hashes"), "{stand_in}");
        let providers = super::super::plugin_cache::parse_lock_file(&stand_in).unwrap();
        let kept: Vec<_> = providers
            .iter()
            .map(|p| (p.address.as_str(), p.version.as_str(), p.hashes.len()))
            .collect();
        assert_eq!(
            kept,
            [
                ("registry.terraform.io/hashicorp/aws", "3.39.0", 0),
                ("registry.terraform.io/hashicorp/random", "3.1.0", 0),
            ]
        );
        assert!(stand_in.contains(r#"constraints = "3.39.0""#), "{stand_in}");
    }

    #[test]
    fn nothing_is_set_aside_without_checksums_to_take_out() {
        let dir = tempfile::tempdir().unwrap();
        let copy = working_copy(dir.path());
        assert!(SetAside::for_step(&copy).unwrap().is_none(), "no lock file");
        let plain = without_checksums(LOCK).unwrap();
        std::fs::write(copy.stack_dir.join(".terraform.lock.hcl"), &plain).unwrap();
        assert!(SetAside::for_step(&copy).unwrap().is_none(), "no checksums");
        std::fs::write(copy.stack_dir.join(".terraform.lock.hcl"), "provider {").unwrap();
        assert!(SetAside::for_step(&copy).unwrap().is_none(), "no HCL");
        assert_eq!(lock_of(&copy), "provider {");
    }

    #[test]
    fn a_step_sees_the_stand_in_and_the_lock_file_is_back_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let copy = locked_working_copy(dir.path());
        let set_aside = SetAside::for_step(&copy).unwrap().expect("set aside");
        assert_eq!(lock_of(&copy), without_checksums(LOCK).unwrap());
        drop(set_aside);
        assert_eq!(lock_of(&copy), LOCK);
        assert!(!set_aside_exists(&copy));
    }

    #[test]
    fn a_step_killed_midway_has_its_lock_file_put_back_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let copy = locked_working_copy(dir.path());
        // A kill: the guard never runs.
        std::mem::forget(SetAside::for_step(&copy).unwrap());
        assert_ne!(lock_of(&copy), LOCK);
        put_back(&copy).unwrap();
        assert_eq!(lock_of(&copy), LOCK);
        // And a kill followed by another step.
        std::mem::forget(SetAside::for_step(&copy).unwrap());
        let next = SetAside::for_step(&copy).unwrap().expect("set aside again");
        drop(next);
        assert_eq!(lock_of(&copy), LOCK);
    }

    #[test]
    fn a_lock_file_replaced_after_a_kill_is_kept_and_the_stale_copy_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let copy = locked_working_copy(dir.path());
        std::mem::forget(SetAside::for_step(&copy).unwrap());
        // A refresh of the working copy brings a newer committed lock file.
        let upgraded = LOCK.replace("3.39.0", "3.40.0");
        std::fs::write(copy.stack_dir.join(".terraform.lock.hcl"), &upgraded).unwrap();
        put_back(&copy).unwrap();
        assert_eq!(lock_of(&copy), upgraded);
        assert!(!set_aside_exists(&copy));
    }
}
