//! Crash anywhere, lose nothing: `slipway run` and `slipway resume` killed with SIGKILL right
//! after each kind of event they report (artifact stored, run recorded, verification, each
//! step of each stack, an apply finished but not yet recorded, a stage's releases written,
//! plans saved for approval, the resumed apply...), on the sandbox's Terraform, with the
//! engine it left running killed too, as a dying machine would.
//!
//! After each kill:
//! - the record opens, and no release is recorded for an apply that did not finish;
//! - every apply left half-way is reported with the command that resolves it;
//! - once resolved, the next run converges: every stage runs the head commit's artifacts
//!   and a fresh plan of every stage is empty;
//! - no saved plan is applied twice: the killed run cannot be resumed over the newer one,
//!   and no two applies in the record carry the same saved plan.
//!
//! The kill comes from outside, when the test reads the event on the `--json` stream, so it
//! lands shortly after the event, as a real crash would, wherever the process has got to.
//! `cargo xtask crash-harness` runs every point; CI runs a sample of them.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::Value;
use slipway_store::{StackRunStatus, Store as _};

use crate::common::{fixture, sandbox, slipway_process, slipway_run, wait_until, with_record};
use crate::pipeline::git;
use crate::pipeline_killed::process_groups_working_in;

/// The command a point kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Killed {
    Run,
    Resume,
}

/// Where to kill: the first event on the stream that matches every field given.
#[derive(Debug, Clone, Copy)]
struct Point {
    command: Killed,
    event: &'static str,
    /// The stage, for events of a stage's own instance (not a verification instance).
    stage: Option<&'static str>,
    stack: Option<&'static str>,
    step: Option<&'static str>,
    /// `stack_finished`'s outcome status.
    outcome: Option<&'static str>,
}

const fn at(command: Killed, event: &'static str) -> Point {
    Point {
        command,
        event,
        stage: None,
        stack: None,
        step: None,
        outcome: None,
    }
}

const fn step(
    command: Killed,
    stage: &'static str,
    stack: &'static str,
    step: &'static str,
) -> Point {
    Point {
        stage: Some(stage),
        stack: Some(stack),
        step: Some(step),
        ..at(command, "step_started")
    }
}

const fn finished(
    command: Killed,
    stage: &'static str,
    stack: &'static str,
    outcome: &'static str,
) -> Point {
    Point {
        stage: Some(stage),
        stack: Some(stack),
        outcome: Some(outcome),
        ..at(command, "stack_finished")
    }
}

const fn in_stage(command: Killed, event: &'static str, stage: &'static str) -> Point {
    Point {
        stage: Some(stage),
        ..at(command, event)
    }
}

use Killed::{Resume, Run};

/// Every point, in the order a run reaches them.
const POINTS: &[Point] = &[
    at(Run, "changes_detected"),
    at(Run, "artifact_built"),
    at(Run, "run_started"),
    at(Run, "verification_started"),
    at(Run, "verification_finished"),
    in_stage(Run, "walk_started", "dev"),
    step(Run, "dev", "base", "prepare"),
    step(Run, "dev", "base", "init"),
    step(Run, "dev", "base", "plan"),
    step(Run, "dev", "base", "apply"),
    step(Run, "dev", "base", "outputs"),
    // The apply finished; the record has not been told.
    finished(Run, "dev", "base", "applied"),
    step(Run, "dev", "app", "apply"),
    finished(Run, "dev", "app", "applied"),
    // The stage's releases are written.
    in_stage(Run, "stage_finished", "dev"),
    in_stage(Run, "walk_started", "test"),
    step(Run, "test", "base", "apply"),
    finished(Run, "test", "app", "applied"),
    in_stage(Run, "stage_finished", "test"),
    step(Run, "prod", "base", "plan"),
    step(Run, "prod", "base", "blast_radius"),
    finished(Run, "prod", "base", "planned"),
    // The plans are saved for approval.
    in_stage(Run, "stage_finished", "prod"),
    at(Run, "awaiting_approval"),
    // The approval is recorded; the run picks it up.
    at(Resume, "run_resumed"),
    in_stage(Resume, "walk_started", "prod"),
    step(Resume, "prod", "base", "apply"),
    finished(Resume, "prod", "base", "applied"),
    step(Resume, "prod", "app", "plan"),
    step(Resume, "prod", "app", "apply"),
    finished(Resume, "prod", "app", "applied"),
    in_stage(Resume, "stage_finished", "prod"),
    at(Resume, "run_finished"),
];

