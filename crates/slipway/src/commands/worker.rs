//! `slipway worker`: runs the jobs `slipway serve --workers` queues, on this machine, from
//! the record the servers share (docs/scale-out.md). A worker serves no HTTP and schedules
//! nothing: it takes queued jobs one at a time per working copy, renews each job's heartbeat
//! while it runs, and reports everything through the record, where the servers' API and
//! pages read it.
//!
//! The first SIGTERM (or Ctrl-C) drains: no new job is taken and running ones finish. The
//! second interrupts their engine steps once, with the project's grace period.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use slipway_server::{RunnerConfig, ServerConfig};

use super::ExitStatus;
use super::serve::{clone_repository_into, init_logs, job_settings};
use crate::project::Workspace;

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The record the servers queue jobs in: `postgres://...` for workers on other machines.
    /// Default: `SLIPWAY_STORE_URL`, else this project's own record (this machine only).
    #[arg(long, value_name = "URL")]
    pub store_url: Option<String>,
    /// Work on this repository (a git URL or path): cloned into `.slipway/checkout` here
    /// (`.slipway/checkout-2`... for more job slots) and fetched before each job.
    #[arg(long, value_name = "URL_OR_PATH")]
    pub repo: Option<String>,
    /// Where pushed commits are fetched from before each job (a git URL, path or remote
    /// name). Default: the `--repo` URL, else the working copy's `origin` remote.
    #[arg(long, value_name = "URL")]
    pub source: Option<String>,
    /// The branch the servers deliver: pull requests are planned with its settings.
    #[arg(long, value_name = "BRANCH", default_value = "main")]
    pub branch: String,
    /// Jobs run at once, each in a working copy of its own (more than one needs `--repo`).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub max_jobs: u16,
    /// The labels this worker carries (`tier=prod,region=eu`). A stage with `worker_labels`
    /// runs only on workers carrying each of them: a run reaching it elsewhere waits there
    /// for one, and its approvals, drift checks and drills are taken only by one.
    #[arg(long, value_name = "NAME=VALUE,...", default_value = "", value_parser = slipway_core::Labels::parse)]
    pub labels: slipway_core::Labels,
    /// Log as JSON objects, one a line (for log collectors), instead of text.
    #[arg(long)]
    pub log_json: bool,
}

/// Where `worker --repo` keeps the working copy of job slot `slot` (from 1).
fn checkout_dir(cwd: &std::path::Path, slot: u16) -> PathBuf {
    let name = if slot == 1 {
        "checkout".to_owned()
    } else {
        format!("checkout-{slot}")
    };
    cwd.join(".slipway").join(name)
}

/// The working copies of a worker's job slots: the project's own for one slot, else one
/// clone of `--repo` each.
pub fn checkouts(args: &WorkerArgs, cwd: &std::path::Path) -> Result<Vec<PathBuf>> {
    match &args.repo {
        Some(url) => (1..=args.max_jobs)
            .map(|slot| clone_repository_into(url, &checkout_dir(cwd, slot)))
            .collect(),
        None if args.max_jobs > 1 => bail!(
            "--max-jobs {} needs a working copy per job\n  help: add `--repo URL`: the worker clones it once per job slot",
            args.max_jobs
        ),
        None => Ok(Vec::new()),
    }
}

pub async fn run(
    workspace: &Workspace,
    args: &WorkerArgs,
    checkouts: Vec<PathBuf>,
) -> Result<ExitStatus> {
    if matches!(
        workspace.project.state,
        slipway_core::config::StateConfig::Local
    ) {
        bail!(
            "{} keeps state on local disk: each worker would apply on a state of its own\n  help: give the project a `state` block every worker reaches (S3 with DynamoDB locks, docs/state-and-credentials.md), then start the workers",
            workspace
                .root
                .join(slipway_core::config::PROJECT_FILE)
                .display()
        );
    }
    let mut settings = job_settings(workspace)?;
    if let Some(url) = &args.store_url {
        settings.store_url = Some(url.clone());
    }
    settings.worker_labels = Some(args.labels.clone());
    let url = settings.store_url.clone();
    let store = match &url {
        Some(url) => slipway_store::open_with_lease(url, settings.lease)
            .await
            .with_context(|| format!("cannot open the record at {}", redact(url)))?,
        None => crate::record::open(workspace).await?,
    };
    if url.as_deref().is_none_or(|u| !u.starts_with("postgres")) {
        eprintln!(
            "note: the record is SQLite: workers on this machine only; give servers and workers one `postgres://` URL to spread them over machines"
        );
    }
    let checkouts = if checkouts.is_empty() {
        vec![workspace.root.clone()]
    } else {
        checkouts
    };
    let source = match (&args.source, &args.repo) {
        (Some(source), _) | (None, Some(source)) => Some(source.clone()),
        (None, None) => super::serve::has_origin(&workspace.root).then(|| "origin".to_owned()),
    };
    let config = ServerConfig {
        branch: args.branch.clone(),
        runner: Some(RunnerConfig {
            checkout: workspace.root.clone(),
            source,
            settings,
            poll: None,
        }),
        ..ServerConfig::default()
    };
    init_logs(args.log_json);
    eprintln!(
        "slipway worker: taking jobs ({} at a time{}) in {}\n  stop: SIGTERM or Ctrl-C once to finish running jobs and take no more, twice to interrupt them",
        checkouts.len(),
        if args.labels.is_empty() {
            String::new()
        } else {
            format!(", labelled {}", args.labels)
        },
        checkouts
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let (first, second) = signals();
    slipway_server::work(config, store, checkouts, first, second)
        .await
        .context("the worker stopped")?;
    eprintln!("slipway worker: stopped");
    Ok(ExitStatus::Success)
}

/// Two futures: the first shutdown signal, then the second.
fn signals() -> (
    impl Future<Output = ()> + Send + 'static,
    impl Future<Output = ()> + Send + 'static,
) {
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
    let (second_tx, second_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        super::serve::shutdown().await;
        eprintln!(
            "slipway worker: finishing the running jobs, taking no more (signal again to interrupt them)"
        );
        let _ = first_tx.send(());
        super::serve::shutdown().await;
        eprintln!("slipway worker: interrupting the running jobs");
        let _ = second_tx.send(());
    });
    (
        async move {
            let _ = first_rx.await;
        },
        async move {
            let _ = second_rx.await;
        },
    )
}

/// A URL with its password left out, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_record_urls_are_left_out() {
        assert_eq!(
            redact("postgres://slipway:hunter2@db.example:5432/slipway"),
            "postgres://slipway:***@db.example:5432/slipway"
        );
        assert_eq!(redact("postgres://db/slipway"), "postgres://db/slipway");
    }

    #[test]
    fn each_job_slot_has_a_working_copy_of_its_own() {
        let cwd = std::path::Path::new("/w");
        assert_eq!(checkout_dir(cwd, 1), PathBuf::from("/w/.slipway/checkout"));
        assert_eq!(
            checkout_dir(cwd, 3),
            PathBuf::from("/w/.slipway/checkout-3")
        );
    }
}
