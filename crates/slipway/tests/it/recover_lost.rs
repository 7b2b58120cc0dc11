//! Recovery of a platform whose network stack is a VPC module (four subnets, three route
//! tables and their associations, an internet gateway and a route), on the sandbox.
//!
//! The AWS provider retries the read of a missing route table association for minutes before
//! it accepts it is gone. `slipway recover` first probes what still exists: one queue deleted
//! by hand is recreated alone, on its stack's state, and nothing else is touched; after the
//! whole cloud is wiped every stack is found lost, its state is set aside (kept as a backup
//! file) and it is rebuilt from empty state without waiting out those retries, after which
//! the stage plans empty.

use std::path::Path;

use serde_json::Value;
use slipway_sandbox::{Moto, Sandbox};

use crate::common::{Output, boto3, fixture, sandbox};
use crate::pipeline::{git, release_to_prod, slipway_ok};

/// The platform fixture as a git repository with one commit.
fn platform() -> tempfile::TempDir {
    let project = fixture("platform");
    git(project.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(project.path().join(".gitignore"), ".slipway/\n").unwrap();
    git(project.path(), &["add", "-A"]);
    git(project.path(), &["commit", "-q", "-m", "platform"]);
    project
}

/// The ids of the network's resources and the queues, as the EC2 and SQS APIs list them:
/// `kind -> sorted ids` (the default VPC's own are left out).
fn cloud(sandbox: &Sandbox, moto: &Moto) -> Value {
    let ec2 = boto3(
        sandbox,
        moto,
        "ec2",
        "c",
        r#"import json
tagged = [{'Name': 'tag:project', 'Values': ['platform']}]
tables = c.describe_route_tables(Filters=tagged)['RouteTables']
print(json.dumps({
  'vpcs': sorted(v['VpcId'] for v in c.describe_vpcs(Filters=tagged)['Vpcs']),
  'subnets': sorted(s['SubnetId'] for s in c.describe_subnets(Filters=tagged)['Subnets']),
  'route_tables': sorted(t['RouteTableId'] for t in tables),
  'associations': sorted(a['RouteTableAssociationId'] for t in tables for a in t['Associations']),
  'routes': sorted(t['RouteTableId'] + ' ' + r.get('DestinationCidrBlock', '') for t in tables for r in t['Routes'] if r.get('GatewayId', '').startswith('igw-')),
  'gateways': sorted(g['InternetGatewayId'] for g in c.describe_internet_gateways(Filters=tagged)['InternetGateways']),
}))"#,
    );
    let mut cloud: Value = serde_json::from_str(&ec2).unwrap();
    let queues = boto3(
        sandbox,
        moto,
        "sqs",
        "c",
        "print('\\n'.join(sorted(c.list_queues().get('QueueUrls', []))))",
    );
    cloud["queues"] = queues.lines().map(|l| Value::from(l.trim())).collect();
    cloud
}

/// How many of each kind exist.
fn counts(cloud: &Value) -> Vec<(String, usize)> {
    cloud
        .as_object()
        .unwrap()
        .iter()
        .map(|(kind, ids)| (kind.clone(), ids.as_array().unwrap().len()))
        .collect()
}

/// The recovery report of `slipway recover --json`.
fn recovery(out: &Output) -> Value {
    out.stdout
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|e| e["event"] == "report" && e["kind"] == "recovery")
        .unwrap_or_else(|| panic!("no recovery report: {}\n{}", out.stdout, out.stderr))["report"]
        .clone()
}

fn recover(dir: &Path, moto: &Moto) -> Value {
    recovery(&slipway_ok(
        dir,
        moto,
        &["recover", "--stage", "prod", "--json"],
    ))
}

