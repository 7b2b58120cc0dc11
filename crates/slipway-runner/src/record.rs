//! Opening the run record: the settings' store URL (`SLIPWAY_STORE_URL`), else
//! `store { url }` in slipway.hcl, else an SQLite file in the data folder. Also what goes
//! into it besides what the pipeline writes itself: audit entries and a run's events.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use slipway_store::{AnyStore, AuditAction, NewAuditEntry, Store};

use crate::events::{Event, Observer};
use crate::project::Workspace;

/// The store URL this project uses.
pub fn url(workspace: &Workspace) -> Result<String> {
    if let Some(url) = &workspace.settings.store_url {
        return Ok(url.clone());
    }
    if let Some(url) = &workspace.project.store_url {
        return Ok(url.clone());
    }
    let data_dir = workspace.ensure_data_dir()?;
    Ok(slipway_store::default_url(&data_dir))
}

/// Opens (and migrates) the project's record.
pub async fn open(workspace: &Workspace) -> Result<AnyStore> {
    let url = url(workspace)?;
    slipway_store::open_with_lease(&url, workspace.settings.lease)
        .await
        .context("cannot open the run record")
}

/// Appends one entry to the append-only audit log.
pub async fn audit(
    workspace: &Workspace,
    store: &AnyStore,
    action: AuditAction,
    stage: &str,
    stack: &str,
    run_id: Option<i64>,
    details: serde_json::Value,
) -> Result<()> {
    store
        .append_audit(&NewAuditEntry {
            actor: workspace.settings.actor.clone(),
            action,
            stage: Some(stage.to_owned()),
            stack: Some(stack.to_owned()),
            run_id,
            details,
        })
        .await
        .context("cannot write the audit log")?;
    Ok(())
}

/// Keeps a run's events in the record as they happen: what the front end saw, for a viewer
/// who comes late (the server streams them from the record) and for `slipway events`.
///
/// Events observed before the run has an id (changes detected, artifacts built) are held
/// until [`RunRecorder::bind`] names the run; writing happens on a task of its own, so the
/// walk never waits for the database. A record that cannot be written loses this copy of the
/// events, never the run.
#[derive(Debug)]
pub struct RunRecorder {
    store: AnyStore,
    state: Arc<Mutex<Recording>>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

#[derive(Debug)]
enum Recording {
    /// No run id yet: events wait here.
    Holding(Vec<serde_json::Value>),
    Writing(tokio::sync::mpsc::UnboundedSender<serde_json::Value>),
    Closed,
}

/// The observer half of a [`RunRecorder`], to stand beside the front end's own.
#[derive(Debug, Clone)]
struct Recorded(Arc<Mutex<Recording>>);

impl Observer for Recorded {
    fn observe(&self, event: &Event) {
        let Ok(value) = serde_json::to_value(event) else {
            return;
        };
        let Ok(mut state) = self.0.lock() else {
            return;
        };
        match &mut *state {
            Recording::Holding(held) => held.push(value),
            Recording::Writing(sender) => {
                let _ = sender.send(value);
            }
            Recording::Closed => {}
        }
    }
}

/// How long a batch of events is retried while the record does not answer (a database
/// restarting), before it is given up.
const EVENT_WRITE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

/// Writes one batch of events, again and again (1 s apart, then 2 s, up to 10 s) while the
/// record refuses, so that a record restarting mid-run loses none of them.
async fn write_batch(store: &AnyStore, run_id: i64, batch: &[serde_json::Value]) {
    let deadline = tokio::time::Instant::now() + EVENT_WRITE_PATIENCE;
    let mut pause = std::time::Duration::from_secs(1);
    while store.append_run_events(run_id, batch).await.is_err()
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_secs(10));
    }
}

impl RunRecorder {
    pub fn new(store: AnyStore) -> Self {
        Self {
            store,
            state: Arc::new(Mutex::new(Recording::Holding(Vec::new()))),
            writer: Mutex::new(None),
        }
    }

    /// The observer that feeds this recorder.
    pub fn observer(&self) -> Arc<dyn Observer> {
        Arc::new(Recorded(Arc::clone(&self.state)))
    }

    /// From now on, events are run `run_id`'s: those held so far are written first.
    pub fn bind(&self, run_id: i64) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let Recording::Holding(held) = std::mem::replace(&mut *state, Recording::Closed) else {
            return;
        };
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        for value in held {
            let _ = sender.send(value);
        }
        *state = Recording::Writing(sender);
        let store = self.store.clone();
        let task = tokio::spawn(async move {
            let mut batch = Vec::new();
            while receiver.recv_many(&mut batch, 256).await > 0 {
                write_batch(&store, run_id, &batch).await;
                batch.clear();
            }
        });
        if let Ok(mut writer) = self.writer.lock() {
            *writer = Some(task);
        }
    }

    /// Stops recording and waits until every event observed so far is written.
    pub async fn finish(self) {
        if let Ok(mut state) = self.state.lock() {
            *state = Recording::Closed;
        }
        let task = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}
