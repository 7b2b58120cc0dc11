//! What the runner reports while it works, as typed events. The runner never prints: a front
//! end hands it an [`Observer`] and renders the events (the CLI as progress lines or JSON
//! lines, the server as a stream to browsers). Every event serialises to one JSON object
//! whose `event` field names its kind; docs/events.md is the schema.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use slipway_engine::Interrupt;
use slipway_engine::driver::PlanSummary;

use crate::outcome::{Operation, Outcome};
use crate::verify::path_result::PathResult;

/// One thing that happened. Stage instances are named by `stage` and `instance` (the same
/// for the stage's long-lived instance; `pr-7`, `verify-…` for ephemeral ones).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A walk over a stage instance's stacks began.
    WalkStarted {
        stage: String,
        instance: String,
        operation: Operation,
        stacks: Vec<String>,
        run_dir: PathBuf,
    },
    /// A stack instance moved to a new step.
    StepStarted {
        stage: String,
        instance: String,
        stack: String,
        step: Step,
    },
    /// One line the engine printed, redacted, when its output is asked for (`--verbose`).
    EngineOutput {
        stage: String,
        instance: String,
        stack: String,
        line: String,
    },
    /// A stack instance of a walk ended.
    StackFinished {
        stage: String,
        instance: String,
        stack: String,
        outcome: Outcome,
        elapsed_ms: u64,
        /// The stack's log, redacted.
        log: Option<PathBuf>,
        /// The engine's count of what the stack's plan changes.
        plan: Option<PlanSummary>,
    },
    /// A stack instance's work outside a walk ended (a state migration, an unlock, a drift
    /// check); `summary` says how, `ok` whether it did what was asked.
    StackEnded {
        stage: String,
        instance: String,
        stack: String,
        ok: bool,
        summary: String,
    },
    /// Something worth knowing that is not a stack's end.
    Note {
        severity: Severity,
        stage: Option<String>,
        stack: Option<String>,
        message: String,
    },
    /// The stacks a run delivers, found from git between `base` (none: every stack counts
    /// as changed, `all_changed_because` says why) and `head`. Empty `stacks`: nothing to do.
    ChangesDetected {
        base: Option<String>,
        head: String,
        all_changed_because: Option<String>,
        stacks: Vec<String>,
    },
    /// A stack's artifact of the run's commit is in the store; `new` when it was built now.
    ArtifactBuilt {
        stack: String,
        artifact: String,
        short: String,
        new: bool,
    },
    /// A run was recorded for `commit`.
    RunStarted { run: i64, commit: String },
    /// A run awaiting approval was resumed at `stage`.
    RunResumed { run: i64, stage: String },
    /// A run stopped at `stage`, whose saved plans wait for an approval.
    AwaitingApproval {
        run: i64,
        stage: String,
        plans: Vec<PlannedStack>,
    },
    /// A run reached `stage`, whose work needs a worker carrying `labels` (`tier=prod`)
    /// that this process is not: the stage's stack runs are recorded pending, and the run
    /// waits for such a worker to resume it there.
    HandedOn {
        run: i64,
        stage: String,
        labels: String,
    },
    /// A run ended: delivered to every stage, or failed (at `stage`; `None` when its
    /// verification failed before the first stage).
    RunFinished {
        run: i64,
        delivered: bool,
        stage: Option<String>,
    },
    /// The saved plan of `stack` was fetched from the artifact store.
    SavedPlanFetched { stack: String, from: String },
    /// A delivery of one stage finished (or stopped at its approval when `planned_only`).
    StageFinished {
        stage: String,
        planned_only: bool,
        succeeded: usize,
        total: usize,
        run_dir: PathBuf,
        /// The stacks that did not succeed, in graph order.
        failed: Vec<FailedStack>,
    },
    /// An earlier run's process died while it applied a stack instance.
    InterruptedRunFound {
        stack_run: i64,
        instance: String,
        stack: String,
        owner: String,
        since: Option<String>,
        left_behind: Vec<PathBuf>,
    },
    /// An instance lock whose holder is gone.
    StaleLock { held: String },
    /// A stale instance lock was freed while resolving an interrupted stack run.
    StaleLockFreed {
        instance: String,
        stack: String,
        owner: String,
    },
    /// An interrupted stack run is now recorded as resolved.
    InterruptedRunResolved {
        stack_run: i64,
        instance: String,
        stack: String,
    },
    /// A verification path began building the candidate into an ephemeral instance.
    VerificationStarted {
        path: String,
        instance: String,
        stacks: Vec<String>,
        /// The stage whose release the candidate is applied on top of (from latest).
        on_top_of: Option<String>,
    },
    /// Verification of a run's candidate ended, before its first stage.
    VerificationFinished {
        run: i64,
        passed: bool,
        paths: Vec<PathResult>,
    },
    /// The front end asked running engine steps to stop; they are killed after `grace_ms`.
    Interrupted { grace_ms: u64 },
    /// A command's report: `blast_radius` (a plan's), `drill` or `recovery`, in the shape the
    /// command's own JSON output has.
    Report {
        kind: String,
        report: serde_json::Value,
    },
    /// The command is done: the last event of a stream. `error` says why it could not finish.
    Finished {
        exit_code: u8,
        error: Option<String>,
    },
}

