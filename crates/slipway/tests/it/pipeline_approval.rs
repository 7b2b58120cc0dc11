//! Approvals on the sandbox, beyond a modified plan file: a rejected run is over (`rejected`),
//! an approval is void once a newer run delivered to its stage, and void when the instance's
//! state changed between the approval and `resume` (a plan made against older state, which
//! Terraform calls stale). Changing prod around the pipeline needs an approval of its own
//! (`--approve`).

use std::path::Path;

use serde_json::Value;
use slipway_sandbox::Moto;
use slipway_store::AuditAction;

use crate::common::{audit_log, sandbox, slipway_run};
use crate::pipeline::{
    WITHOUT_VERIFICATION, as_tester, commit_retention, retention, run_id, slipway_ok,
};
use crate::queue_project::{queue_repository_with, scrub};

/// `slipway resume RUN`, expected to fail.
fn resume_fails(dir: &Path, moto: &Moto, id: &str) -> String {
    let output = slipway_run(dir, &as_tester(moto.env()), &["resume", id]);
    assert_eq!(output.code, 1, "{}", output.stderr);
    output.stderr
}

/// `slipway run` up to prod, whose plans are then approved; the run's id.
fn run_approved_for_prod(dir: &Path, moto: &Moto) -> String {
    let run = slipway_ok(dir, moto, &["run"]);
    let id = run_id(&run.stderr);
    slipway_ok(
        dir,
        moto,
        &["approve", &id, "--stage", "prod", "--reason", "reviewed"],
    );
    id
}

/// Prod's queue deployed around the pipeline, with an approval of its own.
fn hotfix_prod(dir: &Path, moto: &Moto) {
    slipway_ok(
        dir,
        moto,
        &[
            "deploy",
            "--stage",
            "prod",
            "--stack",
            "queue",
            "--approve",
            "hotfix",
        ],
    );
}

/// The run that released `stage`/`stack`, from `status --json`.
fn released_by_run(dir: &Path, moto: &Moto, stage: &str, stack: &str) -> Option<i64> {
    let status: Value =
        serde_json::from_str(&slipway_ok(dir, moto, &["status", "--json"]).stdout).unwrap();
    status["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stack"] == stack)?["stages"][stage]["run_id"]
        .as_i64()
}

/// The lines from `from` to the end of `text`.
fn tail<'a>(text: &'a str, from: &str) -> &'a str {
    let start = text
        .find(from)
        .unwrap_or_else(|| panic!("no `{from}` in:\n{text}"));
    &text[start..]
}

#[test]
fn rejected_runs_end_and_approvals_are_void_when_the_state_changed() {
    let (sandbox, moto) = sandbox();
    let project = queue_repository_with(WITHOUT_VERIFICATION);
    let dir = project.path();

    // Run 1 applies dev and stops at prod; a person rejects it: the run is over.
    let first = slipway_ok(dir, &moto, &["run"]);
    let id = run_id(&first.stderr);
    insta::assert_snapshot!(
        "awaiting_approval",
        scrub(tail(&first.stderr, "prod: 1 of 1 stack planned"), dir)
    );
    let rejected = slipway_ok(
        dir,
        &moto,
        &[
            "reject",
            &id,
            "--stage",
            "prod",
            "--reason",
            "not before the sale",
        ],
    );
    assert!(
        rejected
            .stderr
            .contains("rejected run 1 at stage prod; the run is over"),
        "{}",
        rejected.stderr
    );
    let history: Value = serde_json::from_str(
        &slipway_ok(dir, &moto, &["history", "--json", "--limit", "1"]).stdout,
    )
    .unwrap();
    let latest = &history["runs"][0];
    assert_eq!(latest["id"], 1, "{history}");
    assert_eq!(latest["status"], "rejected", "{history}");
    assert_eq!(latest["rejected"]["stage"], "prod", "{history}");
    assert_eq!(
        latest["rejected"]["reason"], "not before the sale",
        "{history}"
    );
    let prod = latest["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "prod")
        .unwrap();
    assert_eq!(prod["status"], "failed", "{history}");
    let text = slipway_ok(dir, &moto, &["history"]).stdout;
    assert!(text.contains("  run 1  "), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("  run 1 ")
                && l.ends_with("rejected by tester: not before the sale")),
        "{text}"
    );
    let refused = resume_fails(dir, &moto, &id);
    assert!(
        refused.contains("run 1 has no stage awaiting approval"),
        "{refused}"
    );
    assert_eq!(released_by_run(dir, &moto, "prod", "queue"), None);
    assert_eq!(released_by_run(dir, &moto, "dev", "queue"), Some(1));

    // Run 2 plans prod's first delivery and is approved; before it resumes, run 3 delivers
    // the queue to prod. Run 2's plans were made against what prod ran before: its approval
    // is void, `resume` refuses naming run 3, and nothing is applied.
    commit_retention(dir, 86400);
    let id = run_approved_for_prod(dir, &moto);
    assert_eq!(id, "2");
    // Going around the pipeline still needs someone's word for prod: without it nothing
    // runs and no run is recorded; with it, the approval is audited against the run.
    let unapproved = slipway_run(
        dir,
        &moto.env(),
        &["deploy", "--stage", "prod", "--stack", "queue"],
    );
    assert_eq!(unapproved.code, 1, "{}", unapproved.stderr);
    insta::assert_snapshot!("deploy_needs_approval", unapproved.stderr);
    hotfix_prod(dir, &moto);
    assert_eq!(released_by_run(dir, &moto, "prod", "queue"), Some(3));
    let approvals: Vec<_> = audit_log(dir)
        .into_iter()
        .filter(|e| e.action == AuditAction::Approve && e.run_id == Some(3))
        .collect();
    assert_eq!(approvals.len(), 1, "{approvals:?}");
    assert_eq!(approvals[0].stage.as_deref(), Some("prod"));
    assert_eq!(approvals[0].details["reason"], "hotfix");
    assert_eq!(approvals[0].details["command"], "deploy");
    let void = resume_fails(dir, &moto, &id);
    assert!(
        void.contains(
            "error: approval void: run 3 delivered to prod after run 2 planned it; the approved plans were made against what prod ran before, so nothing was applied"
        ) && void.contains("  help: start a new run (`slipway run`)"),
        "{void}"
    );
    assert!(!void.contains("resuming run"), "{void}");
    assert_eq!(
        released_by_run(dir, &moto, "prod", "queue"),
        Some(3),
        "run 2 released nothing to prod"
    );

    // Run 4 plans a change of prod's queue and is approved; prod's state changes before it
    // resumes, by a manual apply (run 5, which releases nothing): Terraform finds the saved
    // plan stale, and the approval is void.
    commit_retention(dir, 172_800);
    let id = run_approved_for_prod(dir, &moto);
    assert_eq!(id, "4");
    slipway_ok(
        dir,
        &moto,
        &[
            "apply",
            "--stage",
            "prod",
            "--stack",
            "queue",
            "--approve",
            "hotfix by hand",
        ],
    );
    let void = resume_fails(dir, &moto, &id);
    insta::assert_snapshot!(
        "approval_void_stale_plan",
        scrub(tail(&void, "resuming run"), dir)
    );
    assert_eq!(released_by_run(dir, &moto, "prod", "queue"), Some(3));
    assert_eq!(retention(&sandbox, &moto, "webshop-prod-orders"), "172800");
}
