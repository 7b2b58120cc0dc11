//! The cheapest pipeline to drive on the sandbox: the webshop's `queue` stack alone, with a
//! `dev` stage and a `prod` stage that needs approval, as a git repository with one commit.
//! One stack keeps every engine pass short and every message deterministic for snapshots.

use std::path::Path;

use crate::common::{example, normalize, replace_patterns};
use crate::pipeline::git;

/// The one-stack project, committed.
pub(crate) fn queue_repository() -> tempfile::TempDir {
    queue_repository_with("")
}

/// The one-stack project with `extra` appended to its slipway.hcl, committed.
pub(crate) fn queue_repository_with(extra: &str) -> tempfile::TempDir {
    let project = example("webshop");
    let dir = project.path();
    for gone in ["stacks/network", "stacks/data", "stacks/app", "modules"] {
        std::fs::remove_dir_all(dir.join(gone)).unwrap();
    }
    let config = dir.join("slipway.hcl");
    let text = std::fs::read_to_string(&config).unwrap();
    let without_test = regex_lite::Regex::new(r#"(?s)stage "test" \{.*?\n\}\n\n"#)
        .unwrap()
        .replace(&text, "")
        .into_owned();
    assert_ne!(text, without_test, "the webshop has a test stage to drop");
    std::fs::write(&config, format!("{without_test}{extra}")).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join(".gitignore"), ".slipway/\n").unwrap();
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "queue"]);
    project
}

/// [`normalize`], plus what changes from one test run to the next: hashes, short artifact
/// ids and commits, ages, process ids and the host name.
pub(crate) fn scrub(text: &str, project: &Path) -> String {
    let mut text = normalize(text, project);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    if !host.is_empty() {
        text = text.replace(&format!(" on {host}"), " on [HOST]");
    }
    let patterns = [
        (r"[0-9a-f]{64}", "[SHA256]"),
        (r"\b[0-9a-f]{12}\b", "[SHORT]"),
        (r"pid \d+", "pid [PID]"),
        (
            r"\d+(ms|us|ns|s|m|h|d)( \d+(ms|us|ns|s|m|h|d))* ago",
            "[AGE] ago",
        ),
        (
            r"for \d+(ms|us|ns|s|m|h|d)( \d+(ms|us|ns|s|m|h|d))*",
            "for [AGE]",
        ),
    ];
    replace_patterns(text, &patterns)
}
