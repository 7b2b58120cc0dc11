//! The engine compatibility suite: the end-to-end smoke (a fresh stage of the webshop applied
//! in parallel, re-planned empty, deployed, promoted, drilled, destroyed) against every engine
//! binary found: the sandbox's Terraform 1.0.3, each `terraform`/`tofu` on `PATH` and each
//! binary `SLIPWAY_TEST_ENGINES` names (see `docs/engines.md`). Each smoke starts from an
//! empty plugin cache and no lock files, as a new project or a CI runner does. When nothing
//! newer than Terraform 1.5 is found, the suite says so in a banner on stderr.

use std::path::Path;
use std::time::{Duration, Instant};

use slipway_engine::driver::plugin_cache;
use slipway_sandbox::engines::{self, EngineBinary};
use slipway_sandbox::env::contract::{ENGINE, TF_PLUGIN_CACHE_DIR};

use crate::common::{boto3, sandbox, slipway_ok_with, slipway_run};
use crate::pipeline::{as_tester, git, repository};
use crate::queue_project::queue_repository_with;

/// The stacks whose lock files the smoke's repository does not commit.
const UNLOCKED: [&str; 2] = ["network", "app"];
/// The stack whose committed lock file was made on another platform.
const FOREIGN: &str = "queue";

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs the smoke on `engine`; returns how long it took.
/// How much of the smoke an engine gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Smoke {
    /// apply (lock files and the plugin cache from empty), an empty re-plan, destroy: what
    /// differs between engine versions. For the sandbox's engine, whose pipeline, drill and
    /// destroy paths the rest of the suite runs anyway.
    LockFiles,
    /// and deploy, promote, a drill and destroying prod as well.
    Pipeline,
}

