//! `slipway serve`: the delivery service a team shares. This first part is the intake:
//! webhooks from GitHub and GitLab, verified before anything is read and kept in the run
//! record (the durable queue) before they are answered; and `/healthz`.
//!
//! The library takes a bound listener and a shutdown future, so that the binary decides the
//! address and the signals, and tests bind `127.0.0.1:0`. Like the runner it never prints
//! and never reads the environment: secrets arrive in [`ServerConfig`].

#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use slipway_store::AnyStore;
use tokio::net::TcpListener;

mod intake;
pub mod webhook;

pub use webhook::Secret;

/// The largest webhook body accepted (GitHub caps its payloads at 25 MB).
pub const MAX_BODY: usize = 25 * 1024 * 1024;

/// What the server is told at start.
#[derive(Debug, Clone, Default)]
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
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub config: Arc<ServerConfig>,
    pub store: AnyStore,
}

/// The service's routes.
pub fn router(config: ServerConfig, store: AnyStore) -> Router {
    let state = AppState {
        config: Arc::new(config),
        store,
    };
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/webhooks/github", post(intake::github))
        .route("/webhooks/gitlab", post(intake::gitlab))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Serves on `listener` until `shutdown` resolves, then finishes the requests in flight.
pub async fn serve(
    listener: TcpListener,
    config: ServerConfig,
    store: AnyStore,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(config, store))
        .with_graceful_shutdown(shutdown)
        .await
}
