//! Stack checks in stack.hcl: `check "NAME"` blocks load into plain values, and every wrong
//! one is reported at its line with a fix.

use std::path::PathBuf;

use slipway_core::SourceFile;
use slipway_core::config::{Env, ProjectSources, StackSources, load};

fn project_with_stack(stack_hcl: &str) -> ProjectSources {
    ProjectSources {
        config: SourceFile::new(
            "slipway.hcl",
            "project { name = \"shop\" }\nstage \"dev\" {}\n",
        ),
        stacks: vec![StackSources {
            dir: PathBuf::from("stacks/queue"),
            config: SourceFile::new("stacks/queue/stack.hcl", stack_hcl),
            terraform: vec![],
        }],
    }
}

#[test]
fn checks_load_with_their_command_and_expectations() {
    let text = r#"
stack { team = "shop" }

check "url" {
  expect = { queue_url = "^http://", queue_arn = "sqs" }
}

check "answers" {
  command = ["sh", "-c", "test -n \"$SLIPWAY_OUTPUT_QUEUE_URL\""]
}
"#;
    let project = load(&project_with_stack(text), &Env::new()).expect("valid project");
    let checks = &project.stack("queue").expect("the stack").checks;
    assert_eq!(checks.len(), 2);
    assert_eq!(checks[0].name, "url");
    assert!(checks[0].command.is_empty());
    assert_eq!(checks[0].expect["queue_url"], "^http://");
    assert_eq!(checks[0].expect["queue_arn"], "sqs");
    assert_eq!(checks[1].name, "answers");
    assert_eq!(checks[1].command[..2], ["sh".to_owned(), "-c".to_owned()]);
    assert_eq!(checks[1].location.to_string(), "stacks/queue/stack.hcl:8:1");
}

#[test]
fn wrong_checks_are_reported_with_line_and_help() {
    let text = r#"
check "empty" {}

check "bad" {
  command = "sh -c true"
  expect  = ["x"]
  retries = 3
}

check "bad" {
  expect = { a = "b" }
}
"#;
    let errors = load(&project_with_stack(text), &Env::new()).expect_err("invalid checks");
    insta::assert_snapshot!(errors.to_string());
}
