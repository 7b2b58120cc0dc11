//! A process that takes jobs (a `slipway worker`, or a server running them itself) keeps a
//! place in the record's list of workers: registered with its labels and job slots when it
//! starts, its heartbeat renewed (saying whether it drains) while it runs, and marked stopped
//! on the way out. The API (`GET /api/v1/workers`) and the metrics read that list; a worker
//! that vanished without saying so shows as gone once its process is (on this host) or its
//! heartbeat is older than the lease (elsewhere).

use std::time::Duration;

use slipway_store::{EngineProcess, Labels, NewWorker, ServiceRecord as _};

use crate::AppState;

/// This process's place in the list, renewed until [`Presence::leave`].
pub(crate) struct Presence {
    state: AppState,
    id: i64,
    renewing: tokio::task::JoinHandle<()>,
}

impl Presence {
    /// Registers this process with `labels` and `max_jobs` slots, and renews its heartbeat
    /// every `every`. `None` (logged) when the record refuses: the jobs still run.
    pub(crate) async fn join(
        state: &AppState,
        labels: &Labels,
        max_jobs: u32,
        every: Duration,
    ) -> Option<Self> {
        let registered = state
            .store
            .register_worker(&NewWorker {
                process: EngineProcess::here(std::process::id()),
                labels: labels.clone(),
                max_jobs,
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .await;
        let worker = match registered {
            Ok(worker) => worker,
            Err(error) => {
                tracing::error!(error = %error, "cannot register as a worker: the jobs run, but the list of workers will not show this one");
                return None;
            }
        };
        tracing::info!(worker = worker.id, labels = %labels, max_jobs, "registered as a worker");
        let renewing = tokio::spawn(renew(state.clone(), worker.id, every));
        Some(Self {
            state: state.clone(),
            id: worker.id,
            renewing,
        })
    }

    /// Marks this process stopped in the list.
    pub(crate) async fn leave(self) {
        self.renewing.abort();
        if let Err(error) = self.state.store.worker_stopped(self.id).await {
            tracing::warn!(worker = self.id, error = %error, "cannot mark this worker stopped");
        }
    }
}

async fn renew(state: AppState, id: i64, every: Duration) {
    loop {
        let draining = state.stopping.is_draining();
        match state.store.worker_heartbeat(id, draining).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(worker = id, "the record lists this worker as stopped");
                return;
            }
            Err(error) => {
                tracing::warn!(worker = id, error = %error, "cannot renew this worker's heartbeat")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            // A drain shows at once, not a heartbeat later.
            () = state.stopping.drained(), if !draining => {}
        }
    }
}
