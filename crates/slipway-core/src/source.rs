//! Source files handed to the core, and locations inside them.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One configuration or Terraform file, as text, named by its path relative to the project root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            text: text.into(),
        }
    }

    /// The location of a byte offset, for diagnostics.
    pub fn location(&self, span: Option<Range<usize>>) -> Location {
        let Some(span) = span else {
            return Location::file(&self.path);
        };
        let offset = span.start.min(self.text.len());
        let before = &self.text.as_bytes()[..offset];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |p| p + 1);
        let column = self.text[line_start..offset].chars().count() + 1;
        Location {
            path: self.path.clone(),
            line: Some(line),
            column: Some(column),
        }
    }

    /// The text of a 1-based line, without its line ending.
    pub fn line_text(&self, line: usize) -> Option<&str> {
        self.text
            .lines()
            .nth(line.checked_sub(1)?)
            .map(|l| l.trim_end_matches('\r'))
    }
}

/// A place in a source file: always a file, usually a line and column (1-based).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl Location {
    pub fn file(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            line: None,
            column: None,
        }
    }

    pub fn at(path: &Path, line: usize, column: usize) -> Self {
        Self {
            path: path.to_path_buf(),
            line: Some(line),
            column: Some(column),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Forward slashes on every platform keep messages and snapshots identical.
        let path = self.path.to_string_lossy().replace('\\', "/");
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, "{path}:{line}:{column}"),
            (Some(line), None) => write!(f, "{path}:{line}"),
            _ => write!(f, "{path}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_counts_lines_and_columns_from_one() {
        let file = SourceFile::new("a/stack.hcl", "stack {\n  team = 1\n}\n");
        let offset = file.text.find("team").unwrap();
        let location = file.location(Some(offset..offset + 4));
        assert_eq!(location.to_string(), "a/stack.hcl:2:3");
        assert_eq!(file.line_text(2), Some("  team = 1"));
    }

    #[test]
    fn location_without_span_names_the_file() {
        let file = SourceFile::new("slipway.hcl", "");
        assert_eq!(file.location(None).to_string(), "slipway.hcl");
    }
}
