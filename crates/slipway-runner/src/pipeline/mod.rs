//! The delivery pipeline: artifacts built and fetched (`artifacts`), one stage delivered
//! from artifacts with its record kept (`deliver`, through the executor's hooks), a run
//! through the stages with its approvals (`stages`), a stage's stack applies spread over
//! workers as jobs of their own (`spread`) and one such job (`step`), and what an earlier, dead run left
//! behind (`interrupted`). The check that an
//! approved plan still fits the instance's state is the executor's (`executor/saved_plan.rs`).

pub mod artifacts;
pub mod deliver;
pub mod interrupted;
pub mod spread;
pub mod stages;
pub mod step;

/// The first 12 hex digits of an artifact id (`sha256:<hex>`), as people see it.
pub fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

/// The first 12 characters of a commit hash.
pub fn short_commit(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}
