//! The runner's events on stderr for people: one live line per running stack (which stack,
//! which step, elapsed) when stderr is a terminal, plain lines otherwise, and a line for how
//! each stack ended. Engine output (`--verbose`) is printed above the live lines, never
//! through them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use slipway_runner::events::{Event, Observer};
use slipway_runner::executor::{Outcome, describe};
use slipway_runner::pipeline::short_commit;
use slipway_runner::verify::seconds;

#[derive(Debug)]
pub struct Terminal {
    /// `None` when stderr is not a terminal.
    multi: Option<MultiProgress>,
    bars: Mutex<BTreeMap<String, ProgressBar>>,
}

impl Terminal {
    pub fn stderr() -> Self {
        let multi = std::io::IsTerminal::is_terminal(&std::io::stderr())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self {
            multi,
            bars: Mutex::new(BTreeMap::new()),
        }
    }

    fn step(&self, who: String, step: String) {
        let Some(multi) = &self.multi else {
            eprintln!("{who}: {step}");
            return;
        };
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        let bar = bars.entry(who.clone()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix} {wide_msg} {elapsed:>4}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(who);
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        bar.set_message(step);
    }

    /// The stack `who` finished; `line` says how.
    fn finish(&self, who: &str, line: &str) {
        if let Some(multi) = &self.multi {
            if let Ok(mut bars) = self.bars.lock() {
                if let Some(bar) = bars.remove(who) {
                    bar.finish_and_clear();
                    multi.remove(&bar);
                }
            }
        }
        self.line(line);
    }

    /// A line above the live ones.
    fn line(&self, line: &str) {
        match &self.multi {
            Some(multi) => {
                let _ = multi.println(line);
            }
            None => eprintln!("{line}"),
        }
    }
}

/// How an instance is named in progress lines: the stage, or `stage@instance` for an
/// ephemeral instance, which must never read as the stage itself.
fn label(stage: &str, instance: &str) -> String {
    if stage == instance {
        stage.to_owned()
    } else {
        format!("{stage}@{instance}")
    }
}

