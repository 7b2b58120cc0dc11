//! Policy thresholds and Rego rules, over real recorded plans.

use slipway_plan::{
    OnViolation, Plan, Policy, PolicyConfig, PolicyError, PolicySubject, Severity, StackLinks,
    StatefulTypes, Violation, blast_radius, policy_input,
};

use crate::fixture;

fn evaluate(plan: &Plan, config: PolicyConfig, modules: &[(&str, &str)]) -> Vec<Violation> {
    let modules: Vec<(String, String)> = modules
        .iter()
        .map(|(n, s)| ((*n).to_string(), (*s).to_string()))
        .collect();
    let policy = Policy::new(config, &modules).expect("policy loads");
    let stateful = StatefulTypes::builtin();
    let radius = blast_radius("orders", plan, &stateful, &StackLinks::default());
    policy
        .evaluate(&PolicySubject {
            stack: "orders",
            instance: "prod",
            plan,
            blast_radius: &radius,
            stateful: &stateful,
        })
        .expect("policy evaluates")
}

fn rules(violations: &[Violation]) -> Vec<&str> {
    violations.iter().map(|v| v.rule.as_str()).collect()
}

#[test]
fn max_deletes() {
    let plan = fixture("delete.tf1.11.json");
    let strict = PolicyConfig {
        max_deletes: Some(0),
        ..Default::default()
    };
    let violations = evaluate(&plan, strict, &[]);
    assert_eq!(rules(&violations), vec!["max_deletes"]);
    assert_eq!(violations[0].message, "1 deletes exceed the maximum of 0");
    assert_eq!(violations[0].severity, Severity::Block);
    let lenient = PolicyConfig {
        max_deletes: Some(1),
        ..Default::default()
    };
    assert!(evaluate(&plan, lenient, &[]).is_empty());
}

#[test]
fn max_replaces() {
    let plan = fixture("replace.tf1.0.json");
    let strict = PolicyConfig {
        max_replaces: Some(1),
        ..Default::default()
    };
    assert_eq!(rules(&evaluate(&plan, strict, &[])), vec!["max_replaces"]);
    let lenient = PolicyConfig {
        max_replaces: Some(2),
        ..Default::default()
    };
    assert!(evaluate(&plan, lenient, &[]).is_empty());
}

#[test]
fn max_score() {
    let plan = fixture("replace.tf1.0.json");
    // 2 replaces (12), 1 data-loss risk (20), 1 changed output (2).
    let strict = PolicyConfig {
        max_score: Some(33.5),
        ..Default::default()
    };
    let violations = evaluate(&plan, strict, &[]);
    assert_eq!(rules(&violations), vec!["max_score"]);
    assert_eq!(
        violations[0].message,
        "blast radius score 34 exceeds the maximum of 33.5"
    );
    let lenient = PolicyConfig {
        max_score: Some(34.0),
        ..Default::default()
    };
    assert!(evaluate(&plan, lenient, &[]).is_empty());
}

#[test]
fn deny_stateful_deletes() {
    let plan = fixture("delete.tf1.0.json");
    let config = PolicyConfig {
        deny_stateful_deletes: true,
        ..Default::default()
    };
    let violations = evaluate(&plan, config, &[]);
    assert_eq!(rules(&violations), vec!["deny_stateful_deletes"]);
    assert_eq!(
        violations[0].message,
        "aws_s3_bucket.assets (aws_s3_bucket) would be deleted, losing its data"
    );
    // The same plan without the flag passes.
    assert!(evaluate(&plan, PolicyConfig::default(), &[]).is_empty());
}

#[test]
fn protected_addresses() {
    let plan = fixture("replace.tf1.11.json");
    let config = PolicyConfig {
        protected_addresses: vec!["aws_sqs_queue.*".into(), "aws_nothing.*".into()],
        ..Default::default()
    };
    let violations = evaluate(&plan, config, &[]);
    assert_eq!(rules(&violations), vec!["protected_addresses"]);
    assert_eq!(
        violations[0].message,
        "aws_sqs_queue.events is protected (pattern \"aws_sqs_queue.*\") and would be replaced"
    );
    // Updates to a protected address are allowed.
    let update = fixture("update.tf1.11.json");
    let config = PolicyConfig {
        protected_addresses: vec!["*".into()],
        ..Default::default()
    };
    assert!(evaluate(&update, config, &[]).is_empty());
}