fn smoke(engine: &EngineBinary, depth: Smoke) -> Duration {
    let started = Instant::now();
    let label = engine.label();
    let (sandbox, moto) = sandbox();
    let project = repository();
    let dir = project.path();
    // Two stacks commit no lock file (a new project), one keeps the webshop's, and one
    // commits a lock file made on another platform: only the `zh:` checksum of the
    // provider's archive, none of this platform's unpacked package.
    for stack in UNLOCKED {
        std::fs::remove_file(dir.join(format!("stacks/{stack}/.terraform.lock.hcl"))).unwrap();
    }
    let archive = std::fs::read_dir(sandbox.mirror.join("registry.terraform.io/hashicorp/aws"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "zip"))
        .unwrap();
    let zh = format!("zh:{}", sha256_hex(&std::fs::read(&archive).unwrap()));
    std::fs::write(
        dir.join(format!("stacks/{FOREIGN}/.terraform.lock.hcl")),
        format!(
            "provider \"registry.terraform.io/hashicorp/aws\" {{\n  version     = \"3.39.0\"\n  constraints = \"3.39.0\"\n  hashes = [\n    \"{zh}\",\n  ]\n}}\n"
        ),
    )
    .unwrap();
    git(
        dir,
        &[
            "commit",
            "-q",
            "-am",
            "lock files: none, and one from another platform",
        ],
    );
    // A plugin cache of its own, empty: every `init` of the first run starts from scratch.
    let cache = tempfile::tempdir().unwrap();
    let mut env = as_tester(moto.env());
    env.retain(|(k, _)| k != ENGINE && k != TF_PLUGIN_CACHE_DIR);
    env.push((ENGINE.to_owned(), engine.path.display().to_string()));
    env.push((
        TF_PLUGIN_CACHE_DIR.to_owned(),
        cache.path().display().to_string(),
    ));
    let ok = |args: &[&str]| {
        eprintln!("[{label}] slipway {}", args.join(" "));
        slipway_ok_with(dir, &env, args)
    };

    let apply = ok(&["apply", "--stage", "dev"]);
    assert!(
        apply.stderr.contains("dev: 4 of 4 stacks applied"),
        "[{label}] {}",
        apply.stderr
    );
    // A stack without a lock file gets one in its working copy, one whose lock file lacks
    // this platform's checksum gets it completed there, and slipway says so.
    for stack in ["network", "data", "queue", "app"] {
        let wrote = format!(
            "note: dev/{stack}: no .terraform.lock.hcl committed; the engine wrote one in the working copy"
        );
        let completed = format!(
            "note: dev/{stack}: the committed .terraform.lock.hcl records no checksum of this platform's provider packages"
        );
        assert_eq!(
            (
                apply.stderr.contains(&wrote),
                apply.stderr.contains(&completed)
            ),
            (UNLOCKED.contains(&stack), stack == FOREIGN),
            "[{label}] {stack}:\n{}",
            apply.stderr
        );
    }
    // The checksum the engine recorded is the one slipway computes for the cached package.
    let lock = dir.join(".slipway/work/dev/network/tree/stacks/network/.terraform.lock.hcl");
    let locked = plugin_cache::read_lock_file(&lock).expect("the engine wrote a lock file");
    let package = cache
        .path()
        .join(&locked[0].address)
        .join(&locked[0].version)
        .join(plugin_cache::platform());
    let hash = plugin_cache::package_hash(&package).unwrap();
    assert!(
        locked[0].hashes.contains(&hash),
        "[{label}] {hash} not in {:?}",
        locked[0].hashes
    );

    let replan = ok(&["plan", "--stage", "dev"]);
    assert!(
        !replan.stderr.contains("to add"),
        "[{label}] a second plan must be empty:\n{}",
        replan.stderr
    );

    if depth == Smoke::LockFiles {
        ok(&["destroy", "--stage", "dev", "--yes"]);
        let inventory = moto.inventory().unwrap();
        assert!(inventory.is_empty(), "[{label}] left behind: {inventory}");
        assert_repository_untouched(dir, &label);
        return started.elapsed();
    }
    ok(&["deploy", "--stage", "dev"]);
    ok(&[
        "promote",
        "--from",
        "dev",
        "--to",
        "prod",
        "--approve",
        "tested",
    ]);
    let drill = ok(&["drill", "--stage", "prod"]);
    assert!(
        drill.stdout.contains("(4 of 4 stacks rebuilt)"),
        "[{label}] {}",
        drill.stdout
    );
    assert!(
        drill.stdout.contains("teardown: destroyed in"),
        "[{label}] {}",
        drill.stdout
    );

    ok(&["destroy", "--stage", "prod", "--yes", "--approve", "smoke"]);
    ok(&["destroy", "--stage", "dev", "--yes"]);
    let inventory = moto.inventory().unwrap();
    assert!(inventory.is_empty(), "[{label}] left behind: {inventory}");
    assert_repository_untouched(dir, &label);
    let took = started.elapsed();
    eprintln!("[{label}] smoke passed in {:.1}s", took.as_secs_f64());
    took
}

