//! Configuration errors as an engineer sees them: every problem, with file, line and fix,
//! and exit code 1.

use crate::common::{fixture, normalize, slipway_run};

#[test]
fn every_error_in_the_tree_is_reported_at_once() {
    let project = fixture("broken");
    let out = slipway_run(project.path(), &[], &["stacks"]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.is_empty());
    insta::assert_snapshot!(normalize(&out.stderr, project.path()));
}

#[test]
fn outside_a_project_says_how_to_find_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = slipway_run(dir.path(), &[], &["stacks"]);
    assert_eq!(out.code, 1);
    insta::assert_snapshot!(normalize(&out.stderr, dir.path()));
}

#[test]
fn unknown_stage_and_stack_name_the_known_ones() {
    let project = crate::common::example("webshop");
    let out = slipway_run(project.path(), &[], &["plan", "--stage", "staging"]);
    assert_eq!(out.code, 1);
    insta::assert_snapshot!("unknown_stage", out.stderr);
    let out = slipway_run(
        project.path(),
        &[],
        &["apply", "--stage", "dev", "--stack", "nope"],
    );
    assert_eq!(out.code, 1);
    insta::assert_snapshot!("unknown_stack", out.stderr);
}

#[test]
fn destroy_refuses_without_yes() {
    let project = crate::common::example("webshop");
    let out = slipway_run(project.path(), &[], &["destroy", "--stage", "dev"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("--yes"), "{}", out.stderr);
}

#[test]
fn missing_engine_binary_says_how_to_get_one() {
    let project = crate::common::example("webshop");
    let out = slipway_run(
        project.path(),
        &[("PATH".into(), "/nonexistent".into())],
        &["plan", "--stage", "dev"],
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("`terraform` was not found on PATH"),
        "{}",
        out.stderr
    );
}
