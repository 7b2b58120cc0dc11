//! Drift and recovery on the sandbox: a queue changed, then deleted, behind slipway's back
//! is named by `slipway drift` (exit 2) with the attribute that changed, which exits 0 while everything matches; after moto is wiped,
//! `slipway recover --stage prod` recreates every resource from prod's released artifacts on
//! prod's own state, and the stack checks pass.

use std::path::Path;

use serde_json::Value;
use slipway_sandbox::{Inventory, Moto, Sandbox};
use slipway_store::Store as _;

use crate::common::{
    Output, assert_line, boto3, example, normalize, sandbox, slipway_run, with_record,
};
use crate::pipeline::{release_to_prod, repository, slipway_ok};

fn slipway_code(dir: &Path, moto: &Moto, args: &[&str]) -> Output {
    slipway_run(dir, &moto.env(), args)
}

/// Changes an SQS queue through the AWS API, as someone with console access would:
/// `action` is a Python statement over the client `c` and the queue's `url`.
fn behind_slipways_back(sandbox: &Sandbox, moto: &Moto, name: &str, action: &str) {
    boto3(
        sandbox,
        moto,
        "sqs",
        "c",
        &format!("url = c.get_queue_url(QueueName='{name}')['QueueUrl']\n{action}\n"),
    );
}

#[test]
fn drift_names_a_queue_deleted_behind_slipways_back() {
    let (sandbox, moto) = sandbox();
    let project = example("webshop");
    let dir = project.path();
    slipway_ok(dir, &moto, &["apply", "--stage", "dev", "--stack", "queue"]);

    let clean = slipway_code(dir, &moto, &["drift", "--stage", "dev"]);
    assert_eq!(clean.code, 0, "{}\n{}", clean.stdout, clean.stderr);
    assert!(
        clean.stdout.contains("drift in dev: none found"),
        "{}",
        clean.stdout
    );
    assert_line(&clean.stdout, r"^  queue +in sync$");
    // The app reads outputs of stacks never applied to dev: it cannot be checked, and says so.
    assert_line(&clean.stdout, r"^  app +not checked$");

    // A retention changed by hand is drift of one attribute.
    behind_slipways_back(
        &sandbox,
        &moto,
        "webshop-dev-orders",
        "c.set_queue_attributes(QueueUrl=url, Attributes={'MessageRetentionPeriod': '60'})",
    );
    let changed = slipway_code(dir, &moto, &["drift", "--stage", "dev", "--stack", "queue"]);
    assert_eq!(changed.code, 2, "{}\n{}", changed.stdout, changed.stderr);
    assert!(
        changed
            .stdout
            .contains("aws_sqs_queue.orders: changed: message_retention_seconds"),
        "{}",
        changed.stdout
    );

    behind_slipways_back(
        &sandbox,
        &moto,
        "webshop-dev-orders",
        "c.delete_queue(QueueUrl=url)",
    );
    let drifted = slipway_code(dir, &moto, &["drift", "--stage", "dev"]);
    assert_eq!(drifted.code, 2, "{}\n{}", drifted.stdout, drifted.stderr);
    assert!(
        drifted
            .stdout
            .contains("aws_sqs_queue.orders: deleted outside Terraform"),
        "{}",
        drifted.stdout
    );
    assert!(drifted.stdout.contains("DRIFTED"), "{}", drifted.stdout);
    assert!(drifted.stderr.contains("help: "), "{}", drifted.stderr);
    insta::assert_snapshot!("drift_report", drifted.stdout);

    // The JSON form is the recorded drift check.
    let json = slipway_code(
        dir,
        &moto,
        &["drift", "--stage", "dev", "--stack", "queue", "--json"],
    );
    assert_eq!(json.code, 2, "{}\n{}", json.stdout, json.stderr);
    let recorded: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(recorded["stage"], "dev");
    assert_eq!(recorded["drifted"], 1);
    let stacks = recorded["details"]["stacks"].as_array().unwrap();
    assert_eq!(stacks.len(), 1, "{recorded}");
    assert_eq!(stacks[0]["stack"], "queue");
    assert_eq!(stacks[0]["status"], "drifted");
    assert_eq!(stacks[0]["resources"][0]["address"], "aws_sqs_queue.orders");
    assert_eq!(stacks[0]["resources"][0]["change"], "delete");
    assert!(
        recorded["id"].as_i64().unwrap() >= 3,
        "earlier checks were recorded too"
    );
}

