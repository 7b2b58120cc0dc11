//! Runs one operation (plan, apply, destroy) over the stacks of one stage instance, walking
//! the stack graph with the core's dependency queue: a stack starts as soon as what it waits
//! for has succeeded, up to the parallelism limit; a failure skips what depends on it while
//! independent stacks finish.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use slipway_artifact::{DEFAULT_SIZE_CAP, RelPath, WorkingTree, select};
use slipway_core::Stage;
use slipway_core::config::Project;
use slipway_core::schedule::{DependencyQueue, Status, Walk};
use slipway_engine::driver::{InitOutcome, PlanOutcome, PlanSummary, StepContext};
use slipway_engine::working_copy::WorkingCopy;
use slipway_engine::{
    Engine, Interrupt, Log, Output, SpawnSink, StackCredentials, StateBackend, StepError,
    first_engine_error,
};
use slipway_plan::InstanceReport;
use tokio::task::JoinSet;

use crate::analysis::{Analysis, Gate, apply_gate};

mod early_init;
mod hooks;
mod saved_plan;
use crate::credentials::StageEnvironment;
use crate::events::{Event, Observer, Reporter, Step};
pub use crate::outcome::{Operation, Outcome, describe};
pub use hooks::{ApplyHooks, CodeSource, HookError, HookFuture};

#[derive(Debug, Clone)]
pub struct StackResult {
    pub stack: String,
    pub outcome: Outcome,
    pub elapsed: Duration,
    pub log: Option<PathBuf>,
    /// The blast radius of the stack's plan, when it planned changes (plan and apply).
    pub report: Option<InstanceReport>,
    /// The engine's count of what the stack's plan changes (plan and apply).
    pub plan: Option<PlanSummary>,
}

impl StackResult {
    /// Why the stack failed with `error`, in the engine's words where its log has them: the
    /// first error Terraform printed says more than how the step ended.
    pub fn failure_reason(&self, error: &str) -> String {
        self.log
            .as_deref()
            .and_then(first_engine_error)
            .unwrap_or_else(|| error.to_owned())
    }

    /// Why the stack did not do what was asked, when it failed or was held back.
    pub fn why(&self) -> Option<String> {
        match &self.outcome {
            Outcome::Failed { error } => Some(self.failure_reason(error)),
            Outcome::InputsUnknown { reason }
            | Outcome::PolicyBlocked { reason }
            | Outcome::ApprovalVoid { reason } => Some(reason.clone()),
            _ => None,
        }
    }
}

/// Everything a walk needs, shared by its stack tasks.
#[derive(Debug)]
pub struct Executor {
    pub root: PathBuf,
    pub data_dir: PathBuf,
    pub project: Project,
    pub stage: Stage,
    /// The instance name: the stage's own name for the long-lived instance.
    pub instance: String,
    pub engine: Engine,
    pub backend: StateBackend,
    pub run_dir: PathBuf,
    pub parallelism: usize,
    pub verbose: bool,
    pub interrupt: Interrupt,
    /// Where this instance's events go.
    pub events: Reporter,
    pub environment: StageEnvironment,
    outputs: Mutex<BTreeMap<String, BTreeMap<String, Output>>>,
    outputs_wanted: Mutex<BTreeSet<String>>,
    /// How plans are measured and checked against the stage's policy.
    pub analysis: Analysis,
    /// Blast radius reports of the stacks planned so far, taken by their results.
    pub(crate) reports: Mutex<BTreeMap<String, InstanceReport>>,
    /// In a plan walk: stacks whose inputs read outputs that a dependency's plan changes,
    /// with why. Planned against today's outputs, their plans would be wrong once the
    /// dependency is applied, so they are planned after it instead.
    inputs_changing: Mutex<BTreeMap<String, String>>,
    /// The engine's counts of the plans made so far, taken by their results.
    plan_summaries: Mutex<BTreeMap<String, PlanSummary>>,
    /// Whether applies are measured even where the stage has no policy.
    pub measure_applies: bool,
    /// Stacks whose applies are not measured for the caller after all (a recovery rebuilding
    /// a stack from empty state knows what it creates: everything it had).
    unmeasured: Mutex<BTreeSet<String>>,
    /// Where stack code comes from (the working tree unless a delivery says otherwise).
    pub code: CodeSource,
    /// The run record's part in each apply, when a pipeline command drives the executor.
    pub hooks: Option<Arc<dyn ApplyHooks>>,
    /// Stacks initialised ahead of their turn in an apply walk.
    early_inits: early_init::EarlyInits,
}

