//! The pipeline on the sandbox: artifacts built at a commit flow dev -> test -> prod with the
//! same ids, a rollback brings the previous artifact back (and moto shows it), a tampered
//! artifact is refused before any Terraform command, and `slipway run` stops at a stage
//! that needs approval, applies exactly the approved plans, and refuses changed ones.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use slipway_sandbox::{Moto, Sandbox};

use crate::common::{Output, boto3, example, sandbox, slipway_ok_with, slipway_run};

pub(crate) fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// The webshop example as a git repository with one commit.
pub(crate) fn repository() -> tempfile::TempDir {
    repository_with("")
}

/// Verification off: for tests of what happens after it (verify_run.rs tests it), so that
/// a run applies each stage once and no ephemeral instances besides.
pub(crate) const WITHOUT_VERIFICATION: &str =
    "\nverify {\n  from_zero   = false\n  from_latest = false\n}\n";

/// The webshop example with `extra` appended to its slipway.hcl, as a git repository with
/// one commit.
pub(crate) fn repository_with(extra: &str) -> tempfile::TempDir {
    let project = example("webshop");
    if !extra.is_empty() {
        let config = project.path().join("slipway.hcl");
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, format!("{text}{extra}")).unwrap();
    }
    git(project.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(project.path().join(".gitignore"), ".slipway/\n").unwrap();
    git(project.path(), &["add", "-A"]);
    git(project.path(), &["commit", "-q", "-m", "webshop"]);
    project
}

/// Changes the queue's message retention and commits it.
pub(crate) fn commit_retention(project: &Path, seconds: u32) {
    let path = project.join("stacks/queue/main.tf");
    let text = std::fs::read_to_string(&path).unwrap();
    let changed = regex_lite::Regex::new(r"message_retention_seconds  = \d+")
        .unwrap()
        .replace(&text, format!("message_retention_seconds  = {seconds}"))
        .into_owned();
    assert_ne!(text, changed);
    std::fs::write(&path, changed).unwrap();
    git(project, &["commit", "-q", "-am", "queue retention"]);
}

/// `env` acting as `tester`, the name the record keeps for who did what.
pub(crate) fn as_tester(mut env: Vec<(String, String)>) -> Vec<(String, String)> {
    env.push(("SLIPWAY_ACTOR".to_owned(), "tester".to_owned()));
    env
}

pub(crate) fn slipway_ok(project: &Path, moto: &Moto, args: &[&str]) -> Output {
    slipway_ok_with(project, &as_tester(moto.env()), args)
}

/// Deploys the current commit to prod, approved: prod's first release.
pub(crate) fn release_to_prod(project: &Path, moto: &Moto) {
    slipway_ok(
        project,
        moto,
        &["deploy", "--stage", "prod", "--approve", "first release"],
    );
}

pub(crate) fn status(project: &Path, moto: &Moto) -> Value {
    serde_json::from_str(&slipway_ok(project, moto, &["status", "--json"]).stdout).unwrap()
}

