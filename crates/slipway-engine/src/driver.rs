//! The typed surface over the engine CLI: one method per command slipway uses.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::child::{self, Finished, Interrupt, Log, Step, StepError};
use crate::working_copy::WorkingCopy;

/// A configured engine binary.
#[derive(Debug, Clone)]
pub struct Engine {
    pub binary: PathBuf,
    /// Environment for every engine process.
    pub env: Vec<(String, String)>,
    pub plugin_cache: PathBuf,
    pub step_timeout: Duration,
    pub interrupt_grace: Duration,
    /// Terraform's plugin cache is not safe for concurrent writers: `init`s take turns,
    /// inside this process through the mutex and across processes through a file lock.
    init_turn: Arc<tokio::sync::Mutex<()>>,
}

/// Where one step's output goes and what can stop it.
#[derive(Debug, Clone, Copy)]
pub struct StepContext<'a> {
    pub working_copy: &'a WorkingCopy,
    pub log: &'a Log,
    pub echo: Option<&'a str>,
    pub interrupt: &'a Interrupt,
}

/// What a plan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanOutcome {
    pub has_changes: bool,
    pub plan_file: PathBuf,
}

/// One root-module output.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Output {
    pub value: serde_json::Value,
    #[serde(default)]
    pub sensitive: bool,
}

impl Engine {
    /// `base_env` is the environment engine processes receive; slipway adds its own
    /// automation settings on top.
    pub fn new(
        binary: PathBuf,
        data_dir: &Path,
        base_env: Vec<(String, String)>,
        step_timeout: Duration,
        interrupt_grace: Duration,
    ) -> Self {
        let plugin_cache = data_dir.join("plugin-cache");
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
            init_turn: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    async fn run(
        &self,
        ctx: StepContext<'_>,
        name: &str,
        args: Vec<OsString>,
        capture_stdout: bool,
    ) -> Result<Finished, StepError> {
        child::run(
            Step {
                name,
                program: &self.binary,
                args,
                cwd: &ctx.working_copy.stack_dir,
                env: &self.env,
                log: ctx.log,
                echo: ctx.echo,
                capture_stdout,
                timeout: self.step_timeout,
                grace: self.interrupt_grace,
            },
            ctx.interrupt,
        )
        .await
    }

    fn expect_success(
        ctx: StepContext<'_>,
        name: &str,
        finished: &Finished,
    ) -> Result<(), StepError> {
        match finished.code {
            Some(0) => Ok(()),
            code => Err(StepError::Failed {
                step: name.to_owned(),
                code: code.unwrap_or(-1),
                log: ctx.log.path().to_path_buf(),
            }),
        }
    }

    /// `init` with partial backend configuration; a stack's own lock file is used read-only.
    pub async fn init(
        &self,
        ctx: StepContext<'_>,
        backend_config: &[(String, String)],
    ) -> Result<(), StepError> {
        let mut args: Vec<OsString> =
            vec!["init".into(), "-input=false".into(), "-no-color".into()];
        for (key, value) in backend_config {
            args.push(format!("-backend-config={key}={value}").into());
        }
        if ctx.working_copy.has_lock_file {
            args.push("-lockfile=readonly".into());
        }
        let io = |source| StepError::Io {
            step: "init".into(),
            source,
        };
        std::fs::create_dir_all(&self.plugin_cache).map_err(io)?;
        let _turn = self.init_turn.lock().await;
        let lock_path = self.plugin_cache.join(".slipway-init.lock");
        let file_lock = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(lock_path)?;
            file.lock()?;
            Ok(file)
        })
        .await
        .map_err(|e| io(std::io::Error::other(e)))?
        .map_err(io)?;
        let finished = self.run(ctx, "init", args, false).await;
        drop(file_lock);
        Self::expect_success(ctx, "init", &finished?)
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
        if destroy {
            args.push("-destroy".into());
        }
        let finished = self.run(ctx, "plan", args, false).await?;
        match finished.code {
            Some(0) => Ok(PlanOutcome {
                has_changes: false,
                plan_file,
            }),
            Some(2) => Ok(PlanOutcome {
                has_changes: true,
                plan_file,
            }),
            code => Err(StepError::Failed {
                step: "plan".into(),
                code: code.unwrap_or(-1),
                log: ctx.log.path().to_path_buf(),
            }),
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
        let finished = self.run(ctx, "show", args, true).await?;
        Self::expect_success(ctx, "show", &finished)?;
        Ok(finished.stdout)
    }

    /// `apply PLAN`: only ever a saved plan, so what runs is what was planned.
    pub async fn apply(&self, ctx: StepContext<'_>, plan_file: &Path) -> Result<(), StepError> {
        let args = vec![
            "apply".into(),
            "-input=false".into(),
            "-no-color".into(),
            plan_file.into(),
        ];
        let finished = self.run(ctx, "apply", args, false).await?;
        Self::expect_success(ctx, "apply", &finished)
    }

    /// `output -json`. Values stay in memory; the log only says which outputs exist.
    pub async fn output(
        &self,
        ctx: StepContext<'_>,
    ) -> Result<BTreeMap<String, Output>, StepError> {
        let args = vec!["output".into(), "-json".into(), "-no-color".into()];
        let finished = self.run(ctx, "output", args, true).await?;
        Self::expect_success(ctx, "output", &finished)?;
        let outputs: BTreeMap<String, Output> =
            serde_json::from_slice(&finished.stdout).map_err(|e| StepError::BadOutput {
                step: "output".into(),
                message: e.to_string(),
            })?;
        ctx.log.line(&format!(
            "outputs: {}",
            outputs
                .iter()
                .map(|(k, o)| if o.sensitive {
                    format!("{k} (sensitive)")
                } else {
                    k.clone()
                })
                .collect::<Vec<_>>()
                .join(", ")
        ));
        Ok(outputs)
    }

    /// `destroy -auto-approve`.
    pub async fn destroy(&self, ctx: StepContext<'_>) -> Result<(), StepError> {
        let args = vec![
            "destroy".into(),
            "-input=false".into(),
            "-no-color".into(),
            "-auto-approve".into(),
        ];
        let finished = self.run(ctx, "destroy", args, false).await?;
        Self::expect_success(ctx, "destroy", &finished)
    }
}
