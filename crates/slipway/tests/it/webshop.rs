//! The webshop example applied for real: Terraform, the AWS provider and moto.

use crate::common::{example, sandbox, slipway_run};

#[test]
fn webshop_applies_to_dev_replans_empty_and_destroys_to_nothing() {
    let (_sandbox, moto) = sandbox();
    let project = example("webshop");
    let env = moto.env();

    let apply = slipway_run(project.path(), &env, &["apply", "--stage", "dev"]);
    assert_eq!(apply.code, 0, "apply failed:\n{}", apply.stderr);
    assert!(
        apply.stderr.contains("dev: 4 of 4 stacks applied"),
        "{}",
        apply.stderr
    );

    // What exists, asked from the emulator's own APIs rather than Terraform's state.
    let inventory = moto.inventory().unwrap();
    assert_eq!(inventory.dynamodb_tables, vec!["webshop-dev-orders"]);
    assert_eq!(inventory.s3_buckets, vec!["webshop-dev-assets"]);
    assert_eq!(inventory.sqs_queues, vec!["webshop-dev-orders"]);
    assert_eq!(inventory.iam_roles, vec!["webshop-dev-app"]);
    assert_eq!(inventory.vpcs.len(), 1);
    assert_eq!(inventory.vpcs[0].cidr, "10.0.0.0/16");
    assert_eq!(inventory.subnets.len(), 2);
    // The app's security group sits in the network stack's VPC: inputs flowed.
    assert_eq!(inventory.security_groups.len(), 1);
    assert_eq!(inventory.security_groups[0].vpc_id, inventory.vpcs[0].id);

    // The app waits for three stacks: its `init` ran while they applied, in a copy of its
    // own, and its turn took that over. The copy is gone.
    let runs = project.path().join(".slipway/runs");
    let apply_run = only_run(&runs);
    let app = std::fs::read_to_string(apply_run.join("dev/app.log")).unwrap();
    let early = app
        .find("initialised ahead of its turn")
        .unwrap_or_else(|| panic!("no early init in:\n{app}"));
    let skipped = app
        .find("init skipped")
        .unwrap_or_else(|| panic!("init ran again:\n{app}"));
    assert!(early < skipped, "{app}");
    assert_eq!(app.matches("== terraform init ").count(), 1, "{app}");
    assert!(!apply_run.join("dev/early-init").exists());

    let plan = slipway_run(project.path(), &env, &["plan", "--stage", "dev"]);
    assert_eq!(
        plan.code, 0,
        "a second plan must be empty:\n{}",
        plan.stderr
    );
    // Same code, lock file and backend: no stack starts the engine for `init` again.
    let plan_run = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| *p != apply_run)
        .unwrap();
    for stack in ["network", "data", "queue", "app"] {
        let log = std::fs::read_to_string(plan_run.join(format!("dev/{stack}.log"))).unwrap();
        assert!(log.contains("init skipped"), "{stack}:\n{log}");
        assert!(!log.contains("== terraform init "), "{stack}:\n{log}");
    }

    let destroy = slipway_run(
        project.path(),
        &env,
        &["destroy", "--stage", "dev", "--yes"],
    );
    assert_eq!(destroy.code, 0, "destroy failed:\n{}", destroy.stderr);
    let inventory = moto.inventory().unwrap();
    assert!(inventory.is_empty(), "left behind: {inventory}");
}

#[test]
fn stages_are_separate_instances_with_their_own_state_and_names() {
    let (_sandbox, moto) = sandbox();
    let project = example("webshop");
    let env = moto.env();
    for stage in ["dev", "test"] {
        let out = slipway_run(
            project.path(),
            &env,
            &["apply", "--stage", stage, "--stack", "data"],
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let inventory = moto.inventory().unwrap();
    assert_eq!(
        inventory.dynamodb_tables,
        vec!["webshop-dev-orders", "webshop-test-orders"]
    );
    assert!(
        project
            .path()
            .join(".slipway/state/dev/data/terraform.tfstate")
            .is_file()
    );
    assert!(
        project
            .path()
            .join(".slipway/state/test/data/terraform.tfstate")
            .is_file()
    );
    // --stack data pulled in nothing else: data has no dependencies.
    assert!(inventory.sqs_queues.is_empty());
}

/// The one run folder under `runs`.
fn only_run(runs: &std::path::Path) -> std::path::PathBuf {
    let all: Vec<_> = std::fs::read_dir(runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(all.len(), 1, "{all:?}");
    all.into_iter().next().unwrap()
}
