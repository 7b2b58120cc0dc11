//! Shared helpers: temporary project copies, the sandbox, running the binary, and reading
//! what it printed and recorded.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use slipway_sandbox::{Moto, Sandbox};
use tempfile::TempDir;

/// The repository root (two folders above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// A copy of `examples/NAME` (or a test fixture) in a temporary folder.
pub fn copy_project(from: &Path) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in walkdir(from) {
        let relative = entry.strip_prefix(from).unwrap();
        if relative
            .components()
            .any(|c| c.as_os_str() == ".slipway" || c.as_os_str() == ".terraform")
        {
            continue;
        }
        let target = dir.path().join(relative);
        if entry.is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(&entry, &target).unwrap();
        }
    }
    dir
}

fn walkdir(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.clone());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

pub fn example(name: &str) -> TempDir {
    copy_project(&repo_root().join("examples").join(name))
}

pub fn fixture(name: &str) -> TempDir {
    copy_project(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
}

/// The sandbox with a fresh moto of its own.
pub fn sandbox() -> (Sandbox, Moto) {
    let sandbox = Sandbox::from_env().expect("the sandbox installs (see docs/sandbox.md)");
    let moto = sandbox.start_moto().expect("moto starts");
    (sandbox, moto)
}

/// `slipway` in `dir` as a plain process, for tests that signal it.
pub fn slipway_process(dir: &Path, env: &[(String, String)]) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("slipway"));
    cmd.current_dir(dir)
        .env_remove("SLIPWAY_ENGINE")
        .env_remove("SLIPWAY_PROJECT_DIR")
        .env_remove("SLIPWAY_SANDBOX_ENDPOINT")
        .env_remove("TF_CLI_CONFIG_FILE")
        // Under a CI runner the suite still runs its projects with local state.
        .env_remove("CI")
        .env("NO_COLOR", "1")
        .envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// `slipway` in `dir`, with a clean environment plus `env`.
pub fn slipway(dir: &Path, env: &[(String, String)]) -> Command {
    let mut cmd = Command::cargo_bin("slipway").unwrap();
    cmd.current_dir(dir)
        .env_remove("SLIPWAY_ENGINE")
        .env_remove("SLIPWAY_PROJECT_DIR")
        .env_remove("SLIPWAY_SANDBOX_ENDPOINT")
        .env_remove("TF_CLI_CONFIG_FILE")
        // Under a CI runner the suite still runs its projects with local state.
        .env_remove("CI")
        .env("NO_COLOR", "1");
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd
}

/// Output with temporary paths, timings and run ids replaced, for snapshots.
pub fn normalize(text: &str, project: &Path) -> String {
    let text = text.replace(&project.display().to_string(), "[PROJECT]");
    replace_patterns(
        text,
        &[
            (r"\d+\.\ds", "[TIME]"),
            (r"runs/\d{8}T\d{6}Z-[0-9a-f]{8}", "runs/[RUN]"),
        ],
    )
}

