//! Verification of a run's candidate before its first stage, on the two paths a change
//! takes in real life, side by side in ephemeral instances:
//!
//! - *from zero*: the candidate artifacts (with the released artifacts of the unchanged
//!   stacks they depend on) built into an empty instance, as a disaster recovery would;
//! - *from latest*: an instance built from the artifacts released to the reference stage,
//!   then the candidate applied on top, as the stage itself will get it.
//!
//! Each then plans again and fails when that plan is not empty (a change that never
//! converges), runs the stacks' checks, and is destroyed; a failed destroy fails the path
//! and leaves the instance on record for `slipway gc`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use serde::Serialize;
use slipway_core::Stage;
use slipway_plan::ActionKind;
use slipway_store::AnyStore;

use crate::commands::drill::{first_engine_error, run_stack_checks};
use crate::commands::stage::ExecutorOptions;
use crate::executor::{Executor, Operation, Outcome, StackResult};
use crate::pipeline::hooks::CodeSource;
use crate::project::Workspace;
use crate::verify::{instance, released};

/// How one verification path went.
#[derive(Debug, Clone, Serialize)]
pub struct PathResult {
    /// `from zero` or `from latest`.
    pub path: &'static str,
    pub instance: Option<String>,
    /// Why the path did not run (nothing released to compare with yet).
    pub skipped: Option<String>,
    /// What failed, one line each; empty when the path passed.
    pub problems: Vec<String>,
    pub elapsed_ms: u64,
}

impl PathResult {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What a run verifies.
pub struct Candidate<'a> {
    pub workspace: &'a Workspace,
    pub store: &'a AnyStore,
    pub run_id: i64,
    /// Changed stack -> the root of its extracted candidate artifact.
    pub roots: BTreeMap<String, PathBuf>,
    pub options: ExecutorOptions,
}

