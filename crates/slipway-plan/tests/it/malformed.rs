//! Malformed plans give clear, typed errors and never panic.

use std::fs;

use slipway_plan::{PlanError, parse_plan, read_plan, read_plan_file};

use crate::fixture_path;

#[test]
fn error_messages() {
    let cases: &[(&str, &str)] = &[
        ("empty", ""),
        ("whitespace", "  \n "),
        ("not_an_object", "[1,2]"),
        (
            "truncated",
            r#"{"format_version":"1.2","resource_changes":[{"address":"a""#,
        ),
        (
            "unknown_format_version",
            r#"{"format_version":"2.0","resource_changes":[]}"#,
        ),
        ("missing_format_version", r#"{"resource_changes":[]}"#),
        ("format_version_wrong_type", r#"{"format_version":2}"#),
        (
            "resource_changes_wrong_type",
            r#"{"format_version":"1.2","resource_changes":"x"}"#,
        ),
        (
            "actions_wrong_type",
            r#"{"format_version":"1.2","resource_changes":[{"address":"a.b","type":"a","change":{"actions":"create"}}]}"#,
        ),
        (
            "unsupported_actions",
            r#"{"format_version":"1.2","resource_changes":[{"address":"a.b","type":"a","change":{"actions":["explode"]}}]}"#,
        ),
        (
            "missing_change",
            r#"{"format_version":"1.2","resource_changes":[{"address":"a.b","type":"a"}]}"#,
        ),
        (
            "missing_address",
            r#"{"format_version":"1.2","resource_changes":[{"type":"a","change":{"actions":["create"]}}]}"#,
        ),
        ("trailing_garbage", r#"{"format_version":"1.2"} {"#),
    ];
    let mut rendered = String::new();
    for (name, text) in cases {
        let error = parse_plan(text.as_bytes()).expect_err(name);
        rendered.push_str(&format!("{name}: {error}\n"));
        // The streaming path agrees with the in-memory one (positions may differ by one
        // column: serde_json's reader and slice paths count differently).
        let streamed = read_plan(text.as_bytes()).expect_err(name);
        assert_eq!(
            std::mem::discriminant(&streamed),
            std::mem::discriminant(&error),
            "{name}"
        );
    }
    insta::assert_snapshot!(rendered);
}

#[test]
fn typed_errors() {
    assert!(matches!(parse_plan(b""), Err(PlanError::Empty)));
    assert!(matches!(
        parse_plan(br#"{"format_version":"3.1"}"#),
        Err(PlanError::UnsupportedFormatVersion(v)) if v == "3.1"
    ));
    assert!(matches!(
        parse_plan(b"{}"),
        Err(PlanError::MissingFormatVersion)
    ));
    let missing = read_plan_file(&fixture_path("no-such-plan.json"));
    assert!(matches!(missing, Err(PlanError::Io { .. })));
}

/// Cutting a real plan at every byte offset yields an error (or, past the last brace, the
/// plan itself), never a panic.
#[test]
fn every_truncation_of_a_real_plan() {
    let full = fs::read(fixture_path("replace.tf1.0.json")).expect("fixture");
    let complete = full.trim_ascii_end().len();
    let expected = parse_plan(&full).expect("full plan reads");
    for cut in 0..full.len() {
        match parse_plan(&full[..cut]) {
            Ok(plan) => {
                assert!(cut >= complete, "prefix of {cut} bytes accepted");
                assert_eq!(plan, expected);
            }
            Err(error) => {
                assert!(cut < complete, "complete plan rejected at {cut}: {error}");
                let is_typed = matches!(error, PlanError::Malformed { .. } | PlanError::Empty);
                assert!(is_typed, "cut {cut}: {error:?}");
            }
        }
    }
}

/// Replacing every byte in turn by a character that breaks JSON structure never panics.
#[test]
fn corrupted_bytes_never_panic() {
    let full = fs::read(fixture_path("handwritten.forget-import.json")).expect("fixture");
    let mut corrupted = full.clone();
    for at in 0..full.len() {
        for replacement in [b'{', b'"', b'9'] {
            corrupted[at] = replacement;
            let _ = parse_plan(&corrupted);
        }
        corrupted[at] = full[at];
    }
}