#[test]
fn protected_types_and_require_approval() {
    let plan = fixture("delete.tf1.11.json");
    let config = PolicyConfig {
        protected_types: vec!["aws_s3_*".into()],
        on_violation: OnViolation::RequireApproval,
        ..Default::default()
    };
    let violations = evaluate(&plan, config, &[]);
    assert_eq!(rules(&violations), vec!["protected_types"]);
    assert_eq!(violations[0].severity, Severity::RequireApproval);
}

const DENY_DYNAMODB_REPLACE: &str = r#"
package slipway

deny contains msg if {
    some change in input.resource_changes
    change.type == "aws_dynamodb_table"
    change.action == "replace"
    msg := sprintf("%s in %s would be replaced", [change.address, input.instance])
}
"#;

const WARN_CHANGED_OUTPUTS: &str = r#"
package slipway

warn contains msg if {
    count(input.blast_radius.changed_outputs) > 0
    msg := sprintf("%d output(s) change: tell the consumers", [count(input.blast_radius.changed_outputs)])
}
"#;

#[test]
fn rego_deny() {
    let plan = fixture("replace.tf1.0.json");
    let violations = evaluate(
        &plan,
        PolicyConfig::default(),
        &[("deny.rego", DENY_DYNAMODB_REPLACE)],
    );
    assert_eq!(
        violations,
        vec![Violation {
            rule: "slipway.deny".into(),
            message: "aws_dynamodb_table.orders in prod would be replaced".into(),
            severity: Severity::Block,
        }]
    );
    // Not triggered by a plan without the replace.
    let update = fixture("update.tf1.0.json");
    assert!(
        evaluate(
            &update,
            PolicyConfig::default(),
            &[("deny.rego", DENY_DYNAMODB_REPLACE)]
        )
        .is_empty()
    );
}

#[test]
fn rego_warn_next_to_deny() {
    let plan = fixture("update.tf1.11.json");
    let violations = evaluate(
        &plan,
        PolicyConfig::default(),
        &[
            ("deny.rego", DENY_DYNAMODB_REPLACE),
            ("warn.rego", WARN_CHANGED_OUTPUTS),
        ],
    );
    assert_eq!(
        violations,
        vec![Violation {
            rule: "slipway.warn".into(),
            message: "1 output(s) change: tell the consumers".into(),
            severity: Severity::Warn,
        }]
    );
}

#[test]
fn rego_syntax_error_names_the_module() {
    let error = Policy::new(
        PolicyConfig::default(),
        &[(
            "broken.rego".into(),
            "package slipway\ndeny contains msg if {".into(),
        )],
    )
    .expect_err("broken module");
    assert!(matches!(&error, PolicyError::Load { module, .. } if module == "broken.rego"));
}

#[test]
fn rego_input_holds_no_sensitive_value() {
    for name in [
        "sensitive.tf1.0.json",
        "sensitive.tf1.11.json",
        "handwritten.forget-import.json",
    ] {
        let plan = fixture(name);
        let stateful = StatefulTypes::builtin();
        let radius = blast_radius("secrets", &plan, &stateful, &StackLinks::default());
        let input = policy_input(&PolicySubject {
            stack: "secrets",
            instance: "prod",
            plan: &plan,
            blast_radius: &radius,
            stateful: &stateful,
        })
        .to_string();
        for secret in crate::reports::SECRETS {
            assert!(!input.contains(secret), "{name}: input leaks {secret}");
        }
        assert!(input.contains("\"resource_changes\""));
    }
}

#[test]
fn policies_and_reports_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Policy>();
    send_sync::<slipway_plan::Report>();
    send_sync::<Plan>();
}