impl Candidate<'_> {
    /// Runs the paths `slipway.hcl` turns on, side by side.
    pub async fn verify(&self) -> Vec<PathResult> {
        let config = &self.workspace.project.verify;
        let zero = async {
            if config.from_zero {
                Some(self.verify_from_zero().await)
            } else {
                None
            }
        };
        let latest = async {
            if config.from_latest {
                Some(self.verify_from_latest().await)
            } else {
                None
            }
        };
        let (zero, latest) = tokio::join!(zero, latest);
        zero.into_iter().chain(latest).collect()
    }

    /// The changed stacks and everything they depend on.
    fn involved(&self) -> BTreeSet<String> {
        let changed: Vec<&str> = self.roots.keys().map(String::as_str).collect();
        self.workspace
            .project
            .graph
            .with_dependencies(&changed)
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    async fn verify_from_zero(&self) -> PathResult {
        let started = Instant::now();
        let mut result = PathResult {
            path: "from zero",
            instance: None,
            skipped: None,
            problems: Vec::new(),
            elapsed_ms: 0,
        };
        // It borrows the first stage: the one the candidate goes to next.
        let Some(stage) = self.workspace.project.stages.first() else {
            result.skipped = Some("the project has no stage".to_owned());
            return result;
        };
        let involved = self.involved();
        let unchanged: BTreeSet<String> = involved
            .iter()
            .filter(|s| !self.roots.contains_key(*s))
            .cloned()
            .collect();
        let mut roots = BTreeMap::new();
        if !unchanged.is_empty() {
            match released::fetch(self.workspace, self.store, &stage.name, &unchanged).await {
                Ok(base) => roots = base.roots,
                Err(error) => {
                    result.problems.push(format!("{error:#}"));
                    return finish(result, started);
                }
            }
        }
        roots.extend(self.roots.clone());
        let code = CodeSource::Artifacts(roots);
        let name = match instance::create(self.store, stage, "zero", Some(self.run_id)).await {
            Ok(name) => name,
            Err(error) => {
                result.problems.push(format!("{error:#}"));
                return finish(result, started);
            }
        };
        result.instance = Some(name.clone());
        eprintln!(
            "verify from zero: building {} into `{name}`",
            list(&involved)
        );
        let executor = self.executor(stage, &name, &involved, code.clone());
        if let Some(executor) = self.step(&mut result, executor) {
            let applied = executor.walk(&involved, Operation::Apply).await;
            collect_failures(&mut result, "apply", &applied);
            if result.problems.is_empty() {
                self.converges_and_checks(&mut result, &executor, &involved)
                    .await;
            }
        }
        self.teardown(&mut result, stage, &name, code).await;
        finish(result, started)
    }

    async fn verify_from_latest(&self) -> PathResult {
        let started = Instant::now();
        let mut result = PathResult {
            path: "from latest",
            instance: None,
            skipped: None,
            problems: Vec::new(),
            elapsed_ms: 0,
        };
        let project = &self.workspace.project;
        let Some(stage) = project
            .verify
            .reference(&project.stages)
            .and_then(|name| project.stage(name))
        else {
            result.skipped = Some("the project has no stage".to_owned());
            return result;
        };
        let involved = self.involved();
        let base = match released::fetch(self.workspace, self.store, &stage.name, &involved).await {
            Ok(base) => base,
            Err(error) => {
                result.problems.push(format!("{error:#}"));
                return finish(result, started);
            }
        };
        if base.artifacts.is_empty() {
            result.skipped = Some(format!(
                "nothing is released to {} yet: there is no latest to apply the change on",
                stage.name
            ));
            return finish(result, started);
        }
        let released: Vec<&str> = base.artifacts.keys().map(String::as_str).collect();
        let base_stacks: BTreeSet<String> = project
            .graph
            .with_dependencies(&released)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut roots = base.roots.clone();
        roots.extend(self.roots.clone());
        let candidate_code = CodeSource::Artifacts(roots);
        let name = match instance::create(self.store, stage, "latest", Some(self.run_id)).await {
            Ok(name) => name,
            Err(error) => {
                result.problems.push(format!("{error:#}"));
                return finish(result, started);
            }
        };
        result.instance = Some(name.clone());
        eprintln!(
            "verify from latest: building {}'s release of {} into `{name}`, then the change on top",
            stage.name,
            list(&base_stacks)
        );
        let executor = self.executor(stage, &name, &base_stacks, base.code());
        if let Some(executor) = self.step(&mut result, executor) {
            let built = executor.walk(&base_stacks, Operation::Apply).await;
            collect_failures(
                &mut result,
                &format!("building {}'s release", stage.name),
                &built,
            );
        }
        if result.problems.is_empty() {
            let executor = self.executor(stage, &name, &involved, candidate_code.clone());
            if let Some(executor) = self.step(&mut result, executor) {
                let applied = executor.walk(&involved, Operation::Apply).await;
                collect_failures(&mut result, "the change on top", &applied);
                if result.problems.is_empty() {
                    self.converges_and_checks(&mut result, &executor, &involved)
                        .await;
                }
            }
        }
        self.teardown(&mut result, stage, &name, candidate_code)
            .await;
        finish(result, started)
    }

    /// An executor for one path, with a log folder of its own: the two paths run at once.
    fn executor(
        &self,
        stage: &Stage,
        name: &str,
        stacks: &BTreeSet<String>,
        code: CodeSource,
    ) -> Result<Arc<Executor>> {
        let executor =
            instance::executor(self.workspace, stage, name, stacks, &self.options, code)?;
        let mut executor = Arc::try_unwrap(executor)
            .map_err(|_| anyhow::anyhow!("internal error: the executor is shared too early"))?;
        executor.run_dir = executor.run_dir.join(name);
        std::fs::create_dir_all(&executor.run_dir)?;
        Ok(Arc::new(executor))
    }

    fn step(
        &self,
        result: &mut PathResult,
        executor: Result<Arc<Executor>>,
    ) -> Option<Arc<Executor>> {
        match executor {
            Ok(executor) => Some(executor),
            Err(error) => {
                result.problems.push(format!("{error:#}"));
                None
            }
        }
    }

    /// Plans again (nothing may change) and runs the checks.
    async fn converges_and_checks(
        &self,
        result: &mut PathResult,
        executor: &Arc<Executor>,
        stacks: &BTreeSet<String>,
    ) {
        for planned in executor.walk(stacks, Operation::Plan).await {
            match &planned.outcome {
                Outcome::Planned { changes: false } => {}
                Outcome::Planned { changes: true } => {
                    let addresses: Vec<String> = planned
                        .report
                        .as_ref()
                        .map(|r| {
                            r.blast_radius
                                .addresses
                                .iter()
                                .filter(|(kind, _)| **kind != ActionKind::NoOp)
                                .flat_map(|(kind, list)| {
                                    list.iter().map(move |a| format!("{a} ({})", kind.as_str()))
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    result.problems.push(format!(
                        "{}: does not converge: planned again right after its apply, it still changes {}",
                        planned.stack,
                        if addresses.is_empty() {
                            "something".to_owned()
                        } else {
                            addresses.join(", ")
                        }
                    ));
                }
                _ => collect_failures(result, "re-plan", std::slice::from_ref(&planned)),
            }
        }
        if !result.problems.is_empty() {
            return;
        }
        for stack in self
            .workspace
            .project
            .stacks
            .iter()
            .filter(|s| stacks.contains(&s.name) && !s.checks.is_empty())
        {
            match run_stack_checks(executor, stack).await {
                Ok(checks) => {
                    for failed in checks.iter().filter(|c| !c.passed) {
                        result.problems.push(format!(
                            "{}: check `{}` failed: {}",
                            failed.stack,
                            failed.check,
                            failed.problems.join("; ")
                        ));
                    }
                }
                Err(error) => result
                    .problems
                    .push(format!("{}: cannot run its checks: {error:#}", stack.name)),
            }
        }
    }

    async fn teardown(&self, result: &mut PathResult, stage: &Stage, name: &str, code: CodeSource) {
        match instance::teardown(self.workspace, self.store, stage, name, code, &self.options).await
        {
            Ok(teardown) => {
                for failure in teardown.failures() {
                    result.problems.push(format!(
                        "teardown of `{name}` failed: {failure} (`slipway gc` destroys what is left)"
                    ));
                }
            }
            Err(error) => result.problems.push(format!(
                "teardown of `{name}` failed: {error:#} (`slipway gc` destroys what is left)"
            )),
        }
    }
}

fn finish(mut result: PathResult, started: Instant) -> PathResult {
    result.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    result
}

fn list(stacks: &BTreeSet<String>) -> String {
    stacks.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// Adds a line for every stack of a walk that did not succeed, in the engine's words.
fn collect_failures(result: &mut PathResult, step: &str, results: &[StackResult]) {
    for stack in results {
        let why = match &stack.outcome {
            Outcome::Failed { error } => stack
                .log
                .as_deref()
                .and_then(first_engine_error)
                .unwrap_or_else(|| error.clone()),
            Outcome::Skipped { because } => format!("not run: `{because}` failed first"),
            Outcome::Interrupted { .. } => "interrupted".to_owned(),
            Outcome::NotStarted => "not started".to_owned(),
            Outcome::Blocked { reason } => reason.clone(),
            _ => continue,
        };
        result
            .problems
            .push(format!("{}: {step} failed: {why}", stack.stack));
    }
}

/// Verifies a run's candidate before its first stage: fetches the candidate artifacts, runs
/// the paths side by side and reports them. `false` when a path failed.
pub async fn before_first_stage(
    workspace: &Workspace,
    store: &AnyStore,
    artifacts: &slipway_artifact::Store,
    run_id: i64,
    deliverables: &BTreeMap<String, crate::pipeline::deliver::Deliverable>,
    options: ExecutorOptions,
) -> Result<bool> {
    let config = &workspace.project.verify;
    if !config.from_zero && !config.from_latest {
        return Ok(true);
    }
    let data_dir = workspace.ensure_data_dir()?;
    let mut roots = BTreeMap::new();
    for (stack, deliverable) in deliverables {
        let root = crate::pipeline::artifacts::fetch(
            &data_dir,
            artifacts,
            stack,
            &deliverable.artifact_id,
        )
        .await?;
        roots.insert(stack.clone(), root);
    }
    let candidate = Candidate {
        workspace,
        store,
        run_id,
        roots,
        options,
    };
    let results = candidate.verify().await;
    eprintln!();
    for result in &results {
        let verdict = if let Some(why) = &result.skipped {
            format!("skipped: {why}")
        } else if result.passed() {
            format!("passed ({:.1}s)", result.elapsed_ms as f64 / 1000.0)
        } else {
            format!("FAILED ({:.1}s)", result.elapsed_ms as f64 / 1000.0)
        };
        let instance = result
            .instance
            .as_deref()
            .map(|i| format!(" in `{i}`"))
            .unwrap_or_default();
        eprintln!("verify {}{instance}: {verdict}", result.path);
        for problem in &result.problems {
            eprintln!("  {problem}");
        }
    }
    let passed = results.iter().all(PathResult::passed);
    if !passed {
        eprintln!(
            "run {run_id} stopped before its first stage: the change failed verification\n  help: the lines above say which path failed and why; `verify {{ ... }}` in slipway.hcl turns a path off (docs/verification-and-recovery.md)"
        );
    }
    Ok(passed)
}
