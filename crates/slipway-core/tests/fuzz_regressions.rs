//! Every input that ever crashed a configuration fuzz target (`fuzz/`, `cargo xtask fuzz`),
//! kept under `tests/fuzz_regressions/<target>/` and run again through the target's own
//! harness: each must now load, or fail to, without a panic.

#[path = "common/fuzz_replay.rs"]
mod fuzz_replay;

use fuzz_replay::replay;

#[test]
fn project_config_regressions_load_without_panicking() {
    replay("project_config", slipway_core::fuzz::project_config);
}

#[test]
fn stack_config_regressions_load_without_panicking() {
    replay("stack_config", slipway_core::fuzz::stack_config);
}
