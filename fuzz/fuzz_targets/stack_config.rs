//! `stack_config`: see `slipway_core::fuzz::stack_config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| slipway_core::fuzz::stack_config(data));
