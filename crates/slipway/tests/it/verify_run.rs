//! Verification in `slipway run` on the sandbox, with the one-stack queue project: a change
//! that only breaks on top of the released version is stopped by *from latest*, a stack that
//! cannot be built from empty by *from zero*, a resource that never converges by the re-plan;
//! nothing reaches a stage then, and no ephemeral resource is left behind, also when the
//! run is interrupted mid-verification and `slipway gc` cleans up.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use slipway_sandbox::{Inventory, Moto};

use crate::common::{
    Output, assert_line, boto3, replace_patterns, sandbox, slipway_process, slipway_run,
};
use crate::pipeline::{as_tester, git, release_to_prod, slipway_ok};
use crate::queue_project::{queue_repository, scrub};

const QUEUE: &str = "stacks/queue/main.tf";

/// `slipway run`, to its end whatever the outcome.
fn pipeline_run(dir: &Path, moto: &Moto) -> Output {
    slipway_run(dir, &as_tester(moto.env()), &["run"])
}

/// Appends Terraform to the queue stack and commits it.
fn commit_queue(dir: &Path, append: &str, message: &str) {
    let path = dir.join(QUEUE);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{text}\n{append}\n")).unwrap();
    git(dir, &["commit", "-q", "-am", message]);
}

/// Replaces text in the queue stack and commits it.
fn change_queue(dir: &Path, from: &str, to: &str, message: &str) {
    let path = dir.join(QUEUE);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{text}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    git(dir, &["commit", "-q", "-am", message]);
}

/// The verification summary at the end of a run's output, with instance names, times,
/// paths and request ids scrubbed, for snapshots.
fn summary(stderr: &str, project: &Path) -> String {
    let start = regex_lite::Regex::new(r"(?m)^verify from (zero|latest)( in `|: skipped)")
        .unwrap()
        .find(stderr)
        .unwrap_or_else(|| panic!("no verification summary in:\n{stderr}"))
        .start();
    replace_patterns(
        scrub(&stderr[start..], project),
        &[
            (r"(zero|latest)-[0-9a-f]{4}", "$1-XXXX"),
            (r"request id: [A-Za-z0-9-]+", "request id: [ID]"),
        ],
    )
}

/// Every name in moto that belongs to an ephemeral instance.
fn ephemeral(inventory: &Inventory) -> Vec<String> {
    inventory
        .sqs_queues
        .iter()
        .chain(&inventory.iam_roles)
        .filter(|n| n.contains("zero-") || n.contains("latest-"))
        .cloned()
        .collect()
}

const ROLE: &str = r#"
resource "aws_iam_role" "reader" {
  name = "webshop-${var.env}-reader"
  path = "/"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = "sts:AssumeRole", Principal = { Service = "lambda.amazonaws.com" } }]
  })
  # The replacement is made before the old role goes, under the same name.
  lifecycle {
    create_before_destroy = true
  }
}
"#;

