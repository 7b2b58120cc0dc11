//! `slipway serve`: the delivery service a team shares (docs/server.md).
//!
//! - `intake`: webhooks from GitHub and GitLab, verified before anything is read and kept in
//!   the run record, with the run job a push queues, before they are answered;
//! - `queue`: the worker that takes jobs from the record one at a time and drives the
//!   runner over the server's own working copy;
//! - `api`: the JSON API under `/api/v1`, for people and tools holding a token (`auth`);
//! - `schedule`: the drift checks and drills `schedule` blocks ask for, queued on time;
//! - `live`: a run's events as server-sent events, replayed from the record then followed;
//! - `metrics`: `/metrics` in Prometheus' text format;
//! - `pull_request`: a pull request's plan, posted to it as one comment kept up to date, and
//!   its preview instance;
//! - `job`: what every job uses, whichever module runs it (moving the working copy, the
//!   observer of its events);
//! - `web`: the web pages for people who sign in, over the API's own handlers.
//!
//! The library takes a bound listener and a shutdown future, so that the binary decides the
//! address and the signals, and tests bind `127.0.0.1:0`. Like the runner it never prints
//! and never reads the environment: secrets and settings arrive in [`ServerConfig`].

#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use slipway_runner::Settings;
use slipway_store::AnyStore;
use tokio::net::TcpListener;

mod api;
pub mod auth;
mod error;
mod intake;
mod job;
mod live;
mod metrics;
mod presence;
pub mod pull_request;
mod queue;
mod schedule;
pub mod web;
pub mod webhook;

pub use api::openapi_json;
pub use auth::{NewTokenSecret, hash_token, new_token};
pub use pull_request::ForgeAccess;
pub use webhook::Secret;

/// The largest webhook body accepted (GitHub caps its payloads at 25 MB).
pub const MAX_BODY: usize = 25 * 1024 * 1024;

/// What the server is told at start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The secret GitHub signs deliveries with (`X-Hub-Signature-256`). Unset: every GitHub
    /// delivery is refused.
    pub github_secret: Option<Secret>,
    /// The token GitLab sends (`X-Gitlab-Token`). Unset: every GitLab delivery is refused.
    pub gitlab_token: Option<Secret>,
    /// Repositories whose deliveries are queued (`owner/name`, `group/project`); others are
    /// kept as ignored, with the reason.
    pub allowed_repositories: Vec<String>,
    /// Whether pull requests from forks are queued (their code is not the team's).
    pub allow_forks: bool,
    /// The branch whose pushes are delivered through the stages (`main`).
    pub branch: String,
    /// Where and how queued jobs run; `None`: jobs are kept, and nothing runs them.
    pub runner: Option<RunnerConfig>,
    /// Whether this server runs the queue's jobs itself (with `runner`); `false`: `slipway
    /// worker` processes do, and the server keeps its working copy for the project it shows,
    /// polls the source and queues scheduled work.
    pub run_jobs: bool,
    /// GitHub's API and a token that may comment on pull requests; `None`: pull requests
    /// are planned and their reports kept, not posted.
    pub github_api: Option<ForgeAccess>,
    /// GitLab's API and a token that may comment on merge requests.
    pub gitlab_api: Option<ForgeAccess>,
    /// The server's address as people reach it (`https://slipway.example.com`), for the
    /// links in pull request comments.
    pub public_url: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            github_secret: None,
            gitlab_token: None,
            allowed_repositories: Vec::new(),
            allow_forks: false,
            branch: "main".to_owned(),
            runner: None,
            run_jobs: true,
            github_api: None,
            gitlab_api: None,
            public_url: None,
        }
    }
}

/// How the server runs jobs: in this process, over a working copy of its own.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The project's working copy, moved to each job's commit. Nobody else may work in it.
    pub checkout: PathBuf,
    /// Where pushed commits are fetched from before a job (a URL or path); `None`: the
    /// working copy's repository already holds them.
    pub source: Option<String>,
    /// The runner's settings (who acts is replaced per job by who asked for it).
    pub settings: Settings,
    /// How often the source is fetched for commits whose webhook never arrived; `None`:
    /// never.
    pub poll: Option<std::time::Duration>,
}

/// Serves on `listener` until `shutdown` resolves. Then no new job starts, a running engine
/// step gets its single interrupt and grace period, and requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    config: ServerConfig,
    store: AnyStore,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (state, worker) = AppState::start(config, store).await?;
    let stopping = state.stopping.clone();
    use axum::serve::ListenerExt as _;
    // Answers are small and whole: without TCP_NODELAY the last piece of a response (a
    // stream's end) can wait for the client's delayed acknowledgement.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let serving = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        shutdown.await;
        stopping.stop();
    });
    let served = serving.await;
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    served
}

