//! The typed surface over the engine CLI: one method per command slipway uses.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use crate::output::Output;

use crate::child::{self, Finished, Interrupt, Log, Step, StepError};
use crate::working_copy::WorkingCopy;

mod init_record;
mod lock_checksums;
pub mod plugin_cache;
mod refresh;
pub use refresh::{Answer, Probe, REFRESH_PLAN_FILE};

use plugin_cache::CacheUse;

/// A configured engine binary.
#[derive(Debug, Clone)]
pub struct Engine {
    pub binary: PathBuf,
    /// Environment for every engine process.
    pub env: Vec<(String, String)>,
    pub plugin_cache: PathBuf,
    pub step_timeout: Duration,
    pub interrupt_grace: Duration,
    /// How long a command waits for a state lock another process holds before it fails
    /// naming the holder (zero: it fails at once).
    pub lock_timeout: Duration,
    /// Terraform's plugin cache is not safe for concurrent writers: `init`s that may add
    /// packages take turns, inside this process through the mutex and across processes
    /// through a file lock (see [`plugin_cache`]).
    init_turn: Arc<tokio::sync::Mutex<()>>,
    /// Whether steps after `init` run on the lock file as it is, checksums included, rather
    /// than on the stand-in without them ([`lock_checksums`]).
    lock_file_as_is: bool,
}

/// How the plugin cache is held.
#[derive(Debug, Clone, Copy)]
enum FileLock {
    /// Reading and linking packages: many at once.
    Shared,
    /// Adding packages: one writer, nobody reading.
    Exclusive,
}

/// Where one step's output goes, what can stop it, and the credentials it runs with.
#[derive(Debug, Clone, Copy)]
pub struct StepContext<'a> {
    pub working_copy: &'a WorkingCopy,
    pub log: &'a Log,
    pub echo: Option<&'a crate::child::LineSink>,
    pub interrupt: &'a Interrupt,
    pub credentials: &'a StackCredentials,
    /// Told the pid of each engine process that changes infrastructure (apply, destroy).
    pub spawned: Option<&'a crate::child::SpawnSink>,
}

impl<'a> StepContext<'a> {
    /// A step in `working_copy` whose output goes to `log` alone and whose engine process
    /// nobody is told about.
    pub fn quiet(
        working_copy: &'a WorkingCopy,
        log: &'a Log,
        interrupt: &'a Interrupt,
        credentials: &'a StackCredentials,
    ) -> Self {
        Self {
            working_copy,
            log,
            echo: None,
            interrupt,
            credentials,
            spawned: None,
        }
    }
}

/// The environment a stack's own credentials add to its engine processes: one set for
/// reading (init, plan, show, output) and one for changing (apply, destroy).
#[derive(Debug, Clone, Default)]
pub struct StackCredentials {
    pub plan: Vec<(String, String)>,
    pub apply: Vec<(String, String)>,
}

/// Whether a step reads or changes infrastructure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Change,
}

/// What the note about an engine-written lock file says (in the output and the docs).
pub const LOCK_FILE_NOTE: &str =
    "no .terraform.lock.hcl committed; the engine wrote one in the working copy";

/// What the log says where `init` was not needed.
pub const INIT_SKIPPED_NOTE: &str = "== slipway: init skipped: this working copy is already initialised for the same code, lock file, backend and engine ==";

/// What the note about a completed lock file says.
pub const LOCK_FILE_COMPLETED_NOTE: &str = "the committed .terraform.lock.hcl records no checksum of this platform's provider packages; the engine added them to the working copy's copy (the committed file is unchanged)";

/// What an `init` did that its caller may want to tell people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitOutcome {
    /// How the shared plugin cache was used.
    pub cache: CacheUse,
    /// The stack commits no lock file and the engine wrote one in the working copy (the
    /// first `init` of that working copy).
    pub wrote_lock_file: bool,
    /// The committed lock file lacked checksums for this platform's packages and the engine
    /// added them to the working copy's copy (the committed file is untouched).
    pub completed_lock_file: bool,
}

/// What a plan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanOutcome {
    pub has_changes: bool,
    pub plan_file: PathBuf,
    /// The engine's own count of the changes, when its output had one.
    pub summary: Option<PlanSummary>,
}

/// How many resources a plan adds, changes, destroys and imports, as the engine counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlanSummary {
    pub add: u64,
    pub change: u64,
    pub destroy: u64,
    #[serde(default)]
    pub import: u64,
}

