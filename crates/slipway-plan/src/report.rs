//! The blast radius report of one run: N stack instances and a total, as a versioned JSON
//! document (schema `slipway.blast-radius/v1`, documented in docs/report-schema.md).
//! Rendering to text lives in `render`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::blast::{ActionCounts, BlastRadius, StackLinks, blast_radius};
use crate::model::{Action, Plan};
use crate::policy::{Policy, PolicyError, PolicySubject, Verdict, Violation};
use crate::read::{PlanError, read_plan_file};
use crate::stateful::StatefulTypes;

/// The JSON report's schema name; bump the version on any incompatible change.
pub const REPORT_SCHEMA: &str = "slipway.blast-radius/v1";

/// A resource change worth listing (everything but no-ops).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeSummary {
    pub address: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub action: Action,
    pub action_reason: Option<String>,
    pub previous_address: Option<String>,
    pub importing: bool,
    pub replace_paths: Vec<String>,
    pub changed_attributes: Vec<String>,
}

/// One stack instance's part of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceReport {
    pub stack: String,
    pub instance: String,
    pub format_version: String,
    pub terraform_version: Option<String>,
    #[serde(flatten)]
    pub blast_radius: BlastRadius,
    pub changes: Vec<ChangeSummary>,
    pub violations: Vec<Violation>,
    pub verdict: Verdict,
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Total {
    pub instances: usize,
    pub counts: ActionCounts,
    pub actions: BTreeMap<String, u64>,
    pub data_loss: usize,
    pub changed_outputs: usize,
    pub downstream_stacks: Vec<String>,
    pub score: f64,
    pub violations: usize,
    pub verdict: Verdict,
}

/// A run's blast radius report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub instances: Vec<InstanceReport>,
    pub total: Total,
}

impl Report {
    /// A report over these instances, with their total.
    pub fn new(instances: Vec<InstanceReport>) -> Self {
        let mut counts = ActionCounts::default();
        let mut actions: BTreeMap<String, u64> = BTreeMap::new();
        let mut downstream = BTreeSet::new();
        let (mut data_loss, mut changed_outputs, mut violations) = (0, 0, 0);
        let mut score = 0.0;
        let mut verdict = Verdict::Pass;
        for instance in &instances {
            let radius = &instance.blast_radius;
            counts.add(&radius.counts);
            for (joined, count) in &radius.actions {
                *actions.entry(joined.clone()).or_default() += count;
            }
            downstream.extend(radius.downstream.iter().map(|d| d.stack.clone()));
            data_loss += radius.data_loss.len();
            changed_outputs += radius.changed_outputs.len();
            violations += instance.violations.len();
            score += radius.score;
            verdict = verdict.max(instance.verdict);
        }
        let total = Total {
            instances: instances.len(),
            counts,
            actions,
            data_loss,
            changed_outputs,
            downstream_stacks: downstream.into_iter().collect(),
            score,
            violations,
            verdict,
        };
        Self {
            schema: REPORT_SCHEMA,
            instances,
            total,
        }
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain owned data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_else(|error| {
            format!("{{\"schema\":\"{REPORT_SCHEMA}\",\"error\":\"{error}\"}}")
        })
    }
}

/// Measures one instance's plan and checks it against the instance's stage policy.
pub fn analyze_instance(
    stack: &str,
    instance: &str,
    plan: &Plan,
    stateful: &StatefulTypes,
    links: &StackLinks,
    policy: Option<&Policy>,
) -> Result<InstanceReport, PolicyError> {
    let radius = blast_radius(stack, plan, stateful, links);
    let violations = match policy {
        Some(policy) => policy.evaluate(&PolicySubject {
            stack,
            instance,
            plan,
            blast_radius: &radius,
            stateful,
        })?,
        None => Vec::new(),
    };
    let changes = plan
        .resource_changes
        .iter()
        .filter(|change| change.action != Action::NoOp || change.moved() || change.importing)
        .map(|change| ChangeSummary {
            address: change.address.clone(),
            resource_type: change.resource_type.clone(),
            action: change.action,
            action_reason: change.action_reason.clone(),
            previous_address: change.previous_address.clone().filter(|_| change.moved()),
            importing: change.importing,
            replace_paths: change.replace_paths.clone(),
            changed_attributes: change.changed_attributes.clone(),
        })
        .collect();
    Ok(InstanceReport {
        stack: stack.to_string(),
        instance: instance.to_string(),
        format_version: plan.format_version.clone(),
        terraform_version: plan.terraform_version.clone(),
        verdict: Verdict::of(&violations),
        blast_radius: radius,
        changes,
        violations,
    })
}

/// Why `analyze_file` failed.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// Settings for [`analyze_file`].
#[derive(Debug, Clone)]
pub struct AnalyzeOptions {
    /// The instance (stage) name to report; `default` when not given.
    pub instance: String,
    pub stateful: StatefulTypes,
    pub links: StackLinks,
    pub policy: Option<Policy>,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        Self {
            instance: "default".to_string(),
            stateful: StatefulTypes::builtin(),
            links: StackLinks::default(),
            policy: None,
        }
    }
}

/// Analyzes one plan JSON file made elsewhere, as a run of one stack named after the file.
pub fn analyze_file(path: &Path, options: &AnalyzeOptions) -> Result<Report, AnalyzeError> {
    let plan = read_plan_file(path)?;
    let stack = stack_name_from_path(path);
    let instance = analyze_instance(
        &stack,
        &options.instance,
        &plan,
        &options.stateful,
        &options.links,
        options.policy.as_ref(),
    )?;
    Ok(Report::new(vec![instance]))
}

/// `network.json`, `network.plan.json` and `network.tfplan.json` all name stack `network`.
pub fn stack_name_from_path(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plan".to_string());
    let mut stem = name.as_str();
    for suffix in [".json", ".tfplan", ".plan"] {
        if let Some(stripped) = stem.strip_suffix(suffix).filter(|s| !s.is_empty()) {
            stem = stripped;
        }
    }
    stem.to_string()
}

#[cfg(test)]
mod tests {
    use super::stack_name_from_path;
    use std::path::Path;

    #[test]
    fn stack_names() {
        for (path, name) in [
            ("plans/network.json", "network"),
            ("network.plan.json", "network"),
            ("db.tfplan.json", "db"),
            (".json", ".json"),
            ("weird", "weird"),
        ] {
            assert_eq!(stack_name_from_path(Path::new(path)), name);
        }
    }
}
