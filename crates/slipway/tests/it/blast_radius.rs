//! Blast radius and policy through the CLI: a change that would destroy the orders table is
//! blocked in prod (naming the table and the rule) and passes with a warning in dev, on the
//! sandbox; `slipway plan` prints the report in three formats; `slipway analyze` applies a
//! stage's thresholds to a plan JSON file made elsewhere.

use std::path::Path;

use crate::common::{Output, example, normalize, repo_root, sandbox, slipway_run};

/// A Rego module with one `deny` rule (stateful deletes in prod) and one `warn` rule
/// (stateful deletes anywhere).
const REGO: &str = r#"package slipway

deny contains msg if {
    input.instance == "prod"
    some change in input.resource_changes
    change.stateful
    change.action in {"delete", "replace"}
    msg := sprintf("%s holds data and may not be destroyed in prod", [change.address])
}

warn contains msg if {
    some change in input.resource_changes
    change.stateful
    change.action in {"delete", "replace"}
    msg := sprintf("%s would be destroyed in %s: its data goes with it", [change.address, input.instance])
}
"#;

/// Inserts `body` at the top of `stage "NAME" { ... }` in slipway.hcl.
fn add_to_stage(project: &Path, stage: &str, body: &str) {
    let path = project.join("slipway.hcl");
    let text = std::fs::read_to_string(&path).unwrap();
    let opening = format!("stage \"{stage}\" {{\n");
    assert!(text.contains(&opening), "no stage {stage} in {text}");
    std::fs::write(
        &path,
        text.replacen(&opening, &format!("{opening}{body}\n"), 1),
    )
    .unwrap();
}

/// The webshop with policies: prod refuses stateful deletes (threshold and Rego `deny`);
/// dev only has the Rego module, whose `warn` rule fires there.
fn webshop_with_policies() -> tempfile::TempDir {
    let project = example("webshop");
    std::fs::create_dir_all(project.path().join("policies")).unwrap();
    std::fs::write(project.path().join("policies/data.rego"), REGO).unwrap();
    add_to_stage(
        project.path(),
        "prod",
        "  policy {\n    deny_stateful_deletes = true\n    rego                  = [\"policies/data.rego\"]\n  }",
    );
    add_to_stage(
        project.path(),
        "dev",
        "  policy {\n    rego = [\"policies/data.rego\"]\n  }",
    );
    project
}

#[test]
fn destroying_the_orders_table_is_blocked_in_prod_and_warned_about_in_dev() {
    let (_sandbox, moto) = sandbox();
    let env = moto.env();
    let project = webshop_with_policies();
    for stage in ["dev", "prod"] {
        let out = slipway_run(
            project.path(),
            &env,
            &[
                "apply",
                "--stage",
                stage,
                "--stack",
                "data",
                "--approve",
                "first apply",
            ],
        );
        assert_eq!(out.code, 0, "first apply to {stage}:\n{}", out.stderr);
        assert!(!out.stderr.contains("warning:"), "{}", out.stderr);
    }

    // Renaming the table forces Terraform to replace it: delete, then create.
    let main_tf = project.path().join("stacks/data/main.tf");
    let code = std::fs::read_to_string(&main_tf).unwrap();
    let renamed = code.replace(
        "name         = \"webshop-${var.env}-orders\"",
        "name         = \"webshop-${var.env}-orders-v2\"",
    );
    assert_ne!(code, renamed, "the table's name was not found in main.tf");
    std::fs::write(&main_tf, renamed).unwrap();

    let prod = slipway_run(
        project.path(),
        &env,
        &[
            "apply",
            "--stage",
            "prod",
            "--stack",
            "data",
            "--approve",
            "rename",
        ],
    );
    assert_eq!(prod.code, 1, "prod must refuse:\n{}", prod.stderr);
    for expected in [
        "the policy of stage `prod` blocks this change of prod/data",
        "aws_dynamodb_table.orders (aws_dynamodb_table) would be replaced, losing its data [deny_stateful_deletes]",
        "aws_dynamodb_table.orders holds data and may not be destroyed in prod [slipway.deny]",
        "help:",
    ] {
        assert!(
            prod.stderr.contains(expected),
            "missing {expected:?} in:\n{}",
            prod.stderr
        );
    }
    let inventory = moto.inventory().unwrap();
    assert!(
        inventory
            .dynamodb_tables
            .contains(&"webshop-prod-orders".to_owned()),
        "the prod table must survive: {inventory}"
    );

    let dev = slipway_run(
        project.path(),
        &env,
        &["apply", "--stage", "dev", "--stack", "data"],
    );
    assert_eq!(dev.code, 0, "dev must pass:\n{}", dev.stderr);
    assert!(
        dev.stderr.contains(
            "warning: dev/data: aws_dynamodb_table.orders would be destroyed in dev: its data goes with it [slipway.warn]"
        ),
        "{}",
        dev.stderr
    );
    let tables = moto.inventory().unwrap().dynamodb_tables;
    assert!(
        tables.contains(&"webshop-dev-orders-v2".to_owned()),
        "{tables:?}"
    );
    assert!(
        !tables.contains(&"webshop-dev-orders".to_owned()),
        "{tables:?}"
    );
    assert!(
        tables.contains(&"webshop-prod-orders".to_owned()),
        "{tables:?}"
    );
}

