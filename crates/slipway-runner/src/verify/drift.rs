//! Drift: whether the real infrastructure of a stack instance still matches its state. A
//! refresh-only plan per stack reads what exists, and the plan's `resource_drift` names the
//! resources changed or deleted outside Terraform and which attributes changed: names only,
//! never values (a drifted password must not end up in the record).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::json;
use slipway_core::Stage;
use slipway_plan::Action;
use slipway_store::{DriftCheck, VerificationRecord as _};

use crate::events::{Event, Severity, Step};
use crate::executor::{Executor, Operation, Outcome};
use crate::project::{Workspace, with_dependencies};
use crate::record;
use crate::stage_executor::ExecutorOptions;
use crate::verify::{instance, millis, released};

/// How one stack instance compares with its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftStatus {
    /// The real infrastructure matches the state.
    InSync,
    /// Something changed outside Terraform.
    Drifted,
    /// The stack cannot be checked: a dependency it reads was never applied to the instance.
    NotApplied,
    /// The check itself failed (see `error`).
    Failed,
}

/// One resource changed outside Terraform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftedResource {
    pub address: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    /// `delete` (it is gone) or `update` (attributes changed).
    pub change: String,
    /// Top-level attributes whose value changed (empty for a deleted resource).
    pub attributes: Vec<String>,
}

/// One stack's drift check.
#[derive(Debug, Clone, Serialize)]
pub struct StackDrift {
    pub stack: String,
    pub status: DriftStatus,
    pub resources: Vec<DriftedResource>,
    /// Why the stack could not be checked.
    pub error: Option<String>,
    pub elapsed_ms: u64,
    pub log: String,
}

/// The drifted resources of a plan's `resource_drift`, in address order.
pub fn drifted_resources(plan: &slipway_plan::Plan) -> Vec<DriftedResource> {
    let mut resources: Vec<DriftedResource> = plan
        .resource_drift
        .iter()
        .filter(|change| change.action != Action::NoOp)
        .map(|change| DriftedResource {
            address: change.address.clone(),
            resource_type: change.resource_type.clone(),
            change: change.action.as_actions_str().to_owned(),
            attributes: change.changed_attributes.clone(),
        })
        .collect();
    resources.sort_by(|a, b| a.address.cmp(&b.address));
    resources
}

/// Checks `stack` of the executor's instance; the outputs of the stacks it depends on must
/// have been read already (a `ReadOutputs` walk), since its variables are written from them.
pub async fn check_stack(executor: &Arc<Executor>, stack: &str) -> StackDrift {
    let started = Instant::now();
    let log_path = executor
        .run_dir
        .join(format!("{stack}.{}.drift.log", executor.instance));
    let result = check(executor, stack, &log_path).await;
    let (status, resources, error) = match result {
        Ok(Checked::Blocked(reason)) => (DriftStatus::NotApplied, Vec::new(), Some(reason)),
        Ok(Checked::Resources(resources)) if resources.is_empty() => {
            (DriftStatus::InSync, resources, None)
        }
        Ok(Checked::Resources(resources)) => (DriftStatus::Drifted, resources, None),
        Err(error) => (
            DriftStatus::Failed,
            Vec::new(),
            Some(
                slipway_engine::first_engine_error(&log_path)
                    .unwrap_or_else(|| format!("{error:#}")),
            ),
        ),
    };
    executor.events.ended(
        stack,
        matches!(status, DriftStatus::InSync | DriftStatus::Drifted),
        format!(
            "{} {}/{stack}: {}",
            match status {
                DriftStatus::InSync => "=",
                DriftStatus::Drifted => "~",
                DriftStatus::NotApplied => "?",
                DriftStatus::Failed => "x",
            },
            executor.instance,
            match status {
                DriftStatus::InSync => "in sync".to_owned(),
                DriftStatus::Drifted => format!("{} drifted", resources.len()),
                DriftStatus::NotApplied => "not checked".to_owned(),
                DriftStatus::Failed => "drift check failed".to_owned(),
            }
        ),
    );
    StackDrift {
        stack: stack.to_owned(),
        status,
        resources,
        error,
        elapsed_ms: millis(started.elapsed()),
        log: log_path.display().to_string(),
    }
}

enum Checked {
    Blocked(String),
    Resources(Vec<DriftedResource>),
}

async fn check(
    executor: &Arc<Executor>,
    name: &str,
    log_path: &std::path::Path,
) -> Result<Checked> {
    let stack = executor
        .project
        .stack(name)
        .with_context(|| format!("unknown stack `{name}`"))?;
    let log = executor.single_log(log_path)?;
    let working_copy = executor.prepare(name).map_err(anyhow::Error::from)?;
    // Planning (not applying) turns "a dependency has no outputs" into an outcome.
    if let Some(Outcome::InputsUnknown { reason }) = executor
        .write_inputs(stack, &working_copy, Operation::Plan, &log)
        .map_err(anyhow::Error::from)?
    {
        return Ok(Checked::Blocked(reason));
    }
    let credentials = executor.environment.for_stack(name);
    let ctx = executor.single_context(&working_copy, &log, &credentials);
    executor.events.step(name, Step::Init);
    executor.init(ctx, name).await?;
    executor.events.step(name, Step::Refresh);
    let plan = executor.engine.plan_refresh_only(ctx).await?;
    if !plan.has_changes {
        return Ok(Checked::Resources(Vec::new()));
    }
    executor.events.step(name, Step::Show);
    let parsed = executor
        .engine
        .show_json_with(ctx, &plan.plan_file, |pipe| slipway_plan::read_plan(pipe))
        .await?
        .context("cannot read the refresh-only plan")?;
    let _ = std::fs::remove_file(&plan.plan_file);
    Ok(Checked::Resources(drifted_resources(&parsed)))
}