impl Observer for Terminal {
    fn observe(&self, event: &Event) {
        match event {
            // A run's start, its reports and its end are the commands' own to print.
            Event::WalkStarted { .. } | Event::Report { .. } | Event::Finished { .. } => {}
            Event::StepStarted {
                stage,
                instance,
                stack,
                step,
            } => self.step(
                format!("{}/{stack}", label(stage, instance)),
                step.to_string(),
            ),
            Event::EngineOutput {
                stage,
                instance,
                stack,
                line,
            } => self.line(&format!("{}/{stack} | {line}", label(stage, instance))),
            // Stacks that never started are the summary's to list.
            Event::StackFinished {
                outcome: Outcome::Skipped { .. } | Outcome::NotStarted,
                ..
            } => {}
            Event::StackFinished {
                stage,
                instance,
                stack,
                outcome,
                elapsed_ms,
                log,
                plan: _,
            } => {
                let label = label(stage, instance);
                let line = describe(
                    &label,
                    stack,
                    outcome,
                    Duration::from_millis(*elapsed_ms),
                    log.as_deref().unwrap_or(Path::new("")),
                );
                self.finish(&format!("{label}/{stack}"), &line);
            }
            Event::StackEnded {
                stage,
                instance,
                stack,
                summary,
                ok: _,
            } => self.finish(&format!("{}/{stack}", label(stage, instance)), summary),
            Event::Note { message, .. } => self.line(message),
            Event::StageFinished {
                stage,
                planned_only,
                succeeded,
                total,
                run_dir,
                failed,
            } => {
                self.line(&format!(
                    "{stage}: {succeeded} of {total} stack{} {}; logs in {}",
                    if *total == 1 { "" } else { "s" },
                    if *planned_only { "planned" } else { "delivered" },
                    run_dir.display()
                ));
                for stack in failed {
                    if let Some(log) = &stack.log {
                        self.line(&describe(
                            stage,
                            &stack.stack,
                            &stack.outcome,
                            Duration::from_millis(stack.elapsed_ms),
                            log,
                        ));
                    }
                }
            }
            Event::ChangesDetected {
                base,
                head,
                all_changed_because,
                stacks,
            } => {
                if let Some(because) = all_changed_because {
                    self.line(&format!("every stack counts as changed: {because}"));
                }
                let base = base.as_deref().map_or("none", short_commit);
                if stacks.is_empty() {
                    self.line(&format!(
                        "nothing to deliver: no stack changed between {base} and {}",
                        short_commit(head)
                    ));
                } else {
                    self.line(&format!("changed since {base}: {}", stacks.join(", ")));
                }
            }
            Event::ArtifactBuilt { stack, short, .. } => {
                self.line(&format!("  artifact {stack}: {short}"));
            }
            Event::RunStarted { run, commit } => {
                self.line(&format!("run {run}: commit {}", short_commit(commit)));
            }
            Event::RunResumed { run, stage } => {
                self.line(&format!("resuming run {run} at stage {stage}"));
            }
            Event::AwaitingApproval { run, stage, plans } => {
                self.line(&format!(
                    "\nrun {run} is awaiting approval at stage {stage}. Saved plans:"
                ));
                for plan in plans {
                    self.line(&format!(
                        "  {:<16} {}",
                        plan.stack,
                        plan.sha256.as_deref().unwrap_or(
                            "(planned on resume: inputs unknown until its dependencies apply)"
                        )
                    ));
                }
                self.line(&format!(
                    "  approve: slipway approve {run} --stage {stage} --reason \"...\"\n  then:    slipway resume {run}\n  or:      slipway reject {run} --stage {stage} --reason \"...\""
                ));
            }
            Event::HandedOn { run, stage, labels } => {
                self.line(&format!(
                    "\nrun {run} waits at stage {stage} for a worker labelled {labels} (stage {stage}'s worker_labels)"
                ));
            }
            Event::RunFinished {
                run,
                delivered,
                stage,
            } => match (delivered, stage) {
                (true, _) => self.line(&format!("\nrun {run} delivered to every stage")),
                (false, Some(stage)) => self.line(&format!(
                    "\nrun {run} failed at stage {stage}; later stages were not started"
                )),
                // Verification said why already.
                (false, None) => {}
            },
            Event::SavedPlanFetched { stack, from } => {
                self.line(&format!("fetched the saved plan of `{stack}` from {from}"));
            }
            Event::InterruptedRunFound {
                stack_run,
                instance,
                stack,
                owner,
                since,
                left_behind,
            } => {
                let since = since
                    .as_ref()
                    .map(|s| format!(" for {s}"))
                    .unwrap_or_default();
                self.line(&format!(
                    "interrupted: {instance}/{stack} (stack run {stack_run}) was being applied by {owner}{since} when its process died; its state may be half-changed"
                ));
                for left in left_behind {
                    self.line(&format!("  left behind: {}", left.display()));
                }
                self.line(&format!(
                    "  help: inspect the instance (`terraform state list` in its working copy), then run `slipway resolve-interrupted {stack_run} --note \"what you found\"`; slipway does not retry it on its own"
                ));
            }
            Event::StaleLock { held } => self.line(&format!("stale lock: {held}")),
            Event::StaleLockFreed {
                instance,
                stack,
                owner,
            } => self.line(&format!(
                "freed the stale lock on {instance}/{stack} held by {owner}"
            )),
            Event::InterruptedRunResolved {
                stack_run,
                instance,
                stack,
            } => self.line(&format!(
                "stack run {stack_run} ({instance}/{stack}) is recorded as interrupted; the next deploy plans from its state as it is"
            )),
            Event::VerificationStarted {
                path,
                instance,
                stacks,
                on_top_of,
            } => self.line(&match on_top_of {
                None => format!("verify {path}: building {} into `{instance}`", stacks.join(", ")),
                Some(stage) => format!(
                    "verify {path}: building {stage}'s release of {} into `{instance}`, then the change on top",
                    stacks.join(", ")
                ),
            }),
            Event::VerificationFinished { run, passed, paths } => {
                self.line("");
                for result in paths {
                    let verdict = if let Some(why) = &result.skipped {
                        format!("skipped: {why}")
                    } else if result.passed() {
                        format!("passed ({})", seconds(result.elapsed_ms))
                    } else {
                        format!("FAILED ({})", seconds(result.elapsed_ms))
                    };
                    let instance = result
                        .instance
                        .as_deref()
                        .map(|i| format!(" in `{i}`"))
                        .unwrap_or_default();
                    self.line(&format!("verify {}{instance}: {verdict}", result.path));
                    for problem in &result.problems {
                        self.line(&format!("  {problem}"));
                    }
                }
                if !passed {
                    self.line(&format!(
                        "run {run} stopped before its first stage: the change failed verification\n  help: the lines above say which path failed and why; `verify {{ ... }}` in slipway.hcl turns a path off (docs/verification-and-recovery.md)"
                    ));
                }
            }
            Event::Interrupted { grace_ms } => self.line(&format!(
                "\ninterrupt: asking running engine steps to stop and save their state (up to {} before they are killed)",
                humantime::format_duration(Duration::from_millis(*grace_ms))
            )),
        }
    }
}
