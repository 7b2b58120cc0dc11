//! A `slipway deploy` killed with SIGKILL mid-apply, and its engine with it (as when a CI
//! runner dies): the record keeps the stack run `applying` with its dead owner, later
//! commands report it and the stale instance lock instead of applying over it, a person
//! resolves it (audited), and the next deploy converges from the state as it was left.
//!
//! The holding proxy of `interrupt.rs` holds the provider's SetQueueAttributes request, so
//! the kill lands while the apply is in flight for sure.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::Value;
use slipway_store::{AuditAction, Store as _};

use crate::common::{audit_log, sandbox, slipway_process, slipway_run, wait_until};
use crate::interrupt::HoldingProxy;
use crate::pipeline::{commit_retention, retention, slipway_ok};
use crate::queue_project::{queue_repository, scrub};

/// Process groups of the processes working in `dir` or below it (the orphaned engine and
/// its provider plugin, which slipway started in a process group of their own).
pub(crate) fn process_groups_working_in(dir: &Path) -> Vec<i32> {
    let mut groups = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) else {
            continue;
        };
        if !cwd.starts_with(dir) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Field 5 (pgrp), counted after the command name, which may hold spaces.
        let rest = &stat[stat.rfind(')').unwrap() + 1..];
        if let Some(pgrp) = rest.split_whitespace().nth(2).and_then(|f| f.parse().ok()) {
            groups.push(pgrp);
        }
    }
    groups.sort_unstable();
    groups.dedup();
    groups
}

/// Run `id` as `history --json` shows it.
fn run_entry(dir: &Path, moto: &slipway_sandbox::Moto, id: i64) -> Value {
    let history: Value =
        serde_json::from_str(&slipway_ok(dir, moto, &["history", "--json"]).stdout).unwrap();
    history["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no run {id} in {history}"))
        .clone()
}