impl Point {
    fn matches(&self, event: &Value) -> bool {
        let field = |name: &str, want: Option<&str>| want.is_none_or(|w| event[name] == w);
        // A stage's own instance, not a verification instance built for that stage.
        let own_instance = event
            .get("instance")
            .is_none_or(|instance| self.stage.is_none_or(|stage| instance == stage));
        event["event"] == self.event
            && field("stage", self.stage)
            && own_instance
            && field("stack", self.stack)
            && field("step", self.step)
            && self.outcome.is_none_or(|w| event["outcome"]["status"] == w)
    }

    fn name(&self) -> String {
        let parts: Vec<&str> = [self.stage, self.stack, self.step, self.outcome]
            .into_iter()
            .flatten()
            .collect();
        format!(
            "{} {}{}",
            match self.command {
                Run => "run",
                Resume => "resume",
            },
            self.event,
            if parts.is_empty() {
                String::new()
            } else {
                format!(" {}", parts.join("/"))
            }
        )
    }
}

/// The project, its first revision delivered everywhere, its second committed.
struct Project {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    _moto: slipway_sandbox::Moto,
    _sandbox: slipway_sandbox::Sandbox,
}

impl Project {
    fn new() -> Self {
        let (sandbox, moto) = sandbox();
        let mut env = moto.env();
        env.push(("SLIPWAY_ACTOR".to_owned(), "tester".to_owned()));
        let dir = fixture("crash");
        git(dir.path(), &["init", "-q", "-b", "main"]);
        std::fs::write(dir.path().join(".gitignore"), ".slipway/\n").unwrap();
        git(dir.path(), &["add", "-A"]);
        git(dir.path(), &["commit", "-q", "-m", "revision 1"]);
        let project = Self {
            dir,
            env,
            _moto: moto,
            _sandbox: sandbox,
        };
        project.deliver_everywhere();
        project.revise(2);
        project
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn slipway(&self, args: &[&str]) -> crate::common::Output {
        slipway_run(self.path(), &self.env, args)
    }

    fn ok(&self, args: &[&str]) -> crate::common::Output {
        let out = self.slipway(args);
        assert_eq!(
            out.code,
            0,
            "slipway {}:\n{}\n{}",
            args.join(" "),
            out.stdout,
            out.stderr
        );
        out
    }

    /// Commits `revision` in both stacks.
    fn revise(&self, revision: u32) {
        for stack in ["base", "app"] {
            let path = self.path().join("stacks").join(stack).join("main.tf");
            let text = std::fs::read_to_string(&path).unwrap();
            let revised = regex_lite::Regex::new(r"revision = \d+")
                .unwrap()
                .replace(&text, format!("revision = {revision}"))
                .into_owned();
            std::fs::write(&path, revised).unwrap();
        }
        git(
            self.path(),
            &["commit", "-q", "-am", &format!("revision {revision}")],
        );
    }

    /// `slipway run` to prod's approval, approved, resumed: the head in every stage. A run
    /// that finds every stage at the head already has nothing to deliver.
    fn deliver_everywhere(&self) {
        let run = self.ok(&["run", "--json"]);
        match awaiting_approval(&run.stdout) {
            Some(id) => {
                self.ok(&[
                    "approve",
                    &id.to_string(),
                    "--stage",
                    "prod",
                    "--reason",
                    "harness",
                ]);
                self.ok(&["resume", &id.to_string()]);
            }
            None => assert!(
                run.stdout
                    .lines()
                    .any(|l| l.contains(r#""event":"changes_detected""#)
                        && l.contains(r#""stacks":[]"#)),
                "the run either stops at prod's approval or has nothing to deliver:\n{}",
                run.stdout
            ),
        }
    }

    /// Runs `args` and kills it with SIGKILL when `point` is read on its event stream.
    /// Returns the events read before the kill; panics when the command ends without
    /// reaching the point.
    fn kill_at(&self, args: &[&str], point: &Point) -> Vec<Value> {
        let stderr_path = self.path().join(".slipway-killed.stderr");
        let mut child = slipway_process(self.path(), &self.env)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let mut seen = Vec::new();
        let mut killed = false;
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let event: Value = serde_json::from_str(&line.unwrap()).unwrap();
            let hit = point.matches(&event);
            seen.push(event);
            if hit {
                kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
                killed = true;
                break;
            }
        }
        child.wait().unwrap();
        assert!(
            killed,
            "`slipway {}` ended before {}: {seen:#?}\n{}",
            args.join(" "),
            point.name(),
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        );
        // The engine outlives slipway in its own process group: a dying machine takes it too.
        let work = self.path().canonicalize().unwrap().join(".slipway/work");
        for group in process_groups_working_in(&work) {
            let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
        }
        wait_until(
            "the orphaned engine is gone",
            Duration::from_secs(30),
            || process_groups_working_in(&work).is_empty(),
        );
        seen
    }
}

/// The run id of the `awaiting_approval` event on a `--json` stream.
fn awaiting_approval(stream: &str) -> Option<i64> {
    stream
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|event| event["event"] == "awaiting_approval")
        .and_then(|event| event["run"].as_i64())
}

/// Kills at `point` and checks that nothing was lost, then that the project converges.
fn crash_at(point: &Point) {
    let project = Project::new();
    let head = git_head(project.path());
    let killed_run = match point.command {
        Run => {
            let seen = project.kill_at(&["run", "--json"], point);
            seen.iter()
                .find(|e| e["event"] == "run_started")
                .and_then(|e| e["run"].as_i64())
        }
        Resume => {
            let run = project.ok(&["run", "--json"]);
            let id = awaiting_approval(&run.stdout).expect("the run awaits approval");
            project.ok(&[
                "approve",
                &id.to_string(),
                "--stage",
                "prod",
                "--reason",
                "r2",
            ]);
            project.kill_at(&["resume", &id.to_string(), "--json"], point);
            Some(id)
        }
    };
    let name = point.name();

    // The record opens and tells a consistent story.
    let history = project.ok(&["history", "--json"]);
    serde_json::from_str::<Value>(&history.stdout).expect("history is JSON");
    let (unfinished, releases_without_apply) = with_record(project.path(), |store| async move {
        let mut unfinished = Vec::new();
        let mut orphans = Vec::new();
        for release in store.current_releases().await.unwrap() {
            let Some(run_id) = release.run_id else {
                continue;
            };
            let applied = store
                .stack_runs(run_id)
                .await
                .unwrap()
                .into_iter()
                .any(|s| {
                    s.stage == release.stage
                        && s.stack == release.stack
                        && s.status == StackRunStatus::Succeeded
                });
            if !applied {
                orphans.push(format!(
                    "{}/{} (run {run_id})",
                    release.stage, release.stack
                ));
            }
        }
        for run in store.recent_runs(100).await.unwrap() {
            for stack_run in store.stack_runs(run.id).await.unwrap() {
                if stack_run.status == StackRunStatus::Applying {
                    unfinished.push(stack_run.id);
                }
            }
        }
        (unfinished, orphans)
    });
    assert!(
        releases_without_apply.is_empty(),
        "{name}: releases recorded for applies that did not finish: {releases_without_apply:?}"
    );

    // Every apply left half-way is reported with the command that resolves it.
    let status = project.ok(&["status"]);
    for id in &unfinished {
        let resolve = format!("slipway resolve-interrupted {id} --note");
        assert!(
            status.stderr.contains(&resolve),
            "{name}: `status` names {resolve}:\n{}",
            status.stderr
        );
        project.ok(&[
            "resolve-interrupted",
            &id.to_string(),
            "--note",
            "crash harness: state checked",
        ]);
    }

    // The next run converges: the head everywhere, nothing left to plan.
    project.deliver_everywhere();
    let releases = with_record(project.path(), |store| async move {
        store.current_releases().await.unwrap()
    });
    assert_eq!(releases.len(), 6, "{name}: {releases:?}");
    for release in &releases {
        assert_eq!(release.commit, head, "{name}: {release:?}");
    }
    for stage in ["dev", "test", "prod"] {
        let plan = project.ok(&["plan", "--stage", stage, "--json"]);
        let changes: Vec<String> = plan
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["event"] == "stack_finished")
            .filter(|e| e["outcome"]["changes"] != false)
            .map(|e| e["stack"].to_string())
            .collect();
        assert!(
            changes.is_empty(),
            "{name}: {stage} plans changes to {changes:?}"
        );
    }

    // No saved plan is applied twice: the killed run's approval went with the newer run.
    if let Some(id) = killed_run {
        let again = project.slipway(&["resume", &id.to_string()]);
        assert_ne!(again.code, 0, "{name}: run {id} resumed over a newer run");
    }
    let applied_plans: Vec<String> = with_record(project.path(), |store| async move {
        let mut plans = Vec::new();
        for run in store.recent_runs(100).await.unwrap() {
            for stack_run in store.stack_runs(run.id).await.unwrap() {
                if stack_run.status != StackRunStatus::Succeeded {
                    continue;
                }
                let summary: Value = stack_run
                    .plan_summary
                    .as_deref()
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or_default();
                if let Some(sha) = summary["sha256"].as_str() {
                    plans.push(sha.to_owned());
                }
            }
        }
        plans
    });
    let distinct: BTreeSet<&String> = applied_plans.iter().collect();
    assert_eq!(
        distinct.len(),
        applied_plans.len(),
        "{name}: a saved plan was applied twice: {applied_plans:?}"
    );
}

fn git_head(dir: &Path) -> String {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs the points named by their index in [`POINTS`], and says how many were covered.
fn crash_at_each(indices: impl IntoIterator<Item = usize>) {
    let mut covered = Vec::new();
    for index in indices {
        let point = &POINTS[index];
        eprintln!("crash harness: killing at {}", point.name());
        crash_at(point);
        covered.push(point.name());
    }
    eprintln!(
        "crash harness: {} point(s) covered, lost nothing:\n  {}",
        covered.len(),
        covered.join("\n  ")
    );
}

/// A sample in CI: an apply finished but not yet recorded, and the approved apply resumed.
#[test]
fn a_sample_of_crash_points_loses_nothing() {
    let sample = [
        "run stack_finished dev/base/applied",
        "resume step_started prod/base/apply",
    ];
    let indices: Vec<usize> = sample
        .iter()
        .map(|name| {
            POINTS
                .iter()
                .position(|p| p.name() == *name)
                .unwrap_or_else(|| panic!("no point {name}"))
        })
        .collect();
    crash_at_each(indices);
}

/// Every point (`cargo xtask crash-harness`).
#[test]
#[ignore = "the full crash harness: `cargo xtask crash-harness`"]
fn every_crash_point_loses_nothing() {
    assert!(POINTS.len() >= 20, "{} points", POINTS.len());
    let names: BTreeSet<String> = POINTS.iter().map(Point::name).collect();
    assert_eq!(names.len(), POINTS.len(), "points are distinct");
    crash_at_each(0..POINTS.len());
}

/// A run's events are kept in the record as they were streamed: `slipway events RUN` prints
/// what `slipway run --json` and `slipway resume --json` showed, in order.
#[test]
fn a_runs_events_are_recorded_as_they_were_streamed() {
    let project = Project::new();
    let events = |stream: &str| -> Vec<Value> {
        stream
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|e| e["event"] != "finished")
            .collect()
    };
    let run = project.ok(&["run", "--json"]);
    let id = awaiting_approval(&run.stdout).expect("the run awaits approval");
    let mut streamed = events(&run.stdout);
    assert_eq!(
        events(&project.ok(&["events", &id.to_string()]).stdout),
        streamed,
        "what the record holds of the run so far"
    );
    project.ok(&[
        "approve",
        &id.to_string(),
        "--stage",
        "prod",
        "--reason",
        "ok",
    ]);
    let resumed = project.ok(&["resume", &id.to_string(), "--json"]);
    streamed.extend(events(&resumed.stdout));
    let recorded = project.ok(&["events", &id.to_string()]).stdout;
    assert_eq!(events(&recorded), streamed, "the resume's events follow");
    assert!(streamed.len() > 40, "{} events", streamed.len());
    // Following on from a known point.
    let tail = project
        .ok(&["events", &id.to_string(), "--after", "40"])
        .stdout;
    assert_eq!(events(&tail), streamed[40..]);
    let unknown = project.slipway(&["events", "999"]);
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("run 999 is not in the record"),
        "{}",
        unknown.stderr
    );
}
