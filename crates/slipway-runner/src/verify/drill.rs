//! A disaster-recovery drill: every stack of a stage rebuilt from zero into a fresh
//! ephemeral instance, using only the artifact store and the release record (no checkout of
//! the repository is read), in dependency order and in parallel where the graph allows. It
//! times each stack and the whole (the recovery time), compares the rebuilt instance with the
//! stage (resource types and counts per stack), runs the stacks' checks, tears the instance
//! down unless asked to keep it, and records the result. `slipway drill` and the server's
//! scheduled drills both run it.
//!
//! A recovery of the stage itself (`slipway recover`) first establishes what is gone from
//! the stage's own state (`verify::recover`): the drill times that probe against the stage
//! as it stands, so its report also says how long a recovery on the stage's own state would
//! take.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;
use slipway_core::Stage;
use slipway_store::{AnyStore, Drill, DrillStatus, Store as _, VerificationRecord as _};

use crate::events::{Event, Severity};
use crate::executor::{CodeSource, Executor, Operation, Outcome};
use crate::pipeline::artifacts;
use crate::project::Workspace;
use crate::record;
use crate::stage_executor::ExecutorOptions;
use crate::verify::checks::{CheckResult, run_all_checks};
use crate::verify::{instance, inventory, millis, recover};

/// One stack's part in a drill.
#[derive(Debug, Default, serde::Serialize)]
pub struct StackDrill {
    pub artifact_id: Option<String>,
    pub rebuilt: bool,
    pub ms: u64,
    /// Why the stack did not rebuild.
    pub error: Option<String>,
    pub stage_resources: BTreeMap<String, usize>,
    pub rebuilt_resources: BTreeMap<String, usize>,
    pub differences: Vec<String>,
}

/// How a drill went, as recorded.
#[derive(Debug)]
pub struct DrillReport {
    pub recorded: Drill,
    /// The ephemeral instance the stage was rebuilt into.
    pub instance: String,
    pub stacks: BTreeMap<String, StackDrill>,
    pub checks: Vec<CheckResult>,
    /// What went wrong; empty when the drill succeeded.
    pub problems: Vec<String>,
    pub recovery: Duration,
    /// How long establishing what is gone takes on the stage's own state (the probe
    /// `slipway recover` runs first, timed against the stage as it stands, plus the quiet
    /// period it waits out when reads of missing resources hang); `None` when the drill did
    /// not rebuild.
    pub own_state_probe: Option<Duration>,
    /// `None` when the instance was kept or nothing was built.
    pub teardown: Option<instance::Teardown>,
    pub kept: bool,
}

impl DrillReport {
    pub fn succeeded(&self) -> bool {
        self.problems.is_empty()
    }

    /// How long a recovery on the stage's own state would take: the rebuild, after the
    /// probe of what is gone.
    pub fn own_state_recovery(&self) -> Option<Duration> {
        self.own_state_probe.map(|probe| self.recovery + probe)
    }
}