/// What an executor is built from.
#[derive(Debug)]
pub struct ExecutorSetup {
    pub root: PathBuf,
    pub data_dir: PathBuf,
    pub project: Project,
    pub stage: Stage,
    pub engine: Engine,
    pub run_dir: PathBuf,
    pub parallelism: usize,
    pub verbose: bool,
    pub interrupt: Interrupt,
    pub environment: StageEnvironment,
    pub observer: Arc<dyn Observer>,
    pub measure_applies: bool,
}

impl Executor {
    pub fn new(setup: ExecutorSetup) -> Self {
        let backend =
            StateBackend::from_config(&setup.project.state, &setup.project.name, &setup.data_dir);
        let events = Reporter::new(setup.observer, &setup.stage.name, &setup.stage.name);
        let analysis = Analysis::new(&setup.root, &setup.project, &setup.stage);
        Self {
            analysis,
            root: setup.root,
            data_dir: setup.data_dir,
            instance: setup.stage.name.clone(),
            project: setup.project,
            stage: setup.stage,
            engine: setup.engine,
            backend,
            run_dir: setup.run_dir,
            parallelism: setup.parallelism,
            verbose: setup.verbose,
            interrupt: setup.interrupt,
            events,
            environment: setup.environment,
            outputs: Mutex::new(BTreeMap::new()),
            inputs_changing: Mutex::new(BTreeMap::new()),
            outputs_wanted: Mutex::new(BTreeSet::new()),
            reports: Mutex::new(BTreeMap::new()),
            plan_summaries: Mutex::new(BTreeMap::new()),
            measure_applies: setup.measure_applies,
            unmeasured: Mutex::new(BTreeSet::new()),
            code: CodeSource::WorkingTree,
            hooks: None,
            early_inits: early_init::EarlyInits::default(),
        }
    }

    /// Leaves `stack`'s applies unmeasured unless the stage's policy needs them measured:
    /// one engine start (`show -json` of the plan) fewer on its way.
    pub fn leave_unmeasured(&self, stack: &str) {
        if let Ok(mut unmeasured) = self.unmeasured.lock() {
            unmeasured.insert(stack.to_owned());
        }
    }

    /// Runs `operation` over `selected` stacks; `Walk::Reverse` for destroy.
    pub async fn walk(
        self: &Arc<Self>,
        selected: &BTreeSet<String>,
        operation: Operation,
    ) -> Vec<StackResult> {
        let direction = if operation == Operation::Destroy {
            Walk::Reverse
        } else {
            Walk::Forward
        };
        let names: BTreeSet<&str> = selected.iter().map(String::as_str).collect();
        self.events.emit(Event::WalkStarted {
            stage: self.stage.name.clone(),
            instance: self.instance.clone(),
            operation,
            stacks: self
                .project
                .graph
                .order_of(names.iter().copied())
                .into_iter()
                .map(str::to_owned)
                .collect(),
            run_dir: self.run_dir.clone(),
        });
        // Reading outputs costs an engine start per stack: only for stacks whose outputs a
        // later stack of this walk consumes.
        if let Ok(mut wanted) = self.outputs_wanted.lock() {
            wanted.extend(
                names
                    .iter()
                    .filter(|n| {
                        self.project
                            .graph
                            .dependents(n)
                            .iter()
                            .any(|d| names.contains(d))
                    })
                    .map(|n| (*n).to_owned()),
            );
        }
        if operation == Operation::Apply {
            self.start_early_inits(&names);
        }
        let mut queue = DependencyQueue::new(&self.project.graph, &names, direction);
        let mut tasks: JoinSet<StackResult> = JoinSet::new();
        let mut results: BTreeMap<String, StackResult> = BTreeMap::new();
        loop {
            if !self.interrupt.is_set() {
                let free = self.parallelism.saturating_sub(queue.running());
                for name in queue.take_ready(free) {
                    let this = Arc::clone(self);
                    tasks.spawn(async move { this.run_stack(&name, operation).await });
                }
            }
            let Some(joined) = tasks.join_next().await else {
                break;
            };
            let result = match joined {
                Ok(result) => result,
                Err(error) => {
                    // A panicking task is a bug; keep the walk going and say so.
                    StackResult {
                        stack: String::from("?"),
                        outcome: Outcome::Failed {
                            error: format!("internal error: {error}"),
                        },
                        elapsed: Duration::ZERO,
                        log: None,
                        report: None,
                        plan: None,
                    }
                }
            };
            let succeeded = matches!(
                result.outcome,
                Outcome::Planned { .. }
                    | Outcome::Applied { .. }
                    | Outcome::Destroyed
                    | Outcome::OutputsRead
                    | Outcome::InputsUnknown { .. }
            );
            queue.finish(&result.stack, succeeded);
            results.insert(result.stack.clone(), result);
        }
        self.finish_early_inits().await;
        for (name, status) in queue.status() {
            if results.contains_key(name) {
                continue;
            }
            let outcome = match status {
                Status::Skipped { because } => Outcome::Skipped {
                    because: because.clone(),
                },
                _ => Outcome::NotStarted,
            };
            // Every stack of the walk ends with an event, also those that never started.
            self.events.emit(Event::StackFinished {
                stage: self.stage.name.clone(),
                instance: self.instance.clone(),
                stack: name.clone(),
                outcome: outcome.clone(),
                elapsed_ms: 0,
                log: None,
                plan: None,
            });
            results.insert(
                name.clone(),
                StackResult {
                    stack: name.clone(),
                    outcome,
                    elapsed: Duration::ZERO,
                    log: None,
                    report: None,
                    plan: None,
                },
            );
        }
        let order = match direction {
            Walk::Forward => self.project.graph.order_of(names.iter().copied()),
            Walk::Reverse => {
                let mut order = self.project.graph.order_of(names.iter().copied());
                order.reverse();
                order
            }
        };
        order
            .into_iter()
            .filter_map(|name| results.remove(name))
            .collect()
    }

