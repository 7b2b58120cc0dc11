//! Faults that are handled, each really injected: the record's database unreachable, and a
//! provider package that does not match the stack's committed lock file. Each must stop
//! before anything is applied, say what is wrong, and change nothing.

use crate::common::{example, fixture, sandbox, slipway_run};

#[test]
fn an_unreachable_record_stops_an_apply_before_anything_runs_and_names_it() {
    let (_sandbox, moto) = sandbox();
    let project = fixture("chain");
    let dir = project.path();
    let mut env = moto.env();
    // A loopback port nothing listens on: the connection is refused at once.
    env.push((
        "SLIPWAY_STORE_URL".to_owned(),
        "postgres://slipway:hunter2@127.0.0.1:1/record".to_owned(),
    ));
    let out = slipway_run(dir, &env, &["apply", "--stage", "dev"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("error: cannot open the run record"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("postgres://slipway:***@127.0.0.1:1/record"),
        "names the record, without its password:\n{}",
        out.stderr
    );
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
    // No stack started: no state, no working copy, no run folder.
    for folder in ["state", "work", "runs"] {
        assert!(
            !dir.join(".slipway").join(folder).exists(),
            "{folder} exists:\n{}",
            out.stderr
        );
    }
}

#[test]
fn a_provider_that_does_not_match_the_lock_file_fails_the_stack_and_upgrades_nothing() {
    let (_sandbox, moto) = sandbox();
    let project = example("webshop");
    let dir = project.path();
    let lock_file = dir.join("stacks/queue/.terraform.lock.hcl");
    let committed = std::fs::read_to_string(&lock_file).unwrap();
    let hash = committed
        .lines()
        .find_map(|l| l.trim().strip_prefix("\"h1:"))
        .and_then(|rest| rest.split('"').next())
        .expect("the example's lock file records an h1 hash")
        .to_owned();
    // Same shape, different bytes: a package that is not the one the lock file names.
    let forged = "A".repeat(hash.len() - 1) + "=";
    let tampered = committed.replace(&hash, &forged);
    std::fs::write(&lock_file, &tampered).unwrap();

    let out = slipway_run(
        dir,
        &moto.env(),
        &["apply", "--stage", "dev", "--stack", "queue"],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("x dev/queue: failed: `init` failed"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.to_lowercase().contains("checksum"),
        "the engine's reason is shown:\n{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&lock_file).unwrap(),
        tampered,
        "the lock file was not rewritten"
    );
    assert_eq!(moto.inventory().unwrap().sqs_queues, Vec::<String>::new());
}

#[test]
fn a_missing_lock_table_stops_an_apply_and_names_the_table() {
    let (sandbox, moto) = sandbox();
    let project = fixture("chain");
    let dir = project.path();
    crate::common::boto3(
        &sandbox,
        &moto,
        "s3",
        "s3",
        "s3.create_bucket(Bucket='faults-state')",
    );
    let config = dir.join("slipway.hcl");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        r#"
state {
  backend                     = "s3"
  bucket                      = "faults-state"
  region                      = "us-east-1"
  dynamodb_table              = "no-such-lock-table"
  endpoint                    = env("SLIPWAY_SANDBOX_ENDPOINT")
  force_path_style            = true
  skip_credentials_validation = true
}
"#,
    );
    std::fs::write(&config, text).unwrap();

    let out = slipway_run(
        dir,
        &moto.env(),
        &["apply", "--stage", "dev", "--stack", "base"],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("x dev/base: failed:") && out.stderr.contains("no-such-lock-table"),
        "names the table:\n{}",
        out.stderr
    );
    let objects = crate::common::boto3(
        &sandbox,
        &moto,
        "s3",
        "s3",
        "print(len(s3.list_objects_v2(Bucket='faults-state').get('Contents', [])))",
    );
    assert_eq!(objects, "0", "no state was written");
}

#[test]
fn a_hung_apply_is_interrupted_once_then_killed_after_the_grace_period() {
    let (_sandbox, moto) = sandbox();
    // The cloud never answers CreateQueue: Terraform waits for it even once interrupted.
    let proxy = crate::interrupt::HoldingProxy::start(moto.port(), "Action=CreateQueue");
    let project = example("webshop");
    let dir = project.path();
    let config = dir.join("slipway.hcl");
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "engine = \"terraform\"",
        "engine = \"terraform\"\n  interrupt_grace = \"3s\"",
        1,
    );
    std::fs::write(&config, text).unwrap();

    let out = slipway_run(
        dir,
        &proxy.env(&moto.env()),
        &[
            "apply",
            "--stage",
            "dev",
            "--stack",
            "queue",
            "--step-timeout",
            "40s",
        ],
    );
    assert!(
        proxy.held.try_recv().is_ok(),
        "the apply reached CreateQueue"
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    // Stopped while changing infrastructure: interrupted (state may be partial), not failed.
    assert!(
        out.stderr.contains("! dev/queue: interrupted mid-apply"),
        "{}",
        out.stderr
    );
    let log = crate::failures::walk(&dir.join(".slipway/runs"))
        .into_iter()
        .find(|p| p.ends_with("dev/queue.log"))
        .expect("the stack's log");
    let log = std::fs::read_to_string(log).unwrap();
    // Signals sent, as slipway logs them, and received, as Terraform reports them.
    assert_eq!(
        log.matches("== slipway: sent one interrupt").count(),
        1,
        "{log}"
    );
    assert_eq!(log.matches("Interrupt received").count(), 1, "{log}");
    assert!(!log.contains("Two interrupts received"), "{log}");
    assert!(
        log.contains("== slipway: grace period over; killed =="),
        "{log}"
    );
    assert!(
        log.contains("`apply` timed out after 40s and was killed after the grace period"),
        "{log}"
    );
    // Nothing of the engine is left running.
    let leftover = std::process::Command::new("pgrep")
        .args([
            "-f",
            &dir.join(".slipway/work/dev/queue").display().to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        leftover.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&leftover.stdout)
    );
    let _ = proxy.release.send(());
}

/// Another process is filling the shared plugin cache: the provider's folder exists, its
/// binary is half written, and that process holds the cache's writer lock. An `init` that
/// would link the provider (the working copy's lock file already names it) waits for the
/// writer instead of linking half a provider, then goes on with the whole one.
#[test]
fn an_init_never_links_a_provider_another_process_is_still_unpacking() {
    use std::os::unix::fs::MetadataExt as _;

    let (_sandbox, moto) = sandbox();
    let project = example("webshop");
    let dir = project.path();
    // No committed lock file: the engine links whatever the cache holds.
    std::fs::remove_file(dir.join("stacks/queue/.terraform.lock.hcl")).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut env = moto.env();
    env.retain(|(key, _)| key != "TF_PLUGIN_CACHE_DIR");
    env.push((
        "TF_PLUGIN_CACHE_DIR".to_owned(),
        cache.path().display().to_string(),
    ));
    let plan = ["plan", "--stage", "dev", "--stack", "queue"];
    let first = slipway_run(dir, &env, &plan);
    assert!(matches!(first.code, 0 | 2), "{}", first.stderr);

    // Another process is unpacking the provider: half of it is there, under its lock.
    let binary = crate::failures::walk(cache.path())
        .into_iter()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("terraform-provider-aws"))
        })
        .expect("the first plan filled the cache");
    let whole = std::fs::read(&binary).unwrap();
    std::fs::write(&binary, &whole[..whole.len() / 2]).unwrap();
    let lock_path = cache.path().join(".slipway-init.lock");
    let writer = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap();
    writer.lock().unwrap();
    // The code changed since, so this `init` runs (an unchanged working copy skips it).
    let main_tf = dir.join("stacks/queue/main.tf");
    let code = std::fs::read_to_string(&main_tf).unwrap();
    std::fs::write(&main_tf, format!("{code}\n# changed\n")).unwrap();

    let mut child = crate::common::slipway_process(dir, &env)
        .args(plan)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The kernel shows a lock request waiting on the cache's lock file (`->` in /proc/locks).
    let inode = format!(":{}", std::fs::metadata(&lock_path).unwrap().ino());
    crate::common::wait_until(
        "the init waits for the cache's writer",
        std::time::Duration::from_secs(120),
        || {
            std::fs::read_to_string("/proc/locks").is_ok_and(|locks| {
                locks
                    .lines()
                    .any(|l| l.contains("->") && l.contains("FLOCK") && l.contains(&inode))
            })
        },
    );
    assert!(child.try_wait().unwrap().is_none(), "it waits, not fails");

    // The writer finishes the package and lets go.
    std::fs::write(&binary, &whole).unwrap();
    drop(writer);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(matches!(out.status.code(), Some(0 | 2)), "{stderr}");
    assert!(!stderr.contains("failed"), "{stderr}");
}
