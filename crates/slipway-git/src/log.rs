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

impl Repo {
    /// When each of `commits` was made (committer time, seconds since the Unix epoch).
    /// Commits this repository does not hold (a shallow clone's, a rewritten history's) are
    /// left out rather than failing the rest.
    pub fn commit_times(
        &self,
        commits: &[String],
    ) -> Result<std::collections::BTreeMap<String, i64>, GitError> {
        use std::io::Write as _;
        let mut times = std::collections::BTreeMap::new();
        if commits.is_empty() {
            return Ok(times);
        }
        let piped = |args: &[&str], input: String| -> Result<std::process::Output, GitError> {
            let mut child = self
                .command()
                .args(args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .map_err(|source| GitError::Spawn { source })?;
            let mut stdin = child.stdin.take().expect("stdin is piped");
            // Written from a thread: git answers while it reads, and a full pipe must not
            // stall both sides.
            let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
            let output = child
                .wait_with_output()
                .map_err(|source| GitError::Spawn { source })?;
            let _ = writer.join();
            Ok(output)
        };
        let asked: String = commits.iter().map(|c| format!("{c}\n")).collect();
        let checked = piped(
            &["cat-file", "--batch-check=%(objectname) %(objecttype)"],
            asked,
        )?;
        if !checked.status.success() {
            return Err(failed("git cat-file --batch-check", &checked));
        }
        let present: String = String::from_utf8_lossy(&checked.stdout)
            .lines()
            .filter_map(|line| line.strip_suffix(" commit"))
            .map(|id| format!("{id}\n"))
            .collect();
        if present.is_empty() {
            return Ok(times);
        }
        let output = piped(
            &["log", "--no-walk=unsorted", "--stdin", "--format=%H %ct"],
            present,
        )?;
        if !output.status.success() {
            return Err(failed("git log --no-walk", &output));
        }
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            if let Some((id, time)) = line.split_once(' ') {
                if let Ok(time) = time.trim().parse() {
                    times.insert(id.to_owned(), time);
                }
            }
        }
        Ok(times)
    }
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

    #[test]
    fn commit_times_are_the_committers_and_unknown_commits_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str], date: &str| {
            let status = std::process::Command::new("git")
                .args(args)
                .current_dir(dir.path())
                .env("GIT_AUTHOR_DATE", "1000000000 +0000")
                .env("GIT_COMMITTER_DATE", date)
                .env("GIT_AUTHOR_NAME", "a")
                .env("GIT_AUTHOR_EMAIL", "a@example.com")
                .env("GIT_COMMITTER_NAME", "a")
                .env("GIT_COMMITTER_EMAIL", "a@example.com")
                .status()
                .unwrap();
            assert!(status.success());
        };
        git(&["init", "-q", "-b", "main"], "");
        std::fs::write(dir.path().join("slipway.hcl"), "").unwrap();
        git(&["add", "-A"], "");
        git(&["commit", "-q", "-m", "one"], "1700000000 +0000");
        git(
            &["commit", "-q", "--allow-empty", "-m", "two"],
            "1700003600 +0200",
        );
        let repo = Repo::open(dir.path()).unwrap();
        let one = repo.require("HEAD~1").unwrap();
        let two = repo.require("HEAD").unwrap();
        let missing = "0123456789012345678901234567890123456789".to_owned();
        let times = repo
            .commit_times(&[two.clone(), missing, one.clone()])
            .unwrap();
        assert_eq!(times.len(), 2, "{times:?}");
        assert_eq!(times[&one], 1_700_000_000);
        assert_eq!(times[&two], 1_700_003_600);
        assert!(repo.commit_times(&[]).unwrap().is_empty());
    }
}
