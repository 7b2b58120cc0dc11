//! Previews: with `preview { stage = "dev", ttl = "24h" }` in the default branch's
//! slipway.hcl, a pull request's job also applies an ephemeral instance `pr-<number>` of the
//! stacks it changes and what they depend on, from the head's artifacts, with the stage's
//! variables and (as every setting of a pull request) the default branch's configuration and
//! the stage's plan credentials only. Its non-sensitive outputs are listed in the comment.
//!
//! The instance is on record (`instances`, purpose `preview`) from before anything is applied,
//! like every ephemeral instance, so `slipway gc` finds it once the server is gone. A later
//! push applies the same instance again and restarts its time to live (its `created_at`
//! moves). It is destroyed by a job queued when the pull request is closed or merged, or by
//! the scheduler once `ttl` passed since the last push.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use anyhow::{Context as _, Result};
use slipway_core::Stage;
use slipway_core::config::pull_requests::PreviewConfig;
use slipway_engine::Output;
use slipway_runner::executor::{CodeSource, Operation, StackResult};
use slipway_runner::pipeline::artifacts::{self, Built};
use slipway_runner::project::Workspace;
use slipway_runner::stage_executor::ExecutorOptions;
use slipway_runner::verify::{instance, inventory};
use slipway_store::{EphemeralInstance, NewInstance, VerificationRecord as _};

/// The purpose previews are recorded with.
pub const PURPOSE: &str = "preview";

/// Where the preview's part of a report starts: the destroy job replaces what follows.
const MARKER: &str = "<!-- slipway:preview -->";

/// The longest output value shown in a comment.
const MAX_VALUE: usize = 200;

/// `changed` with every stack they depend on, directly or not.
pub(crate) fn with_dependencies(
    project: &slipway_core::config::Project,
    changed: &BTreeSet<String>,
) -> BTreeSet<String> {
    let mut all = changed.clone();
    let mut todo: Vec<String> = changed.iter().cloned().collect();
    while let Some(stack) = todo.pop() {
        for dependency in project.graph.dependencies(&stack) {
            if all.insert(dependency.to_owned()) {
                todo.push(dependency.to_owned());
            }
        }
    }
    all
}

/// What applying a preview did.
pub(crate) struct Applied {
    pub instance: String,
    pub stage: String,
    pub ttl: std::time::Duration,
    pub results: Vec<StackResult>,
    /// The changed stacks' outputs, sensitive ones (and any holding a credential's value)
    /// left out.
    pub outputs: BTreeMap<String, Vec<(String, String)>>,
    /// How many outputs were left out.
    pub withheld: usize,
}

impl Applied {
    pub fn failed(&self) -> Vec<&StackResult> {
        self.results
            .iter()
            .filter(|r| r.outcome.is_failure())
            .collect()
    }

    pub fn summary(&self) -> String {
        match self.failed().len() {
            0 => format!("preview {} applied", self.instance),
            n => format!("preview {} not applied: {n} stack(s) failed", self.instance),
        }
    }

    /// The preview's part of the comment.
    pub fn markdown(&self) -> String {
        let mut out = format!("\n{MARKER}\n#### Preview `{}`\n\n", self.instance);
        let failed = self.failed();
        if failed.is_empty() {
            let _ = writeln!(
                out,
                "Applied with the `{}` stage's settings. It is destroyed when the pull request is closed or merged, or {} after the last push.\n",
                self.stage,
                slipway_store::human_duration(self.ttl)
            );
        } else {
            for result in failed {
                let why = result.why().unwrap_or_default();
                let _ = writeln!(
                    out,
                    "**`{}` could not be applied**: {}\n",
                    result.stack,
                    why.lines().next().unwrap_or_default()
                );
            }
        }
        let rows: Vec<String> = self
            .outputs
            .iter()
            .flat_map(|(stack, outputs)| {
                outputs
                    .iter()
                    .map(move |(name, value)| format!("| `{stack}` | `{name}` | {value} |"))
            })
            .collect();
        if !rows.is_empty() {
            out.push_str("| Stack | Output | Value |\n|---|---|---|\n");
            for row in rows {
                out.push_str(&row);
                out.push('\n');
            }
            out.push('\n');
        }
        if self.withheld > 0 {
            let _ = writeln!(
                out,
                "{} sensitive output(s) are not shown.\n",
                self.withheld
            );
        }
        out
    }
}