    async fn run_stack(&self, name: &str, operation: Operation) -> StackResult {
        let started = Instant::now();
        let log_path = self.run_dir.join(format!("{name}.log"));
        let mut mid_apply = false;
        let outcome = match Log::create(&log_path)
            .map(|log| log.redacting(self.environment.secrets.iter().cloned()))
        {
            Err(error) => Outcome::Failed {
                error: format!("cannot create log {}: {error}", log_path.display()),
            },
            Ok(log) => match self.start_hook(name, operation).await {
                Err(error) => {
                    log.line(&format!("== slipway: {error} =="));
                    Outcome::Failed {
                        error: error.to_string(),
                    }
                }
                Ok(()) => match self.steps(name, operation, &log, &mut mid_apply).await {
                    Ok(outcome) => outcome,
                    Err(StackError::Step(error)) if error.was_interrupted() => {
                        Outcome::Interrupted { mid_apply }
                    }
                    // A step stopped for taking too long while it changed infrastructure
                    // may have left it half-changed: that is an interruption, not a failure.
                    Err(StackError::Step(error @ StepError::TimedOut { .. })) if mid_apply => {
                        log.line(&format!("== slipway: {error} =="));
                        Outcome::Interrupted { mid_apply }
                    }
                    Err(StackError::Policy(reason)) => {
                        log.line(&format!("== slipway: {reason} =="));
                        Outcome::PolicyBlocked { reason }
                    }
                    Err(StackError::ApprovalVoid(reason)) => {
                        log.line(&format!("== slipway: {reason} =="));
                        Outcome::ApprovalVoid { reason }
                    }
                    Err(StackError::Hook(error @ HookError::ApprovalVoid { .. })) => {
                        let reason = error.to_string();
                        log.line(&format!("== slipway: {reason} =="));
                        Outcome::ApprovalVoid { reason }
                    }
                    Err(StackError::Step(error)) if error.lock_id().is_some() => {
                        let id = error.lock_id().unwrap_or_default();
                        let message = format!(
                            "{error}\n    help: wait for its holder to finish; if that process is gone, release it with `slipway unlock --stage {} --stack {name} {id}`",
                            self.stage.name
                        );
                        log.line(&format!("== slipway: {message} =="));
                        Outcome::Failed { error: message }
                    }
                    Err(error) => {
                        let mut error = format!("{error:#}");
                        if let Some(meaning) = self.backend.explain_failure(&error) {
                            error = format!("{error}\n    {meaning}");
                        }
                        log.line(&format!("== slipway: {error} =="));
                        Outcome::Failed { error }
                    }
                },
            },
        };
        let result = StackResult {
            stack: name.to_owned(),
            outcome,
            elapsed: started.elapsed(),
            log: Some(log_path),
            report: self.reports.lock().ok().and_then(|mut r| r.remove(name)),
            plan: self
                .plan_summaries
                .lock()
                .ok()
                .and_then(|mut p| p.remove(name)),
        };
        self.events.emit(Event::StackFinished {
            stage: self.stage.name.clone(),
            instance: self.instance.clone(),
            stack: result.stack.clone(),
            outcome: result.outcome.clone(),
            elapsed_ms: crate::verify::millis(result.elapsed),
            log: result.log.clone(),
            plan: result.plan,
        });
        result
    }

