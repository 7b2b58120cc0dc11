//! `GET /metrics`: the server's numbers in the OpenMetrics text format Prometheus scrapes
//! (with a viewer token, like the rest of the API).
//!
//! | metric | what |
//! | --- | --- |
//! | `slipway_webhook_deliveries_total{provider,verdict}` | deliveries by what was made of them |
//! | `slipway_jobs_ended_total{status}` | jobs this server worked on, by how they ended |
//! | `slipway_api_refusals_total` | API requests refused for a role or a stage rule |
//! | `slipway_step_seconds{outcome}` | how long each stack's walk took, by how it ended (histogram) |
//! | `slipway_queue_depth` | jobs waiting, read from the record at scrape time |
//! | `slipway_runs{status}` | runs on record by status, read at scrape time |
//! | `slipway_jobs_running` | jobs being worked on, read at scrape time |
//! | `slipway_workers{state}` | workers by state (`working`, `idle`, `draining`, `gone`), read at scrape time |

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use slipway_runner::events::Event;
use slipway_store::{JobStatus, ServiceRecord as _, Store as _};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// How many runs and jobs a scrape reads to count them.
const SCRAPE_WINDOW: u32 = 10_000;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    provider: String,
    verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    outcome: String,
}

fn step_histogram() -> Histogram {
    // 0.25 s to about 34 minutes.
    Histogram::new(exponential_buckets(0.25, 2.0, 14))
}

/// The server's metrics, registered once.
pub(crate) struct Metrics {
    registry: Registry,
    webhooks: Family<WebhookLabels, Counter>,
    jobs: Family<StatusLabels, Counter>,
    refusals: Counter,
    steps: Family<StepLabels, Histogram, fn() -> Histogram>,
    queue_depth: Gauge,
    jobs_running: Gauge,
    runs: Family<StatusLabels, Gauge>,
    workers: Family<WorkerLabels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    state: String,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("slipway");
        let webhooks = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook deliveries by what was made of them",
            webhooks.clone(),
        );
        let jobs = Family::<StatusLabels, Counter>::default();
        registry.register(
            "jobs_ended",
            "Jobs this server worked on, by how they ended",
            jobs.clone(),
        );
        let refusals = Counter::default();
        registry.register(
            "api_refusals",
            "API requests refused for a role or a stage rule",
            refusals.clone(),
        );
        let steps = Family::<StepLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            step_histogram as fn() -> Histogram,
        );
        registry.register_with_unit(
            "step",
            "How long each stack's walk took",
            prometheus_client::registry::Unit::Seconds,
            steps.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register("queue_depth", "Jobs waiting", queue_depth.clone());
        let runs = Family::<StatusLabels, Gauge>::default();
        registry.register("runs", "Runs on record by status", runs.clone());
        let jobs_running = Gauge::default();
        registry.register("jobs_running", "Jobs being worked on", jobs_running.clone());
        let workers = Family::<WorkerLabels, Gauge>::default();
        registry.register("workers", "Workers by state", workers.clone());
        Self {
            registry,
            webhooks,
            jobs,
            refusals,
            steps,
            queue_depth,
            jobs_running,
            runs,
            workers,
        }
    }
}

impl Metrics {
    pub fn webhook(&self, provider: &str, verdict: &str) {
        self.webhooks
            .get_or_create(&WebhookLabels {
                provider: provider.to_owned(),
                verdict: verdict.to_owned(),
            })
            .inc();
    }

    pub fn job_ended(&self, status: JobStatus) {
        self.jobs
            .get_or_create(&StatusLabels {
                status: status.as_str().to_owned(),
            })
            .inc();
    }

    pub fn refusal(&self) {
        self.refusals.inc();
    }

    pub fn observe(&self, event: &Event) {
        if let Event::StackFinished {
            outcome,
            elapsed_ms,
            ..
        } = event
        {
            let status = serde_json::to_value(outcome)
                .ok()
                .and_then(|v| v.get("status").and_then(|s| s.as_str()).map(str::to_owned))
                .unwrap_or_else(|| "unknown".to_owned());
            #[allow(clippy::cast_precision_loss)]
            let seconds = *elapsed_ms as f64 / 1000.0;
            self.steps
                .get_or_create(&StepLabels { outcome: status })
                .observe(seconds);
        }
    }
}

/// `GET /metrics`.
pub(crate) async fn render(State(state): State<AppState>, _caller: Caller) -> ApiResult<Response> {
    let jobs = state.store.jobs(SCRAPE_WINDOW).await?;
    let queued = jobs
        .iter()
        .filter(|j| j.status == JobStatus::Queued)
        .count();
    state
        .metrics
        .queue_depth
        .set(i64::try_from(queued).unwrap_or(i64::MAX));
    let running = jobs
        .iter()
        .filter(|j| j.status == JobStatus::Running)
        .count();
    state
        .metrics
        .jobs_running
        .set(i64::try_from(running).unwrap_or(i64::MAX));
    // Every state is set, to 0 when none is in it, so a worker leaving a state shows.
    let mut by_state: BTreeMap<&str, i64> = ["working", "idle", "draining", "gone"]
        .into_iter()
        .map(|s| (s, 0))
        .collect();
    for worker in state
        .store
        .workers(slipway_store::UnixMillis::now())
        .await?
    {
        if let Some(count) = by_state.get_mut(worker.state()) {
            *count += 1;
        }
    }
    for (name, count) in by_state {
        state
            .metrics
            .workers
            .get_or_create(&WorkerLabels {
                state: name.to_owned(),
            })
            .set(count);
    }
    let mut by_status: BTreeMap<String, i64> = BTreeMap::new();
    for run in state.store.recent_runs(SCRAPE_WINDOW).await? {
        *by_status.entry(run.status.as_str().to_owned()).or_default() += 1;
    }
    for (status, count) in by_status {
        state
            .metrics
            .runs
            .get_or_create(&StatusLabels { status })
            .set(count);
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &state.metrics.registry)
        .map_err(ApiError::internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
