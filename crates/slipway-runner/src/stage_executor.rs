//! How a command gets an executor for one stage: the engine located, the stage's credentials
//! fetched, a run folder made, and the front end's interrupt handed to the engine steps.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{Context, Result};
use slipway_core::Stage;
use slipway_engine::{Engine, locate_engine};

use crate::credentials;
use crate::executor::{Executor, ExecutorSetup};
use crate::project::Workspace;

/// Per-invocation overrides of the project's execution settings.
#[derive(Debug, Clone, Default)]
pub struct ExecutorOptions {
    pub parallelism: Option<usize>,
    pub verbose: bool,
    pub step_timeout: Option<std::time::Duration>,
    /// Measure the blast radius of every apply, even where the stage has no policy, for
    /// commands that report what each apply changed.
    pub measure_applies: bool,
}

/// An executor for `stage` whose engine processes may work on `stacks`: the engine found,
/// credentials fetched, a run folder created, the front end's interrupt wired in.
pub fn executor_for(
    workspace: &Workspace,
    stage: &Stage,
    stacks: &BTreeSet<String>,
    options: &ExecutorOptions,
) -> Result<Arc<Executor>> {
    let project = &workspace.project;
    let data_dir = workspace.ensure_data_dir()?;
    let settings = &workspace.settings;
    let binary = locate_engine(
        project.engine,
        settings.engine.as_deref(),
        settings.search_path.as_deref(),
    )?;
    let execution = &project.execution;
    let run_dir = data_dir.join("runs").join(run_id()).join(&stage.name);
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("cannot create {}", run_dir.display()))?;
    let environment = credentials::stage_environment(
        project,
        stage,
        stacks,
        &workspace.root,
        &settings.environment,
        &settings.engine_environment,
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
        interrupt: workspace.interrupts.interrupt(),
        environment,
        observer: Arc::clone(&workspace.observer),
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
