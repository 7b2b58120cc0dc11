//! The stack-slicing advisor and adoption of existing Terraform.
//!
//! Pure analysis over values: the caller hands in stacks, their `.tf` files, commits,
//! CODEOWNERS rules and settings; the advisor hands back measurements and recommendations,
//! each with its evidence and the slicing criterion it rests on. It never reads files, runs
//! git or prints: that is the CLI's.

pub mod adopt;
pub mod analyze;
pub mod code;
pub mod codeowners;
pub mod domains;
pub mod model;
pub mod render;
pub mod svg;

pub use analyze::analyze;
pub use model::{Commit, Criterion, Input, Report, Settings, StackInput};