/// A stage's drift check, as recorded.
#[derive(Debug)]
pub struct StageDrift {
    pub recorded: DriftCheck,
    /// Per stack, in dependency order.
    pub results: Vec<StackDrift>,
}

impl StageDrift {
    /// Resources changed outside Terraform, over every stack.
    pub fn drifted(&self) -> u64 {
        self.recorded.drifted
    }

    /// Whether a stack could not be checked (the answer is incomplete).
    pub fn failed(&self) -> bool {
        self.results
            .iter()
            .any(|r| matches!(r.status, DriftStatus::Failed))
    }
}

/// Checks `selected` stacks of `stage` for drift, each with the code the stage was given
/// (its released artifact), and records the result.
pub async fn check_stage(
    workspace: &Workspace,
    stage: &Stage,
    selected: &BTreeSet<String>,
    options: &ExecutorOptions,
) -> Result<StageDrift> {
    let project = &workspace.project;
    let involved = with_dependencies(project, selected);
    let store = record::open(workspace).await?;
    // The code the stage was given: its providers and variables are what the state was
    // written with.
    let code = released::fetch(workspace, &store, &stage.name, &involved).await?;
    let executor = instance::executor(
        workspace,
        stage,
        &stage.name,
        &involved,
        options,
        code.code(),
    )?;
    // Variables come from the dependencies' outputs, read from their state.
    let dependencies: BTreeSet<String> = involved
        .iter()
        .filter(|s| {
            project
                .graph
                .dependents(s)
                .iter()
                .any(|d| involved.contains(*d))
        })
        .cloned()
        .collect();
    let mut results: Vec<StackDrift> = Vec::new();
    if !dependencies.is_empty() {
        for read in executor.walk(&dependencies, Operation::ReadOutputs).await {
            if read.outcome.is_failure() {
                workspace.observer.observe(&Event::Note {
                    severity: Severity::Warning,
                    stage: Some(stage.name.clone()),
                    stack: Some(read.stack.clone()),
                    message: format!(
                        "warning: cannot read the outputs of `{}`: its dependents are not checked",
                        read.stack
                    ),
                });
            }
        }
    }
    let limit = Arc::new(tokio::sync::Semaphore::new(executor.parallelism.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for stack in project.graph.order_of(selected.iter().map(String::as_str)) {
        let executor = Arc::clone(&executor);
        let limit = Arc::clone(&limit);
        let stack = stack.to_owned();
        tasks.spawn(async move {
            let _turn = limit.acquire_owned().await;
            check_stack(&executor, &stack).await
        });
    }
    while let Some(joined) = tasks.join_next().await {
        results.push(joined?);
    }
    let order = project.graph.order_of(selected.iter().map(String::as_str));
    results.sort_by_key(|r| order.iter().position(|s| *s == r.stack));

    let drifted: u64 = results.iter().map(|r| r.resources.len() as u64).sum();
    let details = json!({ "stacks": results });
    let recorded = store.record_drift(&stage.name, drifted, &details).await?;
    Ok(StageDrift { recorded, results })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_lists_deleted_and_changed_resources_without_values() {
        let json = br#"{
          "format_version": "0.2",
          "terraform_version": "1.0.3",
          "resource_drift": [
            {"address": "aws_sqs_queue.orders", "mode": "managed", "type": "aws_sqs_queue",
             "name": "orders", "provider_name": "registry.terraform.io/hashicorp/aws",
             "change": {"actions": ["delete"], "before": {"name": "q", "tags": {}}, "after": null}},
            {"address": "aws_iam_role.app", "mode": "managed", "type": "aws_iam_role",
             "name": "app", "provider_name": "registry.terraform.io/hashicorp/aws",
             "change": {"actions": ["update"],
                        "before": {"name": "r", "description": "old-secret"},
                        "after": {"name": "r", "description": "new-secret"}}},
            {"address": "aws_vpc.main", "mode": "managed", "type": "aws_vpc", "name": "main",
             "change": {"actions": ["no-op"], "before": {}, "after": {}}}
          ],
          "resource_changes": []
        }"#;
        let plan = slipway_plan::parse_plan(json).unwrap();
        let drifted = drifted_resources(&plan);
        assert_eq!(
            drifted,
            vec![
                DriftedResource {
                    address: "aws_iam_role.app".into(),
                    resource_type: "aws_iam_role".into(),
                    change: "update".into(),
                    attributes: vec!["description".into()],
                },
                DriftedResource {
                    address: "aws_sqs_queue.orders".into(),
                    resource_type: "aws_sqs_queue".into(),
                    change: "delete".into(),
                    attributes: vec![],
                },
            ]
        );
        let text = serde_json::to_string(&drifted).unwrap();
        assert!(!text.contains("secret"), "{text}");
    }
}
