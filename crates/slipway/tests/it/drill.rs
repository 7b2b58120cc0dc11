//! Drills on the sandbox: the webshop's prod is rebuilt from its released artifacts into an
//! ephemeral instance beside prod, timed per stack and in total, compared with prod, checked,
//! and torn down leaving nothing behind; a stack that cannot be rebuilt beside its stage (a
//! hard-coded name) fails the drill naming the stack and the reason; `slipway gc` destroys
//! what a kept drill left.

use std::path::Path;

use serde_json::Value;

use crate::common::{assert_line, sandbox, slipway_run};
use crate::pipeline::{git, release_to_prod, repository, slipway_ok};

fn drills(project: &Path, moto: &slipway_sandbox::Moto) -> Vec<Value> {
    let out = slipway_ok(project, moto, &["drills", "--json"]);
    serde_json::from_str::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_drill_rebuilds_prod_beside_it_and_leaves_nothing_behind() {
    let (_sandbox, moto) = sandbox();
    let project = repository();
    let dir = project.path();
    release_to_prod(dir, &moto);
    let before = moto.inventory().unwrap();
    assert!(
        before
            .sqs_queues
            .iter()
            .any(|q| q.ends_with("webshop-prod-orders"))
    );

    let out = slipway_ok(dir, &moto, &["drill", "--stage", "prod"]);
    let text = &out.stdout;
    assert!(text.contains("drill of prod into drill-"), "{text}");
    for stack in ["network", "data", "queue", "app"] {
        assert_line(text, &format!(r"^  {stack} +rebuilt in \d+\.\ds"));
    }
    assert!(text.contains("aws_subnet x2"), "{text}");
    assert!(text.contains("recovery time: "), "{text}");
    assert!(text.contains("(4 of 4 stacks rebuilt)"), "{text}");
    // What `slipway recover` would take on prod's own state: the probe of what is gone first.
    assert_line(
        text,
        r"^recovery on prod's own state \(`slipway recover`\): about \d+\.\ds \(\d+\.\ds to establish what is gone, then the rebuild\)$",
    );
    assert!(text.contains("check queue/queue: passed"), "{text}");
    assert!(text.contains("teardown: destroyed in"), "{text}");

    // Everything the drill built is gone; prod is as it was.
    assert_eq!(moto.inventory().unwrap(), before);
    let recorded = drills(dir, &moto);
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["status"], "succeeded");
    assert_eq!(recorded[0]["stage"], "prod");
    assert!(recorded[0]["total_ms"].as_u64().unwrap() > 0);
    assert!(
        recorded[0]["details"]["own_state_probe_ms"]
            .as_u64()
            .unwrap()
            > 0,
        "{}",
        recorded[0]
    );
    assert_eq!(
        recorded[0]["details"]["stacks"]["network"]["rebuilt_resources"]["aws_subnet"],
        2
    );
    let listing = slipway_ok(dir, &moto, &["drills"]).stdout;
    assert!(listing.contains("succeeded"), "{listing}");
    let gc = slipway_ok(dir, &moto, &["gc"]);
    assert!(gc.stderr.contains("nothing to collect"), "{}", gc.stderr);
}

#[test]
fn a_hard_coded_name_fails_the_drill_naming_the_stack_and_gc_cleans_a_kept_drill() {
    let (_sandbox, moto) = sandbox();
    let project = repository();
    let dir = project.path();
    // The app's role ignores the instance name: a second instance cannot have it.
    let main = dir.join("stacks/app/main.tf");
    let text = std::fs::read_to_string(&main).unwrap();
    std::fs::write(
        &main,
        text.replacen(
            r#"name = "webshop-${var.env}-app""#,
            r#"name = "webshop-app""#,
            1,
        ),
    )
    .unwrap();
    git(dir, &["commit", "-q", "-am", "fixed role name"]);
    release_to_prod(dir, &moto);
    let before = moto.inventory().unwrap();

    let out = slipway_run(dir, &moto.env(), &["drill", "--stage", "prod"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("drill of prod into drill-"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("FAILED"), "{}", out.stdout);
    assert!(
        out.stderr.contains("app: ") && out.stderr.contains("EntityAlreadyExists"),
        "names the stack and why:\n{}",
        out.stderr
    );
    assert!(out.stdout.contains("teardown: destroyed"), "{}", out.stdout);
    assert_eq!(
        moto.inventory().unwrap(),
        before,
        "the failed drill left nothing"
    );
    assert_eq!(drills(dir, &moto)[0]["status"], "failed");

    // A kept drill stays up and on record until `slipway gc`.
    let _ = slipway_run(dir, &moto.env(), &["drill", "--stage", "prod", "--keep"]);
    assert_ne!(moto.inventory().unwrap(), before, "the kept instance is up");
    let gc = slipway_ok(dir, &moto, &["gc"]);
    assert!(
        gc.stdout.contains("destroyed drill-"),
        "{}\n{}",
        gc.stdout,
        gc.stderr
    );
    assert_eq!(moto.inventory().unwrap(), before);
    let again = slipway_ok(dir, &moto, &["gc"]);
    assert!(
        again.stderr.contains("nothing to collect"),
        "{}",
        again.stderr
    );
}

#[test]
fn a_drill_without_releases_names_every_stack_it_cannot_rebuild() {
    let project = repository();
    let dir = project.path();
    let out = slipway_run(dir, &[], &["drill", "--stage", "prod"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    for stack in ["network", "data", "queue", "app"] {
        assert!(
            out.stderr
                .contains(&format!("{stack}: no release of `{stack}` in prod")),
            "{}",
            out.stderr
        );
    }
}