/// stage -> artifact id of `stack`, from `status --json`.
pub(crate) fn ids(status: &Value, stack: &str) -> Vec<(String, String)> {
    let row = status["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stack"] == stack)
        .unwrap();
    row["stages"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(stage, cell)| {
            (
                stage.clone(),
                cell["artifact_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The queue's retention as moto reports it (through the SQS API).
pub(crate) fn retention(sandbox: &Sandbox, moto: &Moto, queue: &str) -> String {
    boto3(
        sandbox,
        moto,
        "sqs",
        "c",
        &format!(
            "u = c.get_queue_url(QueueName='{queue}')['QueueUrl']\nprint(c.get_queue_attributes(QueueUrl=u, AttributeNames=['MessageRetentionPeriod'])['Attributes']['MessageRetentionPeriod'])"
        ),
    )
}

/// Where the local artifact store keeps an artifact.
pub(crate) fn stored(project: &Path, id: &str) -> PathBuf {
    let hex = id.strip_prefix("sha256:").unwrap();
    project
        .join(".slipway/artifacts/sha256")
        .join(&hex[..2])
        .join(format!("{}.tar.zst", &hex[2..]))
}

#[test]
fn artifacts_flow_through_stages_roll_back_and_tampering_is_refused() {
    let (sandbox, moto) = sandbox();
    let project = repository();
    let dir = project.path();

    slipway_ok(dir, &moto, &["deploy", "--stage", "dev"]);
    slipway_ok(dir, &moto, &["promote", "--from", "dev", "--to", "test"]);
    slipway_ok(
        dir,
        &moto,
        &[
            "promote",
            "--from",
            "test",
            "--to",
            "prod",
            "--approve",
            "tested",
        ],
    );
    let first = status(dir, &moto);
    for stack in ["network", "data", "queue", "app"] {
        let ids = ids(&first, stack);
        assert_eq!(ids.len(), 3, "{stack} runs in every stage: {first}");
        assert!(
            ids.iter().all(|(_, id)| *id == ids[0].1),
            "{stack} runs the same artifact everywhere: {ids:?}"
        );
    }
    let old_queue = ids(&first, "queue")[0].1.clone();
    assert_eq!(retention(&sandbox, &moto, "webshop-dev-orders"), "345600");

    // A new commit changes the queue: dev gets a new artifact, the other stages differ.
    commit_retention(dir, 86400);
    slipway_ok(
        dir,
        &moto,
        &["deploy", "--stage", "dev", "--stack", "queue"],
    );
    let second = status(dir, &moto);
    let queue_ids = ids(&second, "queue");
    let dev_queue = queue_ids
        .iter()
        .find(|(s, _)| s == "dev")
        .unwrap()
        .1
        .clone();
    assert_ne!(dev_queue, old_queue);
    assert_eq!(retention(&sandbox, &moto, "webshop-dev-orders"), "86400");

    // Rollback restores the previous artifact, and the cloud follows.
    let rolled = slipway_ok(
        dir,
        &moto,
        &["rollback", "--stage", "dev", "--stack", "queue"],
    );
    assert!(
        rolled.stderr.contains("rolling dev/queue back to"),
        "{}",
        rolled.stderr
    );
    let third = status(dir, &moto);
    assert!(ids(&third, "queue").iter().all(|(_, id)| *id == old_queue));
    assert_eq!(retention(&sandbox, &moto, "webshop-dev-orders"), "345600");

    let history = slipway_ok(
        dir,
        &moto,
        &["history", "--stack", "queue", "--stage", "dev", "--json"],
    );
    let history: Value = serde_json::from_str(&history.stdout).unwrap();
    assert_eq!(
        history["releases"].as_array().unwrap().len(),
        3,
        "{history}"
    );
    // Each stack run keeps the engine's count of what its plan changed, newest first:
    // the rollback and the retention change update the queue, the first deploy created it.
    let counts: Vec<Value> = history["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| {
            let summary = run["stacks"][0]["plan_summary"].as_str().unwrap_or("null");
            serde_json::from_str::<Value>(summary).unwrap()["counts"].clone()
        })
        .collect();
    assert_eq!(counts.len(), 3, "{history}");
    let triple = |c: &Value| {
        (
            c["add"].as_u64(),
            c["change"].as_u64(),
            c["destroy"].as_u64(),
        )
    };
    assert_eq!(triple(&counts[0]), (Some(0), Some(1), Some(0)), "{history}");
    assert_eq!(triple(&counts[1]), (Some(0), Some(1), Some(0)), "{history}");
    let (created, changed, destroyed) = triple(&counts[2]);
    assert!(created.unwrap() >= 1, "{history}");
    assert_eq!((changed, destroyed), (Some(0), Some(0)), "{history}");

    // Tamper with the stored bytes of the dev queue artifact: promoting it is refused
    // before any Terraform command runs.
    let path = stored(dir, &old_queue);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, bytes).unwrap();
    let runs_before = std::fs::read_dir(dir.join(".slipway/runs"))
        .unwrap()
        .count();
    let refused = slipway_run(
        dir,
        &moto.env(),
        &[
            "promote",
            "--from",
            "test",
            "--to",
            "prod",
            "--stack",
            "queue",
            "--approve",
            "tested",
        ],
    );
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains(&format!("artifact {old_queue} of stack `queue` is refused")),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("tampered"), "{}", refused.stderr);
    let runs_after = std::fs::read_dir(dir.join(".slipway/runs"))
        .unwrap()
        .count();
    assert_eq!(runs_before, runs_after, "no engine command ran");
}

/// The run id `slipway run` printed.
pub(crate) fn run_id(stderr: &str) -> String {
    regex_lite::Regex::new(r"run (\d+): commit")
        .unwrap()
        .captures(stderr)
        .unwrap_or_else(|| panic!("no run id in:\n{stderr}"))[1]
        .to_owned()
}

#[test]
fn run_delivers_changed_stacks_and_stops_for_approval_bound_to_the_plan() {
    let (_sandbox, moto) = sandbox();
    let project = repository_with(WITHOUT_VERIFICATION);
    let dir = project.path();

    // First run: every stack, dev and test applied, prod waits for approval.
    let first = slipway_ok(dir, &moto, &["run"]);
    assert!(
        first
            .stderr
            .contains("run 1 is awaiting approval at stage prod"),
        "{}",
        first.stderr
    );
    let id = run_id(&first.stderr);
    let resume_unapproved = slipway_run(dir, &moto.env(), &["resume", &id]);
    assert_eq!(resume_unapproved.code, 1);
    assert!(resume_unapproved.stderr.contains("nobody approved it yet"));
    slipway_ok(
        dir,
        &moto,
        &["approve", &id, "--stage", "prod", "--reason", "reviewed"],
    );
    slipway_ok(dir, &moto, &["resume", &id]);
    let after = status(dir, &moto);
    for stack in ["network", "data", "queue", "app"] {
        let ids = ids(&after, stack);
        assert_eq!(ids.len(), 3, "{after}");
        assert!(ids.iter().all(|(_, i)| *i == ids[0].1), "{ids:?}");
    }

    // Second commit changes the queue: only queue and its dependent app run.
    commit_retention(dir, 86400);
    let second = slipway_ok(dir, &moto, &["run"]);
    assert!(
        second.stderr.contains("changed since") && second.stderr.contains(": app, queue\n"),
        "{}",
        second.stderr
    );
    let id = run_id(&second.stderr);
    let history: Value = serde_json::from_str(
        &slipway_ok(dir, &moto, &["history", "--json", "--limit", "1"]).stdout,
    )
    .unwrap();
    let mut stacks: Vec<&str> = history["runs"][0]["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stack"].as_str().unwrap())
        .collect();
    stacks.sort_unstable();
    stacks.dedup();
    assert_eq!(stacks, ["app", "queue"]);

    // The approved plan changes afterwards: the approval is void and nothing is applied.
    slipway_ok(
        dir,
        &moto,
        &["approve", &id, "--stage", "prod", "--reason", "ok"],
    );
    let plan = dir.join(format!(".slipway/plans/run-{id}/prod/queue.tfplan"));
    let mut bytes = std::fs::read(&plan).unwrap();
    bytes.push(0);
    std::fs::write(&plan, bytes).unwrap();
    let refused = slipway_run(dir, &moto.env(), &["resume", &id]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("approval void"),
        "{}",
        refused.stderr
    );
    let prod_queue = ids(&status(dir, &moto), "queue");
    let test_id = &prod_queue.iter().find(|(s, _)| s == "test").unwrap().1;
    let prod_id = &prod_queue.iter().find(|(s, _)| s == "prod").unwrap().1;
    assert_ne!(test_id, prod_id, "prod still runs the old queue artifact");
}
