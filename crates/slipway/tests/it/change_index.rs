//! The change index behind `slipway changed`: brought forward commit by commit, it gives
//! the answer a full read gives; a damaged or foreign index is rebuilt without a word.

use std::path::{Path, PathBuf};

use crate::changed::{History, webshop};
use crate::common::slipway_run;

fn index_dir(repo: &Path) -> PathBuf {
    repo.join(".git").join("slipway")
}

fn remove_index(repo: &Path) {
    if index_dir(repo).exists() {
        std::fs::remove_dir_all(index_dir(repo)).unwrap();
    }
}

/// `slipway changed --json` with the index's answer path reported on stderr.
fn changed(repo: &Path, base: &str, head: &str) -> (serde_json::Value, String) {
    let out = slipway_run(
        repo,
        &[("SLIPWAY_DEBUG_INDEX".into(), "1".into())],
        &["changed", "--json", "--base", base, "--head", head],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let source = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("change index: "))
        .unwrap_or_else(|| panic!("no index line in: {}", out.stderr))
        .to_owned();
    (serde_json::from_str(&out.stdout).unwrap(), source)
}

/// The answer with no index at all: every stack read at head.
fn cold(repo: &Path, base: &str, head: &str) -> serde_json::Value {
    let saved = repo.join(".git").join("slipway-saved");
    let had_index = index_dir(repo).exists();
    if had_index {
        std::fs::rename(index_dir(repo), &saved).unwrap();
    }
    let (answer, source) = changed(repo, base, head);
    assert_eq!(source, "Cold");
    remove_index(repo);
    if had_index {
        std::fs::rename(&saved, index_dir(repo)).unwrap();
    }
    answer
}

/// What a step of the history does, the change, and how the index must answer its head.
type Step = (&'static str, fn(&History), &'static str);

#[test]
fn index_brought_forward_over_a_history_answers_as_a_full_read() {
    let (mut h, first) = webshop();
    let (answer, source) = changed(h.path(), &first, "HEAD");
    assert_eq!(
        source, "Cold",
        "the first run after a clone reads everything"
    );
    assert_eq!(answer, cold(h.path(), &first, "HEAD"));

    // Each step: (what it does, how the index must answer the new head).
    let steps: Vec<Step> = vec![
        (
            "module change",
            |h| {
                h.change_base_module();
            },
            "Updated",
        ),
        (
            "stack rename",
            |h| {
                h.rename("stacks/data", "stacks/storage");
            },
            "Updated",
        ),
        (
            "stack deletion",
            |h| {
                h.remove("stacks/old");
            },
            "Updated",
        ),
        (
            "new dependency in stack.hcl, and a new module used by it",
            |h| {
                h.write(
                    "stacks/storage/stack.hcl",
                    "stack {\n  team = \"data\"\n}\n\ndependency \"network\" {\n  path = \"../network\"\n}\n",
                )
                .write(
                    "stacks/storage/extra.tf",
                    "module \"cache\" {\n  source = \"../../modules/cache\"\n}\n",
                )
                .write("modules/cache/main.tf", "variable \"ttl\" {}\n");
            },
            "Updated",
        ),
        (
            "new stack named by its stack.hcl",
            |h| {
                h.write(
                    "stacks/queue/stack.hcl",
                    "stack {\n  name = \"jobs\"\n}\n\ndependency \"app\" {\n  path = \"../app\"\n}\n",
                )
                .write("stacks/queue/main.tf", "variable \"x\" {\n  default = 1\n}\n");
            },
            "Updated",
        ),
        (
            "slipway.hcl change",
            |h| {
                h.write(
                    "slipway.hcl",
                    "project {\n  name   = \"shop\"\n  engine = \"terraform\"\n}\n\nstage \"dev\" {}\nstage \"test\" {}\nstage \"prod\" {}\n",
                );
            },
            "Cold",
        ),
    ];
    let mut commits = vec![first.clone()];
    for (what, change, expected_source) in steps {
        change(&h);
        let head = h.commit(what);
        let previous = commits.last().unwrap().clone();
        for base in [&first, &previous] {
            let (answer, _) = changed(h.path(), base, &head);
            assert_eq!(answer, cold(h.path(), base, &head), "{what}, from {base}");
        }
        // Brought forward from the previous head's index, then answered from it as it is.
        remove_index(h.path());
        changed(h.path(), &first, &previous);
        let (forward, source) = changed(h.path(), &first, &head);
        assert_eq!(source, expected_source, "{what}");
        assert_eq!(forward, cold(h.path(), &first, &head), "{what}");
        let (again, source) = changed(h.path(), &first, &head);
        assert_eq!(source, "Warm", "{what}");
        assert_eq!(again, forward, "{what}");
        commits.push(head);
    }

    // Going back in history is a diff like any other (here across the rename, the
    // deletion and both new stacks, but not the slipway.hcl change).
    changed(h.path(), &first, &commits[5]);
    let (back, source) = changed(h.path(), &first, &commits[1]);
    assert_eq!(source, "Updated");
    assert_eq!(back, cold(h.path(), &first, &commits[1]));
}

