//! How a command gets an executor for one stage: the engine located, the stage's credentials
//! fetched, a run folder made, and Ctrl-C wired to the engine steps' interrupt.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{Context, Result};
use slipway_core::Stage;
use slipway_engine::{Engine, Interrupt, locate_engine};

use crate::credentials;
use crate::executor::{Executor, ExecutorSetup};
use crate::project::Workspace;

/// Per-invocation overrides of the project's execution settings.
#[derive(Debug, Default)]
pub struct ExecutorOptions {
    pub parallelism: Option<usize>,
    pub verbose: bool,
    pub step_timeout: Option<std::time::Duration>,
    /// Measure the blast radius of every apply, even where the stage has no policy, for
    /// commands that report what each apply changed.
    pub measure_applies: bool,
}

/// An executor for `stage` whose engine processes may work on `stacks`: the engine found,
/// credentials fetched, a run folder created, Ctrl-C wired to the interrupt.
pub fn executor_for(
    workspace: &Workspace,
    stage: &Stage,
    stacks: &BTreeSet<String>,
    options: &ExecutorOptions,
) -> Result<Arc<Executor>> {
    let project = &workspace.project;
    let data_dir = workspace.ensure_data_dir()?;
    let binary = locate_engine(
        project.engine,
        std::env::var("SLIPWAY_ENGINE").ok().as_deref(),
        std::env::var("PATH").ok().as_deref(),
    )?;
    let execution = &project.execution;
    let run_dir = data_dir.join("runs").join(run_id()).join(&stage.name);
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("cannot create {}", run_dir.display()))?;

    let (trigger, interrupt) = Interrupt::channel();
    let grace = execution.interrupt_grace;
    // The handler is installed here, before any engine starts, and not inside the task: a
    // slipway started in the background inherits SIGINT ignored, and children would inherit
    // that too (an ignored signal stays ignored across exec) unless a handler replaced it.
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot listen for Ctrl-C")?;
    tokio::spawn(async move {
        if sigint.recv().await.is_some() {
            eprintln!(
                "\ninterrupt: asking running engine steps to stop and save their state (up to {} before they are killed)",
                humantime::format_duration(grace)
            );
            trigger.fire();
        }
    });

    let environment = credentials::stage_environment(
        project,
        stage,
        stacks,
        &workspace.root,
        &std::env::vars().collect(),
    )?;
    let mut engine = Engine::new(
        binary,
        &data_dir,
        environment.base.clone(),
        options.step_timeout.unwrap_or(execution.step_timeout),
        execution.interrupt_grace,
    );
    engine.lock_timeout = execution.lock_timeout;
    Ok(Arc::new(Executor::new(ExecutorSetup {
        root: workspace.root.clone(),
        data_dir,
        project: project.clone(),
        stage: stage.clone(),
        engine,
        run_dir,
        parallelism: options.parallelism.unwrap_or(execution.parallelism),
        verbose: options.verbose,
        interrupt,
        environment,
        measure_applies: options.measure_applies,
    })))
}

/// A sortable run id, unique across hosts: UTC time to the second, then 32 random bits
/// (process ids repeat across machines and containers, so they cannot tell runs apart).
pub fn run_id() -> String {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let compact: String = stamp
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    format!("{compact}-{:08x}", fastrand::u32(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_sort_by_time_and_do_not_depend_on_the_process() {
        let shape = regex_lite::Regex::new(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$").unwrap();
        let ids: Vec<String> = (0..64).map(|_| run_id()).collect();
        for id in &ids {
            assert!(shape.is_match(id), "{id}");
        }
        // Same process, same second: only the random part tells them apart.
        let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
        assert!(distinct.len() > 60, "{ids:?}");
    }
}
