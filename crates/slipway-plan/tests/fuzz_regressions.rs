//! Every input that ever crashed the `plan_reader` fuzz target (`fuzz/`, `cargo xtask fuzz`),
//! kept under `tests/fuzz_regressions/<target>/` and run again through the target's own
//! harness: each must now be read, or refused, without a panic.

#[path = "../../slipway-core/tests/common/fuzz_replay.rs"]
mod fuzz_replay;

use fuzz_replay::replay;

#[test]
fn plan_reader_regressions_are_read_without_panicking() {
    replay("plan_reader", slipway_plan::fuzz::plan_reader);
}
