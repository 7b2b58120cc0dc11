//! slipway-plan: reads Terraform/OpenTofu plan JSON, measures a change's blast radius,
//! checks it against a stage's policy and renders reports.
//!
//! Pure: no subprocesses, no network, no clock. Callers hand it plan JSON (a file or
//! bytes) and plain-data configuration; it never sees attribute values beyond hashes
//! used to tell which attributes changed, so sensitive values cannot reach a report.
//!
//! The flow: [`read_plan_file`] gives a [`Plan`]; [`analyze_instance`] measures its
//! [`BlastRadius`] and checks it against the stage's [`Policy`]; [`Report::new`] gathers
//! the run's instances and their total; [`render_terminal`], [`render_markdown`] and
//! [`Report::to_json`] present it. [`analyze_file`] does all of it for one plan file.

#[doc(hidden)]
pub mod bench;
pub mod blast;
#[doc(hidden)]
pub mod fuzz;
mod glob;
pub mod model;
pub mod policy;
pub mod read;
pub mod render;
pub mod report;
mod scan;
pub mod stateful;

pub use blast::{BlastRadius, StackLinks, blast_radius};
pub use glob::glob_match;
pub use model::{Action, ActionKind, OutputChange, Plan, ResourceChange, ResourceMode};
pub use policy::{
    OnViolation, Policy, PolicyConfig, PolicyError, PolicySubject, Severity, Verdict, Violation,
    policy_input,
};
pub use read::{PlanError, parse_plan, read_plan, read_plan_file};
pub use render::{render_markdown, render_terminal};
pub use report::{
    AnalyzeError, AnalyzeOptions, InstanceReport, REPORT_SCHEMA, Report, analyze_file,
    analyze_instance, stack_name_from_path,
};
pub use stateful::{StatefulConfig, StatefulTypes};