impl PlanSummary {
    /// Reads the `Plan: 1 to import, 2 to add, 0 to change, 0 to destroy.` line both
    /// Terraform and OpenTofu print under a plan, so the record gets its counts without a
    /// second engine start for `show -json`. `None` when the output has no such line.
    pub fn from_plan_output(output: &str) -> Option<Self> {
        let line = output
            .lines()
            .rev()
            .find_map(|line| line.trim().strip_prefix("Plan: "))?;
        let mut summary = Self::default();
        for part in line.trim_end_matches('.').split(", ") {
            let (count, what) = part.split_once(' ')?;
            let count: u64 = count.parse().ok()?;
            match what {
                "to add" => summary.add = count,
                "to change" => summary.change = count,
                "to destroy" => summary.destroy = count,
                "to import" => summary.import = count,
                // Newer engines count more kinds (`to forget`, ...); they do not change these.
                _ => {}
            }
        }
        Some(summary)
    }
}

impl Engine {
    /// `base_env` is the environment engine processes receive; slipway adds its own
    /// automation settings on top. The provider cache is `TF_PLUGIN_CACHE_DIR` when
    /// `base_env` sets it, else `<data_dir>/plugin-cache`.
    pub fn new(
        binary: PathBuf,
        data_dir: &Path,
        base_env: Vec<(String, String)>,
        step_timeout: Duration,
        interrupt_grace: Duration,
    ) -> Self {
        // A cache the environment already names is shared on purpose (across projects or
        // test runs); otherwise each project keeps its own in the data folder.
        let plugin_cache = base_env
            .iter()
            .find(|(k, v)| k == "TF_PLUGIN_CACHE_DIR" && !v.is_empty())
            .map_or_else(|| data_dir.join("plugin-cache"), |(_, v)| PathBuf::from(v));
        let mut env = base_env;
        env.retain(|(k, _)| {
            k != "TF_PLUGIN_CACHE_DIR" && k != "TF_IN_AUTOMATION" && k != "TF_INPUT"
        });
        env.extend([
            ("TF_IN_AUTOMATION".to_owned(), "1".to_owned()),
            ("TF_INPUT".to_owned(), "0".to_owned()),
            // No calls home to the vendor's version-check service.
            ("CHECKPOINT_DISABLE".to_owned(), "1".to_owned()),
            (
                "TF_PLUGIN_CACHE_DIR".to_owned(),
                plugin_cache.to_string_lossy().into_owned(),
            ),
        ]);
        Self {
            binary,
            env,
            plugin_cache,
            step_timeout,
            interrupt_grace,
            lock_timeout: Duration::ZERO,
            init_turn: Arc::new(tokio::sync::Mutex::new(())),
            lock_file_as_is: false,
        }
    }

    /// `-lock-timeout` for the commands that take the state lock, when waiting is wanted.
    fn lock_timeout_arg(&self) -> Option<OsString> {
        (!self.lock_timeout.is_zero())
            .then(|| format!("-lock-timeout={}s", self.lock_timeout.as_secs().max(1)).into())
    }

    async fn run(
        &self,
        ctx: StepContext<'_>,
        name: &str,
        args: Vec<OsString>,
        capture_stdout: bool,
        access: Access,
    ) -> Result<Finished, StepError> {
        self.run_with(ctx, name, args, capture_stdout, access, &[])
            .await
    }

    /// [`Self::run`] with some variables of the engine's environment set (`Some`) or
    /// removed (`None`) for this one step.
    async fn run_with(
        &self,
        ctx: StepContext<'_>,
        name: &str,
        args: Vec<OsString>,
        capture_stdout: bool,
        access: Access,
        changes: &[(&str, Option<&str>)],
    ) -> Result<Finished, StepError> {
        self.run_step(ctx, name, args, capture_stdout, None, access, changes)
            .await
    }

