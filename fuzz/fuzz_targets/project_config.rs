//! `project_config`: see `slipway_core::fuzz::project_config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| slipway_core::fuzz::project_config(data));