/// Applies pull request `number`'s preview: records the instance (or renews it, restarting
/// its ttl), fetches the head's artifacts of `stacks` (built before, in `built`) and applies
/// them into `pr-<number>` with `preview.stage`'s settings.
pub(crate) async fn apply(
    workspace: &Workspace,
    preview: &PreviewConfig,
    number: i64,
    changed: &BTreeSet<String>,
    built: &BTreeMap<String, Built>,
) -> Result<Applied> {
    let stage: &Stage = workspace
        .project
        .stage(&preview.stage)
        .with_context(|| format!("the preview's stage `{}` is not a stage", preview.stage))?;
    let name = PreviewConfig::instance(number);
    let stacks = with_dependencies(&workspace.project, changed);
    let record = slipway_runner::record::open(workspace).await?;
    record
        .renew_instance(&NewInstance {
            name: name.clone(),
            purpose: PURPOSE.to_owned(),
            stage: stage.name.clone(),
            run_id: None,
        })
        .await
        .context("cannot record the preview instance")?;
    let data_dir = workspace.ensure_data_dir()?;
    let store = artifacts::open(workspace)?;
    let mut roots = BTreeMap::new();
    for stack in &stacks {
        let artifact = built
            .get(stack)
            .with_context(|| format!("internal error: no artifact of `{stack}` was built"))?;
        let root = artifacts::fetch(&data_dir, &store, stack, &artifact.id.to_string()).await?;
        roots.insert(stack.clone(), root);
    }
    let options = ExecutorOptions {
        verbose: true,
        ..ExecutorOptions::default()
    };
    let executor = instance::executor(
        workspace,
        stage,
        &name,
        &stacks,
        &options,
        CodeSource::Artifacts(roots),
    )?;
    executor.analysis.check()?;
    let results = executor.walk(&stacks, Operation::Apply).await;
    // Applied: the ttl counts from now.
    record
        .renew_instance(&NewInstance {
            name: name.clone(),
            purpose: PURPOSE.to_owned(),
            stage: stage.name.clone(),
            run_id: None,
        })
        .await
        .context("cannot record the preview instance")?;
    let mut applied = Applied {
        instance: name.clone(),
        stage: stage.name.clone(),
        ttl: preview.ttl,
        results,
        outputs: BTreeMap::new(),
        withheld: 0,
    };
    if !applied.failed().is_empty() {
        return Ok(applied);
    }
    let secrets: Vec<&str> = executor
        .environment
        .secrets
        .iter()
        .map(String::as_str)
        .filter(|s| s.len() >= 4)
        .collect();
    for stack in changed {
        let outputs = match executor.backend.local_outputs(&name, stack) {
            Some(outputs) => outputs,
            None => inventory::read_outputs(&executor, stack).await?.1,
        };
        let (shown, withheld) = shown_outputs(&outputs, &secrets);
        applied.withheld += withheld;
        if !shown.is_empty() {
            applied.outputs.insert(stack.clone(), shown);
        }
    }
    Ok(applied)
}

/// The outputs a comment may show, as Markdown cells, and how many it may not: sensitive
/// ones, and any whose value holds a credential's value (the pull request's code chose
/// what its outputs say).
pub(crate) fn shown_outputs(
    outputs: &BTreeMap<String, Output>,
    secrets: &[&str],
) -> (Vec<(String, String)>, usize) {
    let mut shown = Vec::new();
    let mut withheld = 0;
    for (name, output) in outputs {
        let text = match &output.value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if output.sensitive || secrets.iter().any(|s| text.contains(s)) {
            withheld += 1;
            continue;
        }
        shown.push((name.clone(), cell(&text)));
    }
    (shown, withheld)
}