    /// [`Self::run_with`], with stdout handed to `consume` as it is written when given.
    #[allow(clippy::too_many_arguments)]
    async fn run_step(
        &self,
        ctx: StepContext<'_>,
        name: &str,
        args: Vec<OsString>,
        capture_stdout: bool,
        consume: Option<child::Consume>,
        access: Access,
        changes: &[(&str, Option<&str>)],
    ) -> Result<Finished, StepError> {
        let own = match access {
            Access::Read => &ctx.credentials.plan,
            Access::Change => &ctx.credentials.apply,
        };
        let mut env: Vec<(String, String)> = self.env.iter().chain(own).cloned().collect();
        for (key, value) in changes {
            env.retain(|(k, _)| k != key);
            if let Some(value) = value {
                env.push(((*key).to_owned(), (*value).to_owned()));
            }
        }
        // `init` checks the provider packages against the lock file's checksums; every other
        // step runs without them, so it does not hash every package once more.
        let _lock_file_set_aside = if name == "init" || self.lock_file_as_is {
            None
        } else {
            lock_checksums::SetAside::for_step(ctx.working_copy).map_err(|source| {
                StepError::Io {
                    step: name.to_owned(),
                    source,
                }
            })?
        };
        let step = Step {
            name,
            program: &self.binary,
            args,
            cwd: &ctx.working_copy.stack_dir,
            env: &env,
            log: ctx.log,
            echo: ctx.echo,
            capture_stdout,
            timeout: self.step_timeout,
            grace: self.interrupt_grace,
            spawned: match access {
                Access::Read => None,
                Access::Change => ctx.spawned,
            },
        };
        match consume {
            Some(consume) => child::run_streaming(step, ctx.interrupt, consume).await,
            None => child::run(step, ctx.interrupt).await,
        }
    }

    fn expect_success(
        ctx: StepContext<'_>,
        name: &str,
        finished: &Finished,
    ) -> Result<(), StepError> {
        match finished.code {
            Some(0) => Ok(()),
            _ => Err(Self::failure(ctx, name, finished)),
        }
    }

    /// A failed step, told apart when the cause was a state lock held elsewhere.
    /// What one step wrote to the log (only this step's part counts).
    fn step_output(ctx: StepContext<'_>, finished: &Finished) -> String {
        let log = std::fs::read(ctx.log.path()).unwrap_or_default();
        let start = usize::try_from(finished.log_offset)
            .unwrap_or(0)
            .min(log.len());
        String::from_utf8_lossy(&log[start..]).into_owned()
    }

    fn failure(ctx: StepContext<'_>, name: &str, finished: &Finished) -> StepError {
        // Whatever broke, the next step starts from a fresh `init`.
        init_record::forget(ctx.working_copy);
        let code = finished.code;
        let tail = Self::step_output(ctx, finished);
        if let Some(lock) = parse_lock_error(&tail) {
            return StepError::Locked {
                step: name.to_owned(),
                id: lock.id,
                who: lock.who,
                created: lock.created,
                operation: lock.operation,
            };
        }
        if crate::reason::says_saved_plan_is_stale(&tail) {
            return StepError::StalePlan {
                step: name.to_owned(),
                log: ctx.log.path().to_path_buf(),
            };
        }
        StepError::Failed {
            step: name.to_owned(),
            code: code.unwrap_or(-1),
            reason: crate::reason::engine_reason(&tail),
            log: ctx.log.path().to_path_buf(),
        }
    }

