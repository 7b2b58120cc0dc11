//! Pull requests (merge requests): a `pull_request` job plans what a pull request changes
//! and keeps one comment on it up to date (docs/pull-requests.md).
//!
//! The job fetches the source, checks the pull request's head out, finds the stacks it
//! changes against where it branched from the delivered branch, builds their artifacts,
//! plans them (with what they depend on read for their inputs) against the
//! `pull_requests { plan_stage }` stage, and posts the blast radius report
//! (`slipway_plan::render::render_markdown`) as one comment, updated in place on every
//! later push. A body longer than the forges take is cut, with a link to the whole report
//! (`GET /api/v1/pull-requests/{id}/report`).
//!
//! **A pull request's code is not trusted.** Every setting that runs a command or chooses
//! secrets is read from the delivered branch's slipway.hcl, never from the pull request's:
//! the project's configuration is the default branch's whole, and only the stacks (their
//! `stack.hcl` and code) come from the head; a stack's `check` blocks are the default
//! branch's too (and never run for a plan). The stage's apply credentials are never fetched:
//! plans get the stage's `plan_credentials` only, and nothing at all where it has none.
//! `env()` in the head's configuration sees neither the cloud credential variables nor what
//! a `credentials` block reads.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use slipway_core::config::{self, Env, PROJECT_FILE, Project};
use slipway_core::{SourceFile, Stage};
use slipway_plan::Report;
use slipway_runner::changes::{self, DefaultBase};
use slipway_runner::executor::{Operation, Outcome, StackResult};
use slipway_runner::pipeline::artifacts::{self, Built};
use slipway_runner::project::{Workspace, read_sources};
use slipway_runner::stage_executor::{ExecutorOptions, executor_for};
use slipway_store::{Job, PullRequestKey, ServiceRecord as _, UnixMillis};

use crate::{AppState, RunnerConfig};

pub mod forge;
pub mod preview;

pub use forge::ForgeAccess;

/// The longest comment body GitHub and GitLab take.
pub const MAX_COMMENT: usize = 65_535;

/// The marker the server's comment starts with.
const HEADING: &str = "### slipway plan";

/// How the scheduler names the job that destroys an expired preview: `preview-ttl/pr-N`.
pub(crate) const TTL_REF_PREFIX: &str = "preview-ttl/";

