//! Every input that ever crashed the `plan_reader` fuzz target (`fuzz/`, `cargo xtask fuzz`),
//! kept under `tests/fuzz_regressions/<target>/` and run again through the target's own
//! harness: each must now be read, or refused, without a panic.

use std::fs;
use std::path::Path;

/// Runs `harness` over every input in the target's folder (all but its README.md) and
/// returns how many returned.
fn replay(target: &str, harness: fn(&[u8])) -> usize {
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

#[test]
fn plan_reader_regressions_are_read_without_panicking() {
    replay("plan_reader", slipway_plan::fuzz::plan_reader);
}
