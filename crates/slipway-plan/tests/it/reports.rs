//! Report snapshots (terminal without colour, Markdown, JSON) and the promise that no
//! sensitive value reaches any report format.

use std::fs;

use slipway_plan::{
    AnalyzeOptions, Policy, PolicyConfig, REPORT_SCHEMA, Report, StackLinks, StatefulTypes,
    analyze_file, analyze_instance, render_markdown, render_terminal,
};

use crate::{fixture, fixture_path};

/// Secret strings present in the values of the sensitive fixtures.
pub const SECRETS: [&str; 3] = [
    "fixture-secret-hunter2-XYZZY",
    "old-fixture-secret-value",
    "hand-secret-0xDEADBEEF",
];

const WARN_REPLACES: &str = r#"
package slipway

warn contains msg if {
    input.blast_radius.counts.replace > 0
    msg := sprintf("%s replaces %d resource(s)", [input.stack, input.blast_radius.counts.replace])
}
"#;

fn run_report() -> Report {
    let stateful = StatefulTypes::builtin();
    let mut links = StackLinks::default();
    links.link("orders", "queue_arn", "workers", "orders_queue_arn");
    links.link("workers", "worker_role", "api", "worker_role");
    let policy = Policy::new(
        PolicyConfig {
            max_replaces: Some(1),
            deny_stateful_deletes: true,
            ..Default::default()
        },
        &[("warn.rego".to_string(), WARN_REPLACES.to_string())],
    )
    .expect("policy loads");
    let instances = [
        ("orders", "replace.tf1.0.json", Some(&policy)),
        ("assets", "delete.tf1.11.json", None),
        ("events", "drift.tf1.11.json", None),
        ("mixed", "handwritten.forget-import.json", Some(&policy)),
        ("secrets", "sensitive.tf1.11.json", None),
    ];
    let reports = instances
        .into_iter()
        .map(|(stack, file, policy)| {
            analyze_instance(stack, "prod", &fixture(file), &stateful, &links, policy)
                .expect("analysis")
        })
        .collect();
    Report::new(reports)
}

#[test]
fn terminal_report() {
    insta::assert_snapshot!(render_terminal(&run_report(), false));
}

#[test]
fn markdown_report() {
    insta::assert_snapshot!(render_markdown(&run_report()));
}

#[test]
fn json_report() {
    let report = run_report();
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("valid JSON");
    assert_eq!(json["schema"], REPORT_SCHEMA);
    assert_eq!(json["total"]["counts"]["replace"], 3);
    insta::assert_snapshot!(report.to_json());
}

#[test]
fn colour_only_when_asked() {
    let report = run_report();
    assert!(render_terminal(&report, true).contains("\u{1b}["));
    assert!(!render_terminal(&report, false).contains('\u{1b}'));
    assert!(!render_markdown(&report).contains('\u{1b}'));
}

#[test]
fn no_sensitive_value_in_any_report() {
    for name in [
        "sensitive.tf1.0.json",
        "sensitive.tf1.11.json",
        "handwritten.forget-import.json",
    ] {
        let path = fixture_path(name);
        let raw = fs::read_to_string(&path).expect("fixture");
        assert!(
            SECRETS.iter().any(|secret| raw.contains(secret)),
            "{name} should carry a secret for this test to mean anything"
        );
        let report = analyze_file(&path, &AnalyzeOptions::default()).expect("analysis");
        for rendered in [
            report.to_json(),
            render_markdown(&report),
            render_terminal(&report, false),
            render_terminal(&report, true),
        ] {
            for secret in SECRETS {
                assert!(!rendered.contains(secret), "{name}: report leaks {secret}");
            }
        }
    }
}

#[test]
fn analyze_file_names_the_stack_after_the_file() {
    let report = analyze_file(
        &fixture_path("create.tf1.0.json"),
        &AnalyzeOptions::default(),
    )
    .expect("analysis");
    assert_eq!(report.instances.len(), 1);
    assert_eq!(report.instances[0].stack, "create.tf1.0");
    assert_eq!(report.instances[0].instance, "default");
    assert_eq!(report.total.counts.create, 3);
}

/// A report kept as JSON (with a plan saved for approval) reads back as the same report, so
/// a server renders later exactly what was measured when the plan was made.
#[test]
fn an_instance_report_reads_back_from_its_json_unchanged() {
    let report = run_report();
    assert!(!report.instances.is_empty());
    for instance in &report.instances {
        let kept = serde_json::to_value(instance).unwrap();
        let read: slipway_plan::InstanceReport = serde_json::from_value(kept).unwrap();
        assert_eq!(&read, instance);
    }
    let again = Report::new(
        report
            .instances
            .iter()
            .map(|i| serde_json::from_value(serde_json::to_value(i).unwrap()).unwrap())
            .collect(),
    );
    assert_eq!(render_markdown(&again), render_markdown(&report));
}
