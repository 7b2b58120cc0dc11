//! `worker_labels` of stages and credentials in slipway.hcl: a stage asks for its own labels
//! and for those of every credential set it uses; labels that cannot be carried, or that
//! contradict each other, are reported at their line with a fix.

use slipway_core::config::{Env, ProjectSources, load};
use slipway_core::{Labels, SourceFile};

fn project(text: &str) -> ProjectSources {
    ProjectSources {
        config: SourceFile::new(
            "slipway.hcl",
            format!("project {{ name = \"shop\" }}\n{text}"),
        ),
        stacks: vec![],
    }
}

#[test]
fn a_stage_asks_for_its_own_labels_and_those_of_its_credentials() {
    let text = r#"
credentials "prod-deployer" {
  from_env      = { AWS_PROFILE = "PROD_PROFILE" }
  worker_labels = { network = "private" }
}

stage "dev" {}

stage "prod" {
  worker_labels = { tier = "prod" }
  credentials   = { default = "prod-deployer" }
}
"#;
    let loaded = load(&project(text), &Env::new()).expect("valid project");
    assert!(loaded.stage("dev").unwrap().worker_labels.is_empty());
    assert_eq!(
        loaded.stage("prod").unwrap().worker_labels,
        Labels::parse("network=private,tier=prod").unwrap()
    );
}

#[test]
fn labels_that_cannot_be_carried_or_contradict_are_reported() {
    let text = r#"
credentials "ops" {
  from_env      = { AWS_PROFILE = "OPS_PROFILE" }
  worker_labels = { tier = "ops" }
}

stage "dev" {
  worker_labels = { "tier name" = "dev" }
}

stage "prod" {
  worker_labels = { tier = "prod" }
  credentials   = { default = "ops" }
}
"#;
    let errors = load(&project(text), &Env::new()).expect_err("invalid labels");
    insta::assert_snapshot!(errors.to_string());
}
