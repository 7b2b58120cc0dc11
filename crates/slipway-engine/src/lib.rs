//! The engine adapter: everything slipway does with the `terraform`/`tofu` CLI.
//!
//! - [`locate`] finds the binary;
//! - [`output`] is a root module's outputs as the engine reports them;
//! - [`working_copy`] lays out one stack instance's folder (code, generated files, variables);
//! - [`state`] says where each instance's state lives;
//! - [`child`] runs one engine command with slipway's process policy (logs, timeouts, signals);
//! - [`driver`] is the typed surface: `init`, `plan`, `show`, `apply`, `output`, `destroy`;
//! - [`reason`] reads why a command failed from the engine's own `Error:` block.
//!
//! This crate knows nothing about stages or pipelines; the caller decides what runs when.

pub mod child;
pub mod driver;
pub mod locate;
pub mod output;
pub mod reason;
pub mod state;
pub mod working_copy;

pub use child::{Interrupt, InterruptTrigger, LineSink, Log, SpawnSink, StepError};
pub use driver::{Engine, LockInfo, Output, PlanOutcome, StackCredentials, StepContext};
pub use locate::{LocateError, locate_engine};
pub use reason::{engine_reason, first_engine_error};
pub use state::StateBackend;
pub use working_copy::WorkingCopy;