/// Drills `stage`: rebuilds it into a new ephemeral instance, compares, checks, tears down
/// (unless `keep`) and records the drill.
pub async fn drill_stage(
    workspace: &Workspace,
    stage: &Stage,
    options: &ExecutorOptions,
    keep: bool,
) -> Result<DrillReport> {
    let store = record::open(workspace).await?;
    let name = instance::create(&store, stage, "drill", None).await?;
    let drill = store.start_drill(&stage.name, &name).await?;
    workspace.observer.observe(&Event::Note {
        severity: Severity::Info,
        stage: Some(stage.name.clone()),
        stack: None,
        message: format!(
            "drill {}: rebuilding {} from its released artifacts into `{name}`",
            drill.id, stage.name
        ),
    });
    let started = Instant::now();
    let mut run = DrillRun {
        workspace,
        store: &store,
        stage,
        instance: &name,
        options,
        stacks: BTreeMap::new(),
        checks: Vec::new(),
        problems: Vec::new(),
        recovery: Duration::ZERO,
        own_state_probe: None,
        code: CodeSource::WorkingTree,
    };
    let built_anything = run.rebuild(started).await;
    if built_anything && run.problems.is_empty() {
        run.compare().await;
        run.check().await;
        run.time_own_state_probe().await;
    }
    let teardown = if keep || !built_anything {
        if !built_anything {
            let _ = store.instance_destroyed(&name).await;
        }
        None
    } else {
        match instance::teardown(workspace, &store, stage, &name, run.code.clone(), options).await {
            Ok(teardown) => {
                for failure in teardown.failures() {
                    run.problems.push(format!("teardown: {failure}"));
                }
                Some(teardown)
            }
            Err(error) => {
                run.problems.push(format!("teardown: {error:#}"));
                None
            }
        }
    };
    let succeeded = run.problems.is_empty();
    let details = json!({
        "instance": name,
        "stacks": run.stacks,
        "checks": run.checks,
        "problems": run.problems,
        "kept": keep,
        "teardown_ms": teardown.as_ref().map(|t| millis(t.elapsed)),
        "own_state_probe_ms": run.own_state_probe.map(millis),
    });
    let status = if succeeded {
        DrillStatus::Succeeded
    } else {
        DrillStatus::Failed
    };
    let recorded = store
        .finish_drill(drill.id, status, millis(run.recovery), &details)
        .await?;
    record::audit(
        workspace,
        &store,
        slipway_store::AuditAction::Drill,
        &stage.name,
        "",
        None,
        json!({"drill": recorded.id, "status": status, "recovery_ms": recorded.total_ms}),
    )
    .await?;
    let DrillRun {
        stacks,
        checks,
        problems,
        recovery,
        own_state_probe,
        ..
    } = run;
    Ok(DrillReport {
        recorded,
        instance: name,
        stacks,
        checks,
        problems,
        recovery,
        own_state_probe,
        teardown,
        kept: keep,
    })
}

struct DrillRun<'a> {
    workspace: &'a Workspace,
    store: &'a AnyStore,
    stage: &'a Stage,
    instance: &'a str,
    options: &'a ExecutorOptions,
    stacks: BTreeMap<String, StackDrill>,
    checks: Vec<CheckResult>,
    problems: Vec<String>,
    recovery: Duration,
    own_state_probe: Option<Duration>,
    code: CodeSource,
}