    /// Locks the plugin cache for this process (a file lock, so other processes count too).
    async fn lock_cache(&self, kind: FileLock) -> std::io::Result<std::fs::File> {
        let path = self.plugin_cache.join(".slipway-init.lock");
        tokio::task::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)?;
            match kind {
                FileLock::Shared => file.lock_shared()?,
                FileLock::Exclusive => file.lock()?,
            }
            Ok(file)
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// `init` with partial backend configuration. A stack's own lock file is never changed
    /// (the working copy holds a copy); how `init` uses it and the shared plugin cache is
    /// decided first ([`plugin_cache::decide`]).
    pub async fn init(
        &self,
        ctx: StepContext<'_>,
        backend_config: &[(String, String)],
    ) -> Result<InitOutcome, StepError> {
        // `-reconfigure`: slipway owns the backend settings; a working copy follows them and
        // never migrates state on its own (that is `slipway state migrate`).
        let mut args: Vec<OsString> = vec![
            "init".into(),
            "-input=false".into(),
            "-no-color".into(),
            "-reconfigure".into(),
        ];
        for (key, value) in backend_config {
            args.push(format!("-backend-config={key}={value}").into());
        }
        let committed = ctx.working_copy.has_lock_file;
        let io = |source| StepError::Io {
            step: "init".into(),
            source,
        };
        // A step cut short may have left the lock file set aside; `init` reads the real one.
        lock_checksums::put_back(ctx.working_copy).map_err(io)?;
        let inputs =
            init_record::InitInputs::of(ctx.working_copy, backend_config, &self.binary, &self.env)
                .map_err(io)?;
        if init_record::is_initialised_for(ctx.working_copy, &inputs) {
            ctx.log.line(INIT_SKIPPED_NOTE);
            return Ok(InitOutcome {
                cache: CacheUse::Link,
                wrote_lock_file: false,
                completed_lock_file: false,
            });
        }
        init_record::forget(ctx.working_copy);
        std::fs::create_dir_all(&self.plugin_cache).map_err(io)?;
        let lock_file = ctx.working_copy.stack_dir.join(".terraform.lock.hcl");
        let had_lock_file = lock_file.is_file();
        let pinned = std::fs::read(&lock_file).ok();
        let first = plugin_cache::decide(&lock_file, committed, &self.plugin_cache);
        // Writers take turns on the cache: one at a time, exclusively. Everyone else holds
        // the cache shared while deciding and linking, so that a package another process is
        // unpacking at that moment (its folder exists, its files are half written) is never
        // linked: they wait for the writer, then decide again.
        let mut plan = first;
        let mut _cache_lock = None;
        if first.cache != CacheUse::Populate {
            _cache_lock = Some(self.lock_cache(FileLock::Shared).await.map_err(io)?);
            plan = plugin_cache::decide(&lock_file, committed, &self.plugin_cache);
        }
        let mut _turn = None;
        if plan.cache == CacheUse::Populate {
            _cache_lock = None;
            _turn = Some(self.init_turn.lock().await);
            _cache_lock = Some(self.lock_cache(FileLock::Exclusive).await.map_err(io)?);
            // The writer before this one may have added what it lacked.
            plan = plugin_cache::decide(&lock_file, committed, &self.plugin_cache);
        }
        let finished = self.run_init(ctx, args, plan).await;
        drop(_cache_lock);
        drop(_turn);
        let outcome = InitOutcome {
            cache: plan.cache,
            wrote_lock_file: false,
            completed_lock_file: false,
        };
        Self::expect_success(ctx, "init", &finished?)?;
        let wrote_lock_file = !committed && !had_lock_file && lock_file.is_file();
        if wrote_lock_file {
            ctx.log.line(&format!("== slipway: {LOCK_FILE_NOTE} =="));
        }
        let mut completed_lock_file = false;
        if committed && !plan.read_only_lock_file {
            // Only checksums may have been added to the working copy's copy.
            let now = std::fs::read(&lock_file).ok();
            if now != pinned {
                let before = plugin_cache::parse_lock_file(&String::from_utf8_lossy(
                    pinned.as_deref().unwrap_or_default(),
                ))
                .unwrap_or_default();
                let after = plugin_cache::read_lock_file(&lock_file).unwrap_or_default();
                if let Some(detail) = plugin_cache::selection_change(&before, &after) {
                    return Err(StepError::LockFileChanged {
                        step: "init".into(),
                        detail,
                    });
                }
                // Rewritten with the same content is not completed.
                completed_lock_file = after != before;
                if completed_lock_file {
                    ctx.log
                        .line(&format!("== slipway: {LOCK_FILE_COMPLETED_NOTE} =="));
                }
            }
        }
        // What the working copy holds now is what a later `init` compares with. When the
        // engine completed a committed lock file, the next refresh of the working copy
        // brings the committed one back, which differs: that `init` runs again.
        let recorded =
            init_record::InitInputs::of(ctx.working_copy, backend_config, &self.binary, &self.env)
                .and_then(|now| init_record::record(ctx.working_copy, &[now]));
        if let Err(e) = recorded {
            // Only a later `init` is lost, not this one's result.
            tracing::debug!(
                "cannot record the init of {}: {e}",
                ctx.working_copy.stack_dir.display()
            );
        }
        Ok(InitOutcome {
            wrote_lock_file,
            completed_lock_file,
            ..outcome
        })
    }

    /// Takes over what an `init` ahead of time installed in `staged` (the same stack's code
    /// laid out elsewhere, initialised with the same `backend_config`), so that `target`'s
    /// own `init` is skipped. `false` when `staged` does not match what `target` holds; then
    /// `target` is untouched and its `init` runs as usual.
    pub fn adopt_init(
        &self,
        staged: &WorkingCopy,
        target: &WorkingCopy,
        backend_config: &[(String, String)],
    ) -> bool {
        if !target.has_lock_file {
            // The lock file the engine wrote for the staged copy belongs with its providers;
            // an engine-written lock file is only ever a cache of what `init` chose.
            let lock = |copy: &WorkingCopy| copy.stack_dir.join(".terraform.lock.hcl");
            if lock(staged).is_file() && std::fs::copy(lock(staged), lock(target)).is_err() {
                return false;
            }
        }
        match init_record::InitInputs::of(target, backend_config, &self.binary, &self.env) {
            Ok(inputs) => init_record::adopt(staged, target, &inputs),
            Err(_) => false,
        }
    }