#[test]
fn sigkill_mid_apply_is_reported_resolved_by_a_person_and_then_converges() {
    let (sandbox, moto) = sandbox();
    let project = queue_repository();
    let dir = project.path();
    slipway_ok(dir, &moto, &["deploy", "--stage", "dev"]);
    commit_retention(dir, 86400);

    let proxy = HoldingProxy::start(moto.port(), "Action=SetQueueAttributes");
    let mut child = slipway_process(dir, &proxy.env(&moto.env()))
        .args(["deploy", "--stage", "dev"])
        .env("SLIPWAY_ACTOR", "tester")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    proxy
        .held
        .recv_timeout(Duration::from_secs(300))
        .expect("the apply reaches SetQueueAttributes");
    let pid = child.id();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    let work = dir.canonicalize().unwrap().join(".slipway/work");

    // slipway is dead, but the engine it started applies on: the record names the engine,
    // and nothing takes the apply for an interrupted one while the engine runs.
    let record = run_entry(dir, &moto, 2);
    let engine = record["stacks"][0]["engine"]["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("the engine is recorded: {record}"));
    assert!(
        process_groups_working_in(&work).contains(&(engine as i32)),
        "the recorded engine leads the running engine's process group: {record}"
    );
    let id = record["stacks"][0]["id"].as_i64().unwrap().to_string();
    let early = slipway_run(
        dir,
        &moto.env(),
        &["resolve-interrupted", &id, "--note", "too early"],
    );
    assert_eq!(early.code, 1, "{}", early.stderr);
    assert!(
        early.stderr.contains("is still applying in a live process")
            && early.stderr.contains(&format!("engine pid {engine} on")),
        "{}",
        early.stderr
    );
    let status = slipway_ok(dir, &moto, &["status"]);
    assert!(
        !status.stderr.contains("interrupted: dev/queue"),
        "{}",
        status.stderr
    );

    // The engine survives its parent in its own process group: kill it too, as a dying
    // machine would. The held request never reaches the cloud.
    for group in process_groups_working_in(&work) {
        let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
    }
    wait_until(
        "the orphaned engine is gone",
        Duration::from_secs(30),
        || process_groups_working_in(&work).is_empty(),
    );

    // The record: run 2's stack run is still `applying`, owned by the dead process.
    let record = run_entry(dir, &moto, 2);
    assert_eq!(record["status"], "running", "{record}");
    let stack_run = &record["stacks"][0];
    assert_eq!(stack_run["stack"], "queue", "{record}");
    assert_eq!(stack_run["status"], "applying", "{record}");
    assert_eq!(stack_run["owner"]["pid"], pid, "{record}");
    let stack_run_id = stack_run["id"].as_i64().unwrap().to_string();

    // `status` names the interrupted instance, what it left, the stale lock and the way out.
    let status = slipway_ok(dir, &moto, &["status"]);
    insta::assert_snapshot!(
        "status_after_a_killed_apply",
        scrub(&format!("{}\n{}", status.stdout, status.stderr), dir)
    );

    // The next deploy reports it and does not apply that instance.
    let refused = slipway_run(dir, &moto.env(), &["deploy", "--stage", "dev"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    for expected in [
        "interrupted: dev/queue (stack run 2)",
        &format!("slipway resolve-interrupted {stack_run_id} --note"),
        "stale lock: stack `queue` in instance `dev` is locked by run 2",
        "x dev/queue: failed: stack `queue` in instance `dev` is locked by run 2",
    ] {
        assert!(
            refused.stderr.contains(expected),
            "{expected}\n{}",
            refused.stderr
        );
    }
    assert_eq!(retention(&sandbox, &moto, "webshop-dev-orders"), "345600");

    // A person resolves it: audited, the lock is freed.
    let resolved = slipway_ok(
        dir,
        &moto,
        &[
            "resolve-interrupted",
            &stack_run_id,
            "--note",
            "runner died; state list checked",
        ],
    );
    assert!(
        resolved
            .stderr
            .contains("freed the stale lock on dev/queue held by run 2"),
        "{}",
        resolved.stderr
    );
    let record = run_entry(dir, &moto, 2);
    assert_eq!(record["stacks"][0]["status"], "interrupted", "{record}");
    assert_eq!(record["status"], "interrupted", "{record}");
    let audit = audit_actions(dir);
    assert!(
        audit.contains(&(
            AuditAction::Interrupted,
            "runner died; state list checked".into()
        )),
        "{audit:?}"
    );
    assert!(
        audit
            .iter()
            .any(|(action, _)| *action == AuditAction::Unlock),
        "{audit:?}"
    );

    // The next deploy converges from the state as it was left, and nothing is left to do.
    let again = slipway_ok(dir, &moto, &["deploy", "--stage", "dev"]);
    assert!(!again.stderr.contains("interrupted:"), "{}", again.stderr);
    assert_eq!(retention(&sandbox, &moto, "webshop-dev-orders"), "86400");
    let plan = slipway_run(dir, &moto.env(), &["plan", "--stage", "dev"]);
    assert_eq!(
        plan.code, 0,
        "no changes left:\n{}\n{}",
        plan.stdout, plan.stderr
    );
    drop(proxy);
}

/// (action, note) of every audit entry in the project's record.
fn audit_actions(project: &Path) -> Vec<(AuditAction, String)> {
    audit_log(project)
        .into_iter()
        .map(|e| {
            let note = e.details["note"].as_str().unwrap_or_default().to_owned();
            (e.action, note)
        })
        .collect()
}

/// A run whose instance lock is taken over while it applies (another host judged it gone:
/// a network partition, a paused VM) stops its engine once, records no release, leaves the
/// new holder's lock alone, and leaves the apply for a person to resolve.
#[test]
fn a_lock_taken_over_mid_apply_interrupts_the_engine_and_records_nothing_more() {
    let (sandbox, moto) = sandbox();
    let project = queue_repository();
    let dir = project.path();
    slipway_ok(dir, &moto, &["deploy", "--stage", "dev"]);
    let config = dir.join("slipway.hcl");
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "engine = \"terraform\"",
        "engine = \"terraform\"\n  interrupt_grace = \"3s\"",
        1,
    );
    std::fs::write(&config, text).unwrap();
    commit_retention(dir, 86400);

    let proxy = HoldingProxy::start(moto.port(), "Action=SetQueueAttributes");
    let stderr_path = dir.join("deploy.stderr");
    let mut child = slipway_process(dir, &proxy.env(&moto.env()))
        .args(["deploy", "--stage", "dev"])
        .env("SLIPWAY_LOCK_HEARTBEAT", "1s")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    proxy
        .held
        .recv_timeout(Duration::from_secs(300))
        .expect("the apply reaches SetQueueAttributes");

    // Another host takes the lock over, as `break_stale_lock` would after the lease.
    let taken = take_lock_over(&dir.join(".slipway/slipway.db"), "queue", "dev", 9999);
    assert_eq!(taken, "1", "the lock row was there to take");

    let mut status = None;
    wait_until("the deploy stops", Duration::from_secs(120), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert_eq!(status.unwrap().code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("dev/queue: interrupted mid-apply"),
        "{stderr}"
    );
    let log = crate::failures::walk(&dir.join(".slipway/runs"))
        .into_iter()
        .filter(|p| p.ends_with("dev/queue.log"))
        .max()
        .expect("the stack's log");
    let log = std::fs::read_to_string(log).unwrap();
    assert_eq!(
        log.matches("== slipway: sent one interrupt").count(),
        1,
        "{log}"
    );

    // Nothing recorded as done: the stack run stays `applying` for a person to resolve, no
    // release, and the new holder keeps its lock.
    let record = run_entry(dir, &moto, 2);
    assert_eq!(record["stacks"][0]["status"], "applying", "{record}");
    let (release, locks) = crate::common::with_record(dir, |store| async move {
        (
            store.current_release("dev", "queue").await.unwrap(),
            store.instance_locks().await.unwrap(),
        )
    });
    assert_eq!(
        release.and_then(|r| r.run_id),
        Some(1),
        "run 1's release stays current"
    );
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert_eq!(locks[0].lock.owner.run_id, 9999, "{locks:?}");
    assert_eq!(retention(&sandbox, &moto, "webshop-dev-orders"), "345600");
    drop(proxy);
}

/// Rewrites the lock row as another host's grant, with a later fencing token. Returns how
/// many rows changed.
fn take_lock_over(db: &Path, stack: &str, instance: &str, run_id: i64) -> String {
    let script = "import sqlite3, sys\n\
        c = sqlite3.connect(sys.argv[1], timeout=30)\n\
        n = c.execute(\"UPDATE instance_locks SET run_id = ?, host = 'another-host', \
        fence = fence + 1000 WHERE stack = ? AND instance = ?\", \
        (int(sys.argv[4]), sys.argv[2], sys.argv[3])).rowcount\n\
        c.commit()\n\
        print(n)";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(db)
        .args([stack, instance, &run_id.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
