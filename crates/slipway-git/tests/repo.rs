//! The git adapter against real repositories built in temporary folders.

mod common;

use std::path::Path;

use common::{commit, git, write};
use slipway_core::changes::{FileChange, FileStatus};
use slipway_git::{EarlyDiff, GitError, Repo, TreeReader};

fn project(dir: &Path) -> String {
    git(dir, &["init", "-q", "-b", "main"]);
    write(
        dir,
        "slipway.hcl",
        "project {\n  name = \"p\"\n  engine = \"terraform\"\n}\nstage \"dev\" {}\n",
    );
    write(dir, "stacks/a/stack.hcl", "stack {}\n");
    write(
        dir,
        "stacks/a/main.tf",
        "module \"m\" {\n  source = \"../../modules/m\"\n}\n",
    );
    write(dir, "stacks/a/b.tf", "variable \"x\" {}\n");
    write(dir, "stacks/a/notes.md", "not terraform\n");
    write(
        dir,
        "modules/m/main.tf",
        "module \"n\" {\n  source = \"../n\"\n}\n",
    );
    write(dir, "modules/n/main.tf", "variable \"y\" {}\n");
    write(
        dir,
        "with space/stack.hcl",
        "stack {\n  name = \"spaced\"\n}\n",
    );
    commit(dir)
}

#[test]
fn reads_the_project_at_a_commit_like_a_working_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let first = project(tmp.path());
    // Later edits must not leak into a read of the first commit.
    write(tmp.path(), "stacks/a/b.tf", "variable \"z\" {}\n");
    commit(tmp.path());

    let repo = Repo::open(tmp.path()).unwrap();
    let mut reader = TreeReader::new(&repo, &first).unwrap();
    let sources = reader.project_sources().unwrap();
    assert!(sources.config.text.contains("name = \"p\""));
    let dirs: Vec<_> = sources
        .stacks
        .iter()
        .map(|s| s.dir.display().to_string())
        .collect();
    assert_eq!(dirs, ["stacks/a", "with space"]);
    let a = &sources.stacks[0];
    assert_eq!(a.config.path, Path::new("stacks/a/stack.hcl"));
    let tf: Vec<_> = a
        .terraform
        .iter()
        .map(|f| f.path.display().to_string())
        .collect();
    assert_eq!(tf, ["stacks/a/b.tf", "stacks/a/main.tf"]);
    assert_eq!(a.terraform[0].text, "variable \"x\" {}\n");

    let project = slipway_core::config::load(&sources, &Default::default()).unwrap();
    let modules = reader.module_dirs(&project.stacks).unwrap();
    assert_eq!(modules["a"], ["modules/m", "modules/n"]);
    assert!(modules["spaced"].is_empty());
}

#[test]
fn diff_reports_renames_with_both_paths_and_resolve_tells_unknown_from_broken() {
    let tmp = tempfile::tempdir().unwrap();
    let first = project(tmp.path());
    git(tmp.path(), &["mv", "stacks/a/b.tf", "stacks/a/c.tf"]);
    std::fs::remove_file(tmp.path().join("with space/stack.hcl")).unwrap();
    let second = commit(tmp.path());

    let repo = Repo::open(tmp.path()).unwrap();
    assert_eq!(
        repo.resolve("HEAD").unwrap().as_deref(),
        Some(second.as_str())
    );
    assert_eq!(repo.resolve("no-such-ref").unwrap(), None);
    assert_eq!(repo.resolve("--help").unwrap(), None);
    assert!(matches!(
        repo.require("nope"),
        Err(GitError::UnknownRevision { .. })
    ));
    assert!(!repo.is_shallow().unwrap());
    assert_eq!(
        repo.diff(&first, &second).unwrap(),
        vec![
            FileChange::new(
                "stacks/a/c.tf",
                FileStatus::Renamed {
                    from: "stacks/a/b.tf".into()
                }
            ),
            FileChange::new("with space/stack.hcl", FileStatus::Deleted),
        ]
    );
    let mut reader = TreeReader::new(&repo, &first).unwrap();
    let texts = reader
        .read(&[
            "with space/stack.hcl".into(),
            "missing.tf".into(),
            "stacks".into(),
        ])
        .unwrap();
    assert_eq!(
        texts,
        vec![Some("stack {\n  name = \"spaced\"\n}\n".into()), None, None]
    );
}