impl DrillRun<'_> {
    /// Times the probe `slipway recover` runs first, against the stage's own state as it
    /// stands (read only: a refresh-only plan that takes no lock and writes nothing). Where
    /// resources are missing, reads that hang are waited out before the probe decides, for
    /// as long as these reads' answers say a probe would wait, so that is added. A probe that
    /// cannot run is not a problem of the drill: the estimate is then left out.
    async fn time_own_state_probe(&mut self) {
        let all: BTreeSet<String> = self.stacks.keys().cloned().collect();
        let Ok(prober) = self.executor(&self.stage.name, &all) else {
            return;
        };
        let started = Instant::now();
        let probes = recover::probe_instance(&prober, &all).await;
        if probes.values().all(|p| p.error.is_none()) {
            let waited_out = probes
                .values()
                .map(|p| Duration::from_millis(p.wait_for_more_ms))
                .max()
                .unwrap_or(recover::PROBE_QUIET);
            self.own_state_probe = Some(started.elapsed() + waited_out);
        }
    }

    /// Fetches every released artifact and applies them all to the instance; returns whether
    /// anything may have been built (so there is something to tear down).
    async fn rebuild(&mut self, started: Instant) -> bool {
        let project = &self.workspace.project;
        let all: BTreeSet<String> = project.stacks.iter().map(|s| s.name.clone()).collect();
        let Ok(data_dir) = self.workspace.ensure_data_dir() else {
            self.problems.push("cannot create the data folder".into());
            return false;
        };
        let artifact_store = match artifacts::open(self.workspace) {
            Ok(store) => store,
            Err(error) => {
                self.problems.push(format!("{error:#}"));
                return false;
            }
        };
        let mut roots = BTreeMap::new();
        for stack in &all {
            let entry = self.stacks.entry(stack.clone()).or_default();
            let release = match self.store.current_release(&self.stage.name, stack).await {
                Ok(Some(release)) => release,
                Ok(None) => {
                    let why = format!(
                        "no release of `{stack}` in {}: a drill rebuilds only what was released",
                        self.stage.name
                    );
                    entry.error = Some(why.clone());
                    self.problems.push(format!("{stack}: {why}"));
                    continue;
                }
                Err(error) => {
                    self.problems.push(format!("{stack}: {error}"));
                    continue;
                }
            };
            entry.artifact_id = Some(release.artifact_id.clone());
            match artifacts::fetch(&data_dir, &artifact_store, stack, &release.artifact_id).await {
                Ok(root) => {
                    roots.insert(stack.clone(), root);
                }
                Err(error) => {
                    let why = format!("{error:#}");
                    entry.error = Some(why.clone());
                    self.problems.push(format!("{stack}: {why}"));
                }
            }
        }
        if !self.problems.is_empty() {
            return false;
        }
        self.code = CodeSource::Artifacts(roots);
        let executor = match self.executor(self.instance, &all) {
            Ok(executor) => executor,
            Err(error) => {
                self.problems.push(format!("{error:#}"));
                return false;
            }
        };
        let results = executor.walk(&all, Operation::Apply).await;
        self.recovery = started.elapsed();
        for result in results {
            let entry = self.stacks.entry(result.stack.clone()).or_default();
            entry.ms = millis(result.elapsed);
            entry.rebuilt = matches!(result.outcome, Outcome::Applied { .. });
            if entry.rebuilt {
                continue;
            }
            let why = match &result.outcome {
                Outcome::Failed { error } => result.failure_reason(error),
                Outcome::Skipped { because } => format!("not built: `{because}` did not rebuild"),
                Outcome::Interrupted { .. } => "interrupted".to_owned(),
                other => format!("{other:?}"),
            };
            entry.error = Some(why.clone());
            self.problems.push(format!("{}: {why}", result.stack));
        }
        true
    }

    /// Resource types and counts per stack, the stage's against the rebuilt instance's.
    async fn compare(&mut self) {
        let all: BTreeSet<String> = self.stacks.keys().cloned().collect();
        let stage_reader = self.executor(&self.stage.name, &all);
        let drill_reader = self.executor(self.instance, &all);
        let (stage_reader, drill_reader) = match (stage_reader, drill_reader) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(error), _) | (_, Err(error)) => {
                self.problems.push(format!("compare: {error:#}"));
                return;
            }
        };
        for stack in &all {
            let before = inventory::resource_counts(&stage_reader, stack).await;
            let after = inventory::resource_counts(&drill_reader, stack).await;
            let entry = self.stacks.entry(stack.clone()).or_default();
            match (before, after) {
                (Ok(before), Ok(after)) => {
                    entry.differences = inventory::differences(&before, &after);
                    if !entry.differences.is_empty() {
                        self.problems.push(format!(
                            "{stack}: the rebuilt instance differs from {}: {}",
                            self.stage.name,
                            entry.differences.join("; ")
                        ));
                    }
                    entry.stage_resources = before;
                    entry.rebuilt_resources = after;
                }
                (Err(error), _) | (_, Err(error)) => {
                    self.problems
                        .push(format!("{stack}: cannot compare: {error:#}"));
                }
            }
        }
    }

    /// Runs every stack's checks against the rebuilt instance.
    async fn check(&mut self) {
        let project = &self.workspace.project;
        let with_checks: BTreeSet<String> = project
            .stacks
            .iter()
            .filter(|s| !s.checks.is_empty())
            .map(|s| s.name.clone())
            .collect();
        if with_checks.is_empty() {
            return;
        }
        let executor = match self.executor(self.instance, &with_checks) {
            Ok(executor) => executor,
            Err(error) => {
                self.problems.push(format!("checks: {error:#}"));
                return;
            }
        };
        let stacks = project
            .stacks
            .iter()
            .filter(|s| with_checks.contains(&s.name));
        let results = run_all_checks(&executor, stacks, &mut self.problems).await;
        self.checks.extend(results);
    }

    /// An executor for `stacks` of `instance` (the stage's own, or the rebuilt one), with the
    /// drill's code.
    fn executor(&self, instance: &str, stacks: &BTreeSet<String>) -> Result<Arc<Executor>> {
        instance::executor(
            self.workspace,
            self.stage,
            instance,
            stacks,
            self.options,
            self.code.clone(),
        )
    }
}
