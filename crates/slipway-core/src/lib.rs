//! slipway's pure domain: the configuration model, stack discovery rules, the stack graph and
//! the scheduling of stack instances over it.
//!
//! Nothing in this crate touches the filesystem, the network, the clock or child processes:
//! callers hand it file contents and environment values, and it hands back validated values
//! or diagnostics. That keeps every decision here testable with plain values and keeps the
//! adapters (engine, store, CLI) thin.

pub mod changes;
pub mod config;
pub mod diagnostic;
pub mod dora;
#[doc(hidden)]
pub mod fuzz;
pub mod graph;
pub mod labels;
pub mod module_files;
pub mod render;
pub mod schedule;
pub mod source;
pub mod terraform;

pub use config::{Project, Stack, Stage};
pub use diagnostic::{Diagnostic, Diagnostics};
pub use graph::StackGraph;
pub use labels::Labels;
pub use source::{Location, SourceFile};