/// No lock file (or anything else) was written into the repository itself.
fn assert_repository_untouched(dir: &Path, label: &str) {
    let status = std::process::Command::new("git")
        .args(["status", "--porcelain"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        status.stdout.is_empty(),
        "[{label}] the repository changed:\n{}",
        String::from_utf8_lossy(&status.stdout)
    );
}

#[test]
fn the_sandbox_engine_passes_the_smoke() {
    let (sandbox, _moto) = sandbox();
    let engine = EngineBinary::probe(&sandbox.terraform).expect("the sandbox's Terraform answers");
    smoke(&engine, Smoke::LockFiles);
}

#[test]
fn every_newer_engine_passes_the_smoke() {
    let (sandbox, _moto) = sandbox();
    let found = engines_found(&sandbox);
    let sandbox_engine = sandbox.terraform.canonicalize().unwrap();
    let newer: Vec<&EngineBinary> = found
        .iter()
        .filter(|e| e.path.canonicalize().ok().as_ref() != Some(&sandbox_engine))
        .collect();
    if !found.iter().any(EngineBinary::is_modern) {
        eprintln!("{}", engines::no_modern_engine_banner(&found));
    }
    for engine in newer {
        smoke(engine, Smoke::Pipeline);
    }
}

/// Every engine binary this machine offers the suite: the sandbox's, those on `PATH` and
/// those `SLIPWAY_TEST_ENGINES` names.
pub(crate) fn engines_found(sandbox: &slipway_sandbox::Sandbox) -> Vec<EngineBinary> {
    engines::discover(
        &sandbox.terraform,
        std::env::var("PATH").ok().as_deref(),
        std::env::var(engines::TEST_ENGINES).ok().as_deref(),
    )
}

/// The newest engine found that locks S3 state natively (Terraform 1.10+, OpenTofu 1.8+).
fn engine_with_s3_native_locking(sandbox: &slipway_sandbox::Sandbox) -> Option<EngineBinary> {
    engines_found(sandbox)
        .into_iter()
        .filter(|e| {
            let since = if e.kind == "tofu" { (1, 8) } else { (1, 10) };
            e.major_minor() >= since
        })
        .max_by_key(EngineBinary::major_minor)
}

#[test]
fn s3_native_locking_takes_a_lock_object_beside_the_state_and_releases_it() {
    let (sandbox, moto) = sandbox();
    let Some(engine) = engine_with_s3_native_locking(&sandbox) else {
        eprintln!(
            "{}\n!! SKIPPED: S3 native locking needs Terraform >= 1.10 or OpenTofu >= 1.8; none was found.\n{}",
            "!".repeat(78),
            "!".repeat(78)
        );
        return;
    };
    let bucket = "slipway-state";
    let project = queue_repository_with(&format!(
        "\nstate {{\n  backend                     = \"s3\"\n  bucket                      = \"{bucket}\"\n  region                      = \"us-east-1\"\n  use_lockfile                = true\n  endpoint                    = env(\"SLIPWAY_SANDBOX_ENDPOINT\")\n  force_path_style            = true\n  skip_credentials_validation = true\n}}\n"
    ));
    let dir = project.path();
    boto3(
        &sandbox,
        &moto,
        "s3",
        "s3",
        &format!("s3.create_bucket(Bucket='{bucket}')"),
    );
    let keys = || {
        boto3(
            &sandbox,
            &moto,
            "s3",
            "s3",
            &format!(
                "print('\\n'.join(sorted(o['Key'] for o in s3.list_objects_v2(Bucket='{bucket}').get('Contents', []))))"
            ),
        )
    };
    let mut env = moto.env();
    env.retain(|(k, _)| k != ENGINE);
    env.push((ENGINE.to_owned(), engine.path.display().to_string()));
    let apply = ["apply", "--stage", "dev"];

    slipway_ok_with(dir, &env, &apply);
    assert_eq!(
        keys(),
        "webshop/dev/queue.tfstate",
        "the state, and no lock left behind"
    );

    // Another process holds the lock object: the apply is refused, naming the holder.
    boto3(
        &sandbox,
        &moto,
        "s3",
        "s3",
        &format!(
            "import json\ns3.put_object(Bucket='{bucket}', Key='webshop/dev/queue.tfstate.tflock', Body=json.dumps({{'ID': 'held-by-test', 'Operation': 'OperationTypeApply', 'Info': '', 'Who': 'someone@elsewhere', 'Version': '{}', 'Created': '2026-12-01T09:00:00Z', 'Path': '{bucket}/webshop/dev/queue.tfstate'}}))",
            engine.version
        ),
    );
    let refused = slipway_run(dir, &env, &apply);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("could not take the state lock")
            && refused.stderr.contains("someone@elsewhere")
            && refused.stderr.contains("held-by-test"),
        "[{}] {}",
        engine.label(),
        refused.stderr
    );
}