/// What a `pull_request` job is for.
enum Work {
    /// Plan the head (and apply its preview, when the project has one); `base`: the branch
    /// it asks to be merged into, when the forge said.
    Plan { base: Option<String> },
    /// Destroy the pull request's preview, for `why`; `ttl`: only if it is still expired.
    Destroy { why: &'static str, ttl: bool },
}

/// Runs a `pull_request` job; returns how it ended, in words.
pub(crate) async fn run(state: &AppState, runner: &RunnerConfig, job: &Job) -> Result<String> {
    let (key, number, work) = match job.delivery_id.as_deref() {
        Some(delivery_id) => {
            let delivery = state
                .store
                .delivery(delivery_id)
                .await?
                .with_context(|| format!("delivery {delivery_id} is not on record"))?;
            let number = delivery
                .pull_number
                .context("the delivery names no pull request")?;
            let work = if delivery.kind == "pull_request_closed" {
                Work::Destroy {
                    why: "the pull request was closed",
                    ttl: false,
                }
            } else {
                Work::Plan {
                    base: delivery.base_ref.clone(),
                }
            };
            let key = PullRequestKey {
                provider: delivery.provider.clone(),
                repository: delivery.repository.clone(),
                number,
            };
            (Some(key), number, work)
        }
        None => {
            // The scheduler's job for an expired preview: `preview-ttl/pr-N`.
            let number: i64 = job
                .git_ref
                .strip_prefix(TTL_REF_PREFIX)
                .and_then(|name| name.strip_prefix("pr-"))
                .and_then(|n| n.parse().ok())
                .with_context(|| {
                    format!(
                        "a pull request job names neither a delivery nor a preview: `{}`",
                        job.git_ref
                    )
                })?;
            let key = state
                .store
                .pull_requests_numbered(number)
                .await?
                .into_iter()
                .find(|p| p.repository == job.repository)
                .map(|p| PullRequestKey {
                    provider: p.provider,
                    repository: p.repository,
                    number,
                });
            let work = Work::Destroy {
                why: "its time to live ran out",
                ttl: true,
            };
            (key, number, work)
        }
    };

    // The working copy goes back where the last delivery left it, whatever happens: the
    // scheduler, the API and the jobs after this one read the project from it, and must never
    // read the pull request's configuration.
    let checkout = runner.checkout.clone();
    let before = tokio::task::spawn_blocking(move || -> Result<Option<String>> {
        Ok(slipway_git::Repo::open(&checkout)?.resolve("HEAD")?)
    })
    .await
    .context("the checkout task stopped")??;
    let outcome = match (work, &key) {
        (Work::Plan { base }, Some(key)) => {
            planned_and_posted(state, runner, job, key, base.as_deref()).await
        }
        (Work::Plan { .. }, None) => Err(anyhow::anyhow!("the pull request is not known")),
        (Work::Destroy { why, ttl }, key) => {
            destroyed_and_posted(state, runner, job, key.as_ref(), number, why, ttl).await
        }
    };
    if let Some(before) = before {
        let checkout = runner.checkout.clone();
        let restored = tokio::task::spawn_blocking(move || {
            slipway_git::Repo::open(&checkout)?
                .check_out(&before)
                .with_context(|| format!("cannot check {before} out again"))
        })
        .await
        .context("the checkout task stopped")?;
        if let Err(error) = restored {
            tracing::error!(error = %format!("{error:#}"), "the working copy stays at a pull request's head");
            return Err(error);
        }
    }
    outcome
}

/// Destroys pull request `number`'s preview (with the stacks of the head it was applied
/// from, when that commit can still be fetched, and the default branch's settings) and says
/// so in the comment.
async fn destroyed_and_posted(
    state: &AppState,
    runner: &RunnerConfig,
    job: &Job,
    key: Option<&PullRequestKey>,
    number: i64,
    why: &str,
    ttl: bool,
) -> Result<String> {
    let Some(live) = preview::live(&state.store, number).await? else {
        return Ok(format!("no preview of #{number} to destroy"));
    };
    if ttl {
        let configured = state
            .project
            .read()
            .ok()
            .and_then(|p| p.clone())
            .and_then(|w| w.project.preview.as_ref().map(|p| p.ttl));
        let age = UnixMillis::now().0.saturating_sub(live.created_at.0);
        if let Some(ttl) = configured
            && u128::try_from(age).unwrap_or_default() < ttl.as_millis()
        {
            return Ok(format!(
                "preview {} was applied again since: kept",
                live.name
            ));
        }
    }
    let checkout = runner.checkout.clone();
    let source = runner.source.clone();
    let commit = job.commit.clone();
    let branch = state.config.branch.clone();
    let trusted_tip = tokio::task::spawn_blocking(move || {
        if !commit.is_empty()
            && let Err(error) = crate::job::move_checkout(&checkout, source.as_deref(), &commit)
        {
            // A merged branch may be gone: the default branch's stacks destroy what they know.
            tracing::warn!(error = %format!("{error:#}"), "the preview's head cannot be checked out: destroying with the working copy's stacks");
        }
        default_tip(&checkout, source.is_some(), &branch)
    })
    .await
    .context("the checkout task stopped")??;
    let workspace = untrusted_workspace(runner, &trusted_tip)?
        .observed_by(std::sync::Arc::new(crate::job::JobObserver {
            state: state.clone(),
            job: job.id,
        }))
        .interrupted_by(state.stopping.interrupts());
    let failures = preview::destroy(&workspace, &live).await?;
    let (said, part) = match &failures {
        None => (
            format!("preview {} destroyed: {why}", live.name),
            preview::destroyed_markdown(&live.name, why),
        ),
        Some(failures) => (
            format!(
                "preview {} not destroyed ({why}): {}",
                live.name,
                failures.join("; ")
            ),
            format!(
                "\n<!-- slipway:preview -->\n#### Preview `{}`\n\n**Not destroyed** ({why}): {} stack(s) failed; `slipway gc` destroys it once the server is gone.\n",
                live.name,
                failures.len()
            ),
        ),
    };
    let Some(key) = key else {
        return Ok(said);
    };
    let Some(kept) = state.store.pull_request(key).await? else {
        return Ok(said);
    };
    let report = format!("{}{part}", preview::without_preview(&kept.report));
    let kept = state
        .store
        .save_pull_request_report(key, &kept.commit, &report)
        .await?;
    let posted = post(state, key, &kept, &report).await?;
    Ok(format!("{said}; {posted}"))
}

/// Posts (or updates) the pull request's one comment; says where, in words.
async fn post(
    state: &AppState,
    key: &PullRequestKey,
    kept: &slipway_store::PullRequestRecord,
    report: &str,
) -> Result<String> {
    let body = comment_body(report, &report_link(state, kept.id));
    let Some(forge) = forge::Forge::from_provider(&key.provider) else {
        bail!("pull requests of `{}` cannot be commented on", key.provider);
    };
    let access = match forge {
        forge::Forge::GitHub => state.config.github_api.clone(),
        forge::Forge::GitLab => state.config.gitlab_api.clone(),
    };
    let Some(access) = access else {
        tracing::warn!(provider = %key.provider, "no API token for the forge: the pull request's report is kept, not posted");
        return Ok(format!("not posted: no API token for {}", key.provider));
    };
    let client = forge::Client::new(forge, access)?;
    let comment = client
        .upsert_comment(
            &key.repository,
            key.number,
            kept.comment_id.as_deref(),
            &body,
        )
        .await?;
    if kept.comment_id.as_deref() != Some(comment.as_str()) {
        state
            .store
            .set_pull_request_comment(kept.id, &comment)
            .await?;
    }
    Ok(format!("comment {comment}"))
}

/// The pull request job's work, in the working copy moved to the head.
async fn planned_and_posted(
    state: &AppState,
    runner: &RunnerConfig,
    job: &Job,
    key: &PullRequestKey,
    base: Option<&str>,
) -> Result<String> {
    let number = key.number;
    let checkout = runner.checkout.clone();
    let source = runner.source.clone();
    let commit = job.commit.clone();
    let branch = state.config.branch.clone();
    let base = base.map(str::to_owned);
    let (trusted_tip, base_tip) = tokio::task::spawn_blocking(move || {
        // A head pushed to a fork is in no branch of the source, only under the forge's ref
        // for the pull request; a head in a branch of the source needs no more than that.
        if let (Some(source), Ok(number)) = (source.as_deref(), u64::try_from(number))
            && let Err(error) = slipway_git::Repo::open(&checkout)
                .and_then(|repo| repo.fetch_pull_request_head(source, number))
        {
            tracing::debug!(number, error = %error, "no forge ref for the pull request's head");
        }
        crate::job::move_checkout(&checkout, source.as_deref(), &commit)?;
        let trusted_tip = default_tip(&checkout, source.is_some(), &branch)?;
        // What the pull request changes is measured from where it branched from the branch
        // it targets; settings always come from the delivered branch.
        let base_tip = match base.as_deref() {
            Some(base) if base != branch => {
                match default_tip(&checkout, source.is_some(), base) {
                    Ok(tip) => tip,
                    Err(error) => {
                        tracing::warn!(base, error = %format!("{error:#}"), "the pull request's base branch is not in the source: measuring its changes from the delivered branch");
                        trusted_tip.clone()
                    }
                }
            }
            _ => trusted_tip.clone(),
        };
        anyhow::Ok((trusted_tip, base_tip))
    })
    .await
    .context("the checkout task stopped")??;

    let workspace = untrusted_workspace(runner, &trusted_tip)?
        .observed_by(std::sync::Arc::new(crate::job::JobObserver {
            state: state.clone(),
            job: job.id,
        }))
        .interrupted_by(state.stopping.interrupts());
    let mut planned = plan(&workspace, &base_tip, &job.commit).await?;
    if let Some(config) = &workspace.project.preview
        && !planned.changed.is_empty()
        && planned.failed().is_empty()
    {
        let changed: BTreeSet<String> = planned.changed.iter().cloned().collect();
        planned.preview =
            Some(preview::apply(&workspace, config, number, &changed, &planned.built).await?);
    }
    let report = planned.markdown(key, &job.commit);
    let kept = state
        .store
        .save_pull_request_report(key, &job.commit, &report)
        .await?;
    let said = format!(
        "{} of {}#{number} at {}",
        planned.summary(),
        key.repository,
        short(&job.commit)
    );
    let posted = post(state, key, &kept, &report).await?;
    Ok(format!("{said}; {posted}"))
}

/// The commit the delivered branch points at: where trusted settings are read.
fn default_tip(checkout: &Path, fetched: bool, branch: &str) -> Result<String> {
    let repo = slipway_git::Repo::open(checkout)?;
    let tip = if fetched {
        format!("refs/remotes/slipway-source/{branch}")
    } else {
        format!("refs/heads/{branch}")
    };
    repo.resolve(&tip)?
        .with_context(|| format!("the branch `{branch}` does not exist in the source"))
}

/// The project as a pull request's plan sees it: the stacks of the checked-out head, every
/// setting of the default branch's slipway.hcl, the default branch's checks.
fn untrusted_workspace(runner: &RunnerConfig, trusted_tip: &str) -> Result<Workspace> {
    let root = &runner.checkout;
    let settings = runner.settings.clone();
    let repo = slipway_git::Repo::open(root)?;
    let mut tree = slipway_git::TreeReader::new(&repo, trusted_tip)?;
    let trusted_sources = tree.project_sources()?;
    let trusted = config::load(&trusted_sources, &settings.environment).map_err(|errors| {
        anyhow::anyhow!("the default branch's configuration does not load:\n{errors}")
    })?;
    let mut sources = read_sources(root)?;
    sources.config = SourceFile::new(PROJECT_FILE, trusted_sources.config.text.clone());
    let env = scrubbed(&settings.environment, &trusted);
    let mut project = config::load(&sources, &env).map_err(|errors| {
        anyhow::anyhow!(
            "the pull request's stacks do not load with the default branch's slipway.hcl:\n{errors}"
        )
    })?;
    confine(&mut project, &trusted);
    Ok(Workspace::new(root.clone(), project, settings))
}

/// What `env()` in a pull request's configuration may read: the server's environment
/// without cloud credentials, without what `credentials` blocks read, without slipway's own
/// settings and secrets (`SLIPWAY_*`, but the sandbox's endpoint).
fn scrubbed(environment: &Env, trusted: &Project) -> Env {
    let withheld: BTreeSet<&str> = slipway_runner::credentials::CLOUD_CREDENTIAL_VARIABLES
        .iter()
        .copied()
        .chain(trusted.credentials.iter().flat_map(|c| c.source_names()))
        .collect();
    environment
        .iter()
        .filter(|(name, _)| {
            !withheld.contains(name.as_str())
                && (!name.starts_with("SLIPWAY_") || name.as_str() == "SLIPWAY_SANDBOX_ENDPOINT")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Takes the head's say out of what runs commands: each stack's checks are the default
/// branch's (none for a stack the pull request adds), and every stage's apply credentials
/// are its plan credentials, so the apply sets are never fetched.
fn confine(project: &mut Project, trusted: &Project) {
    for stack in &mut project.stacks {
        stack.checks = trusted
            .stack(&stack.name)
            .map(|s| s.checks.clone())
            .unwrap_or_default();
    }
    for stage in &mut project.stages {
        stage.credentials.apply = stage.credentials.plan.clone();
    }
}

/// What the plan of a pull request found.
struct Planned {
    stage: String,
    base: Option<String>,
    changed: Vec<String>,
    /// Why every stack counts as changed, when it does.
    all_because: Option<String>,
    results: Vec<StackResult>,
    /// The artifacts built at the head.
    built: BTreeMap<String, Built>,
    /// The preview applied, when the project has one.
    preview: Option<preview::Applied>,
}

impl Planned {
    fn failed(&self) -> Vec<&StackResult> {
        self.results
            .iter()
            .filter(|r| r.outcome.is_failure())
            .collect()
    }

    fn summary(&self) -> String {
        let failed = self.failed().len();
        let planned = match (self.changed.len(), failed) {
            (0, _) => "no stack changed".to_owned(),
            (n, 0) => format!("{n} stack(s) planned against {}", self.stage),
            (n, f) => format!("{n} stack(s) planned against {}, {f} failed", self.stage),
        };
        match &self.preview {
            Some(preview) => format!("{planned}, {}", preview.summary()),
            None => planned,
        }
    }

    /// The whole report: what was planned where, then the blast radius report as
    /// `slipway plan --format markdown` writes it.
    fn markdown(&self, key: &PullRequestKey, commit: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{HEADING} · `{}` against `{}`\n",
            short(commit),
            self.stage
        );
        if self.changed.is_empty() {
            let _ = writeln!(
                out,
                "No stack changes{}: nothing to plan.",
                self.base
                    .as_deref()
                    .map(|b| format!(" since `{}`", short(b)))
                    .unwrap_or_default()
            );
            return out;
        }
        let _ = writeln!(
            out,
            "Changed stacks (with what depends on them){}: {}\n",
            self.base
                .as_deref()
                .map(|b| format!(" since `{}`", short(b)))
                .unwrap_or_default(),
            self.changed
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let Some(because) = &self.all_because {
            let _ = writeln!(out, "Every stack counts as changed: {because}.\n");
        }
        let instances: Vec<_> = self
            .results
            .iter()
            .filter_map(|r| r.report.clone())
            .collect();
        let unchanged: Vec<&str> = self
            .results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Planned { changes: false }))
            .map(|r| r.stack.as_str())
            .collect();
        if !unchanged.is_empty() {
            let _ = writeln!(
                out,
                "No changes planned for: {}\n",
                unchanged
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let waiting: Vec<String> = self
            .results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::InputsUnknown { .. }))
            .map(|r| format!("`{}`", r.stack))
            .collect();
        if !waiting.is_empty() {
            let _ = writeln!(
                out,
                "Not planned until what they read is applied: {}\n",
                waiting.join(", ")
            );
        }
        for result in self.failed() {
            let why = result.why().unwrap_or_default();
            let _ = writeln!(
                out,
                "**`{}` could not be planned**: {}\n",
                result.stack,
                why.lines().next().unwrap_or_default()
            );
        }
        if !instances.is_empty() {
            out.push_str(&slipway_plan::render::render_markdown(&Report::new(
                instances,
            )));
        }
        let _ = writeln!(
            out,
            "\n<sub>Planned by slipway for {}#{} with the `{}` stage's plan credentials and the default branch's settings.</sub>",
            key.repository, key.number, self.stage
        );
        if let Some(preview) = &self.preview {
            out.push_str(&preview.markdown());
        }
        out
    }
}

/// Finds what the head changes since it branched from `base_tip` (the tip of the branch it
/// targets), builds those stacks' artifacts and plans them against the configured stage.
async fn plan(workspace: &Workspace, base_tip: &str, head: &str) -> Result<Planned> {
    let project = &workspace.project;
    let stage: &Stage = {
        let name = project
            .pull_requests
            .plan_stage(&project.stages)
            .context("the project has no stage to plan against")?;
        project
            .stage(name)
            .with_context(|| format!("the project has no stage `{name}`"))?
    };
    let base = merge_base(&workspace.root, base_tip, head)?;
    let detected = changes::detect(
        &workspace.root,
        &workspace.settings,
        Some(base.clone()),
        head,
        DefaultBase::FirstStage,
    )?;
    let changed: BTreeSet<String> = detected
        .set
        .stacks_to_run()
        .filter(|s| project.stack(s).is_some())
        .map(str::to_owned)
        .collect();
    let mut planned = Planned {
        stage: stage.name.clone(),
        base: Some(base),
        changed: changed.iter().cloned().collect(),
        all_because: detected.set.all_changed_because.clone(),
        results: Vec::new(),
        built: BTreeMap::new(),
        preview: None,
    };
    if changed.is_empty() {
        return Ok(planned);
    }

    let record = slipway_runner::record::open(workspace).await?;
    let store = artifacts::open(workspace)?;
    let commit = artifacts::resolve_commit(workspace, head)?;
    // A preview applies what the changed stacks depend on too, from the head's artifacts.
    let to_build = if project.preview.is_some() {
        preview::with_dependencies(project, &changed)
    } else {
        changed.clone()
    };
    planned.built = artifacts::build(workspace, &record, &store, &commit, &to_build).await?;

    let needed: BTreeSet<String> = changed
        .iter()
        .flat_map(|s| project.graph.dependencies(s))
        .filter(|d| !changed.contains(*d))
        .map(str::to_owned)
        .collect();
    let involved: BTreeSet<String> = changed.iter().chain(&needed).cloned().collect();
    let options = ExecutorOptions {
        verbose: true,
        ..ExecutorOptions::default()
    };
    let executor = executor_for(workspace, stage, &involved, &options)?;
    executor.analysis.check()?;
    if !needed.is_empty() {
        let read = executor.walk(&needed, Operation::ReadOutputs).await;
        let failed: Vec<StackResult> = read
            .into_iter()
            .filter(|r| r.outcome.is_failure())
            .collect();
        if !failed.is_empty() {
            planned.results = failed;
            return Ok(planned);
        }
    }
    planned.results = executor.walk(&changed, Operation::Plan).await;
    Ok(planned)
}

/// Where `head` branched from the default branch's `tip`.
fn merge_base(root: &Path, tip: &str, head: &str) -> Result<String> {
    let output = std::process::Command::new("git")
        .args(["merge-base", tip, head])
        .current_dir(root)
        .output()
        .context("cannot run git")?;
    if !output.status.success() {
        bail!(
            "the pull request's head {} shares no history with the branch it targets",
            short(head)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The comment: the whole report, or as much of it as fits with a link to the rest.
pub fn comment_body(report: &str, link: &str) -> String {
    if report.len() <= MAX_COMMENT {
        return report.to_owned();
    }
    let tail = format!(
        "\n\n---\n**This report is cut here: it is longer than a comment may be.** The whole report: {link}\n"
    );
    let mut end = MAX_COMMENT.saturating_sub(tail.len());
    while !report.is_char_boundary(end) {
        end -= 1;
    }
    // Cut at a line's end, so a table row is never half shown.
    let cut = report[..end].rfind('\n').unwrap_or(end);
    format!("{}{tail}", &report[..cut])
}

fn report_link(state: &AppState, id: i64) -> String {
    let path = format!("/api/v1/pull-requests/{id}/report");
    match &state.config.public_url {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        None => format!("`{path}` on the slipway server"),
    }
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(config: &str, stack: &str, env: &Env) -> Project {
        let sources = config::ProjectSources {
            config: SourceFile::new(PROJECT_FILE, config),
            stacks: vec![config::StackSources {
                dir: "stacks/queue".into(),
                config: SourceFile::new("stacks/queue/stack.hcl", stack),
                terraform: vec![],
            }],
        };
        config::load(&sources, env).unwrap()
    }

    const CONFIG: &str = r#"project { name = "p" }
credentials "reader" {
  from_env = { AWS_SECRET_ACCESS_KEY = "READER_SECRET" }
}
credentials "deployer" {
  from_env = { AWS_SECRET_ACCESS_KEY = "DEPLOY_SECRET" }
}
stage "dev" {
  credentials      = { default = "deployer" }
  plan_credentials = { default = "reader" }
}
stage "prod" {
  credentials = { default = "deployer" }
}
"#;

    #[test]
    fn a_pull_request_gets_the_default_branch_checks_and_plan_credentials_only() {
        let env = Env::new();
        let trusted = load(CONFIG, "check \"ok\" {\n  command = [\"true\"]\n}\n", &env);
        let mut head = load(
            CONFIG,
            "check \"ok\" {\n  command = [\"sh\", \"-c\", \"leak\"]\n}\n",
            &env,
        );
        confine(&mut head, &trusted);
        assert_eq!(head.stacks[0].checks[0].command, vec!["true".to_owned()]);
        use slipway_core::config::Purpose;
        let dev = head.stage("dev").unwrap();
        assert_eq!(
            dev.credentials.for_stack("queue", Purpose::Apply),
            Some("reader")
        );
        assert_eq!(
            dev.credentials.for_stack("queue", Purpose::Plan),
            Some("reader")
        );
        let prod = head.stage("prod").unwrap();
        assert_eq!(
            prod.credentials.for_stack("queue", Purpose::Plan),
            None,
            "no plan credentials: none"
        );
    }

    #[test]
    fn env_in_a_pull_request_sees_no_secrets() {
        let env: Env = [
            ("DEPLOY_SECRET", "d"),
            ("READER_SECRET", "r"),
            ("AWS_SECRET_ACCESS_KEY", "a"),
            ("SLIPWAY_STORE_URL", "postgres://u:p@h/db"),
            ("SLIPWAY_SANDBOX_ENDPOINT", "http://127.0.0.1:5000"),
            ("TEAM", "shop"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let trusted = load(CONFIG, "", &env);
        let seen: Vec<String> = scrubbed(&env, &trusted).into_keys().collect();
        assert_eq!(seen, ["SLIPWAY_SANDBOX_ENDPOINT", "TEAM"]);
    }

    #[test]
    fn short_reports_are_posted_whole() {
        assert_eq!(comment_body("## plan\n", "http://x/r"), "## plan\n");
    }

    #[test]
    fn long_reports_are_cut_at_a_line_with_a_link() {
        let report = "| a | b |\n".repeat(10_000);
        let body = comment_body(
            &report,
            "http://slipway.example/api/v1/pull-requests/3/report",
        );
        assert!(body.len() <= MAX_COMMENT, "{}", body.len());
        assert!(body.ends_with("http://slipway.example/api/v1/pull-requests/3/report\n"));
        let before = body.split("\n\n---\n").next().unwrap();
        assert!(before.lines().all(|l| l == "| a | b |"), "no half row");
    }
}