    /// The record's say before a stack's apply starts (its instance lock).
    async fn start_hook(&self, name: &str, operation: Operation) -> Result<(), HookError> {
        match &self.hooks {
            Some(hooks) if operation == Operation::Apply => hooks.start(name).await,
            _ => Ok(()),
        }
    }

    async fn steps(
        &self,
        name: &str,
        operation: Operation,
        log: &Log,
        mid_apply: &mut bool,
    ) -> Result<Outcome, StackError> {
        let stack = self
            .project
            .stack(name)
            .ok_or_else(|| StackError::Other(anyhow::anyhow!("unknown stack `{name}`")))?;
        let working_copy = if operation == Operation::ReadOutputs {
            // Reading outputs is done for stacks another process may be working on: it never
            // touches their working copy (where a saved plan may wait for its apply).
            if let Some(outputs) = self.backend.local_outputs(&self.instance, name) {
                log.line(&format!(
                    "== slipway: outputs read from the state file: {} ==",
                    Output::names(&outputs)
                ));
                if let Ok(mut all) = self.outputs.lock() {
                    all.insert(name.to_owned(), outputs);
                }
                return Ok(Outcome::OutputsRead);
            }
            self.prepare_in(name, &self.run_dir.join("outputs").join(name))?
        } else {
            self.prepare(name)?
        };
        if operation == Operation::Apply {
            self.adopt_early_init(name, &working_copy).await;
        }
        if operation != Operation::ReadOutputs {
            if let Some(blocked) = self.write_inputs(stack, &working_copy, operation, log)? {
                return Ok(blocked);
            }
        }
        let outcome = self
            .run_engine(name, &working_copy, operation, log, mid_apply)
            .await;
        if operation == Operation::ReadOutputs {
            // A private copy, made for this read alone.
            let _ = std::fs::remove_dir_all(self.run_dir.join("outputs").join(name));
        }
        outcome
    }

    /// Lays out the stack's working copy for this instance: code, generated files, backend.
    pub fn prepare(&self, name: &str) -> Result<WorkingCopy, StackError> {
        let work_dir = self.data_dir.join("work").join(&self.instance).join(name);
        self.prepare_in(name, &work_dir)
    }

    /// Lays out the stack's working copy in `work_dir`.
    fn prepare_in(&self, name: &str, work_dir: &Path) -> Result<WorkingCopy, StackError> {
        self.events.step(name, Step::Prepare);
        self.lay_out(name, work_dir, true)
    }

    /// Lays out a copy of the stack in `work_dir` that is not its turn yet: nothing is
    /// reported (its turn reports what there is to say).
    fn prepare_quietly(&self, name: &str, work_dir: &Path) -> Result<WorkingCopy, StackError> {
        self.lay_out(name, work_dir, false)
    }

    fn lay_out(
        &self,
        name: &str,
        work_dir: &Path,
        with_notes: bool,
    ) -> Result<WorkingCopy, StackError> {
        let stack = self
            .project
            .stack(name)
            .ok_or_else(|| StackError::Other(anyhow::anyhow!("unknown stack `{name}`")))?;
        let source_root = self.code.root_for(name, &self.root);
        // The same rule chooses an artifact's files, so a working copy holds what the
        // artifact of this commit would hold, and never the data folder it lives in.
        let mut tree = WorkingTree::new(source_root).skipping(&self.data_dir);
        if source_root != self.root {
            // Extracted from an artifact: every file there was committed.
            tree = tree.without_git_ignores();
        }
        let stack_dir = RelPath::new(&stack.dir)
            .with_context(|| format!("stack folder `{}` is not a repository path", stack.dir))?;
        let selection = select(&tree, &stack_dir, DEFAULT_SIZE_CAP)
            .with_context(|| format!("cannot choose the files of stack `{name}`"))?;
        for note in selection
            .stack_files
            .notes()
            .into_iter()
            .filter(|_| with_notes)
        {
            self.events.note(Some(name), format!("{name}: {note}"));
        }
        let files: Vec<&str> = selection.files.iter().map(|f| f.path.as_str()).collect();
        let working_copy = WorkingCopy::prepare(source_root, work_dir, &stack.dir, &files)
            .with_context(|| {
                format!("cannot prepare the working copy in {}", work_dir.display())
            })?;
        let generated = self.project.generated_files(&self.stage, &self.instance)?;
        working_copy
            .write_generated(&generated)
            .context("cannot write generated files")?;
        working_copy
            .write_backend(&self.backend, stack.declarations.declares_backend)
            .context("cannot write the backend file")?;
        Ok(working_copy)
    }