/// A stack of a stage delivery that did not succeed.
#[derive(Debug, Clone, Serialize)]
pub struct FailedStack {
    pub stack: String,
    pub outcome: Outcome,
    pub elapsed_ms: u64,
    pub log: Option<PathBuf>,
}

/// A stack of a stage awaiting approval; `sha256` is its saved plan's hash, `None` when it
/// is planned on resume (its inputs are unknown until its dependencies apply).
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStack {
    pub stack: String,
    pub sha256: Option<String>,
}

/// How much a note matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

/// The steps of a stack instance, in the order a walk takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Prepare,
    Init,
    Plan,
    BlastRadius,
    Apply,
    Destroy,
    Outputs,
    Refresh,
    Show,
    ForceUnlock,
    StatePull,
    StatePush,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Prepare => "prepare",
            Step::Init => "init",
            Step::Plan => "plan",
            Step::BlastRadius => "blast radius",
            Step::Apply => "apply",
            Step::Destroy => "destroy",
            Step::Outputs => "outputs",
            Step::Refresh => "refresh",
            Step::Show => "show",
            Step::ForceUnlock => "force-unlock",
            Step::StatePull => "state pull",
            Step::StatePush => "state push",
        })
    }
}

/// Receives the runner's events. Called from the runner's tasks, so it must be quick and
/// must not block on the terminal for long.
pub trait Observer: Send + Sync {
    fn observe(&self, event: &Event);
}

impl fmt::Debug for dyn Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Observer")
    }
}

/// Hands every event to each of several observers, in order.
///
/// Events come from many tasks at once; one event is handed to every observer before the
/// next one starts, so that each observer sees the same sequence (the run record must hold
/// what the terminal showed, in the order it showed it).
pub struct Tee {
    observers: Vec<Arc<dyn Observer>>,
    one_at_a_time: std::sync::Mutex<()>,
}

impl Tee {
    pub fn new(observers: Vec<Arc<dyn Observer>>) -> Self {
        Self {
            observers,
            one_at_a_time: std::sync::Mutex::new(()),
        }
    }
}

impl Observer for Tee {
    fn observe(&self, event: &Event) {
        // A poisoned lock only means an observer panicked; the order still holds.
        let _turn = self
            .one_at_a_time
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for observer in &self.observers {
            observer.observe(event);
        }
    }
}

/// An observer that drops every event, for callers that only want results.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unobserved;

impl Observer for Unobserved {
    fn observe(&self, _event: &Event) {}
}

/// The interrupt engine steps obey, made on demand by the front end: the CLI wires it to
/// Ctrl-C the first time an engine may start, the server to its shutdown.
#[derive(Clone)]
pub struct InterruptSource(Arc<dyn Fn() -> Interrupt + Send + Sync>);

impl InterruptSource {
    pub fn new(make: impl Fn() -> Interrupt + Send + Sync + 'static) -> Self {
        Self(Arc::new(make))
    }

    /// An interrupt that never fires.
    pub fn never() -> Self {
        Self::new(Interrupt::never)
    }