/// A value as a table cell: a link when it is one, code otherwise; cut when long.
fn cell(text: &str) -> String {
    let mut text: String = text
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if c == '|' { '¦' } else { c })
        .collect();
    if text.len() > MAX_VALUE {
        let mut end = MAX_VALUE;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    let is_link = (text.starts_with("https://") || text.starts_with("http://"))
        && !text.contains(|c: char| c.is_whitespace() || c == '<' || c == '>');
    if is_link {
        format!("<{text}>")
    } else {
        format!("`{}`", text.replace('`', "'"))
    }
}

/// The report without its preview part.
pub(crate) fn without_preview(report: &str) -> &str {
    report
        .split_once(&format!("\n{MARKER}\n"))
        .map_or(report, |(before, _)| before)
}

/// The preview's part of the comment once it is gone.
pub(crate) fn destroyed_markdown(instance: &str, why: &str) -> String {
    format!("\n{MARKER}\n#### Preview `{instance}`\n\nDestroyed: {why}.\n")
}

/// Destroys `live` (a preview), with `workspace`'s stacks; `Ok(None)` once it is gone,
/// `Ok(Some(failures))` when stacks were left.
pub(crate) async fn destroy(
    workspace: &Workspace,
    live: &EphemeralInstance,
) -> Result<Option<Vec<String>>> {
    let stage = workspace.project.stage(&live.stage).with_context(|| {
        format!(
            "cannot destroy {}: its stage `{}` is no longer in slipway.hcl",
            live.name, live.stage
        )
    })?;
    let record = slipway_runner::record::open(workspace).await?;
    let options = ExecutorOptions {
        verbose: true,
        ..ExecutorOptions::default()
    };
    let teardown = instance::teardown(
        workspace,
        &record,
        stage,
        &live.name,
        CodeSource::WorkingTree,
        &options,
    )
    .await?;
    Ok((!teardown.succeeded()).then(|| teardown.failures()))
}

/// The live preview of pull request `number`, if one is on record.
pub(crate) async fn live(
    store: &slipway_store::AnyStore,
    number: i64,
) -> Result<Option<EphemeralInstance>> {
    let name = PreviewConfig::instance(number);
    Ok(store
        .live_instances()
        .await?
        .into_iter()
        .find(|i| i.name == name && i.purpose == PURPOSE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(value: serde_json::Value, sensitive: bool) -> Output {
        Output { value, sensitive }
    }

    #[test]
    fn sensitive_outputs_and_credential_values_are_not_shown() {
        let outputs: BTreeMap<String, Output> = [
            ("url", output("https://shop-pr-3.example.com".into(), false)),
            ("password", output("hunter22".into(), true)),
            ("leak", output("key=deploy-secret-1".into(), false)),
            ("count", output(3.into(), false)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let (shown, withheld) = shown_outputs(&outputs, &["deploy-secret-1"]);
        assert_eq!(withheld, 2);
        assert_eq!(
            shown,
            vec![
                ("count".to_owned(), "`3`".to_owned()),
                (
                    "url".to_owned(),
                    "<https://shop-pr-3.example.com>".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn cells_never_break_the_table() {
        assert_eq!(cell("a|b`c\n"), "`a¦b'c`");
        assert!(cell(&"x".repeat(500)).chars().count() <= MAX_VALUE + 3);
    }

    #[test]
    fn the_preview_part_is_replaced_once_destroyed() {
        let report = format!("plan\n{}", destroyed_markdown("pr-3", "closed"));
        assert_eq!(without_preview(&report), "plan\n");
        let report = format!("plan{}", destroyed_markdown("pr-3", "closed"));
        assert_eq!(without_preview(&report), "plan");
        assert_eq!(without_preview("plan"), "plan");
    }
}
