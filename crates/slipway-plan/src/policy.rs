//! Policy per stage: thresholds over the blast radius, plus policy-as-code in Rego.
//!
//! Rego modules declare `package slipway` with `deny contains msg if { ... }` (blocks,
//! or requires approval, as the stage says) and `warn contains msg if { ... }` (shown).
//! Their input is built by [`policy_input`]; its shape is documented in
//! docs/blast-radius.md. The input carries no attribute values, so no sensitive value can
//! reach a policy or its messages through it.

use serde::{Deserialize, Serialize};

use crate::blast::BlastRadius;
use crate::glob::glob_match;
use crate::model::{ActionKind, Plan, ResourceChange};
use crate::stateful::StatefulTypes;

/// What a violated threshold or `deny` rule does at this stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnViolation {
    #[default]
    Block,
    RequireApproval,
}

/// A stage's policy thresholds, as plain configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    pub max_deletes: Option<u64>,
    pub max_replaces: Option<u64>,
    pub max_score: Option<f64>,
    /// Refuse any delete or replace of a stateful resource.
    pub deny_stateful_deletes: bool,
    /// Address patterns that may not be deleted, replaced or forgotten.
    pub protected_addresses: Vec<String>,
    /// Resource type patterns that may not be deleted, replaced or forgotten.
    pub protected_types: Vec<String>,
    pub on_violation: OnViolation,
}

/// How much a violation weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warn,
    RequireApproval,
    Block,
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The threshold's configuration name (`max_deletes`, ...) or `slipway.deny` /
    /// `slipway.warn` for Rego rules.
    pub rule: String,
    pub message: String,
    pub severity: Severity,
}

/// The outcome of a policy evaluation for one instance, or for a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    #[default]
    Pass,
    Warn,
    RequireApproval,
    Block,
}

impl Verdict {
    /// The verdict a set of violations leads to.
    pub fn of(violations: &[Violation]) -> Verdict {
        violations
            .iter()
            .map(|v| match v.severity {
                Severity::Warn => Verdict::Warn,
                Severity::RequireApproval => Verdict::RequireApproval,
                Severity::Block => Verdict::Block,
            })
            .max()
            .unwrap_or(Verdict::Pass)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Warn => "warn",
            Verdict::RequireApproval => "require approval",
            Verdict::Block => "block",
        }
    }
}

/// Why a policy could not be loaded or evaluated.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy module {module}: {message}")]
    Load { module: String, message: String },
    #[error("evaluating rule {rule}: {message}")]
    Eval { rule: String, message: String },
}

/// A stage's policy, with its Rego modules parsed once.
#[derive(Clone)]
pub struct Policy {
    config: PolicyConfig,
    engine: Option<regorus::Engine>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("config", &self.config)
            .field("rego", &self.engine.is_some())
            .finish()
    }
}

/// What a policy is evaluated over.
#[derive(Debug, Clone, Copy)]
pub struct PolicySubject<'a> {
    pub stack: &'a str,
    pub instance: &'a str,
    pub plan: &'a Plan,
    pub blast_radius: &'a BlastRadius,
    pub stateful: &'a StatefulTypes,
}

impl Policy {
    /// A policy from thresholds and Rego modules given as (file name, source) pairs.
    pub fn new(config: PolicyConfig, modules: &[(String, String)]) -> Result<Self, PolicyError> {
        let engine = if modules.is_empty() {
            None
        } else {
            let mut engine = regorus::Engine::new();
            for (name, source) in modules {
                engine
                    .add_policy(name.clone(), source.clone())
                    .map_err(|error| PolicyError::Load {
                        module: name.clone(),
                        message: error.to_string(),
                    })?;
            }
            Some(engine)
        };
        Ok(Self { config, engine })
    }

    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// Every violation, thresholds first, then Rego `deny`, then Rego `warn`.
    pub fn evaluate(&self, subject: &PolicySubject<'_>) -> Result<Vec<Violation>, PolicyError> {
        let mut violations = self.thresholds(subject);
        if let Some(engine) = &self.engine {
            // A clone keeps evaluations independent without re-parsing the modules.
            let mut engine = engine.clone();
            let input = policy_input(subject);
            let input = regorus::Value::from_json_str(&input.to_string()).map_err(|error| {
                PolicyError::Eval {
                    rule: "input".into(),
                    message: error.to_string(),
                }
            })?;
            engine.set_input(input);
            for (rule, severity) in [("deny", self.blocking_severity()), ("warn", Severity::Warn)] {
                for message in rego_messages(&mut engine, rule)? {
                    violations.push(Violation {
                        rule: format!("slipway.{rule}"),
                        message,
                        severity,
                    });
                }
            }
        }
        Ok(violations)
    }

    fn blocking_severity(&self) -> Severity {
        match self.config.on_violation {
            OnViolation::Block => Severity::Block,
            OnViolation::RequireApproval => Severity::RequireApproval,
        }
    }