    /// One `init` as `plan` says: read-only lock file or not, the old cache rule or not,
    /// the shared cache or only the working copy.
    async fn run_init(
        &self,
        ctx: StepContext<'_>,
        mut args: Vec<OsString>,
        plan: plugin_cache::InitPlan,
    ) -> Result<Finished, StepError> {
        if plan.read_only_lock_file {
            args.push("-lockfile=readonly".into());
        }
        let mut changes: Vec<(&str, Option<&str>)> = Vec::new();
        if plan.may_break_lock_file {
            changes.push((plugin_cache::MAY_BREAK_LOCK_FILE, Some("1")));
        }
        if plan.cache == CacheUse::Bypass {
            ctx.log.line(
                "== slipway: the committed lock file records none of the cached packages' checksums: providers are installed into this working copy, not from the shared cache ==",
            );
            // A link into the cache left by an earlier `init` must not be written through.
            let providers = ctx.working_copy.stack_dir.join(".terraform/providers");
            match std::fs::remove_dir_all(&providers) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(StepError::Io {
                        step: "init".into(),
                        source: e,
                    });
                }
                _ => {}
            }
            changes.push(("TF_PLUGIN_CACHE_DIR", None));
        }
        self.run_with(ctx, "init", args, false, Access::Read, &changes)
            .await
    }

    /// `plan -out`, saving the plan in the working copy; `destroy` plans a destroy.
    pub async fn plan(
        &self,
        ctx: StepContext<'_>,
        destroy: bool,
    ) -> Result<PlanOutcome, StepError> {
        let plan_file = ctx.working_copy.plan_file();
        let mut args: Vec<OsString> = vec![
            "plan".into(),
            "-input=false".into(),
            "-no-color".into(),
            "-detailed-exitcode".into(),
            format!("-out={}", plan_file.display()).into(),
        ];
        args.extend(self.lock_timeout_arg());
        if destroy {
            args.push("-destroy".into());
        }
        let finished = self.run(ctx, "plan", args, false, Access::Read).await?;
        match finished.code {
            Some(0) => Ok(PlanOutcome {
                has_changes: false,
                plan_file,
                summary: Some(PlanSummary::default()),
            }),
            Some(2) => Ok(PlanOutcome {
                has_changes: true,
                plan_file,
                summary: PlanSummary::from_plan_output(&Self::step_output(ctx, &finished)),
            }),
            _ => Err(Self::failure(ctx, "plan", &finished)),
        }
    }

    /// `show -json PLAN`. The JSON may hold sensitive values, so it never reaches the log.
    pub async fn show_json(
        &self,
        ctx: StepContext<'_>,
        plan_file: &Path,
    ) -> Result<Vec<u8>, StepError> {
        let args = vec![
            "show".into(),
            "-json".into(),
            "-no-color".into(),
            plan_file.into(),
        ];
        let finished = self.run(ctx, "show", args, true, Access::Read).await?;
        Self::expect_success(ctx, "show", &finished)?;
        Ok(finished.stdout)
    }

    /// `show -json PLAN`, its output handed to `read` through the pipe as the engine writes
    /// it (on a blocking thread), so a plan of any size is never held whole; what `read`
    /// returns is handed back once the engine exited successfully. A failing `show` is the
    /// engine's error (its own reason, from stderr in the log), whatever `read` made of the
    /// partial output. Like [`Self::show_json`], the JSON never reaches the log.
    pub async fn show_json_with<T, F>(
        &self,
        ctx: StepContext<'_>,
        plan_file: &Path,
        read: F,
    ) -> Result<T, StepError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn std::io::Read) -> T + Send + 'static,
    {
        let args = vec![
            "show".into(),
            "-json".into(),
            "-no-color".into(),
            plan_file.into(),
        ];
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        let consume: child::Consume = Box::new(move |pipe| {
            let _ = sender.send(read(pipe));
        });
        let finished = self
            .run_step(ctx, "show", args, false, Some(consume), Access::Read, &[])
            .await?;
        Self::expect_success(ctx, "show", &finished)?;
        receiver.try_recv().map_err(|_| StepError::BadOutput {
            step: "show".into(),
            message: "the reader of its output stopped before the end".into(),
        })
    }

    /// `apply PLAN`: only ever a saved plan, so what runs is what was planned.
    pub async fn apply(&self, ctx: StepContext<'_>, plan_file: &Path) -> Result<(), StepError> {
        let mut args: Vec<OsString> =
            vec!["apply".into(), "-input=false".into(), "-no-color".into()];
        args.extend(self.lock_timeout_arg());
        args.push(plan_file.into());
        let finished = self
            .run(ctx, "apply", args.clone(), false, Access::Change)
            .await?;
        if finished.code != Some(0)
            && !self.lock_file_as_is
            && crate::reason::says_saved_plan_has_other_lock_file(&Self::step_output(
                ctx, &finished,
            ))
        {
            // A plan saved before steps ran on the stand-in (by an earlier slipway) holds the
            // lock file with its checksums; newer engines refuse it before changing anything.
            ctx.log.line(
                "== slipway: the saved plan was made with the lock file's checksums; applying it on that lock file ==",
            );
            let as_is = Self {
                lock_file_as_is: true,
                ..self.clone()
            };
            let finished = as_is.run(ctx, "apply", args, false, Access::Change).await?;
            return Self::expect_success(ctx, "apply", &finished);
        }
        Self::expect_success(ctx, "apply", &finished)
    }

    /// `output -json`. Values stay in memory; the log only says which outputs exist.
    pub async fn output(
        &self,
        ctx: StepContext<'_>,
    ) -> Result<BTreeMap<String, Output>, StepError> {
        let args = vec!["output".into(), "-json".into(), "-no-color".into()];
        let finished = self.run(ctx, "output", args, true, Access::Read).await?;
        Self::expect_success(ctx, "output", &finished)?;
        let outputs: BTreeMap<String, Output> =
            serde_json::from_slice(&finished.stdout).map_err(|e| StepError::BadOutput {
                step: "output".into(),
                message: e.to_string(),
            })?;
        ctx.log
            .line(&format!("outputs: {}", Output::names(&outputs)));
        Ok(outputs)
    }

    /// `destroy -auto-approve`.
    pub async fn destroy(&self, ctx: StepContext<'_>) -> Result<(), StepError> {
        let mut args: Vec<OsString> = vec![
            "destroy".into(),
            "-input=false".into(),
            "-no-color".into(),
            "-auto-approve".into(),
        ];
        args.extend(self.lock_timeout_arg());
        let finished = self
            .run(ctx, "destroy", args, false, Access::Change)
            .await?;
        Self::expect_success(ctx, "destroy", &finished)
    }

    /// `force-unlock -force ID`: only ever on an operator's word.
    pub async fn force_unlock(&self, ctx: StepContext<'_>, lock_id: &str) -> Result<(), StepError> {
        let args = vec![
            "force-unlock".into(),
            "-force".into(),
            "-no-color".into(),
            lock_id.into(),
        ];
        let finished = self
            .run(ctx, "force-unlock", args, false, Access::Change)
            .await?;
        Self::expect_success(ctx, "force-unlock", &finished)
    }

    /// `state pull`: the current state as JSON (kept out of the log: it may hold secrets).
    pub async fn state_pull(&self, ctx: StepContext<'_>) -> Result<Vec<u8>, StepError> {
        let args = vec!["state".into(), "pull".into()];
        let finished = self
            .run(ctx, "state pull", args, true, Access::Read)
            .await?;
        Self::expect_success(ctx, "state pull", &finished)?;
        Ok(finished.stdout)
    }

    /// `state push FILE`: writes a state file to the configured backend.
    pub async fn state_push(
        &self,
        ctx: StepContext<'_>,
        state_file: &Path,
    ) -> Result<(), StepError> {
        let args = vec!["state".into(), "push".into(), state_file.into()];
        let finished = self
            .run(ctx, "state push", args, false, Access::Change)
            .await?;
        Self::expect_success(ctx, "state push", &finished)
    }
}