    /// Resolves inputs from the dependencies' outputs and writes the variables file; returns
    /// an outcome when the stack cannot run yet.
    pub(crate) fn write_inputs(
        &self,
        stack: &slipway_core::Stack,
        working_copy: &WorkingCopy,
        operation: Operation,
        log: &Log,
    ) -> Result<Option<Outcome>, StackError> {
        if operation == Operation::Plan
            && let Some(reason) = self
                .inputs_changing
                .lock()
                .ok()
                .and_then(|changing| changing.get(&stack.name).cloned())
        {
            log.line(&format!("== slipway: {reason} =="));
            return Ok(Some(Outcome::InputsUnknown { reason }));
        }
        // Inputs from the dependencies' outputs in this instance.
        let dependency_outputs: BTreeMap<String, BTreeMap<String, serde_json::Value>> = {
            let outputs = self
                .outputs
                .lock()
                .map_err(|_| anyhow::anyhow!("outputs lock poisoned"))?;
            stack
                .dependencies
                .iter()
                .map(|d| {
                    let values = outputs
                        .get(&d.stack)
                        .map(|o| {
                            o.iter()
                                .map(|(k, v)| (k.clone(), v.value.clone()))
                                .collect()
                        })
                        .unwrap_or_default();
                    (d.name.clone(), values)
                })
                .collect()
        };
        let inputs =
            match self
                .project
                .inputs(stack, &self.stage, &self.instance, &dependency_outputs)
            {
                Ok(inputs) => inputs,
                Err(error) => {
                    let missing: Vec<&str> = stack
                        .dependencies
                        .iter()
                        .filter(|d| {
                            dependency_outputs
                                .get(&d.name)
                                .is_none_or(BTreeMap::is_empty)
                        })
                        .map(|d| d.stack.as_str())
                        .collect();
                    if missing.is_empty() {
                        return Err(StackError::Other(error.into()));
                    }
                    let reason = format!(
                        "inputs unknown until {} {} applied to `{}`",
                        missing.join(", "),
                        if missing.len() == 1 { "is" } else { "are" },
                        self.instance
                    );
                    if operation == Operation::Plan {
                        log.line(&format!("== slipway: {reason} =="));
                        return Ok(Some(Outcome::InputsUnknown { reason }));
                    }
                    return Err(StackError::Other(anyhow::anyhow!("{reason}: {error}")));
                }
            };
        let mut values = self.project.variables(&self.stage, &self.instance)?;
        values.extend(inputs);
        working_copy
            .write_variables(&values, &stack.declarations.variables)
            .context("cannot write the variables file")?;
        Ok(None)
    }

