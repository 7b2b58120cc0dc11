//! Reading `git diff --name-status -z` output.

use slipway_core::changes::{FileChange, FileStatus};

/// Parses NUL-separated `--name-status -z` output: a status field, then one path, or two for
/// renames and copies (`R` and `C` carry a score, as in `R087`).
///
/// Copies count as additions of the new path: the source did not change. A type change
/// (`T`) counts as a modification. Errors name the first field slipway cannot read.
pub fn parse_name_status(output: &[u8]) -> Result<Vec<FileChange>, String> {
    let mut fields = output
        .split(|b| *b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned());
    let mut changes = Vec::new();
    while let Some(status) = fields.next() {
        // Output ends with a NUL, so the last field is empty; tolerate stray blank fields too.
        if status.is_empty() {
            continue;
        }
        let mut path = || {
            fields
                .next()
                .filter(|p| !p.is_empty())
                .ok_or_else(|| format!("status `{status}` without a path"))
        };
        let change = match status.as_bytes()[0] {
            b'A' => FileChange::new(path()?, FileStatus::Added),
            b'M' | b'T' => FileChange::new(path()?, FileStatus::Modified),
            b'D' => FileChange::new(path()?, FileStatus::Deleted),
            b'R' => {
                let from = path()?;
                FileChange::new(path()?, FileStatus::Renamed { from })
            }
            b'C' => {
                let _from = path()?;
                FileChange::new(path()?, FileStatus::Added)
            }
            _ => return Err(format!("unknown status `{status}`")),
        };
        changes.push(change);
    }
    Ok(changes)
}

/// Keeps the changes below `prefix` (the project folder inside the repository, `""` or
/// ending in `/`) and makes their paths relative to it. A rename from outside the project
/// reads as an addition, a rename out of it as a deletion.
pub(crate) fn relative_to(changes: Vec<FileChange>, prefix: &str) -> Vec<FileChange> {
    if prefix.is_empty() {
        return changes;
    }
    let strip = |p: &str| p.strip_prefix(prefix).map(str::to_owned);
    changes
        .into_iter()
        .filter_map(|change| {
            let to = strip(&change.path);
            match change.status {
                FileStatus::Renamed { from } => match (strip(&from), to) {
                    (Some(from), Some(to)) => {
                        Some(FileChange::new(to, FileStatus::Renamed { from }))
                    }
                    (None, Some(to)) => Some(FileChange::new(to, FileStatus::Added)),
                    (Some(from), None) => Some(FileChange::new(from, FileStatus::Deleted)),
                    (None, None) => None,
                },
                status => to.map(|to| FileChange::new(to, status)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_status_and_both_paths_of_a_rename() {
        let output =
            b"M\0a/main.tf\0A\0b/new file.tf\0D\0c/old.tf\0R087\0d/x.tf\0e/x.tf\0C100\0f/y\0g/y\0T\0h\0";
        let changes = parse_name_status(output).unwrap();
        assert_eq!(
            changes,
            vec![
                FileChange::new("a/main.tf", FileStatus::Modified),
                FileChange::new("b/new file.tf", FileStatus::Added),
                FileChange::new("c/old.tf", FileStatus::Deleted),
                FileChange::new(
                    "e/x.tf",
                    FileStatus::Renamed {
                        from: "d/x.tf".into()
                    }
                ),
                FileChange::new("g/y", FileStatus::Added),
                FileChange::new("h", FileStatus::Modified),
            ]
        );
    }

    #[test]
    fn paths_with_newlines_and_tabs_survive() {
        let changes = parse_name_status(b"M\0we\nird\tname.tf\0").unwrap();
        assert_eq!(changes[0].path, "we\nird\tname.tf");
    }

    #[test]
    fn empty_output_is_no_change() {
        assert_eq!(parse_name_status(b"").unwrap(), vec![]);
    }

    #[test]
    fn truncated_rename_is_an_error() {
        assert_eq!(
            parse_name_status(b"R100\0only-one\0").unwrap_err(),
            "status `R100` without a path"
        );
        assert!(parse_name_status(b"Z\0x\0").is_err());
    }

    #[test]
    fn prefix_is_stripped_and_renames_across_it_become_adds_or_deletes() {
        let changes = vec![
            FileChange::new("infra/a.tf", FileStatus::Modified),
            FileChange::new("docs/readme.md", FileStatus::Modified),
            FileChange::new(
                "infra/b.tf",
                FileStatus::Renamed {
                    from: "old/b.tf".into(),
                },
            ),
            FileChange::new(
                "old/c.tf",
                FileStatus::Renamed {
                    from: "infra/c.tf".into(),
                },
            ),
        ];
        assert_eq!(
            relative_to(changes, "infra/"),
            vec![
                FileChange::new("a.tf", FileStatus::Modified),
                FileChange::new("b.tf", FileStatus::Added),
                FileChange::new("c.tf", FileStatus::Deleted),
            ]
        );
    }
}
