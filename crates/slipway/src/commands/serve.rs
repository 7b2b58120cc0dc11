//! `slipway serve`: the delivery service on this machine (docs/server.md). It binds the
//! address, installs the shutdown signals and the log output, and hands the rest to
//! `slipway-server`. Webhook secrets come from the environment the CLI was started with,
//! never from flags (which `ps` shows).
//!
//! The server runs its jobs in the project's working copy, which it moves from commit to
//! commit: serve from a clone of its own, not from the one you edit.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use clap::Args;
use slipway_runner::settings::EngineEnvironment;
use slipway_server::pull_request::forge::{GITHUB_API, GITLAB_API};
use slipway_server::{ForgeAccess, RunnerConfig, Secret, ServerConfig};

use super::ExitStatus;
use crate::project::Workspace;
use crate::record;

/// The variable holding GitHub's webhook secret.
pub const GITHUB_SECRET: &str = "SLIPWAY_GITHUB_WEBHOOK_SECRET";
/// The variable holding GitLab's webhook token.
pub const GITLAB_TOKEN: &str = "SLIPWAY_GITLAB_WEBHOOK_TOKEN";
/// The token that comments on GitHub pull requests, and GitHub's API (default
/// `https://api.github.com`; GitHub Enterprise: `https://HOST/api/v3`).
pub const GITHUB_API_TOKEN: &str = "SLIPWAY_GITHUB_TOKEN";
pub const GITHUB_API_URL: &str = "SLIPWAY_GITHUB_API_URL";
/// The token that comments on GitLab merge requests, and GitLab's API (default
/// `https://gitlab.com/api/v4`).
pub const GITLAB_API_TOKEN: &str = "SLIPWAY_GITLAB_TOKEN";
pub const GITLAB_API_URL: &str = "SLIPWAY_GITLAB_API_URL";
/// The server's own secrets: never visible to `env()` in configuration nor to engines.
const SERVER_SECRETS: &[&str] = &[
    GITHUB_SECRET,
    GITLAB_TOKEN,
    GITHUB_API_TOKEN,
    GITLAB_API_TOKEN,
];

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
    /// Serve this repository (a git URL or path) instead of the project in the current
    /// folder: it is cloned once into `.slipway/checkout` here, and fetched before each job.
    #[arg(long, value_name = "URL_OR_PATH")]
    pub repo: Option<String>,
    /// The branch whose pushes are delivered through the stages.
    #[arg(long, value_name = "BRANCH", default_value = "main")]
    pub branch: String,
    /// Where pushed commits are fetched from before each job (a git URL, path or remote
    /// name). Default: the working copy's `origin` remote, when it has one.
    #[arg(long, value_name = "URL")]
    pub source: Option<String>,
    /// Keep deliveries and jobs in the record without running them (an intake-only server).
    #[arg(long)]
    pub no_jobs: bool,
    /// Leave the jobs to `slipway worker` processes on the same record (PostgreSQL for
    /// workers on other machines): this server keeps its working copy for the project it
    /// shows, polls the source and queues scheduled work, and runs nothing itself.
    #[arg(long, conflicts_with = "no_jobs")]
    pub workers: bool,
    /// The labels this server carries when it runs jobs itself (`tier=dev,region=eu`): a run
    /// reaching a stage whose `worker_labels` it lacks waits there for a worker that carries
    /// them (docs/scale-out.md).
    #[arg(long, value_name = "NAME=VALUE,...", default_value = "", value_parser = slipway_core::Labels::parse, conflicts_with = "workers")]
    pub labels: slipway_core::Labels,
    /// How often to fetch the source for pushes whose webhook never arrived (`30s`, `5m`);
    /// `0` turns polling off.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub poll: std::time::Duration,
    /// Log as JSON objects, one a line (for log collectors), instead of text.
    #[arg(long)]
    pub log_json: bool,
    /// The server's address as people reach it (`https://slipway.example.com`), for the
    /// links in pull request comments to the whole report.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
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
    let source = match (&args.source, &args.repo) {
        (Some(source), _) | (None, Some(source)) => Some(source.clone()),
        (None, None) => has_origin(&workspace.root).then(|| "origin".to_owned()),
    };
    let mut settings = job_settings(workspace)?;
    settings.worker_labels = Some(args.labels.clone());
    let runner = (!args.no_jobs).then(|| RunnerConfig {
        checkout: workspace.root.clone(),
        source,
        settings,
        poll: (!args.poll.is_zero()).then_some(args.poll),
    });
    let config = ServerConfig {
        github_secret: secret(GITHUB_SECRET),
        gitlab_token: secret(GITLAB_TOKEN),
        allowed_repositories: args.allowed.clone(),
        allow_forks: args.allow_forks,
        branch: args.branch.clone(),
        runner,
        run_jobs: !args.workers,
        github_api: forge_access(workspace, GITHUB_API_TOKEN, GITHUB_API_URL, GITHUB_API),
        gitlab_api: forge_access(workspace, GITLAB_API_TOKEN, GITLAB_API_URL, GITLAB_API),
        public_url: args.public_url.clone(),
    };
    if config.github_secret.is_none() && config.gitlab_token.is_none() {
        eprintln!(
            "warning: neither {GITHUB_SECRET} nor {GITLAB_TOKEN} is set: every webhook delivery will be refused"
        );
    }
    if args.allowed.is_empty() {
        eprintln!("warning: no --allow-repo given: deliveries are kept, but none starts a run");
    }
    init_logs(args.log_json);
    let store = record::open(workspace).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    eprintln!(
        "slipway serve: listening on http://{address}\n  webhooks: POST /webhooks/github, POST /webhooks/gitlab\n  API:      /api/v1/... with `Authorization: Bearer TOKEN` (slipway token create)\n  health:   GET /healthz, GET /readyz; metrics: GET /metrics (with a token)\n  stop:     Ctrl-C or SIGTERM (no new job starts; a running apply is interrupted once and given its grace period)"
    );
    slipway_server::serve(listener, config, store, shutdown())
        .await
        .context("the server stopped")?;
    eprintln!("slipway serve: stopped");
    Ok(ExitStatus::Success)
}

