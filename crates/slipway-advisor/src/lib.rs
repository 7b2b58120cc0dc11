//! The stack-slicing advisor and adoption of existing Terraform.
//!
//! Pure analysis over values: the caller hands in stacks, their `.tf` files, commits,
//! CODEOWNERS rules, the resources a stage's state holds (when it read one) and settings; the
//! advisor hands back measurements and recommendations, each with its evidence, the slicing
//! criterion it rests on and the kind of evidence ([`Basis`]: existing, planned, declared,
//! history, ownership). It never reads files or state, runs git or prints: that is the
//! CLI's.

pub mod adopt;
pub mod analyze;
pub mod code;
pub mod codeowners;
pub mod domains;
pub mod instances;
pub mod model;
pub mod render;
pub mod svg;

pub use analyze::analyze;
pub use model::{Basis, Commit, Criterion, Input, Observed, Report, Settings, StackInput};