    async fn run_engine(
        &self,
        name: &str,
        working_copy: &WorkingCopy,
        operation: Operation,
        log: &Log,
        mid_apply: &mut bool,
    ) -> Result<Outcome, StackError> {
        let echo = self.verbose.then(|| {
            let events = self.events.clone();
            let stack = name.to_owned();
            slipway_engine::LineSink::new(move |line| {
                events.emit(Event::EngineOutput {
                    stage: events.stage.clone(),
                    instance: events.instance.clone(),
                    stack: stack.clone(),
                    line: line.to_owned(),
                });
            })
        });
        let credentials = self.environment.for_stack(name);
        // Losing the instance lock while working stops this stack's engine as Ctrl-C would.
        let lock_lost = self.hooks.as_ref().and_then(|hooks| hooks.lock_lost(name));
        let interrupt = match &lock_lost {
            Some(lost) => self.interrupt.or(lost),
            None => self.interrupt.clone(),
        };
        let spawned = self.hooks.as_ref().map(|hooks| {
            let hooks = Arc::clone(hooks);
            let stack = name.to_owned();
            SpawnSink::new(move |pid| hooks.engine_started(&stack, pid))
        });
        let ctx = StepContext {
            credentials: &credentials,
            working_copy,
            log,
            echo: echo.as_ref(),
            interrupt: &interrupt,
            spawned: spawned.as_ref(),
        };
        self.events.step(name, Step::Init);
        self.init(ctx, name).await?;

        let outcome = match operation {
            Operation::ReadOutputs => Outcome::OutputsRead,
            Operation::Plan => {
                self.events.step(name, Step::Plan);
                let plan = self.engine.plan(ctx, false).await?;
                self.keep_plan_summary(name, &plan);
                if plan.has_changes {
                    let report = self.measure(ctx, name, &plan.plan_file).await?;
                    self.note_inputs_changing(name, &report);
                }
                Outcome::Planned {
                    changes: plan.has_changes,
                }
            }
            Operation::Apply => {
                // An approved plan is applied as it was saved, never planned again.
                let saved = self.hooks.as_ref().and_then(|h| h.saved_plan(name));
                let approved = saved.is_some();
                let plan = match saved {
                    Some(plan_file) => {
                        // Terraform cannot tell when a plan made against no state meets
                        // state applied since; that check is slipway's.
                        self.check_saved_plan_base(ctx, name, &plan_file).await?;
                        PlanOutcome {
                            has_changes: true,
                            plan_file,
                            summary: None,
                        }
                    }
                    None => {
                        self.events.step(name, Step::Plan);
                        self.engine.plan(ctx, false).await?
                    }
                };
                self.keep_plan_summary(name, &plan);
                if plan.has_changes {
                    self.check_policy(ctx, name, &plan.plan_file, log).await?;
                    if let Some(hooks) = &self.hooks {
                        hooks.before_apply(name, &plan.plan_file).await?;
                    }
                    self.events.step(name, Step::Apply);
                    let marker = self.applying_marker(name);
                    write_marker(&marker, &self.run_dir)?;
                    *mid_apply = true;
                    match self.engine.apply(ctx, &plan.plan_file).await {
                        // Terraform refused the saved plan before changing anything.
                        Err(StepError::StalePlan { .. }) if approved => {
                            *mid_apply = false;
                            let _ = std::fs::remove_file(&marker);
                            return Err(StackError::ApprovalVoid(format!(
                                "approval void: the state of `{name}` changed since the plan {} was approved; nothing was applied\n    help: start a new run (`slipway run`) to plan again and ask for a new approval",
                                plan.plan_file.display()
                            )));
                        }
                        applied => applied?,
                    }
                    *mid_apply = false;
                    let _ = std::fs::remove_file(&marker);
                }
                Outcome::Applied {
                    changed: plan.has_changes,
                }
            }
            Operation::Destroy => {
                self.events.step(name, Step::Destroy);
                let marker = self.applying_marker(name);
                write_marker(&marker, &self.run_dir)?;
                *mid_apply = true;
                self.engine.destroy(ctx).await?;
                *mid_apply = false;
                let _ = std::fs::remove_file(&marker);
                Outcome::Destroyed
            }
        };
        let wanted = operation == Operation::ReadOutputs
            || self
                .outputs_wanted
                .lock()
                .is_ok_and(|wanted| wanted.contains(name));
        if operation != Operation::Destroy && wanted {
            self.events.step(name, Step::Outputs);
            // With local state the outputs are in the file the engine just wrote: reading it
            // spares an engine start on the way to the stacks waiting for them.
            let outputs = match self.backend.local_outputs(&self.instance, name) {
                Some(outputs) => {
                    log.line(&format!(
                        "== slipway: outputs read from the state file: {} ==",
                        Output::names(&outputs)
                    ));
                    outputs
                }
                None => self.engine.output(ctx).await?,
            };
            if let Ok(mut all) = self.outputs.lock() {
                all.insert(name.to_owned(), outputs);
            }
        }
        Ok(outcome)
    }

    fn keep_plan_summary(&self, name: &str, plan: &PlanOutcome) {
        if let (Some(summary), Ok(mut all)) = (plan.summary, self.plan_summaries.lock()) {
            all.insert(name.to_owned(), summary);
        }
    }

    /// A file that exists only while the engine changes this instance's infrastructure; one
    /// left behind tells the next run that a process died mid-apply.
    pub fn applying_marker(&self, stack: &str) -> PathBuf {
        self.data_dir
            .join("state")
            .join(&self.instance)
            .join(stack)
            .join("slipway-applying.json")
    }
}

