//! Running one engine command, with slipway's process policy written down in one place:
//!
//! - Each command runs in its own process group, so a Ctrl-C at the terminal reaches slipway
//!   alone and slipway decides what the engine sees.
//! - On interrupt or timeout the group receives exactly one SIGINT, which Terraform treats as
//!   "stop gracefully and save state". After a grace period it receives SIGKILL.
//! - stdout and stderr go to the step's log file line by line (and to the terminal when
//!   streaming is on); stdout that may hold secrets (`output -json`, `show -json`) is kept in
//!   memory instead and never written to a log, or handed as it is written to a reader
//!   ([`run_streaming`]) so a plan's JSON is never held whole.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::watch;

/// The receiving side of slipway's interrupt: cloned into every running step.
#[derive(Debug, Clone)]
pub struct Interrupt(watch::Receiver<bool>);

/// The sending side, held by whoever listens for Ctrl-C.
#[derive(Debug)]
pub struct InterruptTrigger(watch::Sender<bool>);

impl Interrupt {
    pub fn channel() -> (InterruptTrigger, Interrupt) {
        let (tx, rx) = watch::channel(false);
        (InterruptTrigger(tx), Interrupt(rx))
    }

    /// An interrupt that never fires.
    pub fn never() -> Interrupt {
        let (tx, rx) = watch::channel(false);
        // Keeping the sender alive forever keeps `wait` pending forever.
        std::mem::forget(tx);
        Interrupt(rx)
    }

    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// An interrupt that fires when `self` or `other` does: Ctrl-C for the whole run, say,
    /// and the loss of one stack instance's lock for that stack alone. Needs a tokio runtime.
    pub fn or(&self, other: &Interrupt) -> Interrupt {
        let (trigger, either) = Interrupt::channel();
        let (a, b) = (self.clone(), other.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = a.wait() => trigger.fire(),
                () = b.wait() => trigger.fire(),
                // Nobody listens any more: stop waiting.
                () = trigger.0.closed() => {}
            }
        });
        either
    }

    /// Resolves once the interrupt fires.
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        // An error means the trigger is gone without firing: then it never will.
        if rx.wait_for(|set| *set).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl InterruptTrigger {
    pub fn fire(&self) {
        let _ = self.0.send(true);
    }
}

/// A log file shared by the steps of one stack instance. Every line passes through the
/// redactor, so a credential value that an engine echoes never lands in the file.
#[derive(Debug, Clone)]
pub struct Log {
    path: PathBuf,
    file: Arc<Mutex<std::fs::File>>,
    secrets: Arc<Vec<String>>,
}

impl Log {
    pub fn create(path: &Path) -> std::io::Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            file: Arc::new(Mutex::new(file)),
            secrets: Arc::new(Vec::new()),
        })
    }

    /// The same log, redacting these values wherever they appear.
    #[must_use]
    pub fn redacting(mut self, secrets: impl IntoIterator<Item = String>) -> Self {
        // Very short values would redact ordinary words; credential values are never that short.
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| s.len() >= 4).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        self.secrets = Arc::new(secrets);
        self
    }

    /// `text` with every secret replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in self.secrets.iter() {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "[redacted]");
            }
        }
        text
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn line(&self, line: &str) {
        let line = self.redact(line);
        if let Ok(mut file) = self.file.lock() {
            let _ = writeln!(file, "{line}");
        }
    }
}

/// Where a step's output lines go besides its log while someone watches (`--verbose`). The
/// front end decides how to show them; this crate never prints. Lines arrive redacted.
#[derive(Clone)]
pub struct LineSink(Arc<dyn Fn(&str) + Send + Sync>);

impl LineSink {
    pub fn new(receive: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self(Arc::new(receive))
    }

    fn send(&self, line: &str) {
        (self.0)(line);
    }
}

impl std::fmt::Debug for LineSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LineSink")
    }
}

/// Told the pid of each engine process a step starts (the leader of its process group),
/// so the caller can record who is changing the infrastructure.
#[derive(Clone)]
pub struct SpawnSink(Arc<dyn Fn(u32) + Send + Sync>);

impl SpawnSink {
    pub fn new(receive: impl Fn(u32) + Send + Sync + 'static) -> Self {
        Self(Arc::new(receive))
    }
}

impl std::fmt::Debug for SpawnSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpawnSink")
    }
}

