//! How one verification path (from zero, from latest) went: a plain value that verification
//! fills in and events carry.

use anyhow::Result;
use serde::Serialize;

/// How one verification path went.
#[derive(Debug, Clone, Serialize)]
pub struct PathResult {
    /// `from zero` or `from latest`.
    pub path: &'static str,
    pub instance: Option<String>,
    /// Why the path did not run (nothing released to compare with yet).
    pub skipped: Option<String>,
    /// What failed, one line each; empty when the path passed.
    pub problems: Vec<String>,
    pub elapsed_ms: u64,
}

impl PathResult {
    pub(crate) fn new(path: &'static str) -> Self {
        Self {
            path,
            instance: None,
            skipped: None,
            problems: Vec::new(),
            elapsed_ms: 0,
        }
    }

    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    /// The value of a step that may fail; its error becomes one of the path's problems.
    pub(crate) fn noted<T>(&mut self, step: Result<T>) -> Option<T> {
        match step {
            Ok(value) => Some(value),
            Err(error) => {
                self.problems.push(format!("{error:#}"));
                None
            }
        }
    }
}