fn write_marker(marker: &Path, run_dir: &Path) -> Result<(), StackError> {
    if let Some(parent) = marker.parent() {
        std::fs::create_dir_all(parent).context("cannot create the state folder")?;
    }
    let record = serde_json::json!({
        "pid": std::process::id(),
        "run": run_dir.file_name().map(|n| n.to_string_lossy().into_owned()),
        "since": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    });
    std::fs::write(marker, record.to_string()).context("cannot write the apply marker")?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    Step(#[from] StepError),
    /// The stage's policy refuses the apply, or asks for an approval it does not have.
    #[error("{0}")]
    Policy(String),
    /// The approved plan no longer fits the instance's state.
    #[error("{0}")]
    ApprovalVoid(String),
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error(transparent)]
    Eval(#[from] slipway_core::config::EvalError),
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

/// Operations on one stack instance's state, outside a graph walk.
impl Executor {
    /// The step context of one stack's engine command outside a graph walk.
    pub fn single_context<'a>(
        &'a self,
        working_copy: &'a WorkingCopy,
        log: &'a Log,
        credentials: &'a StackCredentials,
    ) -> StepContext<'a> {
        StepContext::quiet(working_copy, log, &self.interrupt, credentials)
    }

    /// A log of its own at `path` for engine commands outside a walk, with the stage's
    /// secrets redacted as in a walk's logs.
    pub fn single_log(&self, path: &Path) -> Result<Log> {
        Ok(Log::create(path)
            .with_context(|| format!("cannot create log {}", path.display()))?
            .redacting(self.environment.secrets.iter().cloned()))
    }

    /// `init` of stack `name`'s working copy against this instance's state.
    /// Says so when the engine wrote the stack a lock file of its own in the working copy,
    /// or completed the copy of a committed one.
    pub async fn init(&self, ctx: StepContext<'_>, name: &str) -> Result<(), StepError> {
        let outcome = self
            .engine
            .init(ctx, &self.backend.backend_config(&self.instance, name))
            .await?;
        self.note_init(name, outcome);
        Ok(())
    }

    /// Says what an `init` did that people should know.
    fn note_init(&self, name: &str, outcome: InitOutcome) {
        let note = if outcome.wrote_lock_file {
            Some(slipway_engine::driver::LOCK_FILE_NOTE)
        } else if outcome.completed_lock_file {
            Some(slipway_engine::driver::LOCK_FILE_COMPLETED_NOTE)
        } else {
            None
        };
        if let Some(note) = note {
            self.events.note(
                Some(name),
                format!("note: {}/{name}: {note}", self.stage.name),
            );
        }
    }

    /// Stack `name` prepared and initialised for a `what` command, logged to
    /// `<run>/<name>.<what>.log`.
    async fn initialized(
        &self,
        name: &str,
        what: &str,
    ) -> Result<(WorkingCopy, Log, StackCredentials), StackError> {
        let working_copy = self.prepare(name)?;
        let log = self.single_log(&self.run_dir.join(format!("{name}.{what}.log")))?;
        let credentials = self.environment.for_stack(name);
        self.events.step(name, Step::Init);
        self.init(self.single_context(&working_copy, &log, &credentials), name)
            .await?;
        Ok((working_copy, log, credentials))
    }

    /// Releases a state lock by id: `init`, then `force-unlock`.
    pub async fn unlock(&self, name: &str, lock_id: &str) -> Result<PathBuf, StackError> {
        let (working_copy, log, credentials) = self.initialized(name, "unlock").await?;
        let ctx = self.single_context(&working_copy, &log, &credentials);
        self.events.step(name, Step::ForceUnlock);
        self.engine.force_unlock(ctx, lock_id).await?;
        Ok(log.path().to_path_buf())
    }

    /// Copies a local state file into the configured (remote) backend and verifies it:
    /// returns the resource counts before and after.
    pub async fn migrate_state(
        &self,
        name: &str,
        local_state: &Path,
    ) -> Result<(usize, usize), StackError> {
        let local = std::fs::read(local_state)
            .with_context(|| format!("cannot read {}", local_state.display()))?;
        let before = slipway_engine::driver::count_resources(&local)
            .with_context(|| format!("{} is not a Terraform state file", local_state.display()))?;
        let (working_copy, log, credentials) = self.initialized(name, "migrate").await?;
        let ctx = self.single_context(&working_copy, &log, &credentials);
        self.events.step(name, Step::StatePull);
        let remote = self.engine.state_pull(ctx).await?;
        let remote_count = if remote.iter().all(u8::is_ascii_whitespace) {
            0
        } else {
            slipway_engine::driver::count_resources(&remote)
                .context("the remote state is not readable")?
        };
        if remote_count > 0 && !same_lineage(&local, &remote) {
            return Err(StackError::Other(anyhow::anyhow!(
                "{} already holds a different state with {remote_count} resources; refusing to overwrite it",
                self.backend.describe(&self.instance, name)
            )));
        }
        self.events.step(name, Step::StatePush);
        self.engine.state_push(ctx, local_state).await?;
        let pushed = self.engine.state_pull(ctx).await?;
        let after = slipway_engine::driver::count_resources(&pushed)
            .context("the migrated state is not readable")?;
        Ok((before, after))
    }
}

