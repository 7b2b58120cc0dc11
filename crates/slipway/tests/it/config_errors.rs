//! Configuration errors as an engineer sees them: every problem, with file, line and fix,
//! and exit code 1.

use crate::common::{fixture, normalize, run, slipway};

#[test]
fn every_error_in_the_tree_is_reported_at_once() {
    let project = fixture("broken");
    let out = run({
        let mut c = slipway(project.path(), &[]);
        c.arg("stacks");
        c
    });
    assert_eq!(out.code, 1);
    assert!(out.stdout.is_empty());
    insta::assert_snapshot!(normalize(&out.stderr, project.path()));
}

#[test]
fn outside_a_project_says_how_to_find_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = run({
        let mut c = slipway(dir.path(), &[]);
        c.arg("stacks");
        c
    });
    assert_eq!(out.code, 1);
    insta::assert_snapshot!(normalize(&out.stderr, dir.path()));
}

#[test]
fn unknown_stage_and_stack_name_the_known_ones() {
    let project = crate::common::example("webshop");
    let out = run({
        let mut c = slipway(project.path(), &[]);
        c.args(["plan", "--stage", "staging"]);
        c
    });
    assert_eq!(out.code, 1);
    insta::assert_snapshot!("unknown_stage", out.stderr);
    let out = run({
        let mut c = slipway(project.path(), &[]);
        c.args(["apply", "--stage", "dev", "--stack", "nope"]);
        c
    });
    assert_eq!(out.code, 1);
    insta::assert_snapshot!("unknown_stack", out.stderr);
}

#[test]
fn destroy_refuses_without_yes() {
    let project = crate::common::example("webshop");
    let out = run({
        let mut c = slipway(project.path(), &[]);
        c.args(["destroy", "--stage", "dev"]);
        c
    });
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("--yes"), "{}", out.stderr);
}

#[test]
fn missing_engine_binary_says_how_to_get_one() {
    let project = crate::common::example("webshop");
    let out = run({
        let mut c = slipway(project.path(), &[]);
        c.args(["plan", "--stage", "dev"])
            .env("PATH", "/nonexistent");
        c
    });
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("`terraform` was not found on PATH"),
        "{}",
        out.stderr
    );
}