#[test]
fn recover_rebuilds_only_what_is_gone_and_a_lost_stage_without_waiting_out_retries() {
    let (sandbox, moto) = sandbox();
    let project = platform();
    let dir = project.path();
    release_to_prod(dir, &moto);
    let before = cloud(&sandbox, &moto);
    assert_eq!(
        counts(&before),
        [
            ("associations".to_owned(), 4),
            ("gateways".to_owned(), 1),
            ("queues".to_owned(), 1),
            ("route_tables".to_owned(), 3),
            ("routes".to_owned(), 1),
            ("subnets".to_owned(), 4),
            ("vpcs".to_owned(), 1),
        ],
        "{before}"
    );

    // One queue deleted by hand: only it comes back; everything else keeps its ids.
    boto3(
        &sandbox,
        &moto,
        "sqs",
        "c",
        "c.delete_queue(QueueUrl=c.get_queue_url(QueueName='platform-prod-orders')['QueueUrl'])",
    );
    let partial = recover(dir, &moto);
    assert_eq!(partial["succeeded"], true, "{partial}");
    let stacks = &partial["stacks"];
    assert_eq!(stacks["queue"]["found"], "lost", "{partial}");
    assert_eq!(
        stacks["queue"]["created"],
        serde_json::json!(["aws_sqs_queue.orders"])
    );
    for stack in ["network", "data", "app"] {
        assert_eq!(stacks[stack]["found"], "intact", "{stack}: {partial}");
        for change in ["created", "replaced", "updated"] {
            assert_eq!(
                stacks[stack][change],
                serde_json::json!([]),
                "{stack} {change}: {partial}"
            );
        }
        assert_eq!(stacks[stack]["state_backup"], Value::Null);
    }
    let after_partial = cloud(&sandbox, &moto);
    assert_eq!(counts(&after_partial), counts(&before), "{after_partial}");
    for kind in [
        "vpcs",
        "subnets",
        "route_tables",
        "associations",
        "gateways",
    ] {
        assert_eq!(after_partial[kind], before[kind], "{kind} untouched");
    }
    // The queue's state was set aside before it was rebuilt, and kept.
    let queue_backup = stacks["queue"]["state_backup"].as_str().unwrap().to_owned();
    assert!(
        std::fs::read_to_string(&queue_backup)
            .unwrap()
            .contains("platform-prod-orders"),
        "{queue_backup}"
    );

    // The whole cloud is lost.
    moto.reset().unwrap();
    assert!(moto.inventory().unwrap().is_empty(), "the cloud is gone");
    let out = slipway_ok(dir, &moto, &["recover", "--stage", "prod"]);
    let text = &out.stdout;
    assert!(
        text.contains("recovery of prod from its released artifacts: succeeded"),
        "{text}\n{}",
        out.stderr
    );
    for (stack, resources) in [("network", 14), ("data", 2), ("queue", 1), ("app", 2)] {
        crate::common::assert_line(
            text,
            &format!(r"^  {stack} +lost; {resources} recreated in \d+\.\ds$"),
        );
    }
    let backups: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("state set aside (kept) in "))
        .collect();
    assert_eq!(backups.len(), 4, "{text}");
    let network_backup = backups
        .iter()
        .find(|b| b.contains("/state-backups/prod/network/"))
        .unwrap_or_else(|| panic!("{text}"));
    let kept = std::fs::read_to_string(network_backup).unwrap();
    assert!(
        kept.contains(before["vpcs"][0].as_str().unwrap()),
        "the backup holds the lost VPC"
    );
    assert!(
        std::fs::read_to_string(&queue_backup).is_ok(),
        "the first backup is still there"
    );
    // Found lost, the network was rebuilt from empty state: no refresh of its missing route
    // tables and associations, which the provider retries for minutes (how long recovery
    // takes is `cargo xtask bench recover`'s to measure, not this test's).
    let after = cloud(&sandbox, &moto);
    assert_eq!(counts(&after), counts(&before), "nothing twice: {after}");

    // The stage matches its code again: nothing left to do.
    let again = recover(dir, &moto);
    for stack in ["network", "data", "queue", "app"] {
        assert_eq!(again["stacks"][stack]["found"], "intact", "{again}");
        for change in ["created", "replaced", "updated"] {
            assert_eq!(
                again["stacks"][stack][change],
                serde_json::json!([]),
                "{again}"
            );
        }
    }
    assert_eq!(counts(&cloud(&sandbox, &moto)), counts(&before));
}
