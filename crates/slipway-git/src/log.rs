//! `git log` for the stack-slicing advisor: every commit in a time window with its author,
//! time and the files it touched.
//!
//! Read with `--name-only -z` and a format whose fields are separated by ASCII control
//! characters, so file names with spaces, quotes or newlines come through unmangled.
//! Merge commits are left out: the commits they bring in are listed themselves.

use crate::error::GitError;
use crate::repo::{Repo, failed};

/// One commit as `git log` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub id: String,
    /// Author email.
    pub author: String,
    /// Author time, seconds since the Unix epoch.
    pub time: i64,
    /// Files it touched, relative to the project root; files outside the project are left out.
    pub files: Vec<String>,
}

/// Record separator before each commit, unit separator between its header fields.
const FORMAT: &str = "--format=%x1e%H%x1f%ae%x1f%at";

impl Repo {
    /// Commits reachable from `HEAD` authored since `since` (anything `git log --since`
    /// accepts: `2024-01-31`, `180 days ago`), newest first.
    pub fn log_since(&self, since: &str) -> Result<Vec<LogEntry>, GitError> {
        let since = format!("--since={since}");
        let mut args: Vec<&str> = vec![
            "log",
            "--no-merges",
            "--no-renames",
            "--name-only",
            "-z",
            FORMAT,
            &since,
            "HEAD",
            "--",
        ];
        if !self.prefix().is_empty() {
            args.push(self.prefix());
        }
        let output = self.run(&args)?;
        if !output.status.success() {
            // A repository without commits has no HEAD: no history, not an error.
            let stderr = String::from_utf8_lossy(&output.stderr);
            if stderr.contains("does not have any commits")
                || stderr.contains("unknown revision or path not in the working tree")
            {
                return Ok(Vec::new());
            }
            return Err(failed("git log", &output));
        }
        parse_log(&output.stdout, self.prefix()).map_err(|detail| GitError::BadOutput {
            command: "git log --name-only -z".into(),
            detail,
        })
    }
}

/// Parses the output of `git log --name-only -z` with [`FORMAT`]; paths are made relative
/// to `prefix` (`""`, or a folder ending in `/`).
pub fn parse_log(bytes: &[u8], prefix: &str) -> Result<Vec<LogEntry>, String> {
    let mut entries = Vec::new();
    for record in bytes.split(|b| *b == 0x1e).skip(1) {
        let (header, rest) = match record.iter().position(|b| *b == 0) {
            Some(n) => (&record[..n], &record[n + 1..]),
            None => (record, &[][..]),
        };
        let header = String::from_utf8_lossy(header);
        let mut fields = header.split('\u{1f}');
        let (Some(id), Some(author), Some(time)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(format!("a commit header without three fields: {header:?}"));
        };
        let time: i64 = time
            .trim()
            .parse()
            .map_err(|_| format!("`{time}` is not a commit time"))?;
        let rest = rest.strip_prefix(b"\n").unwrap_or(rest);
        let files = rest
            .split(|b| *b == 0)
            .filter(|name| !name.is_empty())
            .filter_map(|name| {
                let name = String::from_utf8_lossy(name);
                name.strip_prefix(prefix).map(str::to_owned)
            })
            .collect();
        entries.push(LogEntry {
            id: id.to_owned(),
            author: author.to_owned(),
            time,
            files,
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_headers_and_odd_file_names() {
        let out = b"\x1eaaa\x1fx@y\x1f100\0\x1ebbb\x1fz@y\x1f200\0\na\0d/b c\0proj/new\nline.tf\0";
        let entries = parse_log(out, "").unwrap();
        assert_eq!(entries.len(), 2);
        assert!(entries[0].files.is_empty());
        assert_eq!(entries[1].author, "z@y");
        assert_eq!(entries[1].time, 200);
        assert_eq!(entries[1].files, ["a", "d/b c", "proj/new\nline.tf"]);
        let scoped = parse_log(out, "proj/").unwrap();
        assert_eq!(scoped[1].files, ["new\nline.tf"]);
        assert!(parse_log(b"\x1ebroken\0", "").is_err());
    }
}
