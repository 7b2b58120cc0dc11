//! End-to-end proof of the sandbox recipe: install (or reuse) the sandbox, start moto, and
//! drive the real Terraform 1.0.3 through init, apply, an empty re-plan and destroy,
//! confirming every step through moto's own API.
//!
//! The first run on a machine installs the sandbox (about a minute); later runs reuse it.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};

use slipway_sandbox::{Moto, Sandbox, env};

const STACK: &str = r#"
terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "3.39.0"
    }
  }
}

resource "aws_s3_bucket" "assets" {
  bucket = "sandbox-test-assets"
  tags   = { purpose = "sandbox-test" }
}

resource "aws_sqs_queue" "orders" {
  name = "sandbox-test-orders"
  tags = { purpose = "sandbox-test" }
}
"#;

fn sandbox() -> Sandbox {
    Sandbox::from_env().unwrap_or_else(|e| panic!("sandbox installation failed: {e}"))
}

fn start(sandbox: &Sandbox) -> Moto {
    sandbox
        .start_moto()
        .unwrap_or_else(|e| panic!("moto did not start: {e}"))
}

fn terraform(moto: &Moto, dir: &Path, args: &[&str]) -> Output {
    let engine = moto
        .env()
        .into_iter()
        .find(|(name, _)| name == env::contract::ENGINE)
        .map(|(_, value)| value)
        .expect("the environment names the engine");
    Command::new(engine)
        .args(args)
        .args(["-input=false", "-no-color"])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(moto.env())
        .output()
        .expect("terraform runs")
}

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "terraform {what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn terraform_applies_replans_empty_and_destroys_against_moto() {
    let sandbox = sandbox();
    let moto = start(&sandbox);
    let inventory = moto.inventory().expect("inventory");
    assert!(
        inventory.is_empty(),
        "a fresh moto holds nothing: {inventory}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("main.tf"), STACK).expect("write stack");
    std::fs::write(dir.path().join("provider.tf"), moto.provider_block()).expect("write provider");

    assert_success(&terraform(&moto, dir.path(), &["init"]), "init");
    assert_success(
        &terraform(&moto, dir.path(), &["apply", "-auto-approve"]),
        "apply",
    );

    let inventory = moto.inventory().expect("inventory");
    assert_eq!(inventory.s3_buckets, ["sandbox-test-assets"]);
    assert_eq!(inventory.sqs_queues, ["sandbox-test-orders"]);

    // Exit code 0 with -detailed-exitcode: no changes. moto must converge on what it was told.
    let replan = terraform(&moto, dir.path(), &["plan", "-detailed-exitcode"]);
    assert_success(&replan, "plan (expected no changes)");

    assert_success(
        &terraform(&moto, dir.path(), &["destroy", "-auto-approve"]),
        "destroy",
    );
    let inventory = moto.inventory().expect("inventory");
    assert!(inventory.is_empty(), "destroy left: {inventory}");
}

#[test]
fn the_environment_contract_names_the_installed_parts() {
    let sandbox = sandbox();
    let moto = start(&sandbox);
    let environment = moto.env();
    let value = |name: &str| {
        environment
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{name} missing from {environment:?}"))
    };
    let engine = Path::new(value("SLIPWAY_ENGINE"));
    assert!(
        engine.is_absolute() && engine.is_file(),
        "{}",
        engine.display()
    );
    assert_eq!(engine, sandbox.terraform);
    let cli_config = Path::new(value("TF_CLI_CONFIG_FILE"));
    assert!(cli_config.is_file(), "{}", cli_config.display());
    let endpoint = value("SLIPWAY_SANDBOX_ENDPOINT");
    assert_eq!(endpoint, format!("http://127.0.0.1:{}", moto.port()));
    assert_eq!(value("AWS_ACCESS_KEY_ID"), "test");
    assert_eq!(value("AWS_SECRET_ACCESS_KEY"), "test");
    assert_eq!(value("AWS_DEFAULT_REGION"), "us-east-1");
    assert_eq!(value("AWS_REGION"), "us-east-1");

    let version = Command::new(engine)
        .arg("version")
        .envs(moto.env())
        .output()
        .expect("terraform runs");
    let stdout = String::from_utf8_lossy(&version.stdout);
    assert!(stdout.starts_with("Terraform v1.0.3"), "{stdout}");
}

#[test]
fn reset_wipes_moto_and_each_moto_is_its_own() {
    let sandbox = sandbox();
    let first = start(&sandbox);
    let second = start(&sandbox);
    assert_ne!(first.port(), second.port());

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("main.tf"),
        "resource \"aws_sqs_queue\" \"q\" {\n  name = \"sandbox-test-reset\"\n}\n",
    )
    .expect("write stack");
    std::fs::write(dir.path().join("provider.tf"), first.provider_block()).expect("write provider");
    assert_success(&terraform(&first, dir.path(), &["init"]), "init");
    assert_success(
        &terraform(&first, dir.path(), &["apply", "-auto-approve"]),
        "apply",
    );

    assert_eq!(
        first.inventory().expect("inventory").sqs_queues,
        ["sandbox-test-reset"]
    );
    assert!(second.inventory().expect("inventory").is_empty());
    let data = first.data().expect("data.json");
    assert!(
        data.get("sqs").is_some(),
        "data.json lists the queue's service"
    );

    first.reset().expect("reset");
    assert!(first.inventory().expect("inventory").is_empty());
}

#[test]
fn dropping_moto_stops_it() {
    let sandbox = sandbox();
    let moto = start(&sandbox);
    let port = moto.port();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    drop(moto);
    // Drop waits for the process, so the port is closed by now.
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "moto still answers on {port} after drop"
    );
}