/// `text` with every match of each `(pattern, replacement)`, in turn, replaced.
pub fn replace_patterns(mut text: String, patterns: &[(&str, &str)]) -> String {
    for (pattern, replacement) in patterns {
        text = regex_lite::Regex::new(pattern)
            .unwrap()
            .replace_all(&text, *replacement)
            .into_owned();
    }
    text
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(mut cmd: Command) -> Output {
    let output = cmd.output().unwrap();
    Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `slipway ARGS` in `dir`, with a clean environment plus `env`, run to its end.
pub fn slipway_run(dir: &Path, env: &[(String, String)], args: &[&str]) -> Output {
    let mut cmd = slipway(dir, env);
    cmd.args(args);
    run(cmd)
}

/// [`slipway_run`] that must succeed.
pub fn slipway_ok_with(dir: &Path, env: &[(String, String)], args: &[&str]) -> Output {
    let output = slipway_run(dir, env, args);
    assert_eq!(
        output.code, 0,
        "slipway {args:?}\nstdout:\n{}\nstderr:\n{}",
        output.stdout, output.stderr
    );
    output
}

/// Asserts that a line of `text` matches `pattern`, a regular expression in which `^` and
/// `$` match at the ends of lines.
#[track_caller]
pub fn assert_line(text: &str, pattern: &str) {
    assert!(
        regex_lite::Regex::new(&format!("(?m){pattern}"))
            .unwrap()
            .is_match(text),
        "no line matches `{pattern}` in:\n{text}"
    );
}

/// Runs `body` in the sandbox's Python with `client`, a boto3 client of AWS `service` that
/// talks to moto; returns what it printed, trimmed.
pub fn boto3(sandbox: &Sandbox, moto: &Moto, service: &str, client: &str, body: &str) -> String {
    let script = format!(
        "import boto3\n{client} = boto3.client('{service}', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\n{body}",
        moto.endpoint()
    );
    // moto listens on loopback: a proxy from the environment must not stand in between.
    let output = std::process::Command::new(&sandbox.python)
        .args(["-c", &script])
        .env("NO_PROXY", "127.0.0.1")
        .env("no_proxy", "127.0.0.1")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Works on the project's own record (SQLite in its data folder) directly, as another
/// slipway process would.
pub fn with_record<T, F, Fut>(project: &Path, work: F) -> T
where
    F: FnOnce(slipway_store::AnyStore) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let url = slipway_store::default_url(&project.join(".slipway"));
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = slipway_store::open(&url).await.unwrap();
            let result = work(store.clone()).await;
            store.close().await;
            result
        })
}

/// Every entry of the audit log in the project's own record, oldest first.
pub fn audit_log(project: &Path) -> Vec<slipway_store::AuditEntry> {
    use slipway_store::Store as _;
    let mut log = with_record(project, |store| async move {
        store.audit_log(None, 1000).await.unwrap()
    });
    log.sort_by_key(|e| e.seq);
    log
}

/// Polls `done` until it holds: the way to wait for something another process makes
/// observable (a file, a log line), failing the test after `timeout`.
pub fn wait_until(what: &str, timeout: std::time::Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// An engine binary standing in for `real`: each call records its arguments and the whole
/// environment it was started with, then becomes the real engine, so a test sees exactly
/// what slipway handed every engine process.
pub struct RecordingEngine {
    /// What `SLIPWAY_ENGINE` points at.
    pub binary: PathBuf,
    calls: PathBuf,
}

/// One recorded engine call.
#[derive(Debug)]
pub struct EngineCall {
    /// The arguments, space-separated (`init -input=false ...`).
    pub args: String,
    /// The environment, each variable as the engine got it.
    pub env: std::collections::BTreeMap<String, String>,
    /// The record as written, to search for a value wherever it might be.
    pub raw: String,
}

/// Writes a [`RecordingEngine`] for `real_engine` into `dir` (a folder of its own, outside
/// the project, so the records never become part of a stack's code).
pub fn recording_engine_wrapper(dir: &Path, real_engine: &Path) -> RecordingEngine {
    let calls = dir.join("engine-calls");
    std::fs::create_dir_all(&calls).unwrap();
    let binary = dir.join("terraform");
    // Shell builtins and `/usr/bin/env` only: the recorded environment may hold no PATH.
    // One file per call (a pid is unique among running processes), so stacks applied in
    // parallel never interleave their records.
    std::fs::write(
        &binary,
        format!(
            "#!/bin/sh\nf='{calls}'/$$\nwhile [ -e \"$f\" ]; do f=\"$f-\"; done\n{{ printf '%s\\n' \"$*\"; /usr/bin/env -0; }} > \"$f\"\nexec '{real}' \"$@\"\n",
            calls = calls.display(),
            real = real_engine.display(),
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    RecordingEngine { binary, calls }
}

impl RecordingEngine {
    /// Every call recorded so far, in no particular order.
    pub fn calls(&self) -> Vec<EngineCall> {
        std::fs::read_dir(&self.calls)
            .unwrap()
            .map(|entry| {
                let raw = std::fs::read_to_string(entry.unwrap().path()).unwrap();
                let (args, env) = raw.split_once('\n').unwrap_or((&raw, ""));
                EngineCall {
                    args: args.to_owned(),
                    env: env
                        .split('\0')
                        .filter_map(|pair| pair.split_once('='))
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                    raw: raw.clone(),
                }
            })
            .collect()
    }
}
