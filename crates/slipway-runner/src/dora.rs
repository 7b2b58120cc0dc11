//! The delivery metrics (DORA) of a project: what the record says happened over a window,
//! and when each released commit was made (from git), handed to
//! [`slipway_core::dora::report`]. Shared by `slipway dora` and the server's API.

use std::collections::BTreeSet;

use anyhow::Result;
use slipway_core::dora::{self, DriftChecked, History, Released, Restoration, RestorationKind};
use slipway_store::{
    AnyStore, AuditAction, RunStatus, StageRunStatus, Store as _, UnixMillis,
    VerificationRecord as _,
};

use crate::project::Workspace;

/// The most drift checks read per window; a check every minute for a quarter fits.
const MAX_DRIFT_CHECKS: u32 = 200_000;

/// What to measure.
#[derive(Debug, Clone)]
pub struct Window {
    pub since: UnixMillis,
    pub until: UnixMillis,
    /// Only this stage; every stage with anything on record when `None`.
    pub stage: Option<String>,
    /// How long after a deployment a failure, rollback or recovery still counts against it.
    pub failure_window_ms: i64,
}

/// The metrics of `window`, from `store` and the project's git history.
pub async fn report(
    workspace: &Workspace,
    store: &AnyStore,
    window: &Window,
) -> Result<dora::Report> {
    let recorded = store.delivery_history(window.since).await?;
    let in_window = |at: UnixMillis| at.0 >= window.since.0 && at.0 <= window.until.0;
    let mut history = History {
        since: window.since.0,
        until: window.until.0,
        ..History::default()
    };
    history.releases = recorded
        .releases
        .iter()
        .filter(|r| in_window(r.released_at))
        .map(|r| Released {
            stage: r.stage.clone(),
            stack: r.stack.clone(),
            commit: r.commit.clone(),
            at: r.released_at.0,
            run: r.run_id,
        })
        .collect();
    for stage_run in &recorded.stage_runs {
        let run = recorded.runs.iter().find(|r| r.id == stage_run.run_id);
        // A stage run still `running` whose run ended failed or interrupted died with it.
        let (succeeded, at) = match (stage_run.status, run) {
            (StageRunStatus::Succeeded, _) => (true, stage_run.finished_at),
            (StageRunStatus::Failed, _) => (false, stage_run.finished_at),
            (StageRunStatus::Running, Some(run))
                if matches!(run.status, RunStatus::Failed | RunStatus::Interrupted) =>
            {
                (false, run.finished_at)
            }
            _ => continue,
        };
        let Some(at) = at.filter(|at| in_window(*at)) else {
            continue;
        };
        history.stage_runs.push(dora::StageRunEnded {
            stage: stage_run.stage.clone(),
            run: stage_run.run_id,
            at: at.0,
            succeeded,
        });
    }
    history.restorations = recorded
        .restorations
        .iter()
        .filter(|e| in_window(e.at))
        .filter_map(|e| {
            let kind = match e.action {
                AuditAction::Rollback => RestorationKind::Rollback,
                AuditAction::Recover => RestorationKind::Recovery,
                _ => return None,
            };
            Some(Restoration {
                stage: e.stage.clone()?,
                at: e.at.0,
                kind,
            })
        })
        .collect();
    history.drift_checks = store
        .drift_checks(window.stage.as_deref(), MAX_DRIFT_CHECKS)
        .await?
        .iter()
        .filter(|c| in_window(c.checked_at))
        .map(|c| DriftChecked {
            stage: c.stage.clone(),
            at: c.checked_at.0,
            drifted: c.drifted > 0,
        })
        .collect();
    let commits: Vec<String> = history
        .releases
        .iter()
        .map(|r| r.commit.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // Without the history (no repository, a shallow clone) lead times are left out, not
    // the other metrics.
    if let Ok(repo) = slipway_git::Repo::open(&workspace.root) {
        if let Ok(times) = repo.commit_times(&commits) {
            history.commit_times = times
                .into_iter()
                .map(|(commit, seconds)| (commit, seconds * 1000))
                .collect();
        }
    }
    Ok(dora::report(
        &history,
        window.stage.as_deref(),
        window.failure_window_ms,
    ))
}
