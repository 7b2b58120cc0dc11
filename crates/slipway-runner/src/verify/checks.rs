//! Running a stack's `check` blocks against an applied instance: each check's `expect`
//! patterns are matched against the stack's outputs, then its `command` runs in the stack's
//! working copy with every output in the environment as `SLIPWAY_OUTPUT_<NAME>` (strings as
//! they are, anything else as JSON). Sensitive outputs reach the command but are never
//! printed: their values are masked in what the command printed, and an `expect` on one
//! never shows the value.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;
use slipway_core::Stack;
use slipway_core::config::check::Check;
use slipway_engine::Output;

use crate::executor::Executor;
use crate::verify::{inventory, millis};

/// Longest a check command may run before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(300);
/// How much of a check command's output is kept (its end).
const KEPT_OUTPUT: usize = 4000;

/// How one check went.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub stack: String,
    pub check: String,
    pub passed: bool,
    /// What did not hold, one line each.
    pub problems: Vec<String>,
    /// What the command printed (stdout then stderr), sensitive values masked.
    pub output: String,
    pub elapsed_ms: u64,
}

/// The check's lines in a report: its verdict, then what did not hold.
impl std::fmt::Display for CheckResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "  check {}/{}: {}",
            self.stack,
            self.check,
            if self.passed { "passed" } else { "FAILED" }
        )?;
        for problem in &self.problems {
            write!(f, "\n    {problem}")?;
        }
        Ok(())
    }
}

/// The environment variable an output reaches a check command as.
pub fn env_name(output: &str) -> String {
    let upper: String = output
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("SLIPWAY_OUTPUT_{upper}")
}

/// An output's value as text: strings as they are, anything else as JSON.
pub fn value_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The `expect` part of a check: which patterns do not hold.
pub fn expectation_problems(check: &Check, outputs: &BTreeMap<String, Output>) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, pattern) in &check.expect {
        let regex = match regex_lite::Regex::new(pattern) {
            Ok(regex) => regex,
            Err(error) => {
                problems.push(format!("`{pattern}` is not a valid pattern: {error}"));
                continue;
            }
        };
        match outputs.get(name) {
            None => problems.push(format!("output `{name}` does not exist")),
            Some(output) => {
                let text = value_text(&output.value);
                if !regex.is_match(&text) {
                    if output.sensitive {
                        problems.push(format!(
                            "output `{name}` (sensitive) does not match `{pattern}`"
                        ));
                    } else {
                        problems.push(format!(
                            "output `{name}` = {text:?} does not match `{pattern}`"
                        ));
                    }
                }
            }
        }
    }
    problems
}

/// Runs every check of `stack` against its outputs; `cwd` is the stack's folder in the
/// working copy, `env` the environment the stack's engine processes get (all a command gets
/// besides the outputs).
pub async fn run_checks(
    stack: &str,
    checks: &[Check],
    outputs: &BTreeMap<String, Output>,
    cwd: &Path,
    env: &[(String, String)],
) -> Vec<CheckResult> {
    let mut results = Vec::new();
    for check in checks {
        let started = Instant::now();
        let mut problems = expectation_problems(check, outputs);
        let mut output = String::new();
        if let Some((program, args)) = check.command.split_first() {
            match run_command(program, args, outputs, cwd, env).await {
                Ok((status, text)) => {
                    output = mask(&text, outputs);
                    if !status {
                        problems.push(format!("`{}` failed", check.command.join(" ")));
                    }
                }
                Err(error) => {
                    problems.push(format!("cannot run `{}`: {error}", check.command.join(" ")))
                }
            }
        }
        results.push(CheckResult {
            stack: stack.to_owned(),
            check: check.name.clone(),
            passed: problems.is_empty(),
            problems,
            output,
            elapsed_ms: millis(started.elapsed()),
        });
    }
    results
}

async fn run_command(
    program: &str,
    args: &[String],
    outputs: &BTreeMap<String, Output>,
    cwd: &Path,
    env: &[(String, String)],
) -> Result<(bool, String), String> {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .current_dir(cwd)
        // Like an engine process, a check gets its stack's environment and nothing of
        // slipway's own: inheriting it would hand the command the credentials and secrets
        // withheld from the engine.
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .envs(
            outputs
                .iter()
                .map(|(name, output)| (env_name(name), value_text(&output.value))),
        )
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(CHECK_TIMEOUT, command.output())
        .await
        .map_err(|_| {
            format!(
                "it ran longer than {}",
                humantime::format_duration(CHECK_TIMEOUT)
            )
        })?
        .map_err(|e| e.to_string())?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    if text.len() > KEPT_OUTPUT {
        let mut cut = text.len() - KEPT_OUTPUT;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        text = format!("...{}", &text[cut..]);
    }
    Ok((output.status.success(), text))
}

/// Replaces every sensitive output's value in `text`.
fn mask(text: &str, outputs: &BTreeMap<String, Output>) -> String {
    let mut masked = text.to_owned();
    for (name, output) in outputs.iter().filter(|(_, o)| o.sensitive) {
        let value = value_text(&output.value);
        if !value.is_empty() {
            masked = masked.replace(&value, &format!("({name}: sensitive)"));
        }
    }
    masked
}

