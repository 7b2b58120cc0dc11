//! A module at the repository root, as public module repositories are laid out: the stacks
//! are `examples/*`, calling the root with `source = "../../"`. The data folder lives in
//! that same root, so a working copy that mirrored folders would copy it into itself.
//!
//! On the sandbox: apply, deploy from the artifact and drill work, the working copy and the
//! artifact hold the same files (the module's Terraform files and the file it reads, not
//! the README, CI files, other examples or the data folder), and `changed` counts only
//! what the module loads.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::common::{fixture, sandbox, slipway_run};
use crate::pipeline::{as_tester, git, ids, slipway_ok};

/// The fixture as a git repository with one commit; the data folder is git-ignored as
/// `slipway init` writes it.
fn repository() -> tempfile::TempDir {
    let project = fixture("root-module");
    git(project.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(project.path().join(".gitignore"), ".slipway/\n*.secret\n").unwrap();
    git(project.path(), &["add", "-A"]);
    git(project.path(), &["commit", "-q", "-m", "root module"]);
    project
}

/// Every file below `dir`, relative to it, `.terraform` folders left out.
fn files_below(dir: &Path) -> BTreeSet<String> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".terraform")
        .map(|e| e.unwrap())
        .filter(|e| !e.file_type().is_dir())
        .map(|e| {
            e.path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// The code a stack is made of: the example's folder, the root module's Terraform files and
/// the file it reads.
fn expected_code(example: &str) -> BTreeSet<String> {
    [
        format!("examples/{example}/main.tf"),
        format!("examples/{example}/stack.hcl"),
        "main.tf".into(),
        "outputs.tf".into(),
        "variables.tf".into(),
        "versions.tf".into(),
        "policies/tags.json".into(),
    ]
    .into_iter()
    .collect()
}

#[test]
fn a_stack_calling_the_repository_root_applies_deploys_and_drills() {
    let (_sandbox, moto) = sandbox();
    let project = repository();
    let dir = project.path();
    // A git-ignored file and a stale data folder must never reach a working copy.
    std::fs::write(dir.join("examples/simple/local.secret"), "hunter2").unwrap();
    std::fs::create_dir_all(dir.join(".slipway/artifacts")).unwrap();
    std::fs::write(dir.join(".slipway/artifacts/big.bin"), vec![0u8; 4096]).unwrap();

    let out = slipway_ok(
        dir,
        &moto,
        &["apply", "--stage", "dev", "--stack", "simple", "--only"],
    );
    assert!(
        out.stderr.contains("1 of 1 stack applied"),
        "{}",
        out.stderr
    );
    let queues = moto.inventory().unwrap().sqs_queues;
    assert!(
        queues.iter().any(|q| q.ends_with("rootmod-dev-simple")),
        "{queues:?}"
    );

    // The working copy holds the stack's code and what slipway generates, nothing more.
    let tree = dir.join(".slipway/work/dev/simple/tree");
    let in_working_copy: BTreeSet<String> = files_below(&tree)
        .into_iter()
        .filter(|p| {
            !p.contains("/slipway_")
                && !p.contains("/slipway.")
                && !p.ends_with(".terraform.lock.hcl")
        })
        .filter(|p| !p.ends_with("terraform.tfstate") && !p.ends_with(".tfplan"))
        .collect();
    assert_eq!(in_working_copy, expected_code("simple"));

    // The artifact of the commit holds the same files (one rule for both).
    slipway_ok(dir, &moto, &["deploy", "--stage", "prod"]);
    let status: Value =
        serde_json::from_str(&slipway_ok(dir, &moto, &["status", "--json"]).stdout).unwrap();
    let released = ids(&status, "simple");
    let (_, artifact_id) = released
        .iter()
        .find(|(stage, _)| stage == "prod")
        .expect("simple is released to prod")
        .clone();
    let manifest_files = crate::common::with_record(dir, |store| async move {
        use slipway_store::Store as _;
        let artifact = store.artifact(&artifact_id).await.unwrap().unwrap();
        let manifest: Value = serde_json::from_str(&artifact.manifest).unwrap();
        manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap().to_owned())
            .collect::<BTreeSet<String>>()
    });
    assert_eq!(manifest_files, expected_code("simple"));
    let queues = moto.inventory().unwrap().sqs_queues;
    for name in ["rootmod-prod-simple", "rootmod-prod-complete"] {
        assert!(queues.iter().any(|q| q.ends_with(name)), "{queues:?}");
    }

    let drill = slipway_ok(dir, &moto, &["drill", "--stage", "prod"]);
    assert!(
        drill.stdout.contains("(2 of 2 stacks rebuilt)"),
        "{}",
        drill.stdout
    );
}

#[test]
fn only_what_the_root_module_loads_counts_as_a_change() {
    let project = repository();
    let dir = project.path();
    let changed = |env: &[(String, String)]| -> Value {
        let out = slipway_run(
            dir,
            env,
            &["changed", "--base", "HEAD~1", "--head", "HEAD", "--json"],
        );
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
        serde_json::from_str(&out.stdout).unwrap()
    };
    let env = as_tester(Vec::new());
    let affected = |value: &Value| -> Vec<String> {
        value["affected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect()
    };

    // Documentation, CI files, an unused submodule and another example's code.
    std::fs::write(dir.join("README.md"), "# rootmod, now documented\n").unwrap();
    std::fs::write(dir.join("CHANGELOG.md"), "# Changelog\n\n- docs\n").unwrap();
    std::fs::write(dir.join(".github/workflows/ci.yml"), "on: pull_request\n").unwrap();
    std::fs::write(dir.join("modules/unused/main.tf"), "# unused\n").unwrap();
    let complete = dir.join("examples/complete/main.tf");
    let text = std::fs::read_to_string(&complete).unwrap();
    std::fs::write(&complete, format!("{text}\n# tuned\n")).unwrap();
    git(
        dir,
        &["commit", "-q", "-am", "docs and the complete example"],
    );
    let value = changed(&env);
    assert_eq!(affected(&value), vec!["complete"], "{value:#}");

    // The module's own code and the file it reads reach every stack that calls it.
    std::fs::write(
        dir.join("policies/tags.json"),
        "{\"Owner\": \"platform-team\"}\n",
    )
    .unwrap();
    git(dir, &["commit", "-q", "-am", "module tags"]);
    let value = changed(&env);
    assert_eq!(affected(&value), vec!["complete", "simple"], "{value:#}");
    let text = slipway_run(
        dir,
        &env,
        &["changed", "--base", "HEAD~1", "--head", "HEAD"],
    )
    .stdout;
    assert!(
        text.contains("module at the repository root: modified policies/tags.json"),
        "{text}"
    );
}