    pub fn interrupt(&self) -> Interrupt {
        (self.0)()
    }
}

impl fmt::Debug for InterruptSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InterruptSource")
    }
}

/// Reports the events of one stage instance to an observer.
#[derive(Clone)]
pub struct Reporter {
    observer: Arc<dyn Observer>,
    pub stage: String,
    pub instance: String,
}

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reporter")
            .field("stage", &self.stage)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl Reporter {
    pub fn new(observer: Arc<dyn Observer>, stage: &str, instance: &str) -> Self {
        Self {
            observer,
            stage: stage.to_owned(),
            instance: instance.to_owned(),
        }
    }

    /// The same observer, for another instance of the stage.
    pub fn for_instance(&self, instance: &str) -> Self {
        Self::new(Arc::clone(&self.observer), &self.stage, instance)
    }

    pub fn observer(&self) -> &Arc<dyn Observer> {
        &self.observer
    }

    pub fn emit(&self, event: Event) {
        self.observer.observe(&event);
    }

    pub fn step(&self, stack: &str, step: Step) {
        self.emit(Event::StepStarted {
            stage: self.stage.clone(),
            instance: self.instance.clone(),
            stack: stack.to_owned(),
            step,
        });
    }

    /// A stack's work outside a walk ended.
    pub fn ended(&self, stack: &str, ok: bool, summary: String) {
        self.emit(Event::StackEnded {
            stage: self.stage.clone(),
            instance: self.instance.clone(),
            stack: stack.to_owned(),
            ok,
            summary,
        });
    }

    /// A note about this instance, or about one of its stacks.
    pub fn note(&self, stack: Option<&str>, message: String) {
        self.noted(Severity::Info, stack, message);
    }

    pub fn warning(&self, stack: Option<&str>, message: String) {
        self.noted(Severity::Warning, stack, message);
    }

    fn noted(&self, severity: Severity, stack: Option<&str>, message: String) {
        self.emit(Event::Note {
            severity,
            stage: Some(self.stage.clone()),
            stack: stack.map(str::to_owned),
            message,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Collect(Mutex<Vec<String>>);

    impl Observer for Collect {
        fn observe(&self, event: &Event) {
            self.0
                .lock()
                .unwrap()
                .push(serde_json::to_string(event).unwrap());
        }
    }

    #[test]
    fn every_observer_of_a_tee_sees_events_from_many_threads_in_one_order() {
        let first = Arc::new(Collect::default());
        let second = Arc::new(Collect::default());
        let tee = Arc::new(Tee::new(vec![first.clone(), second.clone()]));
        std::thread::scope(|scope| {
            for thread in 0..8 {
                let tee = Arc::clone(&tee);
                scope.spawn(move || {
                    let reporter = Reporter::new(tee, "dev", "dev");
                    for i in 0..500 {
                        reporter.warning(None, format!("{thread}/{i}"));
                    }
                });
            }
        });
        let first = first.0.lock().unwrap();
        assert_eq!(first.len(), 8 * 500);
        assert!(*first == *second.0.lock().unwrap(), "both saw one order");
    }

    #[test]
    fn events_are_one_json_object_each_named_by_its_kind() {
        let collect = Arc::new(Collect::default());
        let reporter = Reporter::new(collect.clone(), "prod", "prod");
        reporter.step("queue", Step::BlastRadius);
        reporter.warning(Some("queue"), "deletes 1 stateful resource".to_owned());
        reporter.emit(Event::StackFinished {
            stage: "prod".into(),
            instance: "prod".into(),
            stack: "queue".into(),
            outcome: Outcome::Failed {
                error: "`plan` failed (exit code 1)".into(),
            },
            elapsed_ms: 1250,
            log: Some(PathBuf::from("runs/r1/prod/queue.log")),
            plan: Some(PlanSummary {
                add: 1,
                change: 0,
                destroy: 0,
                import: 0,
            }),
        });
        reporter.emit(Event::Interrupted { grace_ms: 30_000 });
        let lines = collect.0.lock().unwrap().join("\n");
        insta::assert_snapshot!(lines);
    }
}