/// Reads a stack instance's outputs and runs the stack's checks against them.
async fn run_stack_checks(executor: &Executor, stack: &Stack) -> anyhow::Result<Vec<CheckResult>> {
    let (working_copy, outputs) = inventory::read_outputs(executor, &stack.name).await?;
    let credentials = executor.environment.for_stack(&stack.name);
    let env: Vec<(String, String)> = executor
        .engine
        .env
        .iter()
        .chain(&credentials.plan)
        .cloned()
        .collect();
    Ok(run_checks(
        &stack.name,
        &stack.checks,
        &outputs,
        &working_copy.stack_dir,
        &env,
    )
    .await)
}

/// Runs the checks of each of `stacks` that has any against the executor's instance and
/// returns every result. A failed check, and a stack whose checks could not run, add a line
/// to `problems`: a drill, a recovery and a verification path all fail on them.
pub async fn run_all_checks<'a>(
    executor: &Executor,
    stacks: impl IntoIterator<Item = &'a Stack>,
    problems: &mut Vec<String>,
) -> Vec<CheckResult> {
    let mut all = Vec::new();
    for stack in stacks.into_iter().filter(|s| !s.checks.is_empty()) {
        match run_stack_checks(executor, stack).await {
            Ok(results) => {
                for failed in results.iter().filter(|r| !r.passed) {
                    problems.push(format!(
                        "{}: check `{}` failed: {}",
                        failed.stack,
                        failed.check,
                        failed.problems.join("; ")
                    ));
                }
                all.extend(results);
            }
            Err(error) => {
                problems.push(format!("{}: cannot run its checks: {error:#}", stack.name))
            }
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(value: serde_json::Value, sensitive: bool) -> Output {
        Output { value, sensitive }
    }

    fn check(command: &[&str], expect: &[(&str, &str)]) -> Check {
        Check {
            name: "c".into(),
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            expect: expect
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            location: slipway_core::Location::at(std::path::Path::new("stack.hcl"), 1, 1),
        }
    }

    #[test]
    fn env_names_are_upper_case_with_underscores() {
        assert_eq!(env_name("queue_url"), "SLIPWAY_OUTPUT_QUEUE_URL");
        assert_eq!(env_name("db-password"), "SLIPWAY_OUTPUT_DB_PASSWORD");
    }

    #[test]
    fn expectations_name_missing_and_mismatched_outputs_but_never_secrets() {
        let outputs = BTreeMap::from([
            ("url".to_owned(), output("http://q".into(), false)),
            ("password".to_owned(), output("hunter2".into(), true)),
            (
                "ids".to_owned(),
                output(serde_json::json!(["a", "b"]), false),
            ),
        ]);
        let problems = expectation_problems(
            &check(
                &[],
                &[
                    ("url", "^https://"),
                    ("password", "^x"),
                    ("ids", r#"^\["a""#),
                    ("nope", "."),
                ],
            ),
            &outputs,
        );
        assert_eq!(
            problems,
            vec![
                "output `nope` does not exist",
                "output `password` (sensitive) does not match `^x`",
                "output `url` = \"http://q\" does not match `^https://`",
            ]
        );
        assert!(!problems.join("\n").contains("hunter2"));
    }

    #[tokio::test]
    async fn commands_see_outputs_and_sensitive_values_are_masked() {
        let outputs = BTreeMap::from([
            ("url".to_owned(), output("http://q".into(), false)),
            ("password".to_owned(), output("hunter2".into(), true)),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let checks = [
            check(
                &[
                    "sh",
                    "-c",
                    "echo url=$SLIPWAY_OUTPUT_URL pw=$SLIPWAY_OUTPUT_PASSWORD",
                ],
                &[],
            ),
            check(&["sh", "-c", "echo broken >&2; exit 3"], &[]),
        ];
        let results = run_checks("queue", &checks, &outputs, dir.path(), &[]).await;
        assert!(results[0].passed, "{results:?}");
        assert_eq!(results[0].output, "url=http://q pw=(password: sensitive)\n");
        assert!(!results[1].passed);
        assert_eq!(results[1].output, "broken\n");
        assert_eq!(
            results[1].problems,
            vec!["`sh -c echo broken >&2; exit 3` failed"]
        );
    }

    #[tokio::test]
    async fn commands_get_the_stack_environment_and_nothing_of_slipways_own() {
        // PATH is in every test process's environment; a check does not inherit it.
        assert!(std::env::var_os("PATH").is_some());
        let dir = tempfile::tempdir().unwrap();
        let checks = [check(&["/usr/bin/env"], &[])];
        let outputs = BTreeMap::from([("url".to_owned(), output("http://q".into(), false))]);
        let env = [("OWN".to_owned(), "mine".to_owned())];
        let results = run_checks("queue", &checks, &outputs, dir.path(), &env).await;
        assert!(results[0].passed, "{results:?}");
        let mut received: Vec<&str> = results[0].output.lines().collect();
        received.sort_unstable();
        assert_eq!(received, ["OWN=mine", "SLIPWAY_OUTPUT_URL=http://q"]);
    }
}
