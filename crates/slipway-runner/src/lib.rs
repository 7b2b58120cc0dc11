//! slipway's pipeline as a library, driven by the CLI, the server and workers alike.
//!
//! A front end resolves [`Settings`] once, loads a [`project::Workspace`] with them and hands
//! over an [`events::Observer`] and an [`events::InterruptSource`]; the runner executes stacks
//! over stage instances (`executor`, `stage_executor`), delivers artifacts through the stages
//! and keeps the record (`pipeline`, `record`), measures plans against policy (`analysis`),
//! verifies, drills and recovers (`verify`), and reports what happens as typed events
//! (`events`). It never prints, never reads the process environment and never installs
//! signal handlers: those belong to the front end.

#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod advise;
pub mod analysis;
pub mod changes;
pub mod credentials;
pub mod dora;
pub mod events;
pub mod executor;
pub mod help;
pub mod history;
pub mod locks;
pub mod outcome;
pub mod pipeline;
pub mod project;
pub mod record;
pub mod settings;
pub mod stage_executor;
pub mod verify;

pub use settings::Settings;
