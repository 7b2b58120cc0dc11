//! Provider packages are checked against the lock file's checksums by `init`, and not again
//! by every later step: the engine would otherwise hash the whole package (170 MB for the
//! AWS provider) in each `plan`, `apply` and `show`. The lock file a later step reads has no
//! checksums; the working copy's own lock file is put back untouched after each step.

use std::time::Duration;

use slipway_engine::{Engine, Interrupt, Log, StackCredentials, StepContext, WorkingCopy};
use slipway_sandbox::engines::{self, EngineBinary};
use slipway_sandbox::env::contract::{TF_CLI_CONFIG_FILE, TF_PLUGIN_CACHE_DIR};

use crate::common::{sandbox, slipway_ok_with, slipway_run};
use crate::engines::engines_found;
use crate::pipeline::as_tester;
use crate::queue_project::queue_repository;

#[test]
fn providers_are_checked_by_init_and_not_hashed_again_by_each_later_step() {
    let (_sandbox, moto) = sandbox();
    let project = queue_repository();
    let dir = project.path();
    // A plugin cache of its own: the test changes a package in it.
    let cache = tempfile::tempdir().unwrap();
    let mut env = as_tester(moto.env());
    env.retain(|(k, _)| k != TF_PLUGIN_CACHE_DIR);
    env.push((
        TF_PLUGIN_CACHE_DIR.to_owned(),
        cache.path().display().to_string(),
    ));
    let committed = std::fs::read_to_string(dir.join("stacks/queue/.terraform.lock.hcl")).unwrap();
    assert!(committed.contains("h1:"), "{committed}");

    let apply = slipway_ok_with(dir, &env, &["apply", "--stage", "dev"]);
    assert!(
        apply.stderr.contains("dev: 1 of 1 stack applied"),
        "{}",
        apply.stderr
    );
    let working_copy = dir.join(".slipway/work/dev/queue/tree/stacks/queue");
    let lock_file = || std::fs::read_to_string(working_copy.join(".terraform.lock.hcl")).unwrap();
    assert_eq!(
        lock_file(),
        committed,
        "the lock file is put back as it was"
    );
    let leftovers: Vec<_> = std::fs::read_dir(working_copy.join(".terraform"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("slipway-lock"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A file added to the cached package changes its checksum: a step that hashed the
    // package again would now refuse it.
    let package = walkdir::WalkDir::new(cache.path())
        .into_iter()
        .map(|e| e.unwrap())
        .find(|e| {
            e.file_type().is_file()
                && e.file_name()
                    .to_string_lossy()
                    .starts_with("terraform-provider-aws")
        })
        .expect("the cache holds the AWS provider")
        .into_path();
    let package_dir = package.parent().unwrap();
    std::fs::write(package_dir.join("NOTICE.extra"), "changed after init\n").unwrap();
    let replan = slipway_run(dir, &env, &["plan", "--stage", "dev"]);
    assert_eq!(replan.code, 0, "{}", replan.stderr);
    assert!(replan.stderr.contains("no changes"), "{}", replan.stderr);
    assert_eq!(lock_file(), committed);

    // A working copy initialised from scratch checks the package again and does not take it.
    std::fs::remove_dir_all(dir.join(".slipway/work")).unwrap();
    let fresh = slipway_run(dir, &env, &["plan", "--stage", "dev"]);
    let log = walkdir::WalkDir::new(dir.join(".slipway"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    let refused = fresh.code != 0;
    let bypassed =
        log.contains("providers are installed into this working copy, not from the shared cache");
    assert!(
        refused || bypassed,
        "a changed cached package was used by a fresh init:\n{}\n{log}",
        fresh.stderr
    );
}

/// A plan saved while steps still ran on the lock file with its checksums (by an earlier
/// slipway) is refused by engines that keep the lock file in the plan (Terraform 1.1+,
/// OpenTofu) when applied on the stand-in; the apply then runs on the lock file as it is.
#[test]
fn a_plan_saved_with_the_lock_files_checksums_is_applied_on_them() {
    let (sandbox, moto) = sandbox();
    let found = engines_found(&sandbox);
    let Some(engine) = found.iter().find(|e| e.is_modern()) else {
        eprintln!("{}", engines::no_modern_engine_banner(&found));
        return;
    };
    let (dir, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // `terraform_data` needs no cloud; the AWS provider is there for its lock file entry.
    std::fs::write(
        dir.path().join("main.tf"),
        r#"terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = "3.39.0" }
  }
}

resource "terraform_data" "marker" {
  input = "saved before the stand-in"
}
"#,
    )
    .unwrap();
    let env: Vec<(String, String)> = moto
        .env()
        .into_iter()
        .filter(|(k, _)| k == TF_CLI_CONFIG_FILE || k == TF_PLUGIN_CACHE_DIR)
        .collect();
    let driver = Engine::new(
        engine.path.clone(),
        data.path(),
        env.clone(),
        Duration::from_secs(300),
        Duration::from_secs(5),
    );
    let working_copy = WorkingCopy::in_place(dir.path());
    let log = Log::create(&data.path().join("steps.log")).unwrap();
    let (interrupt, credentials) = (Interrupt::never(), StackCredentials::default());
    let ctx = StepContext::quiet(&working_copy, &log, &interrupt, &credentials);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(driver.init(ctx, &[])).unwrap();
    let lock = std::fs::read_to_string(dir.path().join(".terraform.lock.hcl")).unwrap();
    assert!(lock.contains("h1:"), "{lock}");

    // The plan as an earlier slipway saved it: the engine run on the lock file as it is.
    let plan_file = working_copy.plan_file();
    let saved = std::process::Command::new(&engine.path)
        .args(["plan", "-input=false", "-no-color"])
        .arg(format!("-out={}", plan_file.display()))
        .current_dir(dir.path())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(saved.status.success(), "{}", label_output(engine, &saved));

    runtime
        .block_on(driver.apply(ctx, &plan_file))
        .unwrap_or_else(|e| panic!("{e}: {}", std::fs::read_to_string(log.path()).unwrap()));
    let steps = std::fs::read_to_string(log.path()).unwrap();
    assert!(
        steps.contains("Inconsistent dependency lock file")
            && steps.contains("applying it on that lock file"),
        "{steps}"
    );
    let state = std::fs::read_to_string(dir.path().join("terraform.tfstate")).unwrap();
    assert!(state.contains("saved before the stand-in"), "{state}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".terraform.lock.hcl")).unwrap(),
        lock
    );
}

fn label_output(engine: &EngineBinary, output: &std::process::Output) -> String {
    format!(
        "[{}] {}{}",
        engine.label(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