#[test]
fn a_change_that_breaks_only_on_top_of_the_release_is_stopped_by_from_latest() {
    let (_sandbox, moto) = sandbox();
    let project = queue_repository();
    let dir = project.path();
    commit_queue(dir, ROLE, "a reader role");
    release_to_prod(dir, &moto);
    let before = moto.inventory().unwrap();

    // `path` forces a new role; made before the old one is destroyed, it collides with it.
    change_queue(dir, r#"path = "/""#, r#"path = "/queue/""#, "role path");
    let out = pipeline_run(dir, &moto);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_line(
        &out.stderr,
        r"verify from zero in `zero-[0-9a-f]{4}`: passed",
    );
    assert_line(
        &out.stderr,
        r"verify from latest in `latest-[0-9a-f]{4}`: FAILED",
    );
    assert!(
        out.stderr.contains("queue: the change on top failed: ")
            && out.stderr.contains("EntityAlreadyExists"),
        "names the stack and the provider's error:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("stopped before its first stage"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("dev/queue"),
        "no stage was touched:\n{}",
        out.stderr
    );
    assert_eq!(moto.inventory().unwrap(), before, "nothing was left behind");
    insta::assert_snapshot!("from_latest_fails", summary(&out.stderr, dir));
}

#[test]
fn a_stack_that_cannot_be_built_from_empty_is_stopped_by_from_zero() {
    let (sandbox, moto) = sandbox();
    let project = queue_repository();
    let dir = project.path();
    // Someone made dev's dead-letter queue by hand; the stack only looks it up.
    boto3(
        &sandbox,
        &moto,
        "sqs",
        "c",
        "c.create_queue(QueueName='webshop-dev-dlq')",
    );
    commit_queue(
        dir,
        "data \"aws_sqs_queue\" \"dlq\" {\n  name = \"webshop-${var.env}-dlq\"\n}\n\noutput \"dlq_url\" {\n  value = data.aws_sqs_queue.dlq.url\n}",
        "read the hand-made dead-letter queue",
    );
    // The stage itself has it: a plain apply to dev works.
    slipway_ok(dir, &moto, &["apply", "--stage", "dev"]);
    let before = moto.inventory().unwrap();

    let out = pipeline_run(dir, &moto);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("verify from zero in `zero-") && out.stderr.contains("`: FAILED"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("queue: apply failed: "),
        "names the stack:\n{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("verify from latest: skipped: nothing is released to prod yet"),
        "{}",
        out.stderr
    );
    assert_eq!(moto.inventory().unwrap(), before, "nothing was left behind");
    insta::assert_snapshot!("from_zero_fails", summary(&out.stderr, dir));
}

#[test]
fn a_resource_that_never_converges_is_stopped_by_the_re_plan() {
    let (_sandbox, moto) = sandbox();
    let project = queue_repository();
    let dir = project.path();
    // Every plan sees a new timestamp: the tags never match.
    change_queue(
        dir,
        "stack   = \"queue\"",
        "stack   = \"queue\"\n    seen    = timestamp()",
        "stamp the queue",
    );
    let out = pipeline_run(dir, &moto);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "queue: does not converge: planned again right after its apply, it still changes aws_sqs_queue.orders (update)"
        ),
        "{}",
        out.stderr
    );
    assert!(
        moto.inventory().unwrap().is_empty(),
        "nothing reached a stage, nothing was left"
    );
    insta::assert_snapshot!("replan_fails", summary(&out.stderr, dir));
}

#[test]
fn a_first_run_verifies_from_zero_then_delivers() {
    let (_sandbox, moto) = sandbox();
    let project = queue_repository();
    let dir = project.path();
    let out = pipeline_run(dir, &moto);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_line(
        &out.stderr,
        r"verify from zero in `zero-[0-9a-f]{4}`: passed \(\d+\.\ds\)",
    );
    assert!(
        out.stderr.contains("awaiting approval at stage prod"),
        "{}",
        out.stderr
    );
    let inventory = moto.inventory().unwrap();
    assert!(ephemeral(&inventory).is_empty(), "{inventory:?}");
    assert_eq!(
        inventory.sqs_queues.len(),
        1,
        "only dev's queue: {inventory:?}"
    );
}

#[test]
fn an_interrupted_verification_leaves_nothing_after_gc() {
    let (_sandbox, moto) = sandbox();
    let project = queue_repository();
    let dir = project.path();
    let mut child = slipway_process(dir, &moto.env())
        .args(["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the from-zero instance holds its queue, then interrupt.
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let inventory = moto.inventory().unwrap();
        if !ephemeral(&inventory).is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no ephemeral queue appeared");
        assert!(child.try_wait().unwrap().is_none(), "the run ended first");
        std::thread::sleep(Duration::from_millis(200));
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("verify from zero"), "{stderr}");

    // Whatever the interrupted teardown left, gc destroys.
    let _ = slipway_run(dir, &moto.env(), &["gc"]);
    let inventory = moto.inventory().unwrap();
    assert!(ephemeral(&inventory).is_empty(), "{inventory:?}");
    let again = slipway_ok(dir, &moto, &["gc"]);
    assert!(
        again.stderr.contains("nothing to collect"),
        "{}",
        again.stderr
    );
}
