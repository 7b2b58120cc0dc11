//! The record's history, as `slipway history` and the server show it: runs with their stage
//! and stack runs (and who rejected them), and releases, newest first.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;
use slipway_store::{AuditAction, Release, Run, StackRun, StageRun, Store, UnixMillis};

use crate::project::Workspace;
use crate::record;

/// Which history to read.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// Only this stage.
    pub stage: Option<String>,
    /// Only this stack.
    pub stack: Option<String>,
    /// How many runs, newest first.
    pub limit: u32,
}

/// Runs and releases, newest first.
#[derive(Debug, Serialize)]
pub struct History {
    pub runs: Vec<RunEntry>,
    pub releases: Vec<Release>,
}

/// One run with its stage and stack runs.
#[derive(Debug, Serialize)]
pub struct RunEntry {
    #[serde(flatten)]
    pub run: Run,
    pub stages: Vec<StageRun>,
    pub stacks: Vec<StackRun>,
    /// Set when a person rejected the run at a stage awaiting approval (the run's status
    /// is `failed`: it ended without delivering).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Rejection>,
}

/// Who rejected a run, where, why and when (from the audit log).
#[derive(Debug, Serialize)]
pub struct Rejection {
    pub stage: Option<String>,
    pub by: String,
    pub reason: Option<String>,
    pub at: UnixMillis,
}

/// The runs and releases `query` asks for.
pub async fn history(workspace: &Workspace, query: &HistoryQuery) -> Result<History> {
    let store = record::open(workspace).await?;
    // Rejections live in the audit log, which `reject` writes with the run's id.
    let mut rejections: BTreeMap<i64, Rejection> = store
        .audit_log(None, u32::MAX)
        .await?
        .into_iter()
        .filter(|e| e.action == AuditAction::Reject)
        .filter_map(|e| {
            let rejection = Rejection {
                stage: e.stage,
                by: e.actor,
                reason: e.details["reason"].as_str().map(str::to_owned),
                at: e.at,
            };
            Some((e.run_id?, rejection))
        })
        .collect();
    let mut runs = Vec::new();
    for run in store.recent_runs(query.limit).await? {
        let stages: Vec<StageRun> = store
            .stage_runs(run.id)
            .await?
            .into_iter()
            .filter(|s| query.stage.as_ref().is_none_or(|w| &s.stage == w))
            .collect();
        let stacks: Vec<StackRun> = store
            .stack_runs(run.id)
            .await?
            .into_iter()
            .filter(|s| query.stage.as_ref().is_none_or(|w| &s.stage == w))
            .filter(|s| query.stack.as_ref().is_none_or(|w| &s.stack == w))
            .collect();
        if (query.stack.is_some() || query.stage.is_some()) && stacks.is_empty() {
            continue;
        }
        runs.push(RunEntry {
            rejected: rejections.remove(&run.id),
            run,
            stages,
            stacks,
        });
    }
    let mut releases = Vec::new();
    for stage in workspace.project.stage_names() {
        if query.stage.as_ref().is_some_and(|w| *w != stage) {
            continue;
        }
        for stack in &workspace.project.stacks {
            if query.stack.as_ref().is_some_and(|w| *w != stack.name) {
                continue;
            }
            releases.extend(
                store
                    .release_history(stage, &stack.name, query.limit)
                    .await?,
            );
        }
    }
    releases.sort_by(|a, b| b.released_at.cmp(&a.released_at).then(b.id.cmp(&a.id)));
    Ok(History { runs, releases })
}

/// Run `run_id`'s recorded events after `after_seq` (0: all), in order. A run the record
/// does not know is an error; one that recorded no events yet has none.
pub async fn run_events(
    workspace: &Workspace,
    run_id: i64,
    after_seq: i64,
) -> Result<Vec<slipway_store::RunEvent>> {
    let store = record::open(workspace).await?;
    if store.run(run_id).await?.is_none() {
        anyhow::bail!(
            "run {run_id} is not in the record\n  help: `slipway history` lists the runs it holds"
        );
    }
    let mut events = Vec::new();
    let mut after = after_seq;
    loop {
        let page = store.run_events(run_id, after, 1000).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.seq;
        events.extend(page);
    }
    Ok(events)
}