/// API requests worked on at once per core: enough to keep the cores busy while some wait
/// on the record, few enough that a webhook never queues behind a crowd.
const API_TURNS_PER_CORE: usize = 2;

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub config: Arc<ServerConfig>,
    pub store: AnyStore,
    /// Wakes the queue's worker when a job is queued.
    pub queued: Arc<tokio::sync::Notify>,
    /// Tells live streams that events were recorded.
    pub events: live::Pulse,
    pub metrics: Arc<metrics::Metrics>,
    pub stopping: queue::Stopping,
    /// Turns of the API (see [`api_turns`]).
    pub api_turns: Arc<tokio::sync::Semaphore>,
    /// The project as the working copy last held it.
    pub project: Arc<std::sync::RwLock<Option<Arc<slipway_runner::project::Workspace>>>>,
    /// Failed sign-ins per name (web/throttle.rs).
    pub logins: Arc<web::throttle::LoginThrottle>,
}

impl AppState {
    fn new(config: ServerConfig, store: AnyStore) -> Self {
        Self {
            config: Arc::new(config),
            store,
            queued: Arc::new(tokio::sync::Notify::new()),
            events: live::Pulse::default(),
            metrics: Arc::new(metrics::Metrics::default()),
            stopping: queue::Stopping::default(),
            api_turns: Arc::new(tokio::sync::Semaphore::new(API_TURNS_PER_CORE * cores())),
            project: Arc::default(),
            logins: Arc::default(),
        }
    }

    async fn start(
        config: ServerConfig,
        store: AnyStore,
    ) -> std::io::Result<(Self, Option<tokio::task::JoinHandle<()>>)> {
        let state = Self::new(config, store);
        let worker = queue::start(&state).await;
        if state.config.runner.is_some() {
            schedule::start(&state);
        }
        Ok((state, worker))
    }
}

/// Runs the queue's jobs without serving HTTP: `slipway worker`. One job at a time per
/// working copy in `checkouts` (each a clone of its own), taken from the record `store` that
/// the servers queue into; `config.runner` says how (its `checkout` is replaced by each of
/// `checkouts`). Once `drain` resolves no new job is taken and running ones finish; once
/// `stop` resolves their engine steps get the single interrupt and grace period. Returns
/// when every working copy is idle.
pub async fn work(
    config: ServerConfig,
    store: AnyStore,
    checkouts: Vec<std::path::PathBuf>,
    drain: impl Future<Output = ()> + Send + 'static,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Some(runner) = config.runner.clone() else {
        return Err(std::io::Error::other(
            "a worker needs a runner configuration",
        ));
    };
    let state = AppState::new(config, store);
    let draining = state.stopping.clone();
    tokio::spawn(async move {
        drain.await;
        draining.drain();
    });
    let stopping = state.stopping.clone();
    tokio::spawn(async move {
        stop.await;
        stopping.stop();
    });
    queue::interrupt_abandoned(&state).await;
    let presence = presence::Presence::join(
        &state,
        &runner.settings.worker_labels.clone().unwrap_or_default(),
        u32::try_from(checkouts.len()).unwrap_or(u32::MAX),
        runner.settings.lock_heartbeat,
    )
    .await;
    let runtime = tokio::runtime::Handle::current();
    let slots: Vec<_> = checkouts
        .into_iter()
        .map(|checkout| {
            let runner = RunnerConfig {
                checkout,
                // Servers poll; workers only take what is queued.
                poll: None,
                ..runner.clone()
            };
            let state = state.clone();
            let runtime = runtime.clone();
            tokio::task::spawn_blocking(move || runtime.block_on(queue::work(state, runner, true)))
        })
        .collect();
    for slot in slots {
        slot.await.map_err(std::io::Error::other)?;
    }
    if let Some(presence) = presence {
        presence.leave().await;
    }
    Ok(())
}

/// The service's routes.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(queue::ready))
        .route("/metrics", get(metrics::render))
        .route("/webhooks/github", post(intake::github))
        .route("/webhooks/gitlab", post(intake::gitlab))
        .nest(
            "/api/v1",
            api::routes().layer(axum::middleware::from_fn_with_state(
                state.clone(),
                api_turns,
            )),
        )
        .merge(web::routes())
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// API requests take turns: at most [`AppState::api_turns`] are worked on at once, the rest
/// wait (cheaply) for a turn. A crowd of readers then cannot fill the runtime with runnable
/// work, and a webhook, which never waits for a turn, is answered within milliseconds
/// however many clients read. A turn ends with the response's head: a stream of events
/// does not hold one while it follows a run.
async fn api_turns(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let _turn = state.api_turns.acquire().await;
    next.run(request).await
}

/// The routes over a store with nothing running jobs: what tests of the intake and the API
/// alone serve.
pub async fn router_for(config: ServerConfig, store: AnyStore) -> std::io::Result<Router> {
    let (state, _) = AppState::start(config, store).await?;
    Ok(router(state))
}