/// The diff started from the project folder before the repository is opened ends as the
/// diff of the opened repository: for a project below the top folder too, with renames into,
/// out of and inside it.
#[test]
fn an_early_diff_from_the_project_folder_answers_as_the_repository_diff() {
    let tmp = tempfile::tempdir().unwrap();
    let top = tmp.path();
    git(top, &["init", "-q", "-b", "main"]);
    write(top, "infra/slipway.hcl", "project {}\n");
    write(top, "infra/stacks/a/main.tf", "variable \"a\" {}\n");
    write(top, "infra/stacks/b/main.tf", "variable \"b\" {}\n");
    write(top, "outside/c.tf", "variable \"c\" {}\n");
    write(top, "readme.md", "top\n");
    let first = commit(top);
    for (from, to) in [
        ("infra/stacks/a/main.tf", "infra/stacks/a/renamed.tf"),
        ("infra/stacks/b/main.tf", "outside/b.tf"),
        ("outside/c.tf", "infra/stacks/c/main.tf"),
    ] {
        let text = std::fs::read_to_string(top.join(from)).unwrap();
        std::fs::remove_file(top.join(from)).unwrap();
        write(top, to, &text);
    }
    write(top, "readme.md", "changed\n");
    let second = commit(top);

    for root in [top.to_path_buf(), top.join("infra")] {
        let repo = Repo::open(&root).unwrap();
        let early = EarlyDiff::start(&root, &first, &second).unwrap();
        assert_eq!(
            repo.early_diff(early),
            repo.diff(&first, &second).unwrap(),
            "{}",
            root.display()
        );
    }
    let repo = Repo::open(&top.join("infra")).unwrap();
    let mut diff = repo.diff(&first, &second).unwrap();
    diff.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(
        diff,
        vec![
            FileChange::new(
                "stacks/a/renamed.tf",
                FileStatus::Renamed {
                    from: "stacks/a/main.tf".into()
                }
            ),
            FileChange::new("stacks/b/main.tf", FileStatus::Deleted),
            FileChange::new("stacks/c/main.tf", FileStatus::Added),
        ]
    );
    assert!(EarlyDiff::start(&top.join("infra"), &first, "no-such-commit").is_err());
}

#[test]
fn outside_a_repository_is_a_typed_error() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(matches!(
        Repo::open(tmp.path()),
        Err(GitError::NotARepository { .. })
    ));
}

#[test]
fn a_pull_requests_head_pushed_to_a_fork_is_fetched_from_the_forges_ref() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    std::fs::create_dir_all(&origin).unwrap();
    project(&origin);
    // The fork's commit exists in the target repository only under the forge's ref.
    git(&origin, &["checkout", "-q", "-b", "from-fork"]);
    write(&origin, "stacks/a/main.tf", "# from a fork\n");
    let head = commit(&origin);
    git(&origin, &["update-ref", "refs/pull/7/head", &head]);
    git(&origin, &["checkout", "-q", "main"]);
    git(&origin, &["branch", "-q", "-D", "from-fork"]);
    // Through git's transport, as from a forge: a local clone would share every object.
    let source = format!("file://{}", origin.display());
    let source = source.as_str();
    let server = tmp.path().join("server");
    git(
        tmp.path(),
        &["clone", "-q", source, server.to_str().unwrap()],
    );
    let repo = Repo::open(&server).unwrap();
    repo.fetch_from(source).unwrap();
    assert!(repo.check_out(&head).is_err(), "no branch holds the head");

    assert!(
        repo.fetch_pull_request_head(source, 8).is_err(),
        "no pull request 8"
    );
    repo.fetch_pull_request_head(source, 7).unwrap();
    repo.check_out(&head).unwrap();
    assert_eq!(
        std::fs::read_to_string(server.join("stacks/a/main.tf")).unwrap(),
        "# from a fork\n"
    );

    // GitLab keeps a merge request's head under its own name.
    git(
        &origin,
        &["update-ref", "refs/merge-requests/9/head", &head],
    );
    git(&origin, &["update-ref", "-d", "refs/pull/7/head"]);
    repo.fetch_pull_request_head(source, 9).unwrap();
}
