//! The change index's git questions against a real repository: blob ids of the project
//! files at a commit, the files that changed between two commits, and resolving revisions
//! in the process that opens the repository.

mod common;

use common::{commit, git, write};
use slipway_git::{BlobChange, BlobReader, Repo};

#[test]
fn blobs_and_their_changes_are_the_project_files_below_the_project_folder() {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path();
    git(top, &["init", "-q", "-b", "main"]);
    write(top, "infra/slipway.hcl", "project {}\n");
    write(top, "infra/stacks/a/stack.hcl", "stack {}\n");
    write(top, "infra/stacks/a/main.tf", "variable \"x\" {}\n");
    write(top, "infra/stacks/a/README.md", "docs\n");
    write(top, "infra/stacks/b/stack.hcl", "stack {}\n");
    write(top, "outside/main.tf", "variable \"y\" {}\n");
    let first = commit(top);
    write(
        top,
        "infra/stacks/a/main.tf",
        "variable \"x\" {\n  default = 1\n}\n",
    );
    write(top, "infra/modules/m/main.tf", "variable \"z\" {}\n");
    git(top, &["rm", "-q", "-r", "infra/stacks/b"]);
    write(
        top,
        "outside/main.tf",
        "variable \"y\" {\n  default = 2\n}\n",
    );
    let second = commit(top);

    let (repo, ids) = Repo::open_resolving(&top.join("infra"), &["HEAD", &first[..12]]).unwrap();
    assert_eq!(ids, Some(vec![second.clone(), first.clone()]));
    assert!(repo.common_dir().join("HEAD").is_file());

    let blobs = repo.project_blobs(&first).unwrap();
    let paths: Vec<&str> = blobs.iter().map(|b| b.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "slipway.hcl",
            "stacks/a/main.tf",
            "stacks/a/stack.hcl",
            "stacks/b/stack.hcl"
        ]
    );
    for blob in &blobs {
        let spec = format!("{first}:infra/{}", blob.path);
        assert_eq!(blob.blob, git(top, &["rev-parse", &spec]));
    }

    let mut changes = repo.project_blob_changes(&first, &second).unwrap();
    changes.sort_by(|a, b| a.path().cmp(b.path()));
    let blob_at = |path: &str| git(top, &["rev-parse", &format!("{second}:infra/{path}")]);
    assert_eq!(
        changes,
        vec![
            BlobChange::Set {
                path: "modules/m/main.tf".into(),
                blob: blob_at("modules/m/main.tf"),
            },
            BlobChange::Set {
                path: "stacks/a/main.tf".into(),
                blob: blob_at("stacks/a/main.tf"),
            },
            BlobChange::Deleted {
                path: "stacks/b/stack.hcl".into(),
            },
        ]
    );
}

#[test]
fn blobs_read_by_id_give_the_text_and_none_for_what_is_no_text_blob() {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path();
    git(top, &["init", "-q", "-b", "main"]);
    write(top, "slipway.hcl", "project {}\n");
    write(top, "stacks/a/stack.hcl", "stack {}\n");
    std::fs::write(top.join("stacks/a/latin1.tf"), [0xe9u8, b'\n']).unwrap();
    let first = commit(top);
    let repo = Repo::open(top).unwrap();
    let blobs = repo.project_blobs(&first).unwrap();
    let id = |path: &str| {
        blobs
            .iter()
            .find(|b| b.path == path)
            .map(|b| b.blob.clone())
            .unwrap()
    };
    let (config, stack, latin1) = (
        id("slipway.hcl"),
        id("stacks/a/stack.hcl"),
        id("stacks/a/latin1.tf"),
    );
    let tree = git(top, &["rev-parse", &format!("{first}:stacks")]);
    let absent = "0".repeat(40);
    let mut reader = BlobReader::new(&repo).unwrap();
    let texts = reader
        .read(&[&stack, &config, &latin1, &tree, &absent, "HEAD", "", &stack])
        .unwrap();
    assert_eq!(
        texts,
        vec![
            Some("stack {}\n".to_owned()),
            Some("project {}\n".to_owned()),
            None,
            None,
            None,
            None,
            None,
            Some("stack {}\n".to_owned()),
        ]
    );
    // The process answers again after a batch.
    assert_eq!(
        reader.read(&[&config]).unwrap(),
        vec![Some("project {}\n".to_owned())]
    );
}

#[test]
fn revisions_that_do_not_resolve_leave_the_answer_to_resolve() {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    write(dir.path(), "slipway.hcl", "project {}\n");
    commit(dir.path());
    for revs in [&["HEAD", "no-such-branch"][..], &["HEAD~1..HEAD"], &["-v"]] {
        let (repo, ids) = Repo::open_resolving(dir.path(), revs).unwrap();
        assert_eq!(ids, None, "{revs:?}");
        assert_eq!(repo.prefix(), "");
    }
    assert!(Repo::open_resolving(dir.path(), &["HEAD", "zzz"]).is_ok());
}