/// One command to run.
#[derive(Debug, Clone)]
pub struct Step<'a> {
    /// Short name for messages: `init`, `plan`, `apply`...
    pub name: &'a str,
    pub program: &'a Path,
    pub args: Vec<OsString>,
    pub cwd: &'a Path,
    /// The process's whole environment; nothing is inherited from slipway's.
    pub env: &'a [(String, String)],
    pub log: &'a Log,
    /// When set, every logged line is also handed to this sink, redacted.
    pub echo: Option<&'a LineSink>,
    /// Keep stdout in memory and out of the log (it may hold sensitive values).
    pub capture_stdout: bool,
    pub timeout: Duration,
    pub grace: Duration,
    /// Told the engine process's pid once it runs.
    pub spawned: Option<&'a SpawnSink>,
}

/// How a step ended when it ran to completion.
#[derive(Debug)]
pub struct Finished {
    pub code: Option<i32>,
    /// Length of the log when the step started: its own output follows.
    pub log_offset: u64,
    /// Captured stdout when `capture_stdout` was set.
    pub stdout: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("could not start `{program}`: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("`{step}` was interrupted{}", if *.killed { " and killed after the grace period" } else { "" })]
    Interrupted { step: String, killed: bool },
    #[error("`{step}` timed out after {}{}", humanize(*.after), if *.killed { " and was killed after the grace period" } else { "" })]
    TimedOut {
        step: String,
        after: Duration,
        killed: bool,
    },
    #[error(
        "`{step}` could not take the state lock: it is held by {who} since {created} (operation {operation}, lock id {id})"
    )]
    Locked {
        step: String,
        id: String,
        who: String,
        created: String,
        operation: String,
    },
    #[error("`{step}` refused the saved plan: the state changed since the plan was made (Terraform: \"Saved plan is stale\"); see {}", .log.display())]
    StalePlan { step: String, log: PathBuf },
    #[error("`{step}` failed (exit code {code}){}; see {}", .reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default(), .log.display())]
    Failed {
        step: String,
        code: i32,
        /// The engine's own explanation ([`crate::reason::engine_reason`]), redacted.
        reason: Option<String>,
        log: PathBuf,
    },
    #[error("`{step}` produced output slipway could not read: {message}")]
    BadOutput { step: String, message: String },
    #[error(
        "`{step}` would change what the committed .terraform.lock.hcl pins: {detail}\n  help: run `terraform init` (or `tofu init`) in the stack, review the lock file's changes and commit it"
    )]
    LockFileChanged { step: String, detail: String },
    #[error("I/O error while running `{step}`: {source}")]
    Io {
        step: String,
        source: std::io::Error,
    },
}

impl StepError {
    pub fn was_interrupted(&self) -> bool {
        matches!(self, StepError::Interrupted { .. })
    }

    /// The id of the state lock that stopped the step, if that is what happened.
    /// Whether the engine refused a saved plan because the state changed since it was made.
    pub fn is_stale_plan(&self) -> bool {
        matches!(self, StepError::StalePlan { .. })
    }

    pub fn lock_id(&self) -> Option<&str> {
        match self {
            StepError::Locked { id, .. } => Some(id),
            _ => None,
        }
    }
}

fn humanize(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs >= 60 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else if secs > 0 {
        format!("{secs}s")
    } else {
        format!("{}ms", duration.as_millis())
    }
}

enum Stop {
    Interrupted,
    TimedOut,
}

/// Reads a step's stdout as the engine writes it, on a blocking thread; see [`run_streaming`].
pub type Consume = Box<dyn FnOnce(&mut dyn std::io::Read) + Send>;

/// Runs a step to completion, interruption or timeout.
pub async fn run(step: Step<'_>, interrupt: &Interrupt) -> Result<Finished, StepError> {
    run_inner(step, interrupt, None).await
}

/// [`run`], with the step's stdout handed to `consume` through the pipe as the engine
/// writes it (never logged, never held whole: `Finished::stdout` stays empty). Whatever
/// `consume` leaves unread is read and dropped, so the engine always runs to its own exit
/// and its exit status says whether the output is whole; the caller checks it first.
pub async fn run_streaming(
    step: Step<'_>,
    interrupt: &Interrupt,
    consume: Consume,
) -> Result<Finished, StepError> {
    run_inner(step, interrupt, Some(consume)).await
}

/// How much a streamed output's pipe holds: at the default 64 KiB the engine and the reader
/// take turns every few dozen microseconds on a plan of hundreds of megabytes; a wider pipe
/// lets each run ahead of the other.
#[cfg(target_os = "linux")]
const STREAMED_PIPE_BYTES: i32 = 1 << 20;

