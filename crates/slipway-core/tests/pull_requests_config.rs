//! The `pull_requests` block of slipway.hcl: pull requests are planned against the first
//! stage unless it names another, and a wrong block is reported at its line with a fix.

use slipway_core::SourceFile;
use slipway_core::config::{Env, ProjectSources, load};

fn project(extra: &str) -> ProjectSources {
    ProjectSources {
        config: SourceFile::new(
            "slipway.hcl",
            format!(
                "project {{ name = \"shop\" }}\nstage \"dev\" {{}}\nstage \"test\" {{}}\nstage \"prod\" {{}}\n{extra}"
            ),
        ),
        stacks: vec![],
    }
}

#[test]
fn pull_requests_are_planned_against_the_first_stage_by_default() {
    let loaded = load(&project(""), &Env::new()).expect("valid project");
    assert_eq!(loaded.pull_requests.plan_stage(&loaded.stages), Some("dev"));
}

#[test]
fn the_plan_stage_can_be_chosen() {
    let text = "pull_requests {\n  plan_stage = \"test\"\n}\n";
    let loaded = load(&project(text), &Env::new()).expect("valid project");
    assert_eq!(
        loaded.pull_requests.plan_stage(&loaded.stages),
        Some("test")
    );
}

#[test]
fn wrong_pull_requests_blocks_are_reported_with_line_and_help() {
    let text =
        "pull_requests {\n  plan_stage = \"staging\"\n  comment = true\n}\npull_requests {}\n";
    let errors = load(&project(text), &Env::new()).expect_err("invalid pull_requests block");
    insta::assert_snapshot!(errors.to_string());
}

#[test]
fn previews_are_off_unless_configured() {
    let loaded = load(&project(""), &Env::new()).expect("valid project");
    assert_eq!(loaded.preview, None);
}

#[test]
fn a_preview_names_its_stage_and_ttl() {
    let text = "preview {\n  stage = \"dev\"\n  ttl   = \"2s\"\n}\n";
    let loaded = load(&project(text), &Env::new()).expect("valid project");
    let preview = loaded.preview.expect("a preview");
    assert_eq!(preview.stage, "dev");
    assert_eq!(preview.ttl, std::time::Duration::from_secs(2));
    let text = "preview {\n  stage = \"test\"\n}\n";
    let loaded = load(&project(text), &Env::new()).expect("valid project");
    assert_eq!(
        loaded.preview.expect("a preview").ttl,
        std::time::Duration::from_secs(24 * 3600),
        "a day by default"
    );
}

#[test]
fn wrong_preview_blocks_are_reported_with_line_and_help() {
    let text = "preview {\n  stage = \"staging\"\n  ttl = \"soon\"\n  size = 2\n}\npreview {\n  ttl = \"1h\"\n}\n";
    let errors = load(&project(text), &Env::new()).expect_err("invalid preview block");
    insta::assert_snapshot!(errors.to_string());
}

#[test]
fn a_preview_needs_a_stage_and_a_duration() {
    let text = "preview {\n  ttl = \"soon\"\n}\n";
    let errors = load(&project(text), &Env::new()).expect_err("invalid ttl");
    insta::assert_snapshot!(errors.to_string());
}
