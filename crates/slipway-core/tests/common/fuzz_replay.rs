//! Replays a fuzz target's regression inputs through its harness; shared by the
//! `fuzz_regressions` tests of slipway-core and slipway-plan (included with `#[path]`), each
//! reading `tests/fuzz_regressions/<target>/` of its own crate.

use std::fs;
use std::path::Path;

/// Runs `harness` over every input in the target's folder (all but its README.md) and
/// returns how many returned.
pub fn replay(target: &str, harness: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target);
    assert!(
        dir.join("README.md").is_file(),
        "the regression folder {} (with its README.md) is missing",
        dir.display()
    );
    let mut entries: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display()))
        .map(|entry| entry.expect("a folder entry").path())
        .filter(|path| path.file_name().is_some_and(|name| name != "README.md"))
        .collect();
    entries.sort();
    let mut returned = 0;
    for input in &entries {
        let data = fs::read(input).unwrap_or_else(|error| panic!("{}: {error}", input.display()));
        eprintln!("{target}: {}", input.display());
        harness(&data);
        returned += 1;
    }
    if !entries.is_empty() {
        assert_eq!(returned, entries.len(), "not every input of {target} ran");
    }
    eprintln!("{target}: {returned} regression input(s) ran");
    returned
}
