//! The fuzzing harness: what the `plan_reader` fuzz target (`fuzz/`) and the regression
//! test over its crashing inputs (`tests/fuzz_regressions.rs`) run. Not part of the crate's
//! API.
//!
//! The input is the bytes of `show -json`. When they parse, the plan goes where a run takes
//! it: the blast radius against every output's consumers, the stage's thresholds, the Rego
//! input document, and the report in every format. Errors are expected; a panic is a bug.

use crate::blast::StackLinks;
use crate::policy::{OnViolation, Policy, PolicyConfig, PolicySubject, policy_input};
use crate::read::parse_plan;
use crate::render::{render_markdown, render_terminal};
use crate::report::{Report, analyze_instance};
use crate::stateful::StatefulTypes;

/// The stack the plan is measured as.
const STACK: &str = "app";

/// `plan_reader`: reads the input as a plan and, when it parses, reports on it.
pub fn plan_reader(data: &[u8]) {
    let plan = match parse_plan(data) {
        Ok(plan) => plan,
        Err(error) => {
            // What the CLI shows: the error and its causes.
            let mut message = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                message.push_str(&cause.to_string());
                source = cause.source();
            }
            return;
        }
    };
    let stateful = StatefulTypes::builtin().extended(["custom_*".to_owned()]);
    // Every changed output is read by a downstream stack, which another one depends on.
    let mut links = StackLinks::default();
    for output in &plan.output_changes {
        links.link(STACK, &output.name, "consumer", &output.name);
    }
    links.link("consumer", "id", "edge", "consumer_id");
    let policy = Policy::new(
        PolicyConfig {
            max_deletes: Some(1),
            max_replaces: Some(0),
            max_score: Some(10.0),
            deny_stateful_deletes: true,
            protected_addresses: vec!["module.db.*".to_owned(), "aws_s3_bucket.*".to_owned()],
            protected_types: vec!["aws_db_*".to_owned()],
            on_violation: OnViolation::RequireApproval,
        },
        &[],
    );
    let Ok(policy) = policy else {
        return;
    };
    let mut instances = Vec::new();
    for (instance, policy) in [("prod", Some(&policy)), ("dev", None)] {
        if let Ok(report) = analyze_instance(STACK, instance, &plan, &stateful, &links, policy) {
            let _ = policy_input(&PolicySubject {
                stack: STACK,
                instance,
                plan: &plan,
                blast_radius: &report.blast_radius,
                stateful: &stateful,
            })
            .to_string();
            instances.push(report);
        }
    }
    let report = Report::new(instances);
    let _ = render_terminal(&report, true);
    let _ = render_terminal(&report, false);
    let _ = render_markdown(&report);
    let _ = report.to_json();
}

#[cfg(test)]
mod tests {
    use super::plan_reader;
    use crate::read::parse_plan;

    const PLAN: &[u8] = br#"{"format_version":"1.2","resource_changes":[{"address":"aws_s3_bucket.a","mode":"managed","type":"aws_s3_bucket","name":"a","change":{"actions":["delete"],"before":{},"after":null}}],"output_changes":{"id":{"actions":["update"],"before":1,"after":2}}}"#;

    #[test]
    fn reads_a_small_plan_and_rejects_garbage() {
        let plan = parse_plan(PLAN).expect("the plan reads");
        assert_eq!(plan.resource_changes.len(), 1);
        assert_eq!(plan.output_changes.len(), 1);
        plan_reader(PLAN);
        plan_reader(b"{\"format_version\":");
        plan_reader(b"");
    }
}