/// The runner's settings for the jobs a server or worker runs. A server holds its own
/// secrets (webhook secrets, the store's URL, tokens): unless told otherwise, engines get the
/// minimal environment plus what SLIPWAY_ENGINE_PASS names.
pub(crate) fn job_settings(workspace: &Workspace) -> Result<slipway_runner::Settings> {
    let mut settings = workspace.settings.clone();
    for name in SERVER_SECRETS {
        settings.environment.remove(*name);
    }
    settings.engine_environment = EngineEnvironment::from_environment(
        &settings.environment,
        EngineEnvironment::Minimal { pass: Vec::new() },
    )?;
    Ok(settings)
}

/// Log lines on stderr, as text or JSON objects (`RUST_LOG` filters; default `info`).
pub(crate) fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    let _ = if json {
        logs.json().try_init()
    } else {
        logs.try_init()
    };
}

/// A forge's API as the environment names it: its token (none: nothing is posted) and its
/// URL (else `default`).
fn forge_access(
    workspace: &Workspace,
    token: &str,
    url: &str,
    default: &str,
) -> Option<ForgeAccess> {
    let get = |name: &str| {
        workspace
            .settings
            .environment
            .get(name)
            .filter(|v| !v.is_empty())
            .cloned()
    };
    Some(ForgeAccess {
        token: Secret::new(get(token)?),
        api_url: get(url).unwrap_or_else(|| default.to_owned()),
    })
}

/// Where `serve --repo` keeps its clone, below the folder it was started in.
const CHECKOUT: &str = ".slipway/checkout";

/// The clone `serve --repo URL` serves: made on first use, found afterwards (it must be a
/// clone of the same URL: a server never serves another repository's clone by mistake).
pub fn clone_repository(url: &str, cwd: &std::path::Path) -> Result<std::path::PathBuf> {
    clone_repository_into(url, &cwd.join(CHECKOUT))
}

/// The clone of `url` at `checkout`: made on first use, found afterwards (it must be a clone
/// of the same URL).
pub fn clone_repository_into(url: &str, checkout: &std::path::Path) -> Result<std::path::PathBuf> {
    let checkout = checkout.to_path_buf();
    if checkout.join(".git").exists() {
        let output = std::process::Command::new("git")
            .args(["remote", "get-url", "origin"])
            .current_dir(&checkout)
            .output()
            .context("cannot run git")?;
        let origin = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if origin != url {
            anyhow::bail!(
                "{} is a clone of `{origin}`, not of `{url}`\n  help: start the server for `{url}` in another folder, or remove {}",
                checkout.display(),
                checkout.display()
            );
        }
        return Ok(checkout);
    }
    if let Some(parent) = checkout.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    eprintln!("slipway: cloning {url} into {}", checkout.display());
    let status = std::process::Command::new("git")
        .args(["clone", "--quiet", "--", url])
        .arg(&checkout)
        .status()
        .context("cannot run git")?;
    if !status.success() {
        anyhow::bail!(
            "cannot clone `{url}` ({status})\n  help: check the URL and that this machine may read it (`git clone {url}` says why)"
        );
    }
    Ok(checkout)
}

/// Whether the repository at `root` has a remote named `origin`.
pub(crate) fn has_origin(root: &std::path::Path) -> bool {
    std::process::Command::new("git")
        .args(["remote", "get-url", "origin"])
        .current_dir(root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown() {
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
