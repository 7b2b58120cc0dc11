//! Failures mid-graph, timeouts and secrets, with the real engine and provider-free stacks.

use crate::common::{fixture, normalize, sandbox, slipway_run};

#[test]
fn a_failing_stack_skips_its_dependents_while_siblings_complete() {
    let (_sandbox, moto) = sandbox();
    let project = fixture("chain");
    let out = slipway_run(
        project.path(),
        &moto.env(),
        &["apply", "--stage", "dev", "-j", "1"],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let stderr = normalize(&out.stderr, project.path());
    assert!(stderr.contains("+ dev/base: applied"), "{stderr}");
    assert!(stderr.contains("+ dev/sibling: applied"), "{stderr}");
    // The engine's own reason, not only "see the log".
    assert!(stderr.contains("x dev/broken: failed: `plan` failed (exit code 1): Reference to undeclared input variable: An input variable with the name \"not_declared\" has not been declared."), "{stderr}");
    assert!(
        stderr.contains("; see [PROJECT]/.slipway/runs/[RUN]/dev/broken.log"),
        "{stderr}"
    );
    assert!(
        stderr.contains("dev/downstream: skipped, because `broken` did not succeed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("dev: 2 of 4 stacks applied, 1 failed, 1 skipped"),
        "{stderr}"
    );
    // The failing stack's log holds Terraform's own explanation.
    let log = std::fs::read_dir(project.path().join(".slipway/runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("dev/broken.log");
    let log = std::fs::read_to_string(log).unwrap();
    assert!(
        log.contains("Reference to undeclared input variable"),
        "{log}"
    );
}

#[test]
fn sensitive_outputs_reach_dependents_but_never_logs_or_the_terminal() {
    let (_sandbox, moto) = sandbox();
    let project = fixture("chain");
    let out = slipway_run(
        project.path(),
        &moto.env(),
        &["apply", "--stage", "dev", "--stack", "sibling", "--verbose"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        !out.stdout.contains("s3cr3t") && !out.stderr.contains("s3cr3t"),
        "{}",
        out.stderr
    );
    for entry in walk(&project.path().join(".slipway/runs")) {
        let text = std::fs::read_to_string(&entry).unwrap();
        assert!(!text.contains("s3cr3t"), "secret in {}", entry.display());
    }
    // The sibling really received it: its output is the secret's length.
    let state = std::fs::read_to_string(
        project
            .path()
            .join(".slipway/state/dev/sibling/terraform.tfstate"),
    )
    .unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(
        state["outputs"]["token_length"]["value"],
        serde_json::json!("s3cr3t-token-value".len())
    );
}

#[test]
fn plan_exit_codes_follow_detailed_exitcode() {
    let (_sandbox, moto) = sandbox();
    let project = fixture("chain");
    let plan = |project: &std::path::Path| {
        slipway_run(
            project,
            &moto.env(),
            &["plan", "--stage", "dev", "--stack", "base"],
        )
    };
    let before = plan(project.path());
    assert_eq!(
        before.code, 2,
        "changes pending before apply: {}",
        before.stderr
    );
    let apply = slipway_run(
        project.path(),
        &moto.env(),
        &["apply", "--stage", "dev", "--stack", "base"],
    );
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    let after = plan(project.path());
    assert_eq!(after.code, 0, "nothing to do after apply: {}", after.stderr);
    let failing = slipway_run(
        project.path(),
        &moto.env(),
        &["plan", "--stage", "dev", "--stack", "broken"],
    );
    assert_eq!(failing.code, 1, "{}", failing.stderr);
}

#[test]
fn a_hung_step_times_out_and_names_the_stack() {
    let (_sandbox, moto) = sandbox();
    let project = fixture("chain");
    let out = slipway_run(
        project.path(),
        &moto.env(),
        &[
            "apply",
            "--stage",
            "dev",
            "--stack",
            "base",
            "--step-timeout",
            "1ms",
        ],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let stderr = normalize(&out.stderr, project.path());
    assert!(
        stderr.contains("x dev/base: failed: `init` timed out after 1ms"),
        "{stderr}"
    );
}

pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = vec![];
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                pending.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files
}

#[test]
fn the_summary_names_the_failing_stack() {
    let (_sandbox, moto) = sandbox();
    let project = fixture("chain");
    let out = slipway_run(
        project.path(),
        &moto.env(),
        &["apply", "--stage", "dev", "-j", "1"],
    );
    assert_eq!(out.code, 1);
    insta::assert_snapshot!(normalize(&out.stderr, project.path()));
}

#[test]
fn history_keeps_the_engines_reason_for_a_failed_stack() {
    let (_sandbox, moto) = sandbox();
    let project = fixture("chain");
    let dir = project.path();
    crate::pipeline::git(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join(".gitignore"), ".slipway/\n").unwrap();
    crate::pipeline::git(dir, &["add", "-A"]);
    crate::pipeline::git(dir, &["commit", "-q", "-m", "chain"]);
    let out = slipway_run(dir, &moto.env(), &["deploy", "--stage", "dev", "-j", "1"]);
    assert_eq!(out.code, 1, "{}", out.stderr);

    let reason = "Reference to undeclared input variable: An input variable with the name \
                  \"not_declared\" has not been declared.";
    let text = slipway_run(dir, &moto.env(), &["history", "--stage", "dev"]).stdout;
    assert!(text.contains(&format!("        why: {reason}")), "{text}");
    let json: serde_json::Value = serde_json::from_str(
        &slipway_run(
            dir,
            &moto.env(),
            &["history", "--json", "--stack", "broken"],
        )
        .stdout,
    )
    .unwrap();
    let failed = &json["runs"][0]["stacks"][0];
    assert_eq!(failed["status"], "failed", "{json:#}");
    assert!(
        failed["failure_reason"]
            .as_str()
            .unwrap()
            .starts_with(reason),
        "{json:#}"
    );
    // The siblings that succeeded carry no reason.
    let all: serde_json::Value =
        serde_json::from_str(&slipway_run(dir, &moto.env(), &["history", "--json"]).stdout)
            .unwrap();
    let with_reason = all["runs"][0]["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| !s["failure_reason"].is_null())
        .count();
    assert_eq!(with_reason, 1, "{all:#}");
}

#[test]
fn json_streams_the_walk_as_one_event_per_line_and_ends_with_the_exit_code() {
    let (_sandbox, moto) = sandbox();
    let project = fixture("chain");
    let out = slipway_run(
        project.path(),
        &moto.env(),
        &["apply", "--stage", "dev", "-j", "1", "--json"],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let events: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let kind = |e: &serde_json::Value| e["event"].as_str().unwrap_or_default().to_owned();

    let walk = events.iter().find(|e| kind(e) == "walk_started").unwrap();
    assert_eq!(walk["operation"], "apply");
    assert_eq!(walk["stacks"][0], "base", "{walk}");

    // Each stack's steps come before its end, in the order the executor takes them.
    let steps: Vec<String> = events
        .iter()
        .filter(|e| kind(e) == "step_started" && e["stack"] == "base")
        .map(|e| e["step"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(steps[..2], ["prepare", "init"], "{steps:?}");
    assert!(steps.contains(&"apply".to_owned()), "{steps:?}");

    let outcome = |stack: &str| {
        events
            .iter()
            .find(|e| kind(e) == "stack_finished" && e["stack"] == stack)
            .unwrap_or_else(|| panic!("no stack_finished for {stack}: {}", out.stdout))["outcome"]
            .clone()
    };
    assert_eq!(outcome("base")["status"], "applied");
    assert_eq!(outcome("sibling")["status"], "applied");
    let broken = outcome("broken");
    assert_eq!(broken["status"], "failed");
    assert!(
        broken["error"]
            .as_str()
            .unwrap()
            .contains("Reference to undeclared input variable"),
        "{broken}"
    );
    assert_eq!(outcome("downstream")["status"], "skipped");

    let last = events.last().unwrap();
    assert_eq!(kind(last), "finished", "{last}");
    assert_eq!(last["exit_code"], 1);
    // Progress is the events' job now: none on stderr, which keeps the summary.
    assert!(!out.stderr.contains("dev/base: init"), "{}", out.stderr);
    assert!(!out.stdout.contains("s3cr3t"), "{}", out.stdout);

    // `plan --json`: the blast radius report comes as an event before the end, instead of
    // a document of its own.
    let plan = slipway_run(
        project.path(),
        &moto.env(),
        &["plan", "--stage", "dev", "--stack", "sibling", "--json"],
    );
    let events: Vec<serde_json::Value> = plan
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let report = events
        .iter()
        .find(|e| e["event"] == "report")
        .unwrap_or_else(|| panic!("no report event: {}", plan.stdout));
    assert_eq!(report["kind"], "blast_radius", "{report}");
    assert!(report["report"].is_object(), "{report}");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "finished", "{last}");
    assert_eq!(last["exit_code"], i64::from(plan.code), "{last}");
}
