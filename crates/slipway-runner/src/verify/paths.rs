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
use slipway_core::Stage;
use slipway_plan::ActionKind;
use slipway_store::AnyStore;

use crate::events::Event;
use crate::executor::CodeSource;
use crate::executor::{Executor, Operation, Outcome, StackResult};
use crate::project::{Workspace, with_dependencies};
use crate::stage_executor::ExecutorOptions;
use crate::verify::checks::run_all_checks;
use crate::verify::{instance, millis, released};

pub use super::path_result::PathResult;

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
    /// Says that `result`'s path began building `stacks` into instance `name`.
    fn started(
        &self,
        result: &PathResult,
        name: &str,
        stacks: &BTreeSet<String>,
        on_top_of: Option<&str>,
    ) {
        self.workspace
            .observer
            .observe(&Event::VerificationStarted {
                path: result.path.to_owned(),
                instance: name.to_owned(),
                stacks: stacks.iter().cloned().collect(),
                on_top_of: on_top_of.map(str::to_owned),
            });
    }

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
        with_dependencies(&self.workspace.project, self.roots.keys())
    }

    async fn verify_from_zero(&self) -> PathResult {
        let started = Instant::now();
        let mut result = PathResult::new("from zero");
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
        let base = if unchanged.is_empty() {
            BTreeMap::new()
        } else {
            let fetched =
                released::fetch(self.workspace, self.store, &stage.name, &unchanged).await;
            match result.noted(fetched) {
                Some(fetched) => fetched.roots,
                None => return finish(result, started),
            }
        };
        let code = self.on_top_of(base);
        let Some(name) = self.create_instance(&mut result, stage, "zero").await else {
            return finish(result, started);
        };
        self.started(&result, &name, &involved, None);
        let executor = self.executor(stage, &name, &involved, code.clone());
        if let Some(executor) = result.noted(executor) {
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
        let mut result = PathResult::new("from latest");
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
        let fetched = released::fetch(self.workspace, self.store, &stage.name, &involved).await;
        let Some(base) = result.noted(fetched) else {
            return finish(result, started);
        };
        if base.artifacts.is_empty() {
            result.skipped = Some(format!(
                "nothing is released to {} yet: there is no latest to apply the change on",
                stage.name
            ));
            return finish(result, started);
        }
        let base_stacks = with_dependencies(project, base.artifacts.keys());
        let candidate_code = self.on_top_of(base.roots.clone());
        let Some(name) = self.create_instance(&mut result, stage, "latest").await else {
            return finish(result, started);
        };
        self.started(&result, &name, &base_stacks, Some(&stage.name));
        let executor = self.executor(stage, &name, &base_stacks, base.code());
        if let Some(executor) = result.noted(executor) {
            let built = executor.walk(&base_stacks, Operation::Apply).await;
            collect_failures(
                &mut result,
                &format!("building {}'s release", stage.name),
                &built,
            );
        }
        if result.problems.is_empty() {
            let executor = self.executor(stage, &name, &involved, candidate_code.clone());
            if let Some(executor) = result.noted(executor) {
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

    /// The candidate's artifacts over `base`, the artifacts of the stacks it builds on.
    fn on_top_of(&self, mut base: BTreeMap<String, PathBuf>) -> CodeSource {
        base.extend(self.roots.clone());
        CodeSource::Artifacts(base)
    }

    /// Records the path's ephemeral instance and names it in the result.
    async fn create_instance(
        &self,
        result: &mut PathResult,
        stage: &Stage,
        purpose: &str,
    ) -> Option<String> {
        let created = instance::create(self.store, stage, purpose, Some(self.run_id)).await;
        let name = result.noted(created)?;
        result.instance = Some(name.clone());
        Some(name)
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
        let checked = self
            .workspace
            .project
            .stacks
            .iter()
            .filter(|s| stacks.contains(&s.name));
        run_all_checks(executor, checked, &mut result.problems).await;
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
    result.elapsed_ms = millis(started.elapsed());
    result
}

/// Adds a line for every stack of a walk that did not succeed, in the engine's words.
fn collect_failures(result: &mut PathResult, step: &str, results: &[StackResult]) {
    for stack in results {
        let why = match &stack.outcome {
            Outcome::Skipped { because } => format!("not run: `{because}` failed first"),
            Outcome::Interrupted { .. } => "interrupted".to_owned(),
            Outcome::NotStarted => "not started".to_owned(),
            _ => match stack.why() {
                Some(why) => why,
                None => continue,
            },
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
    let passed = results.iter().all(PathResult::passed);
    workspace.observer.observe(&Event::VerificationFinished {
        run: run_id,
        passed,
        paths: results,
    });
    Ok(passed)
}