/// Asks for a wider pipe; a system that refuses (a lower `pipe-max-size`) keeps the default,
/// which is only slower.
fn widen_pipe(pipe: &std::fs::File) {
    #[cfg(target_os = "linux")]
    {
        use nix::fcntl::{FcntlArg, fcntl};
        let _ = fcntl(pipe, FcntlArg::F_SETPIPE_SZ(STREAMED_PIPE_BYTES));
    }
    #[cfg(not(target_os = "linux"))]
    let _ = pipe;
}

async fn run_inner(
    step: Step<'_>,
    interrupt: &Interrupt,
    consume: Option<Consume>,
) -> Result<Finished, StepError> {
    let io_error = |source| StepError::Io {
        step: step.name.to_owned(),
        source,
    };
    let log_offset = std::fs::metadata(step.log.path()).map_or(0, |m| m.len());
    step.log.line(&format!(
        "== {} {} ==",
        step.program
            .file_name()
            .unwrap_or_default()
            .to_string_lossy(),
        step.args
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    ));
    if interrupt.is_set() {
        return Err(StepError::Interrupted {
            step: step.name.to_owned(),
            killed: false,
        });
    }
    let mut child = Command::new(step.program)
        .args(&step.args)
        .current_dir(step.cwd)
        // The step's environment is all the process gets: inheriting slipway's own would
        // hand every stack the credentials withheld from it.
        .env_clear()
        .envs(step.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| StepError::Spawn {
            program: step.program.display().to_string(),
            source,
        })?;
    if let (Some(sink), Some(id)) = (step.spawned, child.id()) {
        (sink.0)(id);
    }
    let pid = child.id().map(|id| Pid::from_raw(id as i32));

    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let stdout_task = {
        let log = step.log.clone();
        let echo = step.echo.cloned();
        let capture = step.capture_stdout;
        tokio::spawn(async move {
            match stdout {
                Some(out) if consume.is_some() => {
                    let mut pipe = std::fs::File::from(out.into_owned_fd()?);
                    widen_pipe(&pipe);
                    let consume = consume.unwrap_or_else(|| Box::new(|_| {}));
                    tokio::task::spawn_blocking(move || {
                        consume(&mut pipe);
                        std::io::copy(&mut pipe, &mut std::io::sink()).map(|_| Vec::new())
                    })
                    .await
                    .map_err(std::io::Error::other)?
                }
                Some(out) if capture => {
                    let mut bytes = Vec::new();
                    let mut out = out;
                    out.read_to_end(&mut bytes).await.map(|_| bytes)
                }
                Some(out) => pump(out, &log, echo.as_ref()).await.map(|()| Vec::new()),
                None => Ok(Vec::new()),
            }
        })
    };
    let stderr_task = {
        let log = step.log.clone();
        let echo = step.echo.cloned();
        tokio::spawn(async move {
            match stderr {
                Some(err) => pump(err, &log, echo.as_ref()).await,
                None => Ok(()),
            }
        })
    };

    let started = std::time::Instant::now();
    let stop = tokio::select! {
        status = child.wait() => {
            let status = status.map_err(io_error)?;
            let stdout = stdout_task.await.ok().and_then(Result::ok).unwrap_or_default();
            let _ = stderr_task.await;
            step.log.line(&format!(
                "== {} finished in {:.1}s with exit code {} ==",
                step.name,
                started.elapsed().as_secs_f64(),
                status.code().map_or_else(|| "none".to_owned(), |c| c.to_string())
            ));
            return Ok(Finished { code: status.code(), log_offset, stdout });
        }
        () = interrupt.wait() => Stop::Interrupted,
        () = tokio::time::sleep(step.timeout) => Stop::TimedOut,
    };

    // One interrupt, then a grace period for the engine to write its state, then kill.
    if let Some(pid) = pid {
        let _ = killpg(pid, Signal::SIGINT);
    }
    step.log.line(&format!(
        "== slipway: sent one interrupt; waiting up to {} for it to stop ==",
        humanize(step.grace)
    ));
    let killed = match tokio::time::timeout(step.grace, child.wait()).await {
        Ok(_) => false,
        Err(_) => {
            if let Some(pid) = pid {
                let _ = killpg(pid, Signal::SIGKILL);
            }
            let _ = child.wait().await;
            step.log.line("== slipway: grace period over; killed ==");
            true
        }
    };
    let _ = stdout_task.await;
    let _ = stderr_task.await;
    let name = step.name.to_owned();
    Err(match stop {
        Stop::Interrupted => StepError::Interrupted { step: name, killed },
        Stop::TimedOut => StepError::TimedOut {
            step: name,
            after: step.timeout,
            killed,
        },
    })
}

