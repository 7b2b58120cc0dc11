//! The `verify` block of slipway.hcl: both paths on by default with the last stage as the
//! reference, each setting overridable, and a wrong block reported at its line with a fix.

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
fn both_paths_are_on_by_default_against_the_last_stage() {
    let loaded = load(&project(""), &Env::new()).expect("valid project");
    assert!(loaded.verify.from_zero && loaded.verify.from_latest);
    assert_eq!(loaded.verify.reference(&loaded.stages), Some("prod"));
}

#[test]
fn each_setting_can_be_changed() {
    let text = "verify {\n  from_zero = false\n  reference_stage = \"test\"\n}\n";
    let loaded = load(&project(text), &Env::new()).expect("valid project");
    assert!(!loaded.verify.from_zero);
    assert!(loaded.verify.from_latest);
    assert_eq!(loaded.verify.reference(&loaded.stages), Some("test"));
}

#[test]
fn wrong_verify_blocks_are_reported_with_line_and_help() {
    let text = "verify {\n  from_zero = \"yes\"\n  reference_stage = \"staging\"\n  parallel = true\n}\nverify {}\n";
    let errors = load(&project(text), &Env::new()).expect_err("invalid verify block");
    insta::assert_snapshot!(errors.to_string());
}
