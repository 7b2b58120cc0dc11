//! End-to-end tests of the `slipway` binary, compiled into one test binary.
//!
//! Tests that apply infrastructure run the real Terraform against a fresh moto per test
//! (see `docs/sandbox.md`); the rest need nothing but the binary.

mod advise;
mod blast_radius;
mod browser;
mod change_index;
mod changed;
mod ci_jobs;
mod common;
mod config_errors;
mod crash_anywhere;
mod dora;
mod drift_recover;
mod drill;
mod engine_environment;
mod engines;
mod failures;
mod faults;
mod init;
mod instance_locks;
mod interrupt;
mod listing;
mod pipeline;
mod pipeline_approval;
mod pipeline_killed;
mod pipeline_s3;
// The store crate's throwaway PostgreSQL server, for the record of the CI-jobs test.
#[path = "../../../slipway-store/tests/store_story/postgres_server.rs"]
mod postgres_server;
mod provider_checksums;
mod queue_project;
mod recover_lost;
mod root_module;
mod serve;
mod state_credentials;
mod user;
mod verify_run;
mod webshop;
mod workers;
