//! Answers read in-process with gitoxide against git's own, on real repositories: each one
//! is git's answer or none at all.

mod common;

use std::path::{Path, PathBuf};

use common::{commit, git, write};
use slipway_git::Repo;

/// Every consecutive pair of `commits`, diffed in-process and by git, from `root`. Returns
/// how many pairs the in-process reader answered.
fn compare_diffs(root: &Path, commits: &[String]) -> usize {
    let (in_process, _) = Repo::open_in_process(root, &["HEAD"]).expect("opens in-process");
    let by_git = Repo::open(root).unwrap();
    let mut answered = 0;
    for pair in commits.windows(2) {
        let expected = by_git.diff(&pair[0], &pair[1]).unwrap();
        if let Some(changes) = in_process.diff_in_process(&pair[0], &pair[1]) {
            assert_eq!(
                changes,
                expected,
                "{} {}..{}",
                root.display(),
                pair[0],
                pair[1]
            );
            answered += 1;
        }
        // With or without the in-process answer, `diff` is git's.
        assert_eq!(in_process.diff(&pair[0], &pair[1]).unwrap(), expected);
    }
    answered
}

#[test]
fn a_diff_read_in_process_is_the_diff_git_gives() {
    let tmp = tempfile::tempdir().unwrap();
    let top = tmp.path();
    git(top, &["init", "-q", "-b", "main"]);
    write(top, "infra/slipway.hcl", "project {}\n");
    write(top, "infra/stacks/a/main.tf", "variable \"a\" {}\n");
    write(top, "infra/stacks/a.b/main.tf", "variable \"ab\" {}\n");
    write(top, "infra/stacks/a-b/main.tf", "variable \"a_b\" {}\n");
    write(top, "infra/with space/é.tf", "variable \"e\" {}\n");
    write(top, "infra/thing", "a file for now\n");
    write(top, "outside/c.tf", "variable \"c\" {}\n");
    let mut commits = vec![commit(top)];
    let mut step = |edit: &dyn Fn(&Path)| {
        edit(top);
        commits.push(commit(top));
    };
    // Modifications only, in folders whose names sort around `/`.
    step(&|top| {
        write(top, "infra/stacks/a/main.tf", "variable \"a2\" {}\n");
        write(top, "infra/stacks/a.b/main.tf", "variable \"ab2\" {}\n");
        write(top, "infra/stacks/a-b/main.tf", "variable \"a_b2\" {}\n");
        write(top, "infra/with space/é.tf", "variable \"e2\" {}\n");
        write(top, "outside/c.tf", "variable \"c2\" {}\n");
    });
    // Additions only, a new folder among them.
    step(&|top| {
        write(top, "infra/stacks/a/extra.tf", "variable \"x\" {}\n");
        write(top, "infra/stacks/new/stack.hcl", "stack {}\n");
        write(top, "outside/new.tf", "variable \"n\" {}\n");
    });
    // A mode change, and a file made a symbolic link.
    step(&|top| {
        git(
            top,
            &["update-index", "--chmod=+x", "infra/stacks/a/extra.tf"],
        );
        std::fs::remove_file(top.join("infra/stacks/a-b/main.tf")).unwrap();
        std::os::unix::fs::symlink("../a/main.tf", top.join("infra/stacks/a-b/main.tf")).unwrap();
    });
    // Deletions only, a whole folder among them.
    step(&|top| {
        std::fs::remove_dir_all(top.join("infra/stacks/new")).unwrap();
        std::fs::remove_file(top.join("infra/stacks/a/extra.tf")).unwrap();
    });
    // A file becomes a folder: a deletion and an addition.
    step(&|top| {
        std::fs::remove_file(top.join("infra/thing")).unwrap();
        write(top, "infra/thing/main.tf", "variable \"t\" {}\n");
    });
    // A rename.
    step(&|top| {
        std::fs::rename(top.join("infra/stacks/a.b"), top.join("infra/stacks/moved")).unwrap();
    });
    // The project folder itself disappears, then comes back.
    step(&|top| std::fs::rename(top.join("infra"), top.join("gone")).unwrap());
    step(&|top| std::fs::rename(top.join("gone"), top.join("infra")).unwrap());

    // From the top, the first four pairs mix no deletion with an addition: modifications,
    // additions, the mode and type changes, deletions. The rest go to git.
    assert_eq!(compare_diffs(top, &commits), 4);
    // From the project folder, the moves of the whole folder are only additions or only
    // deletions, and changes outside it do not count.
    assert_eq!(compare_diffs(&top.join("infra"), &commits), 6);
}

#[test]
fn opening_in_process_finds_what_rev_parse_finds() {
    let tmp = tempfile::tempdir().unwrap();
    let top = &tmp.path().join("repository");
    std::fs::create_dir(top).unwrap();
    git(top, &["init", "-q", "-b", "main"]);
    write(top, "infra/slipway.hcl", "project {}\n");
    let first = commit(top);
    write(top, "infra/main.tf", "variable \"a\" {}\n");
    let second = commit(top);
    git(top, &["tag", "-a", "-m", "release", "v1", &first]);
    let tag_object = git(top, &["rev-parse", "v1"]);
    assert_ne!(tag_object, first);

    let real = |path: &Path| -> PathBuf { path.canonicalize().unwrap() };
    for root in [top.to_path_buf(), top.join("infra")] {
        let by_git = Repo::open(&root).unwrap();
        let (repo, commits) = Repo::open_in_process(&root, &["HEAD", &first, &tag_object]).unwrap();
        assert_eq!(commits, [second.clone(), first.clone(), first.clone()]);
        assert_eq!(real(repo.top()), real(by_git.top()));
        assert_eq!(repo.prefix(), by_git.prefix());
        assert_eq!(real(repo.common_dir()), real(by_git.common_dir()));
    }

    // A linked worktree shares the main repository's git folder.
    let linked = tmp.path().join("linked");
    git(
        top,
        &[
            "worktree",
            "add",
            "-q",
            "--detach",
            linked.to_str().unwrap(),
            &first,
        ],
    );
    let (repo, commits) = Repo::open_in_process(&linked, &["HEAD"]).unwrap();
    assert_eq!(commits, std::slice::from_ref(&first));
    assert_eq!(real(repo.common_dir()), real(&top.join(".git")));

    // What only git answers: abbreviated ids, names, unknown objects, bare repositories.
    let unknown = "0".repeat(40);
    for revs in [
        &[&first[..12]][..],
        &["main"],
        &[unknown.as_str()],
        &["HEAD~1"],
    ] {
        assert!(Repo::open_in_process(top, revs).is_none(), "{revs:?}");
    }
    let bare = tmp.path().join("bare.git");
    git(top, &["clone", "-q", "--bare", ".", bare.to_str().unwrap()]);
    assert!(Repo::open_in_process(&bare, &["HEAD"]).is_none());
}
