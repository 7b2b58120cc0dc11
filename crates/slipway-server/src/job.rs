//! What every job the server runs uses, whichever module runs it: moving the server's
//! working copy to the job's commit, and the observer its events go through.

use std::path::Path;

use anyhow::{Context as _, Result};
use slipway_runner::events::{Event, Observer};
use slipway_store::ServiceRecord as _;

use crate::AppState;

/// Fetches and checks out `commit`, refusing to carry changes made by hand in the working
/// copy into a delivery.
pub(crate) fn move_checkout(checkout: &Path, source: Option<&str>, commit: &str) -> Result<()> {
    let repo = slipway_git::Repo::open(checkout)?;
    if let Some(source) = source {
        repo.fetch_from(source)
            .with_context(|| format!("cannot fetch from {source}"))?;
    }
    if !repo.is_clean()? {
        anyhow::bail!(
            "the server's working copy {} has changes made by hand; a delivery runs committed code only\n  help: give the server a clone of its own (`git clone URL DIR && slipway --project DIR serve`)",
            checkout.display()
        );
    }
    repo.check_out(commit)
        .with_context(|| format!("cannot check out {commit}"))?;
    Ok(())
}

/// Where a job's events go besides the record: live streams, metrics, the log, and the
/// job's own row once its run has an id.
pub(crate) struct JobObserver {
    pub state: AppState,
    pub job: i64,
}

impl Observer for JobObserver {
    fn observe(&self, event: &Event) {
        self.state.events.pulse();
        self.state.metrics.observe(event);
        match event {
            Event::RunStarted { run, commit } => {
                tracing::info!(job = self.job, run, commit = %commit, "run started");
                let store = self.state.store.clone();
                let (job, run) = (self.job, *run);
                tokio::spawn(async move {
                    if let Err(error) = store.job_started_run(job, run).await {
                        tracing::error!(job, run, error = %error, "cannot name the job's run");
                    }
                });
            }
            Event::AwaitingApproval { run, stage, .. } => {
                tracing::info!(run, stage = %stage, "run awaits approval");
            }
            Event::HandedOn { run, stage, labels } => {
                tracing::info!(run, stage = %stage, labels = %labels, "run handed on to a worker with the stage's labels");
            }
            Event::RunFinished {
                run,
                delivered,
                stage,
            } => {
                tracing::info!(run, delivered, stage = ?stage, "run finished");
            }
            Event::StackFinished {
                stage,
                instance,
                stack,
                outcome,
                elapsed_ms,
                ..
            } => {
                tracing::info!(stage = %stage, instance = %instance, stack = %stack, outcome = ?outcome, elapsed_ms, "stack finished");
            }
            _ => {}
        }
    }
}
