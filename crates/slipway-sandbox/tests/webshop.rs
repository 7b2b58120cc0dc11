//! Keeps `examples/webshop` honest with plain Terraform, independently of slipway: every
//! stack applies against moto in dependency order, re-plans with no changes (moto converges
//! on every attribute), and destroys without leaving anything behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use slipway_sandbox::{Moto, Sandbox};

const STAGE: &str = "dev";

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/webshop")
}

fn terraform(sandbox: &Sandbox, moto: &Moto, dir: &Path, args: &[&str]) -> Output {
    // `terraform output` takes no -input flag.
    let input = (args.first() != Some(&"output")).then_some("-input=false");
    let output = Command::new(&sandbox.terraform)
        .args(args)
        .args(input)
        .arg("-no-color")
        .current_dir(dir)
        .envs(moto.env())
        .output()
        .expect("terraform runs");
    assert!(
        output.status.success(),
        "terraform {args:?} in {} failed ({}):\n{}\n{}",
        dir.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

fn output_value(sandbox: &Sandbox, moto: &Moto, dir: &Path, name: &str) -> Value {
    let output = terraform(sandbox, moto, dir, &["output", "-json"]);
    let outputs: Value = serde_json::from_slice(&output.stdout).expect("output JSON");
    outputs[name]["value"].clone()
}

// slipway's own suite applies, re-plans and destroys the webshop through slipway on every
// run (`webshop::webshop_applies_to_dev_replans_empty_and_destroys_to_nothing`); this check
// of the example with plain Terraform is for changes to the example itself:
// `cargo test -p slipway-sandbox --test webshop -- --ignored`.
#[test]
#[ignore = "the example with plain Terraform; run when changing examples/webshop"]
fn every_webshop_stack_applies_replans_empty_and_destroys() {
    let sandbox = Sandbox::from_env().unwrap_or_else(|e| panic!("sandbox: {e}"));
    let moto = sandbox.start_moto().unwrap_or_else(|e| panic!("moto: {e}"));

    // The working copies keep the example's layout so `../../modules/...` resolves.
    let work = tempfile::tempdir().expect("tempdir");
    copy_tree(&example(), work.path());
    let stack = |name: &str| work.path().join("stacks").join(name);

    // Dependency order, and the app's inputs as examples/webshop/stacks/app/stack.hcl wires them.
    let order = ["network", "data", "queue", "app"];
    for name in order {
        let dir = stack(name);
        std::fs::write(dir.join("slipway_provider.tf"), moto.provider_block()).expect("provider");
        let mut variables = json!({ "env": STAGE });
        if name == "app" {
            variables["vpc_id"] = output_value(&sandbox, &moto, &stack("network"), "vpc_id");
            variables["table_arn"] = output_value(&sandbox, &moto, &stack("data"), "table_arn");
            variables["queue_arn"] = output_value(&sandbox, &moto, &stack("queue"), "queue_arn");
        }
        std::fs::write(dir.join("slipway.auto.tfvars.json"), variables.to_string())
            .expect("tfvars");

        terraform(&sandbox, &moto, &dir, &["init"]);
        terraform(&sandbox, &moto, &dir, &["apply", "-auto-approve"]);
        // -detailed-exitcode exits 2 on changes, which terraform() reports as a failure.
        let replan = terraform(&sandbox, &moto, &dir, &["plan", "-detailed-exitcode"]);
        let text = String::from_utf8_lossy(&replan.stdout);
        assert!(
            !text.contains("changed outside of Terraform"),
            "{name}: moto does not converge:\n{text}"
        );
    }

    let inventory = moto.inventory().expect("inventory");
    insta::assert_snapshot!(inventory.to_string());
    let subnets = output_value(&sandbox, &moto, &stack("network"), "subnet_ids");
    assert_eq!(subnets.as_array().map(Vec::len), Some(2), "{subnets}");

    for name in order.iter().rev() {
        terraform(&sandbox, &moto, &stack(name), &["destroy", "-auto-approve"]);
    }
    let inventory = moto.inventory().expect("inventory");
    assert!(inventory.is_empty(), "destroy left: {inventory}");
}