async fn pump(
    reader: impl AsyncRead + Unpin,
    log: &Log,
    echo: Option<&LineSink>,
) -> std::io::Result<()> {
    let mut lines = BufReader::new(reader).lines();
    while let Some(line) = lines.next_line().await? {
        log.line(&line);
        if let Some(sink) = echo {
            sink.send(&log.redact(&line));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step<'a>(log: &'a Log, dir: &'a Path, script: &str, timeout: Duration) -> Step<'a> {
        Step {
            name: "test",
            program: Path::new("/bin/sh"),
            args: vec!["-c".into(), script.into()],
            cwd: dir,
            env: &[],
            log,
            echo: None,
            capture_stdout: false,
            timeout,
            grace: Duration::from_secs(5),
            spawned: None,
        }
    }

    #[tokio::test]
    async fn either_interrupt_stops_a_step_and_the_spawned_pid_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::create(&dir.path().join("x.log")).unwrap();
        let (_run_wide, whole_run) = Interrupt::channel();
        let (lost_lock, this_stack) = Interrupt::channel();
        let either = whole_run.or(&this_stack);
        assert!(!either.is_set());
        let (told, heard) = std::sync::mpsc::channel();
        let sink = SpawnSink::new(move |pid| {
            let _ = told.send(pid);
        });
        let running = tokio::spawn({
            let either = either.clone();
            let dir = dir.path().to_path_buf();
            let log = log.clone();
            async move {
                let mut s = step(&log, &dir, "sleep 60", Duration::from_secs(120));
                s.spawned = Some(&sink);
                s.grace = Duration::from_millis(200);
                run(s, &either).await
            }
        });
        let pid = tokio::task::spawn_blocking(move || heard.recv().unwrap())
            .await
            .unwrap();
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "the told pid is the running step's"
        );
        lost_lock.fire();
        let error = running.await.unwrap().unwrap_err();
        assert!(error.was_interrupted(), "{error}");
        assert!(either.is_set());
    }

    #[tokio::test]
    async fn output_goes_to_the_log_and_exit_code_is_returned() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::create(&dir.path().join("x.log")).unwrap();
        let finished = run(
            step(
                &log,
                dir.path(),
                "echo out; echo err >&2; exit 3",
                Duration::from_secs(30),
            ),
            &Interrupt::never(),
        )
        .await
        .unwrap();
        assert_eq!(finished.code, Some(3));
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(text.contains("out\n") && text.contains("err\n"), "{text}");
    }

    #[tokio::test]
    async fn a_watcher_gets_every_line_redacted_through_its_sink() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::create(&dir.path().join("x.log"))
            .unwrap()
            .redacting(["AKIA-very-secret".to_owned()]);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = {
            let seen = Arc::clone(&seen);
            LineSink::new(move |line| seen.lock().unwrap().push(line.to_owned()))
        };
        let mut s = step(
            &log,
            dir.path(),
            "echo key=AKIA-very-secret; echo err >&2",
            Duration::from_secs(30),
        );
        s.echo = Some(&sink);
        run(s, &Interrupt::never()).await.unwrap();
        let mut seen = seen.lock().unwrap().clone();
        seen.sort();
        assert_eq!(seen, ["err", "key=[redacted]"]);
    }

    #[test]
    fn secrets_are_redacted_from_log_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::create(&dir.path().join("x.log"))
            .unwrap()
            .redacting(["AKIA-very-secret".to_owned(), "ab".to_owned()]);
        log.line("key=AKIA-very-secret and ab stays");
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert_eq!(text, "key=[redacted] and ab stays\n");
    }

    #[tokio::test]
    async fn streamed_stdout_reaches_the_reader_and_stays_out_of_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::create(&dir.path().join("x.log")).unwrap();
        // More than a pipe's buffer, so the engine can only finish if it is read as it writes.
        let script = "i=0; while [ $i -lt 20000 ]; do echo \"$SECRET line $i\"; i=$((i+1)); done; echo done >&2";
        let (tx, rx) = std::sync::mpsc::channel();
        let consume: Consume = Box::new(move |pipe| {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            let _ = tx.send(text);
        });
        let env = [("SECRET".to_owned(), "s3cr3t".to_owned())];
        let mut s = step(&log, dir.path(), script, Duration::from_secs(60));
        s.env = &env;
        let finished = run_streaming(s, &Interrupt::never(), consume)
            .await
            .unwrap();
        assert_eq!(finished.code, Some(0));
        assert!(finished.stdout.is_empty(), "nothing is held whole");
        let text = rx.recv().unwrap();
        assert_eq!(text.lines().count(), 20000);
        assert!(text.ends_with("s3cr3t line 19999\n"));
        let logged = std::fs::read_to_string(log.path()).unwrap();
        assert!(!logged.contains("s3cr3t"), "{logged}");
        assert!(logged.contains("done"), "stderr is logged: {logged}");
    }

    #[tokio::test]
    async fn a_reader_that_stops_early_does_not_stop_the_engine() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::create(&dir.path().join("x.log")).unwrap();
        let script = "i=0; while [ $i -lt 20000 ]; do echo \"line $i\"; i=$((i+1)); done; exit 3";
        let consume: Consume = Box::new(|pipe| {
            let mut first = [0u8; 4];
            let _ = pipe.read_exact(&mut first);
        });
        let s = step(&log, dir.path(), script, Duration::from_secs(60));
        let finished = run_streaming(s, &Interrupt::never(), consume)
            .await
            .unwrap();
        assert_eq!(
            finished.code,
            Some(3),
            "the engine's own exit status is kept"
        );
    }

    #[tokio::test]
    async fn captured_stdout_stays_out_of_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::create(&dir.path().join("x.log")).unwrap();
        let env = [("SECRET".to_owned(), "s3cr3t".to_owned())];
        let mut s = step(
            &log,
            dir.path(),
            "echo \"$SECRET\"",
            Duration::from_secs(30),
        );
        s.env = &env;
        s.capture_stdout = true;
        let finished = run(s, &Interrupt::never()).await.unwrap();
        assert_eq!(finished.stdout, b"s3cr3t\n");
        assert!(
            !std::fs::read_to_string(log.path())
                .unwrap()
                .contains("s3cr3t")
        );
    }

    #[tokio::test]
    async fn the_child_gets_the_step_environment_and_nothing_of_its_parents() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::create(&dir.path().join("x.log")).unwrap();
        // PATH is in every test process's environment; the step does not pass it on.
        assert!(std::env::var_os("PATH").is_some());
        let env = [("OWN".to_owned(), "mine".to_owned())];
        let mut s = step(
            &log,
            dir.path(),
            "echo \"own=$OWN path=${PATH-unset}\"",
            Duration::from_secs(30),
        );
        s.env = &env;
        s.capture_stdout = true;
        let finished = run(s, &Interrupt::never()).await.unwrap();
        let stdout = String::from_utf8_lossy(&finished.stdout);
        assert!(stdout.starts_with("own=mine path="), "{stdout}");
        assert_ne!(
            stdout.trim_end().strip_prefix("own=mine path="),
            std::env::var("PATH").ok().as_deref()
        );
    }

    #[tokio::test]
    async fn interrupt_sends_one_sigint_that_the_child_can_handle() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::create(&dir.path().join("x.log")).unwrap();
        let marker = dir.path().join("saved");
        // The child traps SIGINT, "saves state" and exits, as Terraform does. It signals
        // readiness through a file so the test fires only once the trap is installed.
        let ready = dir.path().join("ready");
        let script = format!(
            "trap 'echo saved > {m}; exit 130' INT; touch {r}; while true; do sleep 0.05; done",
            m = marker.display(),
            r = ready.display()
        );
        // A process started in the background ignores SIGINT, and an ignored signal stays
        // ignored across exec: a shell could not even trap it. slipway installs its Ctrl-C
        // handler before any engine starts, which gives children the default disposition
        // back; this test does the same, so it holds however the test runner was started.
        let _handler =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).unwrap();
        let (trigger, interrupt) = Interrupt::channel();
        let s = step(&log, dir.path(), &script, Duration::from_secs(60));
        let ready_path = ready.clone();
        let waiter = tokio::spawn(async move {
            while !ready_path.exists() {
                tokio::task::yield_now().await;
            }
            trigger.fire();
        });
        let error = run(s, &interrupt).await.unwrap_err();
        waiter.await.unwrap();
        assert!(
            matches!(error, StepError::Interrupted { killed: false, .. }),
            "{error}"
        );
        assert!(
            marker.exists(),
            "the child got the chance to save its state"
        );
    }

    #[tokio::test]
    async fn a_hung_step_times_out_and_is_killed_after_the_grace_period() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::create(&dir.path().join("x.log")).unwrap();
        let mut s = step(
            &log,
            dir.path(),
            "trap '' INT; while true; do sleep 0.05; done",
            Duration::from_millis(300),
        );
        s.grace = Duration::from_millis(300);
        let error = run(s, &Interrupt::never()).await.unwrap_err();
        assert!(
            matches!(error, StepError::TimedOut { killed: true, .. }),
            "{error}"
        );
    }
}