    fn thresholds(&self, subject: &PolicySubject<'_>) -> Vec<Violation> {
        let config = &self.config;
        let severity = self.blocking_severity();
        let counts = &subject.blast_radius.counts;
        let mut violations = Vec::new();
        let mut violate = |rule: &str, message: String| {
            violations.push(Violation {
                rule: rule.to_string(),
                message,
                severity,
            });
        };
        if let Some(max) = config.max_deletes.filter(|max| counts.delete > *max) {
            violate(
                "max_deletes",
                format!("{} deletes exceed the maximum of {max}", counts.delete),
            );
        }
        if let Some(max) = config.max_replaces.filter(|max| counts.replace > *max) {
            violate(
                "max_replaces",
                format!("{} replaces exceed the maximum of {max}", counts.replace),
            );
        }
        let score = subject.blast_radius.score;
        if let Some(max) = config.max_score.filter(|max| score > *max) {
            violate(
                "max_score",
                format!("blast radius score {score} exceeds the maximum of {max}"),
            );
        }
        if config.deny_stateful_deletes {
            for risk in &subject.blast_radius.data_loss {
                violate(
                    "deny_stateful_deletes",
                    format!(
                        "{} ({}) would be {}, losing its data",
                        risk.address,
                        risk.resource_type,
                        destroyed_as(risk.action.kind())
                    ),
                );
            }
        }
        let destructive = subject
            .plan
            .resource_changes
            .iter()
            .filter(|change| is_destructive(change));
        for change in destructive {
            let verb = destroyed_as(change.action.kind());
            if let Some(pattern) = first_match(&config.protected_addresses, &change.address) {
                violate(
                    "protected_addresses",
                    format!(
                        "{} is protected (pattern \"{pattern}\") and would be {verb}",
                        change.address
                    ),
                );
            }
            if let Some(pattern) = first_match(&config.protected_types, &change.resource_type) {
                violate(
                    "protected_types",
                    format!(
                        "{} is of protected type {} (pattern \"{pattern}\") and would be {verb}",
                        change.address, change.resource_type
                    ),
                );
            }
        }
        violations
    }
}

fn is_destructive(change: &ResourceChange) -> bool {
    matches!(
        change.action.kind(),
        ActionKind::Delete | ActionKind::Replace | ActionKind::Forget
    )
}

fn destroyed_as(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::Replace => "replaced",
        ActionKind::Forget => "forgotten",
        _ => "deleted",
    }
}

fn first_match<'p>(patterns: &'p [String], text: &str) -> Option<&'p str> {
    patterns
        .iter()
        .find(|pattern| glob_match(pattern, text))
        .map(String::as_str)
}

/// The messages of `data.slipway.<rule>`: a set (or array) of strings, or of objects
/// with a `msg` field. An undefined rule yields none.
fn rego_messages(engine: &mut regorus::Engine, rule: &str) -> Result<Vec<String>, PolicyError> {
    let path = format!("data.slipway.{rule}");
    let eval_error = |error: &dyn std::fmt::Display| PolicyError::Eval {
        rule: path.clone(),
        message: error.to_string(),
    };
    let results = engine
        .eval_query(path.clone(), false)
        .map_err(|error| eval_error(&error))?;
    let mut messages = Vec::new();
    for result in &results.result {
        for expression in &result.expressions {
            let json = expression
                .value
                .to_json_str()
                .map_err(|error| eval_error(&error))?;
            let value: serde_json::Value =
                serde_json::from_str(&json).map_err(|error| eval_error(&error))?;
            match value {
                serde_json::Value::Array(items) => {
                    messages.extend(items.into_iter().map(message_text))
                }
                serde_json::Value::Null => {}
                other => messages.push(message_text(other)),
            }
        }
    }
    Ok(messages)
}

fn message_text(value: serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text,
        serde_json::Value::Object(ref fields) => match fields.get("msg") {
            Some(serde_json::Value::String(text)) => text.clone(),
            _ => value.to_string(),
        },
        other => other.to_string(),
    }
}

/// The Rego input document for one instance (documented in docs/blast-radius.md).
pub fn policy_input(subject: &PolicySubject<'_>) -> serde_json::Value {
    let change = |change: &ResourceChange| {
        serde_json::json!({
            "address": change.address,
            "previous_address": change.previous_address,
            "module_address": change.module_address,
            "mode": change.mode,
            "type": change.resource_type,
            "name": change.name,
            "provider_name": change.provider_name,
            "deposed": change.deposed,
            "actions": change.action.as_actions_str().split(',').collect::<Vec<_>>(),
            "action": change.action.kind().as_str(),
            "action_reason": change.action_reason,
            "importing": change.importing,
            "moved": change.moved(),
            "replace_paths": change.replace_paths,
            "changed_attributes": change.changed_attributes,
            "sensitive_attributes": change.sensitive_attributes,
            "stateful": subject.stateful.is_stateful(&change.resource_type),
        })
    };
    let plan = subject.plan;
    serde_json::json!({
        "stack": subject.stack,
        "instance": subject.instance,
        "format_version": plan.format_version,
        "terraform_version": plan.terraform_version,
        "resource_changes": plan.resource_changes.iter().map(change).collect::<Vec<_>>(),
        "resource_drift": plan.resource_drift.iter().map(change).collect::<Vec<_>>(),
        "output_changes": plan.output_changes.iter().map(|output| serde_json::json!({
            "name": output.name,
            "actions": output.action.as_actions_str().split(',').collect::<Vec<_>>(),
            "sensitive": output.sensitive,
        })).collect::<Vec<_>>(),
        "blast_radius": subject.blast_radius,
    })
}
