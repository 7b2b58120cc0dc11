//! `slipway init` (the walking skeleton, applied for real on the sandbox), `slipway new
//! stack`, and `slipway init --adopt` on plain root modules wired by
//! `terraform_remote_state`.

use crate::ci_jobs::point_at_sandbox;
use crate::common::{boto3, sandbox, slipway_ok_with, slipway_run};

#[test]
fn init_writes_a_skeleton_that_bootstraps_and_applies_to_the_sandbox() {
    let (sandbox, moto) = sandbox();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("shop");
    std::fs::create_dir_all(&dir).unwrap();
    let out = slipway_ok_with(&dir, &[], &["init", "--cloud", "aws"]);
    insta::assert_snapshot!(out.stdout, @r"
    wrote .github/workflows/slipway.yml
    wrote .gitignore
    wrote .gitlab-ci.yml
    wrote slipway.hcl
    wrote stacks/network/main.tf
    wrote stacks/network/stack.hcl
    ");
    insta::assert_snapshot!(
        "skeleton_slipway_hcl",
        std::fs::read_to_string(dir.join("slipway.hcl")).unwrap()
    );

    // The sandbox's provider configuration goes in through `generate`, and the state block
    // gets moto's endpoint, as a user would point them at their account.
    point_at_sandbox(&dir, &moto);
    let env = moto.env();
    let first = slipway_ok_with(&dir, &env, &["bootstrap", "--stage", "dev"]);
    insta::assert_snapshot!(first.stdout, @r"
    created  s3 bucket shop-terraform-state (state)
    enabled  versioning on shop-terraform-state (earlier states are kept)
    created  dynamodb table shop-terraform-locks (state locks)
    ");
    assert!(
        first.stderr.contains("no artifact bucket to create"),
        "{}",
        first.stderr
    );
    let again = slipway_ok_with(&dir, &env, &["bootstrap", "--stage", "dev"]);
    insta::assert_snapshot!(again.stdout, @r"
    exists   s3 bucket shop-terraform-state (state)
    exists   versioning on shop-terraform-state (earlier states are kept)
    exists   dynamodb table shop-terraform-locks (state locks)
    ");
    let made = boto3(
        &sandbox,
        &moto,
        "s3",
        "s3",
        "print(s3.get_bucket_versioning(Bucket='shop-terraform-state')['Status'])",
    );
    assert_eq!(made, "Enabled");
    let key = boto3(
        &sandbox,
        &moto,
        "dynamodb",
        "d",
        "print(d.describe_table(TableName='shop-terraform-locks')['Table']['KeySchema'])",
    );
    assert_eq!(key, "[{'AttributeName': 'LockID', 'KeyType': 'HASH'}]");

    let apply = slipway_ok_with(&dir, &env, &["apply", "--stage", "dev"]);
    assert!(
        apply.stderr.contains("dev: 1 of 1 stack applied"),
        "{}",
        apply.stderr
    );
    let inventory = moto.inventory().unwrap();
    assert_eq!(inventory.vpcs.len(), 1, "{inventory}");
    // State went to the bucket, not the data folder.
    let state = boto3(
        &sandbox,
        &moto,
        "s3",
        "s3",
        "print([o['Key'] for o in s3.list_objects_v2(Bucket='shop-terraform-state')['Contents']])",
    );
    assert_eq!(state, "['shop/dev/network.tfstate']");
    assert!(
        !dir.join(".slipway/state/dev/network/terraform.tfstate")
            .exists()
    );
}

#[test]
fn init_never_overwrites_without_force() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".gitignore"), "mine\n").unwrap();
    let out = slipway_run(dir.path(), &[], &["init", "--cloud", "none"]);
    assert_eq!(out.code, 1);
    insta::assert_snapshot!(out.stderr, @r"
    error: a file already exists: .gitignore
      help: slipway never overwrites a file; move them away, or pass --force to replace them
    ");
    assert!(
        !dir.path().join("slipway.hcl").exists(),
        "nothing is written"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".gitignore")).unwrap(),
        "mine\n"
    );
    slipway_ok_with(dir.path(), &[], &["init", "--cloud", "none", "--force"]);
    assert!(dir.path().join("slipway.hcl").exists());
}

#[test]
fn workflow_files_are_yaml_and_call_existing_commands() {
    let dir = tempfile::tempdir().unwrap();
    slipway_ok_with(dir.path(), &[], &["init", "--cloud", "gcp"]);
    let help = slipway_ok_with(dir.path(), &[], &["--help"]).stdout;
    for file in [".github/workflows/slipway.yml", ".gitlab-ci.yml"] {
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
        let yaml: serde_norway::Value =
            serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut scripts = Vec::new();
        collect_scripts(&yaml, &mut scripts);
        let commands: Vec<&str> = scripts
            .iter()
            .flat_map(|s| s.lines())
            .map(str::trim)
            .filter(|l| l.starts_with("slipway "))
            .collect();
        let subcommands: Vec<&str> = commands
            .iter()
            .map(|c| c.split_whitespace().nth(1).unwrap())
            .collect();
        assert_eq!(
            subcommands,
            ["plan", "bootstrap", "run", "approve", "resume"],
            "{file}"
        );
        for sub in subcommands {
            assert!(
                help.lines()
                    .any(|l| l.trim_start().starts_with(&format!("{sub} "))),
                "{file} calls `slipway {sub}`, which `slipway --help` does not list"
            );
        }
        assert!(commands[0].contains("--format markdown"), "{file}");
    }
    // The skeleton is a project `slipway stacks` reads.
    let stacks = slipway_ok_with(dir.path(), &[], &["stacks", "--json"]).stdout;
    assert!(stacks.contains("\"name\": \"network\""), "{stacks}");
}

