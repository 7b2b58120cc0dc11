//! The `verify { ... }` block of slipway.hcl: how `slipway run` tests a change before its
//! first stage. Both paths are on unless turned off:
//!
//! ```hcl
//! verify {
//!   from_zero       = true    # the candidate built into an empty ephemeral instance
//!   from_latest     = true    # the candidate applied on top of what a stage runs today
//!   reference_stage = "prod"  # whose released artifacts "latest" means; default: the last stage
//! }
//! ```

use hcl::edit::Span;
use hcl::edit::structure::Block;

use super::eval::{Env, Scope};
use super::schema::{Checked, Schema};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::source::{Location, SourceFile};

const VERIFY_BLOCK: Schema = Schema {
    what: "block `verify`",
    attributes: &["from_zero", "from_latest", "reference_stage"],
    blocks: &[],
};

/// What the `verify` block says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyConfig {
    pub from_zero: bool,
    pub from_latest: bool,
    /// The stage whose released artifacts are "latest"; `None`: the last stage.
    pub reference_stage: Option<String>,
    pub location: Option<Location>,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        Self {
            from_zero: true,
            from_latest: true,
            reference_stage: None,
            location: None,
        }
    }
}

impl VerifyConfig {
    /// The reference stage's name: the one configured, else the last of `stages`.
    pub fn reference<'a>(&'a self, stages: &'a [super::Stage]) -> Option<&'a str> {
        self.reference_stage
            .as_deref()
            .or_else(|| stages.last().map(|s| s.name.as_str()))
    }
}

/// Reads the project's `verify` block; `stages` are the stage names, to check the reference.
pub(crate) fn load_verify<'a>(
    file: &SourceFile,
    mut blocks: impl Iterator<Item = &'a Block>,
    stages: &[&str],
    scope: &Scope<'_>,
    env: &Env,
    diagnostics: &mut Diagnostics,
) -> VerifyConfig {
    let mut config = VerifyConfig::default();
    let Some(block) = blocks.next() else {
        return config;
    };
    for extra in blocks {
        diagnostics.push(
            Diagnostic::at(file, extra.span(), "a second `verify` block")
                .help("a project has one `verify` block; merge them"),
        );
    }
    config.location = Some(file.location(block.span()));
    let body = Checked::new(file, &block.body, &VERIFY_BLOCK, diagnostics);
    if let Some(on) = body.bool("from_zero", scope, env, diagnostics) {
        config.from_zero = on;
    }
    if let Some(on) = body.bool("from_latest", scope, env, diagnostics) {
        config.from_latest = on;
    }
    if let Some(stage) = body.string("reference_stage", None, scope, env, diagnostics) {
        if !stages.contains(&stage.as_str()) {
            let span = body
                .attribute("reference_stage")
                .and_then(|a| a.value.span());
            diagnostics.push(
                Diagnostic::at(
                    file,
                    span,
                    format!("`reference_stage` names `{stage}`, which is not a stage"),
                )
                .help(format!("use one of: {}", stages.join(", "))),
            );
        }
        config.reference_stage = Some(stage);
    }
    config
}