#[test]
fn a_change_that_breaks_the_project_is_reported_as_a_full_read_reports_it() {
    let (mut h, first) = webshop();
    changed(h.path(), &first, "HEAD");
    h.remove("stacks/network");
    let broken = h.commit("remove a stack others depend on");
    let changed_broken = || {
        slipway_run(
            h.path(),
            &[],
            &["changed", "--base", &first, "--head", &broken],
        )
    };
    let with_index = changed_broken();
    remove_index(h.path());
    let without = changed_broken();
    assert_eq!(with_index.code, 1, "{}", with_index.stderr);
    assert!(
        with_index.stderr.contains("where there is no stack"),
        "{}",
        with_index.stderr
    );
    assert_eq!(
        (with_index.code, &with_index.stderr),
        (without.code, &without.stderr)
    );
}

#[test]
fn a_corrupt_index_is_rebuilt_silently() {
    let (mut h, first) = webshop();
    h.change_base_module();
    let head = h.commit("module change");
    let expected = cold(h.path(), &first, &head);
    // An index of the first commit, so that a readable one would be brought forward.
    changed(h.path(), &first, &first);
    for garbage in [
        &b"{\"format\": 1, \"commit\": "[..],
        b"\0\xff not json",
        b"",
    ] {
        for file in std::fs::read_dir(index_dir(h.path())).unwrap() {
            std::fs::write(file.unwrap().path(), garbage).unwrap();
        }
        let out = slipway_run(
            h.path(),
            &[("SLIPWAY_DEBUG_INDEX".into(), "1".into())],
            &["changed", "--json", "--base", &first, "--head", &head],
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(
            out.stderr, "change index: Cold\ngit read: InProcess\n",
            "nothing but the debug lines"
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap(),
            expected
        );
        let (_, source) = changed(h.path(), &first, &head);
        assert_eq!(source, "Warm", "the index was written again");
    }
}

#[test]
fn an_index_from_an_unrelated_history_falls_back_to_a_full_read() {
    let (mut other, _) = webshop();
    other.write("stacks/extra/stack.hcl", "stack {}\n");
    let other_head = other.commit("another history");
    changed(other.path(), &other_head, &other_head);

    let (mut h, first) = webshop();
    h.change_base_module();
    let head = h.commit("module change");
    let expected = cold(h.path(), &first, &head);
    remove_index(h.path());
    std::fs::create_dir_all(index_dir(h.path())).unwrap();
    for file in std::fs::read_dir(index_dir(other.path())).unwrap() {
        let file = file.unwrap();
        std::fs::copy(file.path(), index_dir(h.path()).join(file.file_name())).unwrap();
    }
    let (answer, source) = changed(h.path(), &first, &head);
    assert_eq!(
        source, "Cold",
        "the foreign index's commit is not in this repository"
    );
    assert_eq!(answer, expected);
    let (_, source) = changed(h.path(), &first, &head);
    assert_eq!(source, "Warm");
}

/// The repository read in-process gives git's answers: with a variable that points git
/// elsewhere set (here one that only changes which configuration files git reads), every
/// question goes to git, and the answers are the same, cold, brought forward and warm,
/// over module changes, a stack renamed, a stack deleted and a new one.
#[test]
fn answers_read_in_process_are_the_answers_git_gives() {
    let (mut h, first) = webshop();
    h.change_base_module();
    let modules = h.commit("module change");
    h.rename("stacks/old", "stacks/older");
    let renamed = h.commit("stack folder renamed");
    h.remove("stacks/edge/stack.hcl")
        .remove("stacks/edge/main.tf")
        .write("stacks/new/stack.hcl", "stack {}\n");
    let replaced = h.commit("a stack deleted, another added");
    let by_git = [("GIT_CONFIG_NOSYSTEM".to_owned(), "1".to_owned())];
    let run = |env: &[(String, String)], base: &str, head: &str| {
        let mut vars = vec![("SLIPWAY_DEBUG_INDEX".to_owned(), "1".to_owned())];
        vars.extend_from_slice(env);
        let out = slipway_run(
            h.path(),
            &vars,
            &["changed", "--json", "--base", base, "--head", head],
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        let stderr: Vec<String> = out.stderr.lines().map(str::to_owned).collect();
        (
            serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap(),
            stderr,
        )
    };
    for (base, head) in [
        (&first, &modules),
        (&modules, &renamed),
        (&renamed, &replaced),
        (&first, &replaced),
    ] {
        remove_index(h.path());
        // Cold, then warm, each way; then brought forward from the base each way.
        let mut answers = Vec::new();
        for (env, read) in [(&[][..], "InProcess"), (&by_git[..], "Command")] {
            remove_index(h.path());
            for expected in ["Cold", "Warm"] {
                let (answer, stderr) = run(env, base, head);
                assert_eq!(
                    stderr,
                    [
                        format!("change index: {expected}"),
                        format!("git read: {read}")
                    ]
                );
                answers.push(answer);
            }
            remove_index(h.path());
            run(env, base, base);
            let (answer, stderr) = run(env, base, head);
            assert_eq!(stderr[0], "change index: Updated");
            answers.push(answer);
        }
        assert!(
            answers.windows(2).all(|pair| pair[0] == pair[1]),
            "{base}..{head}: {answers:#?}"
        );
        assert!(!answers[0]["affected"].as_array().unwrap().is_empty());
    }
}
