//! End-to-end tests of the `slipway` binary, compiled into one test binary.
//!
//! Tests that apply infrastructure run the real Terraform against a fresh moto per test
//! (see `docs/sandbox.md`); the rest need nothing but the binary.

mod changed;
mod common;
mod config_errors;
mod failures;
mod interrupt;
mod listing;
mod webshop;
