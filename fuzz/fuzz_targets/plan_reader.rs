//! `plan_reader`: see `slipway_plan::fuzz::plan_reader`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| slipway_plan::fuzz::plan_reader(data));