/// The lock details Terraform prints when a state lock is held elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    pub id: String,
    pub who: String,
    pub created: String,
    pub operation: String,
}

/// Reads Terraform's "Error acquiring the state lock ... Lock Info:" block.
pub fn parse_lock_error(text: &str) -> Option<LockInfo> {
    let start = text.find("Error acquiring the state lock")?;
    let info = &text[start..];
    let field = |name: &str| {
        info.lines()
            .map(|l| l.trim_start_matches(['│', ' ']).trim())
            .find_map(|l| l.strip_prefix(name).map(|rest| rest.trim().to_owned()))
            .unwrap_or_default()
    };
    let id = field("ID:");
    if id.is_empty() {
        return None;
    }
    Some(LockInfo {
        id,
        who: field("Who:"),
        created: field("Created:"),
        operation: field("Operation:"),
    })
}

/// Number of resource instances in a state document (managed resources only).
pub fn count_resources(state_json: &[u8]) -> Result<usize, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct State {
        #[serde(default)]
        resources: Vec<Resource>,
    }
    #[derive(serde::Deserialize)]
    struct Resource {
        #[serde(default)]
        mode: String,
        #[serde(default)]
        instances: Vec<serde::de::IgnoredAny>,
    }
    let state: State = serde_json::from_slice(state_json)?;
    Ok(state
        .resources
        .iter()
        .filter(|r| r.mode == "managed")
        .map(|r| r.instances.len())
        .sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_timeout_is_passed_only_when_waiting_is_wanted() {
        let mut engine = Engine::new(
            PathBuf::from("terraform"),
            Path::new("/data"),
            Vec::new(),
            Duration::from_secs(60),
            Duration::from_secs(5),
        );
        assert_eq!(engine.lock_timeout_arg(), None);
        engine.lock_timeout = Duration::from_secs(300);
        assert_eq!(engine.lock_timeout_arg(), Some("-lock-timeout=300s".into()));
        engine.lock_timeout = Duration::from_millis(200);
        assert_eq!(engine.lock_timeout_arg(), Some("-lock-timeout=1s".into()));
    }

    #[test]
    fn plan_summary_is_read_from_the_engines_last_plan_line() {
        let terraform = "  # aws_sqs_queue.orders will be created\n  + resource \"aws_sqs_queue\" \"orders\" {\n\nPlan: 2 to add, 1 to change, 3 to destroy.\n\nChanges to Outputs:\n";
        assert_eq!(
            PlanSummary::from_plan_output(terraform),
            Some(PlanSummary {
                add: 2,
                change: 1,
                destroy: 3,
                import: 0
            })
        );
        let newer = "Plan: 1 to import, 0 to add, 0 to change, 0 to destroy, 4 to forget.";
        assert_eq!(
            PlanSummary::from_plan_output(newer),
            Some(PlanSummary {
                import: 1,
                ..PlanSummary::default()
            })
        );
        assert_eq!(
            PlanSummary::from_plan_output("Changes to Outputs:\n  + id = (known after apply)"),
            None
        );
        assert_eq!(PlanSummary::from_plan_output("Plan: lots to add."), None);
    }

    #[test]
    fn lock_error_is_read_from_terraform_output() {
        let text = r#"
Error: Error acquiring the state lock

Error message: ConditionalCheckFailedException: The conditional request failed
Lock Info:
  ID:        0b4c1d2e-aaaa-bbbb-cccc-1234567890ab
  Path:      tf-state/webshop/dev/app.tfstate
  Operation: OperationTypeApply
  Who:       deployer@ci-runner-7
  Version:   1.0.3
  Created:   2026-11-29 10:00:00.123 +0000 UTC
  Info:
"#;
        assert_eq!(
            parse_lock_error(text),
            Some(LockInfo {
                id: "0b4c1d2e-aaaa-bbbb-cccc-1234567890ab".into(),
                who: "deployer@ci-runner-7".into(),
                created: "2026-11-29 10:00:00.123 +0000 UTC".into(),
                operation: "OperationTypeApply".into(),
            })
        );
        assert_eq!(parse_lock_error("Error: something else"), None);
    }

    #[test]
    fn resources_are_counted_per_instance() {
        let state = br#"{"version":4,"resources":[
            {"mode":"managed","type":"aws_subnet","name":"s","instances":[{},{}]},
            {"mode":"data","type":"aws_vpc","name":"d","instances":[{}]},
            {"mode":"managed","type":"aws_vpc","name":"v","instances":[{}]}]}"#;
        assert_eq!(count_resources(state).unwrap(), 3);
        assert_eq!(count_resources(b"{}").unwrap(), 0);
    }
}