/// What must come back after a recovery: everything but the ids AWS makes up.
fn names(inventory: &Inventory) -> Value {
    serde_json::json!({
        "buckets": inventory.s3_buckets,
        "tables": inventory.dynamodb_tables,
        "queues": inventory.sqs_queues,
        "vpcs": inventory.vpcs.iter().map(|v| &v.cidr).collect::<Vec<_>>(),
        "subnets": inventory.subnets.iter().map(|s| &s.cidr).collect::<Vec<_>>(),
        "security_groups": inventory.security_groups.iter().map(|s| &s.name).collect::<Vec<_>>(),
        "roles": inventory.iam_roles,
        "policies": inventory.iam_policies,
        "role_policies": inventory.iam_role_policies,
    })
}

#[test]
fn recover_rebuilds_prod_from_its_released_artifacts_after_the_cloud_is_wiped() {
    let (_sandbox, moto) = sandbox();
    let project = repository();
    let dir = project.path();
    release_to_prod(dir, &moto);
    let before = moto.inventory().unwrap();
    assert!(!before.sqs_queues.is_empty());

    moto.reset().unwrap();
    assert!(moto.inventory().unwrap().is_empty(), "the cloud is gone");

    // While a run holds one of prod's instances, a recovery does not start.
    let owner = slipway_store::LockOwner::current(999);
    with_record(dir, |store| async move {
        store
            .acquire_instance_lock("queue", "prod", &owner)
            .await
            .unwrap();
    });
    let refused = slipway_code(dir, &moto, &["recover", "--stage", "prod"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("cannot recover prod while its stack instances are locked")
            && refused
                .stderr
                .contains("stack `queue` in instance `prod` is locked by"),
        "{}",
        refused.stderr
    );
    assert!(moto.inventory().unwrap().is_empty(), "nothing was applied");
    let owner = slipway_store::LockOwner::current(999);
    with_record(dir, |store| async move {
        store
            .release_instance_lock("queue", "prod", &owner)
            .await
            .unwrap();
    });

    let out = slipway_ok(dir, &moto, &["recover", "--stage", "prod"]);
    let text = &out.stdout;
    assert!(
        text.contains("recovery of prod from its released artifacts: succeeded"),
        "{text}\n{}",
        out.stderr
    );
    for stack in ["network", "data", "queue", "app"] {
        assert_line(
            text,
            &format!(r"^  {stack} +lost; \d+ recreated in \d+\.\ds$"),
        );
    }
    assert!(text.contains("    aws_sqs_queue.orders"), "{text}");
    assert!(text.contains("recovery time: "), "{text}");
    assert!(text.contains("4 of 4 stacks recovered"), "{text}");
    assert!(text.contains("check queue/queue: passed"), "{text}");
    assert_eq!(names(&moto.inventory().unwrap()), names(&before));
    // Each lost stack's state was set aside before its rebuild, and kept where it says.
    for stack in ["network", "data", "queue", "app"] {
        let backup = regex_lite::Regex::new(&format!(
            r"state set aside \(kept\) in (\S+/state-backups/prod/{stack}/\S+\.tfstate)"
        ))
        .unwrap()
        .captures(text)
        .unwrap_or_else(|| panic!("no backup of {stack}: {text}"))[1]
            .to_owned();
        assert!(Path::new(&backup).is_file(), "{backup}");
    }
    insta::assert_snapshot!(
        "recover_report",
        crate::common::replace_patterns(
            normalize(text, dir),
            &[(r"/\d{8}T\d{6}Z\.tfstate", "/[STAMP].tfstate")]
        )
    );

    // Nothing is left to do: the stage matches its code again.
    let again = slipway_ok(dir, &moto, &["recover", "--stage", "prod", "--json"]);
    let events: Vec<Value> = again
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        events.last().unwrap()["event"],
        "finished",
        "{}",
        again.stdout
    );
    let recovery = &events
        .iter()
        .find(|e| e["event"] == "report" && e["kind"] == "recovery")
        .unwrap_or_else(|| panic!("no recovery report: {}", again.stdout))["report"];
    assert_eq!(recovery["succeeded"], true);
    assert_eq!(
        recovery["stacks"]["queue"]["created"],
        serde_json::json!([])
    );
}