fn same_lineage(a: &[u8], b: &[u8]) -> bool {
    let lineage = |bytes: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| v.get("lineage").and_then(|l| l.as_str()).map(str::to_owned))
    };
    lineage(a).is_some() && lineage(a) == lineage(b)
}

/// The stacks whose inputs read outputs that `name`'s plan (its `report`) changes, each with
/// why its own plan must wait until `name` is applied to `instance`.
pub(crate) fn inputs_changed_by(
    name: &str,
    instance: &str,
    report: &InstanceReport,
) -> Vec<(String, String)> {
    report
        .blast_radius
        .downstream
        .iter()
        .filter(|d| d.depth == 1 && !d.inputs.is_empty())
        .map(|reader| {
            let outputs: BTreeSet<&str> = reader.inputs.iter().map(|i| i.output.as_str()).collect();
            let reason = format!(
                "inputs unknown until {name} is applied to `{instance}`: its plan changes {} {}",
                if outputs.len() == 1 {
                    "output"
                } else {
                    "outputs"
                },
                outputs.into_iter().collect::<Vec<_>>().join(", ")
            );
            (reader.stack.clone(), reason)
        })
        .collect()
}

/// Measuring plans inside a walk: `show -json` runs once per plan, its bytes stay in memory.
impl Executor {
    /// Measures the saved plan of stack `name` and keeps its report for the stack's result.
    /// Remembers, for the stacks whose inputs read outputs that `name`'s plan changes, that
    /// their inputs are unknown until `name` is applied.
    fn note_inputs_changing(&self, name: &str, report: &InstanceReport) {
        let Ok(mut changing) = self.inputs_changing.lock() else {
            return;
        };
        for (reader, reason) in inputs_changed_by(name, &self.instance, report) {
            changing.entry(reader).or_insert(reason);
        }
    }

    pub async fn measure(
        &self,
        ctx: StepContext<'_>,
        name: &str,
        plan_file: &Path,
    ) -> Result<InstanceReport, StackError> {
        self.events.step(name, Step::BlastRadius);
        // Streamed from the engine's pipe into the reader: a plan's JSON is never held whole.
        let plan = self
            .engine
            .show_json_with(ctx, plan_file, crate::analysis::read_plan_output)
            .await??;
        let report = self.analysis.analyze_plan(name, &self.instance, &plan)?;
        if let Ok(mut reports) = self.reports.lock() {
            reports.insert(name.to_owned(), report.clone());
        }
        Ok(report)
    }

    /// Measures the plan about to be applied and stops the apply when the stage's policy
    /// refuses it or asks for an approval this apply does not have; warnings are shown.
    /// A stage without a policy is not measured here unless the caller reports each apply.
    pub async fn check_policy(
        &self,
        ctx: StepContext<'_>,
        name: &str,
        plan_file: &Path,
        log: &Log,
    ) -> Result<(), StackError> {
        // Without a policy there is nothing to check before an apply: skipping the measure
        // saves an engine start per stack (`slipway plan` still reports the blast radius).
        let unmeasured = self
            .unmeasured
            .lock()
            .is_ok_and(|unmeasured| unmeasured.contains(name));
        if !self.analysis.has_policy() && (!self.measure_applies || unmeasured) {
            return Ok(());
        }
        let report = self.measure(ctx, name, plan_file).await?;
        // The pipeline hands over a saved plan only once it was approved.
        let approved = self
            .hooks
            .as_ref()
            .is_some_and(|hooks| hooks.saved_plan(name).is_some());
        match apply_gate(&self.stage.name, &report, approved) {
            Gate::Proceed { warnings } => {
                for warning in warnings {
                    let line = format!("warning: {}/{name}: {warning}", self.stage.name);
                    log.line(&format!("== slipway: {line} =="));
                    self.events.warning(Some(name), line);
                }
                Ok(())
            }
            Gate::NeedsApproval { message } | Gate::Refused { message } => {
                Err(StackError::Policy(message))
            }
        }
    }
}
