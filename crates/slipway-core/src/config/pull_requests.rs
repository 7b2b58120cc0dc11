//! The `pull_requests { ... }` block of slipway.hcl: how `slipway serve` plans a pull
//! request (merge request) and comments on it (docs/pull-requests.md).
//!
//! ```hcl
//! pull_requests {
//!   plan_stage = "dev"   # the stage a pull request's changed stacks are planned against; default: the first
//! }
//! ```
//!
//! The server reads this block, like every setting that runs a command or chooses secrets,
//! from the default branch's slipway.hcl, never from the pull request's.

use hcl::edit::Span;
use hcl::edit::structure::Block;

use super::eval::{Env, Scope};
use super::schema::{Checked, Schema};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::source::{Location, SourceFile};

const PULL_REQUESTS_BLOCK: Schema = Schema {
    what: "block `pull_requests`",
    attributes: &["plan_stage"],
    blocks: &[],
};

/// What the `pull_requests` block says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullRequestsConfig {
    /// The stage pull requests are planned against; `None`: the first stage.
    pub plan_stage: Option<String>,
    pub location: Option<Location>,
}

impl PullRequestsConfig {
    /// The stage's name: the one configured, else the first of `stages`.
    pub fn plan_stage<'a>(&'a self, stages: &'a [super::Stage]) -> Option<&'a str> {
        self.plan_stage
            .as_deref()
            .or_else(|| stages.first().map(|s| s.name.as_str()))
    }
}

/// Reads the project's `pull_requests` block; `stages` are the stage names.
pub(crate) fn load_pull_requests<'a>(
    file: &SourceFile,
    mut blocks: impl Iterator<Item = &'a Block>,
    stages: &[&str],
    scope: &Scope<'_>,
    env: &Env,
    diagnostics: &mut Diagnostics,
) -> PullRequestsConfig {
    let mut config = PullRequestsConfig::default();
    let Some(block) = blocks.next() else {
        return config;
    };
    for extra in blocks {
        diagnostics.push(
            Diagnostic::at(file, extra.span(), "a second `pull_requests` block")
                .help("a project has one `pull_requests` block; merge them"),
        );
    }
    config.location = Some(file.location(block.span()));
    let body = Checked::new(file, &block.body, &PULL_REQUESTS_BLOCK, diagnostics);
    if let Some(stage) = body.string("plan_stage", None, scope, env, diagnostics) {
        if !stages.contains(&stage.as_str()) {
            let span = body.attribute("plan_stage").and_then(|a| a.value.span());
            diagnostics.push(
                Diagnostic::at(
                    file,
                    span,
                    format!("`plan_stage` names `{stage}`, which is not a stage"),
                )
                .help(format!(
                    "use one of: {}; pull requests are planned against that stage with its plan credentials",
                    stages.join(", ")
                )),
            );
        }
        config.plan_stage = Some(stage);
    }
    config
}

const PREVIEW_BLOCK: Schema = Schema {
    what: "block `preview`",
    attributes: &["stage", "ttl"],
    blocks: &[],
};

/// How long a preview lives without a push when `ttl` is not given.
pub const DEFAULT_PREVIEW_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// What the `preview { ... }` block says: every pull request also gets an ephemeral
/// instance `pr-<number>` of its changed stacks, applied with `stage`'s settings and
/// destroyed when the pull request closes or `ttl` passes without a push.
///
/// ```hcl
/// preview {
///   stage = "dev"   # whose variables and settings the preview gets
///   ttl   = "24h"   # destroyed this long after the last push; default 24h
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewConfig {
    pub stage: String,
    pub ttl: std::time::Duration,
    pub location: Location,
}

impl PreviewConfig {
    /// The name of pull request `number`'s preview instance.
    pub fn instance(number: i64) -> String {
        format!("pr-{number}")
    }
}

/// Reads the project's `preview` block; `stages` are the stage names.
pub(crate) fn load_preview<'a>(
    file: &SourceFile,
    mut blocks: impl Iterator<Item = &'a Block>,
    stages: &[&str],
    scope: &Scope<'_>,
    env: &Env,
    diagnostics: &mut Diagnostics,
) -> Option<PreviewConfig> {
    let block = blocks.next()?;
    for extra in blocks {
        diagnostics.push(
            Diagnostic::at(file, extra.span(), "a second `preview` block")
                .help("a project has one `preview` block; merge them"),
        );
    }
    let body = Checked::new(file, &block.body, &PREVIEW_BLOCK, diagnostics);
    let stage = body.string("stage", Some("block `preview`"), scope, env, diagnostics);
    let ttl = if body.attribute("ttl").is_some() {
        body.duration("ttl", scope, env, diagnostics)
    } else {
        Some(DEFAULT_PREVIEW_TTL)
    };
    let stage = stage?;
    if !stages.contains(&stage.as_str()) {
        let span = body.attribute("stage").and_then(|a| a.value.span());
        diagnostics.push(
            Diagnostic::at(
                file,
                span,
                format!("`stage` names `{stage}`, which is not a stage"),
            )
            .help(format!(
                "use one of: {}; previews are applied with that stage's variables and plan credentials",
                stages.join(", ")
            )),
        );
        return None;
    }
    let ttl = ttl?;
    Some(PreviewConfig {
        stage,
        ttl,
        location: file.location(block.span()),
    })
}