/// Every `run:` (GitHub) and `script:` (GitLab) entry.
fn collect_scripts(value: &serde_norway::Value, out: &mut Vec<String>) {
    match value {
        serde_norway::Value::Mapping(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    (Some("run"), serde_norway::Value::String(s)) => out.push(s.clone()),
                    (Some("script"), serde_norway::Value::Sequence(items)) => {
                        out.extend(items.iter().filter_map(|i| i.as_str().map(str::to_owned)))
                    }
                    _ => collect_scripts(value, out),
                }
            }
        }
        serde_norway::Value::Sequence(items) => {
            for item in items {
                collect_scripts(item, out);
            }
        }
        _ => {}
    }
}

#[test]
fn new_stack_adds_a_wired_stack() {
    let dir = tempfile::tempdir().unwrap();
    slipway_ok_with(dir.path(), &[], &["init", "--cloud", "none"]);
    let out = slipway_ok_with(
        dir.path(),
        &[],
        &[
            "new",
            "stack",
            "app",
            "--depends-on",
            "hello",
            "--team",
            "shop",
        ],
    );
    insta::assert_snapshot!(out.stdout, @r"
    wrote stacks/app/stack.hcl
    wrote stacks/app/main.tf
    ");
    let stacks: serde_json::Value =
        serde_json::from_str(&slipway_ok_with(dir.path(), &[], &["stacks", "--json"]).stdout)
            .unwrap();
    assert_eq!(stacks[1]["name"], "app");
    assert_eq!(stacks[1]["team"], "shop");
    assert_eq!(stacks[1]["dependencies"], serde_json::json!(["hello"]));

    let unknown = slipway_run(
        dir.path(),
        &[],
        &["new", "stack", "web", "--depends-on", "nope"],
    );
    assert_eq!(unknown.code, 1);
    assert!(
        unknown
            .stderr
            .contains("`nope` is not a stack of this project"),
        "{}",
        unknown.stderr
    );
    assert!(unknown.stderr.contains("help:"), "{}", unknown.stderr);
}

#[test]
fn adopt_finds_root_modules_and_remote_state_dependencies() {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "infra/network/main.tf",
        "provider \"aws\" {}\nresource \"aws_vpc\" \"v\" {}\n",
    );
    write(
        "infra/database/main.tf",
        r#"terraform {
  backend "s3" {
    bucket = "state"
    key    = "database.tfstate"
  }
}
data "terraform_remote_state" "network" {
  backend = "local"
  config = { path = "../network/terraform.tfstate" }
}
"#,
    );
    write(
        "apps/shop/main.tf",
        r#"provider "aws" {}
data "terraform_remote_state" "db" {
  backend = "s3"
  config = { bucket = "state", key = "database.tfstate" }
}
data "terraform_remote_state" "net" {
  backend = "local"
  config = { path = "../../infra/network/terraform.tfstate" }
}
data "terraform_remote_state" "billing" {
  backend = "s3"
  config = { bucket = "other", key = "billing.tfstate" }
}
"#,
    );
    write(
        "modules/bucket/main.tf",
        "resource \"aws_s3_bucket\" \"b\" {}\n",
    );

    let out = slipway_ok_with(dir.path(), &[], &["init", "--adopt"]);
    insta::assert_snapshot!(out.stdout, @r"
    wrote slipway.hcl
    wrote apps/shop/stack.hcl
    wrote infra/database/stack.hcl
    wrote infra/network/stack.hcl
    ");
    assert!(
        out.stderr.contains(
            "apps/shop/main.tf:10: data.terraform_remote_state.billing: reads s3 key `billing.tfstate`, which no root module here writes"
        ),
        "{}",
        out.stderr
    );
    assert!(!dir.path().join("modules/bucket/stack.hcl").exists());

    let stacks: serde_json::Value =
        serde_json::from_str(&slipway_ok_with(dir.path(), &[], &["stacks", "--json"]).stdout)
            .unwrap();
    let deps: Vec<(String, serde_json::Value)> = stacks
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["dependencies"].clone(),
            )
        })
        .collect();
    assert_eq!(
        deps,
        vec![
            ("network".to_owned(), serde_json::json!([])),
            ("database".to_owned(), serde_json::json!(["network"])),
            (
                "shop".to_owned(),
                serde_json::json!(["database", "network"])
            ),
        ]
    );
}
