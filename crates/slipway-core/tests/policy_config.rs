//! The blast radius settings in slipway.hcl: a stage's `policy` block and the project's
//! `stateful_resources` block, loaded into plain values, and every wrong value reported
//! at its line with a fix.

use slipway_core::SourceFile;
use slipway_core::config::{
    Env, OnViolation, ProjectSources, StagePolicy, StatefulResources, load,
};

fn sources(text: &str) -> ProjectSources {
    ProjectSources {
        config: SourceFile::new("slipway.hcl", text),
        stacks: vec![],
    }
}

#[test]
fn policy_and_stateful_resources_load_into_plain_values() {
    let text = r#"
project { name = "webshop" }

stateful_resources {
  extend  = ["aws_sqs_*"]
  replace = ["aws_dynamodb_table", "aws_s3_bucket"]
}

stage "dev" {
  policy {
    max_deletes  = 0
    on_violation = "approval"
  }
}

stage "prod" {
  policy {
    max_deletes           = 2
    max_replaces          = 1
    max_score             = 40.5
    deny_stateful_deletes = true
    protected_addresses   = ["module.db.*"]
    protected_types       = ["aws_kms_key"]
    rego                  = ["policies/prod.rego"]
  }
}

stage "test" {}
"#;
    let project = load(&sources(text), &Env::new()).expect("valid project");
    assert_eq!(
        project.stateful_resources,
        StatefulResources {
            extend: vec!["aws_sqs_*".into()],
            replace: Some(vec!["aws_dynamodb_table".into(), "aws_s3_bucket".into()]),
        }
    );
    let dev = project.stage("dev").unwrap().policy.clone().unwrap();
    assert_eq!(dev.max_deletes, Some(0));
    assert_eq!(dev.on_violation, OnViolation::Approval);
    assert!(!dev.deny_stateful_deletes);

    let prod = project.stage("prod").unwrap().policy.clone().unwrap();
    assert_eq!(
        prod,
        StagePolicy {
            max_deletes: Some(2),
            max_replaces: Some(1),
            max_score: Some(40.5),
            deny_stateful_deletes: true,
            protected_addresses: vec!["module.db.*".into()],
            protected_types: vec!["aws_kms_key".into()],
            rego: vec!["policies/prod.rego".into()],
            on_violation: OnViolation::Block,
            location: prod.location.clone(),
        }
    );
    assert_eq!(prod.location.line, Some(17));
    assert!(project.stage("test").unwrap().policy.is_none());
}

#[test]
fn without_blocks_there_is_no_policy_and_the_builtin_list() {
    let project = load(
        &sources("project { name = \"p\" }\nstage \"dev\" {}\n"),
        &Env::new(),
    )
    .unwrap();
    assert_eq!(project.stateful_resources, StatefulResources::default());
    assert!(project.stage("dev").unwrap().policy.is_none());
}

#[test]
fn wrong_policy_values_are_reported_with_line_and_help() {
    let text = r#"project { name = "p" }
stateful_resources {
  extend = "aws_sqs_queue"
}
stage "prod" {
  policy {
    max_deletes           = -1
    max_replaces          = "two"
    max_score             = "high"
    deny_stateful_deletes = "yes"
    protected_types       = ["aws_kms_key", 3]
    rego                  = ["../outside.rego"]
    on_violation          = "warn"
    max_delete            = 1
  }
  policy {}
}
"#;
    let diagnostics = match load(&sources(text), &Env::new()) {
        Ok(_) => panic!("expected configuration errors"),
        Err(diagnostics) => diagnostics.to_string(),
    };
    insta::assert_snapshot!(diagnostics);
}
