//! Integration tests of slipway-plan, compiled into one binary: plan reading over real
//! recorded plans, malformed input, policy, and report snapshots.

mod large;
mod malformed;
mod policy;
mod read;
mod reports;

use std::path::PathBuf;

use slipway_plan::{Plan, read_plan_file};

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn fixture(name: &str) -> Plan {
    read_plan_file(&fixture_path(name)).unwrap_or_else(|error| panic!("{name}: {error}"))
}

/// Every recorded scenario, with both Terraform versions where it exists.
pub const LEGACY: &str = "tf1.0";
pub const CURRENT: &str = "tf1.11";