#[test]
fn plan_prints_the_blast_radius_as_a_table_markdown_and_json() {
    let (_sandbox, moto) = sandbox();
    let env = moto.env();
    let project = webshop_with_policies();
    let out = slipway_run(
        project.path(),
        &env,
        &["apply", "--stage", "dev", "--stack", "data"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);

    // A small change: one more tag on the table only.
    let main_tf = project.path().join("stacks/data/main.tf");
    let code = std::fs::read_to_string(&main_tf).unwrap();
    let tagged = code.replace(
        "  tags = local.tags\n}",
        "  tags = merge(local.tags, { tier = \"gold\" })\n}",
    );
    assert_ne!(code, tagged);
    std::fs::write(&main_tf, tagged).unwrap();

    for (format, name) in [
        ("terminal", "plan_terminal"),
        ("markdown", "plan_markdown"),
        ("json", "plan_json"),
    ] {
        let plan = slipway_run(
            project.path(),
            &env,
            &[
                "plan", "--stage", "dev", "--stack", "data", "--format", format,
            ],
        );
        assert_eq!(plan.code, 2, "changes are pending:\n{}", plan.stderr);
        insta::assert_snapshot!(name, normalize(&plan.stdout, project.path()));
    }
    // Colour only on request when stdout is not a terminal.
    let plain = slipway_run(
        project.path(),
        &env,
        &["plan", "--stage", "dev", "--stack", "data"],
    );
    assert!(!plain.stdout.contains('\u{1b}'), "{}", plain.stdout);
    let colored = slipway_run(
        project.path(),
        &env,
        &[
            "plan", "--stage", "dev", "--stack", "data", "--color", "always",
        ],
    );
    assert!(colored.stdout.contains('\u{1b}'), "{}", colored.stdout);
}

/// A project whose stages each hold one threshold, for `slipway analyze --stage`.
fn thresholds_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("slipway.hcl"),
        r#"project { name = "thresholds" }

stage "deletes" {
  policy { max_deletes = 0 }
}
stage "types" {
  policy { protected_types = ["aws_s3_*"] }
}
stage "approval" {
  policy {
    max_deletes  = 0
    on_violation = "approval"
  }
}
stage "lenient" {
  policy { max_deletes = 1 }
}
stage "rego" {
  policy { rego = ["policies/missing.rego"] }
}
"#,
    )
    .unwrap();
    // One plan that deletes a bucket, recorded with Terraform 1.0.
    std::fs::copy(
        repo_root().join("crates/slipway-plan/tests/fixtures/delete.tf1.0.json"),
        dir.path().join("data.json"),
    )
    .unwrap();
    dir
}

#[test]
fn analyze_applies_a_stage_threshold_to_a_plan_file() {
    let project = thresholds_project();
    let analyze = |stage: &str| {
        slipway_run(
            project.path(),
            &[],
            &["analyze", "data.json", "--stage", stage, "--format", "json"],
        )
    };
    let verdict = |out: &Output| {
        let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        (
            json["total"]["verdict"].as_str().unwrap().to_owned(),
            json["instances"][0]["violations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| {
                    format!(
                        "{}: {}",
                        v["rule"].as_str().unwrap(),
                        v["message"].as_str().unwrap()
                    )
                })
                .collect::<Vec<_>>(),
        )
    };

    let deletes = analyze("deletes");
    assert_eq!(deletes.code, 1, "{}", deletes.stderr);
    assert_eq!(
        verdict(&deletes),
        (
            "block".into(),
            vec!["max_deletes: 1 deletes exceed the maximum of 0".into()]
        )
    );

    let types = analyze("types");
    assert_eq!(types.code, 1, "{}", types.stderr);
    assert_eq!(
        verdict(&types),
        (
            "block".into(),
            vec![
                "protected_types: aws_s3_bucket.assets is of protected type aws_s3_bucket (pattern \"aws_s3_*\") and would be deleted".into()
            ]
        )
    );

    let approval = analyze("approval");
    assert_eq!(
        approval.code, 0,
        "an approval is not a block: {}",
        approval.stderr
    );
    assert_eq!(verdict(&approval).0, "require_approval");

    let lenient = analyze("lenient");
    assert_eq!(lenient.code, 0, "{}", lenient.stderr);
    assert_eq!(verdict(&lenient), ("pass".into(), vec![]));

    let json: serde_json::Value = serde_json::from_str(&lenient.stdout).unwrap();
    assert_eq!(json["schema"], "slipway.blast-radius/v1");
    assert_eq!(json["instances"][0]["stack"], "data");
    assert_eq!(json["instances"][0]["instance"], "lenient");
    assert_eq!(json["instances"][0]["actions"]["delete"], 1);

    let rego = analyze("rego");
    assert_eq!(rego.code, 1);
    assert!(
        rego.stderr
            .contains("cannot read Rego module `policies/missing.rego` of stage `rego`")
            && rego.stderr.contains("help:"),
        "{}",
        rego.stderr
    );
}

#[test]
fn analyze_works_outside_a_project_with_the_builtin_list() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo_root().join("crates/slipway-plan/tests/fixtures/replace.tf1.11.json"),
        dir.path().join("db.plan.json"),
    )
    .unwrap();
    let out = slipway_run(
        dir.path(),
        &[],
        &["analyze", "db.plan.json", "--format", "json"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["instances"][0]["stack"], "db");
    assert_eq!(json["instances"][0]["instance"], "default");
    assert_eq!(json["total"]["verdict"], "pass");
    assert!(
        json["total"]["actions"]
            .as_object()
            .is_some_and(|a| !a.is_empty())
    );

    let staged = slipway_run(
        dir.path(),
        &[],
        &["analyze", "db.plan.json", "--stage", "prod"],
    );
    assert_eq!(staged.code, 1);
    assert!(
        staged.stderr.contains("needs a project"),
        "{}",
        staged.stderr
    );
}
