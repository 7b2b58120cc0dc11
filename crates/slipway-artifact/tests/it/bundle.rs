//! Bundles: what a stack's code is (modules, reads, the cap), determinism, identity across
//! commits and sources.

use slipway_artifact::{
    ArtifactError, BundleInput, DEFAULT_SIZE_CAP, ExtractLimits, FileSource, GitCommit,
    MANIFEST_NAME, WorkingTree, build_bundle, extract, select,
};

use crate::fixture::{Repo, bundle, rel};

#[test]
fn follows_local_modules_transitively_and_ignores_remote_ones() {
    let repo = Repo::new();
    let tree = WorkingTree::new(repo.root());
    let selection = select(&tree, &rel("stacks/network"), DEFAULT_SIZE_CAP).expect("selected");
    assert_eq!(
        selection.module_dirs(),
        ["modules/vpc", "modules/vpc/subnets"]
    );
}

#[test]
fn a_module_source_leaving_the_repository_is_refused() {
    let repo = Repo::new();
    repo.write(
        "stacks/network/escape.tf",
        "module \"evil\" {\n  source = \"../../../outside\"\n}\n",
    );
    let err = select(
        &WorkingTree::new(repo.root()),
        &rel("stacks/network"),
        DEFAULT_SIZE_CAP,
    )
    .expect_err("escaping source");
    insta::assert_snapshot!(err.to_string(), @r#"a module called from `stacks/network` has source "../../../outside", which leads outside the repository"#);
}

#[test]
fn a_missing_module_folder_brings_nothing_and_terraform_says_so() {
    let repo = Repo::new();
    repo.write(
        "stacks/app/extra.tf",
        "module \"gone\" {\n  source = \"../../modules/gone\"\n}\n",
    );
    let selection = select(
        &WorkingTree::new(repo.root()),
        &rel("stacks/app"),
        DEFAULT_SIZE_CAP,
    )
    .expect("selected");
    assert!(selection.module_dirs().contains(&"modules/gone".to_owned()));
    assert!(
        selection
            .files
            .iter()
            .all(|f| !f.path.as_str().starts_with("modules/gone"))
    );
}

/// A module repository: the module at the root, `examples/*` calling it as `../../`.
fn module_repository() -> Repo {
    let repo = Repo::empty();
    repo.write("main.tf", "resource \"aws_sqs_queue\" \"q\" {\n  tags = jsondecode(file(\"${path.module}/tags/default.json\"))\n}\n");
    repo.write("variables.tf", "variable \"name\" {}\n");
    repo.write(
        "versions.tf.json",
        "{\"terraform\": {\"required_version\": \">= 1.0\"}}\n",
    );
    repo.write("tags/default.json", "{}\n");
    repo.write("README.md", "# a module\n");
    repo.write(".github/workflows/ci.yml", "on: push\n");
    repo.write("modules/extra/main.tf", "\n");
    repo.write(".gitignore", ".slipway/\n*.secret\n");
    for example in ["simple", "complete"] {
        repo.write(
            &format!("examples/{example}/main.tf"),
            "module \"m\" {\n  source = \"../../\"\n  name = \"x\"\n}\n",
        );
        repo.write(&format!("examples/{example}/stack.hcl"), "");
    }
    repo
}

fn paths(source: &dyn FileSource, stack_dir: &str) -> Vec<String> {
    select(source, &rel(stack_dir), DEFAULT_SIZE_CAP)
        .expect("selected")
        .files
        .iter()
        .map(|f| f.path.as_str().to_owned())
        .collect()
}

#[test]
fn a_module_at_the_repository_root_brings_its_code_not_the_repository() {
    let mut repo = module_repository();
    let expected = [
        "examples/simple/main.tf",
        "examples/simple/stack.hcl",
        "main.tf",
        "tags/default.json",
        "variables.tf",
        "versions.tf.json",
    ];
    let commit = repo.commit("module");
    // What only the working tree has: the data folder (with a working copy of its own) and
    // git-ignored files, none of which belong to any stack.
    repo.write(".slipway/work/dev/simple/tree/main.tf", "\n");
    repo.write(".slipway/artifacts/sha256/ab/cd.tar.zst", "bytes");
    repo.write("examples/simple/local.secret", "hunter2");
    let tree = WorkingTree::new(repo.root()).skipping(".slipway");
    assert_eq!(paths(&tree, "examples/simple"), expected);
    // One rule on both paths: the commit gives the same files, and so the same artifact.
    let at_commit = GitCommit::open(repo.root(), &commit).expect("commit");
    assert_eq!(paths(&at_commit, "examples/simple"), expected);
    assert_eq!(
        bundle(&tree, "simple", "examples/simple").id,
        bundle(&at_commit, "simple", "examples/simple").id
    );
}

#[test]
fn an_unresolvable_read_takes_the_module_folder_whole_and_says_so() {
    let repo = module_repository();
    repo.write(
        "main.tf",
        "resource \"aws_sqs_queue\" \"q\" {\n  policy = file(var.policy)\n}\n",
    );
    let selection = select(
        &WorkingTree::new(repo.root()).skipping(".slipway"),
        &rel("examples/simple"),
        DEFAULT_SIZE_CAP,
    )
    .expect("selected");
    let paths: Vec<&str> = selection.files.iter().map(|f| f.path.as_str()).collect();
    assert!(paths.contains(&"README.md"), "{paths:?}");
    assert!(
        !paths.contains(&"examples/complete/main.tf"),
        "another stack stays its own: {paths:?}"
    );
    insta::assert_snapshot!(selection.stack_files.notes().join("\n"), @"the whole folder of module `../../` (the repository root, called from examples/simple) is included: its code reads `file(var.policy)`, a path slipway cannot work out");
}

#[test]
fn a_stack_over_the_size_cap_is_refused_naming_the_module() {
    let repo = module_repository();
    repo.write("tags/default.json", &"x".repeat(300_000));
    let err = select(
        &WorkingTree::new(repo.root()),
        &rel("examples/simple"),
        200 * 1024,
    )
    .expect_err("over the cap");
    insta::assert_snapshot!(err.to_string(), @"the code of stack `examples/simple` comes to 0.3 MiB, over the cap of 0.2 MiB; module `../../` (the repository root, called from examples/simple) brings in 0.3 MiB of it");
}

#[test]
fn bundle_holds_the_stack_its_modules_and_the_lock_file_only() {
    let repo = Repo::new();
    let built = bundle(&WorkingTree::new(repo.root()), "network", "stacks/network");
    let paths: Vec<&str> = built
        .manifest
        .files
        .iter()
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(
        paths,
        [
            "modules/vpc/main.tf",
            "modules/vpc/subnets/main.tf",
            "stacks/network/.terraform.lock.hcl",
            "stacks/network/main.tf",
            "stacks/network/stack.hcl",
        ]
    );
    assert_eq!(built.commit, None);
}

#[test]
fn manifest_is_the_first_entry_with_sorted_keys() {
    let repo = Repo::new();
    let built = bundle(&WorkingTree::new(repo.root()), "app", "stacks/app");
    let tar = zstd::stream::decode_all(built.bytes.as_slice()).expect("zstd");
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut entries = archive.entries().expect("tar");
    let mut first = entries.next().expect("an entry").expect("readable");
    assert_eq!(first.path().expect("path").to_str(), Some(MANIFEST_NAME));
    let header = first.header();
    assert_eq!(header.mtime().expect("mtime"), 0);
    assert_eq!(header.uid().expect("uid"), 0);
    assert_eq!(header.username().expect("name"), Some(""));
    let mut json = String::new();
    std::io::Read::read_to_string(&mut first, &mut json).expect("utf-8");
    insta::assert_snapshot!(json);
}

#[test]
fn same_content_gives_the_same_id_whatever_the_order_on_disk() {
    let first = Repo::new();
    let a = bundle(&WorkingTree::new(first.root()), "network", "stacks/network");
    let again = bundle(&WorkingTree::new(first.root()), "network", "stacks/network");
    assert_eq!(a.id, again.id);
    assert_eq!(a.bytes, again.bytes);

    // The same files created in the opposite order, at other times, in another folder.
    let second = tempfile::tempdir().expect("temp dir");
    let mut files: Vec<_> = a.manifest.files.iter().map(|f| f.path.clone()).collect();
    files.reverse();
    for path in files {
        let to = second.path().join(&path);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(first.path().join(&path), &to).expect("copy");
    }
    let b = bundle(
        &WorkingTree::new(second.path()),
        "network",
        "stacks/network",
    );
    assert_eq!(a.id, b.id);
}

#[test]
fn the_executable_bit_is_kept_and_changes_the_id() {
    use std::os::unix::fs::PermissionsExt;
    let repo = Repo::new();
    let tree = WorkingTree::new(repo.root());
    let before = bundle(&tree, "app", "stacks/app");
    repo.write("stacks/app/hook.sh", "#!/bin/sh\n");
    let hook = repo.path().join("stacks/app/hook.sh");
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let plain = bundle(&tree, "app", "stacks/app");
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let executable = bundle(&tree, "app", "stacks/app");
    assert_ne!(before.id, plain.id);
    assert_ne!(plain.id, executable.id);
    let out = tempfile::tempdir().expect("temp dir");
    extract(
        &executable.bytes,
        &executable.id,
        out.path(),
        &ExtractLimits::default(),
    )
    .expect("extracts");
    let mode = std::fs::metadata(out.path().join("stacks/app/hook.sh"))
        .expect("extracted")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
}

#[test]
fn ids_follow_the_stack_closure_across_commits() {
    let mut repo = Repo::new();
    let c1 = repo.commit("first");
    let root = repo.root();
    let at = |commit: &str, stack: &str| {
        let source = GitCommit::open(root.clone(), commit).expect("commit");
        bundle(&source, stack, &format!("stacks/{stack}")).id
    };
    let (network1, app1) = (at(&c1, "network"), at(&c1, "app"));
    assert_eq!(at(&c1, "network"), network1, "the same commit twice");

    repo.write(
        "modules/vpc/subnets/main.tf",
        "variable \"count_per_az\" {\n  default = 3\n}\n",
    );
    let c2 = repo.commit("more subnets");
    assert_ne!(
        at(&c2, "network"),
        network1,
        "a module the stack uses changed"
    );
    assert_eq!(at(&c2, "app"), app1, "app does not use the vpc module");

    repo.write("README.md", "changed\n");
    repo.write("modules/unused/main.tf", "# changed\n");
    repo.write("slipway.hcl", "project {\n  name = \"webshop2\"\n}\n");
    let c3 = repo.commit("elsewhere");
    assert_eq!(
        at(&c3, "network"),
        at(&c2, "network"),
        "nothing in its closure changed"
    );
    assert_eq!(at(&c3, "app"), app1);
}

#[test]
fn a_commit_and_the_working_tree_with_the_same_content_agree() {
    let mut repo = Repo::new();
    std::os::unix::fs::symlink("main.tf", repo.path().join("modules/service/alias.tf"))
        .expect("symlink");
    let commit = repo.commit("first");
    let git = GitCommit::open(repo.root(), &commit).expect("commit");
    let tree = WorkingTree::new(repo.root());
    for stack in ["network", "app"] {
        let from_git = bundle(&git, stack, &format!("stacks/{stack}"));
        let from_tree = bundle(&tree, stack, &format!("stacks/{stack}"));
        assert_eq!(from_git.id, from_tree.id, "stack {stack}");
        assert_eq!(from_git.commit.as_deref(), Some(commit.as_str()));
    }
    let app = bundle(&git, "app", "stacks/app");
    assert!(
        app.manifest
            .files
            .iter()
            .any(|f| f.path == "modules/service/alias.tf" && f.target.as_deref() == Some("main.tf"))
    );
}

#[test]
fn a_branch_name_resolves_and_an_unknown_revision_is_refused() {
    let mut repo = Repo::new();
    let commit = repo.commit("first");
    let by_branch = GitCommit::open(repo.root(), "main").expect("branch");
    assert_eq!(by_branch.commit_hash(), commit);
    let err = GitCommit::open(repo.root(), "no-such-branch").expect_err("unknown");
    insta::assert_snapshot!(err.to_string(), @"`no-such-branch` is not a commit in this repository");
}

#[test]
fn a_symlink_leaving_the_bundle_is_refused_at_build() {
    let repo = Repo::new();
    std::os::unix::fs::symlink("../../README.md", repo.path().join("stacks/app/readme.md"))
        .expect("symlink");
    let tree = WorkingTree::new(repo.root());
    let selection = select(&tree, &rel("stacks/app"), DEFAULT_SIZE_CAP).expect("selected");
    let err = build_bundle(
        &tree,
        &BundleInput {
            stack: "app".into(),
            selection,
            slipway_version: "0.1.0".into(),
        },
    )
    .expect_err("link outside");
    insta::assert_snapshot!(err.to_string(), @"symbolic link `stacks/app/readme.md` -> `../../README.md` points outside the bundle");
}

#[test]
fn a_folder_without_stack_hcl_is_not_a_stack() {
    let repo = Repo::new();
    let tree = WorkingTree::new(repo.root());
    let selection = select(&tree, &rel("modules/vpc"), DEFAULT_SIZE_CAP).expect("selected");
    let err = build_bundle(
        &tree,
        &BundleInput {
            stack: "vpc".into(),
            selection,
            slipway_version: "0.1.0".into(),
        },
    )
    .expect_err("not a stack");
    assert!(matches!(err, ArtifactError::NotAStack { .. }), "{err}");
}

#[test]
fn a_bundle_round_trips_through_extraction() {
    let repo = Repo::new();
    let built = bundle(&WorkingTree::new(repo.root()), "network", "stacks/network");
    let out = tempfile::tempdir().expect("temp dir");
    let manifest = extract(
        &built.bytes,
        &built.id,
        out.path(),
        &ExtractLimits::default(),
    )
    .expect("extracts");
    assert_eq!(manifest, built.manifest);
    for file in &manifest.files {
        let original = std::fs::read(repo.path().join(&file.path)).expect("original");
        let extracted = std::fs::read(out.path().join(&file.path)).expect("extracted");
        assert_eq!(original, extracted, "{}", file.path);
    }
    assert!(!out.path().join(MANIFEST_NAME).exists());
}
