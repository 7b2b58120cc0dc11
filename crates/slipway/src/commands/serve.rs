//! `slipway serve`: the delivery service on this machine (docs/server.md). It binds the
//! address, installs the shutdown signals and the log output, and hands the rest to
//! `slipway-server`. Webhook secrets come from the environment the CLI was started with,
//! never from flags (which `ps` shows).

use std::net::SocketAddr;

use anyhow::{Context, Result};
use clap::Args;
use slipway_server::{Secret, ServerConfig};

use super::ExitStatus;
use crate::project::Workspace;
use crate::record;

/// The variable holding GitHub's webhook secret.
pub const GITHUB_SECRET: &str = "SLIPWAY_GITHUB_WEBHOOK_SECRET";
/// The variable holding GitLab's webhook token.
pub const GITLAB_TOKEN: &str = "SLIPWAY_GITLAB_WEBHOOK_TOKEN";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// A repository whose webhooks start runs (`owner/name` on GitHub, `group/project` on
    /// GitLab); repeat for more. Deliveries from others are kept as ignored.
    #[arg(long = "allow-repo", value_name = "REPOSITORY")]
    pub allowed: Vec<String>,
    /// Also queue pull requests from forks (their code is not your team's: off by default).
    #[arg(long)]
    pub allow_forks: bool,
}

pub async fn run(workspace: &Workspace, args: &ServeArgs) -> Result<ExitStatus> {
    let secret = |name: &str| {
        workspace
            .settings
            .environment
            .get(name)
            .filter(|v| !v.is_empty())
            .map(|v| Secret::new(v.clone()))
    };
    let config = ServerConfig {
        github_secret: secret(GITHUB_SECRET),
        gitlab_token: secret(GITLAB_TOKEN),
        allowed_repositories: args.allowed.clone(),
        allow_forks: args.allow_forks,
    };
    if config.github_secret.is_none() && config.gitlab_token.is_none() {
        eprintln!(
            "warning: neither {GITHUB_SECRET} nor {GITLAB_TOKEN} is set: every webhook delivery will be refused"
        );
    }
    if args.allowed.is_empty() {
        eprintln!("warning: no --allow-repo given: deliveries are kept, but none starts a run");
    }
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let store = record::open(workspace).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    eprintln!(
        "slipway serve: listening on http://{address}\n  webhooks: POST /webhooks/github, POST /webhooks/gitlab\n  health:   GET /healthz\n  stop:     Ctrl-C or SIGTERM (requests in flight finish)"
    );
    slipway_server::serve(listener, config, store, shutdown())
        .await
        .context("the server stopped")?;
    eprintln!("slipway serve: stopped");
    Ok(ExitStatus::Success)
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
