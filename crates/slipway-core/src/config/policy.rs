//! Blast radius settings as plain configuration: a stage's `policy` block (thresholds, Rego
//! modules, what a violation does) and the project's `stateful_resources` block (which
//! resource types hold data).
//!
//! Only the settings live here; measuring a plan against them is `slipway-plan`'s job, and
//! reading the Rego files is the CLI's (the core does no I/O).

use hcl::edit::Span;
use hcl::edit::structure::Block;

use super::eval::{Env, Scope};
use super::schema::{Checked, Schema, evaluate_attribute, kind};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::source::{Location, SourceFile};

pub(crate) const POLICY_BLOCK: Schema = Schema {
    what: "block `policy`",
    attributes: &[
        "max_deletes",
        "max_replaces",
        "max_score",
        "deny_stateful_deletes",
        "protected_addresses",
        "protected_types",
        "rego",
        "on_violation",
    ],
    blocks: &[],
};
pub(crate) const STATEFUL_BLOCK: Schema = Schema {
    what: "block `stateful_resources`",
    attributes: &["extend", "replace"],
    blocks: &[],
};

/// What a violated threshold or Rego `deny` rule does at a stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnViolation {
    /// The change is refused (the default).
    #[default]
    Block,
    /// The change may go ahead once someone approves it.
    Approval,
}

/// A stage's `policy` block.
#[derive(Debug, Clone, PartialEq)]
pub struct StagePolicy {
    pub max_deletes: Option<u64>,
    pub max_replaces: Option<u64>,
    pub max_score: Option<f64>,
    /// Refuse any delete or replace of a resource of a stateful type.
    pub deny_stateful_deletes: bool,
    /// Address patterns (`*`, `?`) that may not be deleted, replaced or forgotten.
    pub protected_addresses: Vec<String>,
    /// Resource type patterns that may not be deleted, replaced or forgotten.
    pub protected_types: Vec<String>,
    /// Rego modules, relative to the project root, with `/` separators.
    pub rego: Vec<String>,
    pub on_violation: OnViolation,
    pub location: Location,
}

/// The project's `stateful_resources` block: how the built-in list of resource types that
/// hold data changes. `replace` (when given) stands instead of the built-in list; `extend`
/// adds to whichever list is in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatefulResources {
    pub extend: Vec<String>,
    pub replace: Option<Vec<String>>,
}

/// Reads a stage's `policy` blocks (at most one).
pub(crate) fn load_stage_policy<'a>(
    file: &SourceFile,
    blocks: impl Iterator<Item = &'a Block>,
    scope: &Scope<'_>,
    env: &Env,
    diagnostics: &mut Diagnostics,
) -> Option<StagePolicy> {
    let blocks: Vec<&Block> = blocks.collect();
    for extra in blocks.iter().skip(1) {
        diagnostics.push(
            Diagnostic::at(file, extra.span(), "a second `policy` block in this stage")
                .help("a stage has one policy; merge the blocks"),
        );
    }
    let block = blocks.first()?;
    let body = Checked::new(file, &block.body, &POLICY_BLOCK, diagnostics);
    let mut read = Reader {
        body: &body,
        scope,
        env,
        diagnostics,
    };
    let max_deletes = read.count("max_deletes");
    let max_replaces = read.count("max_replaces");
    let max_score = read.number("max_score");
    let deny_stateful_deletes = read.flag("deny_stateful_deletes");
    let protected_addresses = read.patterns("protected_addresses").unwrap_or_default();
    let protected_types = read.patterns("protected_types").unwrap_or_default();
    let rego = read.rego();
    let on_violation = read.on_violation();
    Some(StagePolicy {
        max_deletes,
        max_replaces,
        max_score,
        deny_stateful_deletes,
        protected_addresses,
        protected_types,
        rego,
        on_violation,
        location: file.location(block.span()),
    })
}

/// Reads the project's `stateful_resources` blocks (at most one).
pub(crate) fn load_stateful_resources<'a>(
    file: &SourceFile,
    blocks: impl Iterator<Item = &'a Block>,
    scope: &Scope<'_>,
    env: &Env,
    diagnostics: &mut Diagnostics,
) -> StatefulResources {
    let blocks: Vec<&Block> = blocks.collect();
    for extra in blocks.iter().skip(1) {
        diagnostics.push(
            Diagnostic::at(file, extra.span(), "a second `stateful_resources` block")
                .help("a project has one list of stateful resource types; merge the blocks"),
        );
    }
    let Some(block) = blocks.first() else {
        return StatefulResources::default();
    };
    let body = Checked::new(file, &block.body, &STATEFUL_BLOCK, diagnostics);
    let mut read = Reader {
        body: &body,
        scope,
        env,
        diagnostics,
    };
    StatefulResources {
        extend: read.patterns("extend").unwrap_or_default(),
        replace: read.patterns("replace"),
    }
}

/// Typed reads of one checked body, each reporting a wrong value at the attribute.
struct Reader<'r, 'a> {
    body: &'r Checked<'a>,
    scope: &'r Scope<'r>,
    env: &'r Env,
    diagnostics: &'r mut Diagnostics,
}

impl Reader<'_, '_> {
    fn value(&mut self, key: &str) -> Option<(hcl::Value, Option<std::ops::Range<usize>>)> {
        let attribute = self.body.attribute(key)?;
        let value = evaluate_attribute(
            self.body.file,
            attribute,
            self.scope,
            self.env,
            self.diagnostics,
        )?;
        Some((value, attribute.value.span()))
    }

    fn wrong(&mut self, span: Option<std::ops::Range<usize>>, message: String, help: String) {
        self.diagnostics
            .push(Diagnostic::at(self.body.file, span, message).help(help));
    }

    /// A whole number, zero or more (`max_deletes = 0` forbids any delete).
    fn count(&mut self, key: &str) -> Option<u64> {
        let (value, span) = self.value(key)?;
        let count = value.as_u64();
        if count.is_none() {
            self.wrong(
                span,
                format!(
                    "attribute `{key}` must be a whole number, zero or more, found {}",
                    describe(&value)
                ),
                format!("for example `{key} = 0` (none allowed) or `{key} = 3`"),
            );
        }
        count
    }

    fn number(&mut self, key: &str) -> Option<f64> {
        let (value, span) = self.value(key)?;
        let number = value.as_f64().filter(|n| n.is_finite() && *n >= 0.0);
        if number.is_none() {
            self.wrong(
                span,
                format!(
                    "attribute `{key}` must be a number, zero or more, found {}",
                    describe(&value)
                ),
                format!("for example `{key} = 50`"),
            );
        }
        number
    }

    fn flag(&mut self, key: &str) -> bool {
        let Some((value, span)) = self.value(key) else {
            return false;
        };
        match value {
            hcl::Value::Bool(flag) => flag,
            other => {
                self.wrong(
                    span,
                    format!(
                        "attribute `{key}` must be true or false, found {}",
                        kind(&other)
                    ),
                    format!("write `{key} = true` or `{key} = false`"),
                );
                false
            }
        }
    }

    /// A list of non-empty strings.
    fn patterns(&mut self, key: &str) -> Option<Vec<String>> {
        let (value, span) = self.value(key)?;
        let strings = match &value {
            hcl::Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    hcl::Value::String(text) if !text.is_empty() => Some(text.clone()),
                    _ => None,
                })
                .collect::<Option<Vec<String>>>(),
            _ => None,
        };
        if strings.is_none() {
            let found = match &value {
                hcl::Value::Array(items) => items
                    .iter()
                    .find(|item| !matches!(item, hcl::Value::String(text) if !text.is_empty()))
                    .map_or_else(String::new, |item| {
                        format!("a list holding {}", describe(item))
                    }),
                other => describe(other),
            };
            self.wrong(
                span,
                format!("attribute `{key}` must be a list of non-empty strings, found {found}"),
                format!("write `{key} = [\"aws_dynamodb_table\", \"aws_db_*\"]`"),
            );
        }
        strings
    }

    /// Rego module paths: relative, inside the project.
    fn rego(&mut self) -> Vec<String> {
        let span = self
            .body
            .attribute("rego")
            .and_then(|attribute| attribute.value.span());
        let paths = self.patterns("rego").unwrap_or_default();
        paths
            .into_iter()
            .filter(|path| {
                let escapes = path.starts_with('/')
                    || path.starts_with('\\')
                    || path.split(['/', '\\']).any(|part| part == "..");
                if escapes {
                    self.wrong(
                        span.clone(),
                        format!("Rego module `{path}` is outside the project"),
                        "give a path relative to the folder of slipway.hcl, such as `policies/prod.rego`".into(),
                    );
                }
                !escapes
            })
            .map(|path| path.replace('\\', "/"))
            .collect()
    }

    fn on_violation(&mut self) -> OnViolation {
        let Some((value, span)) = self.value("on_violation") else {
            return OnViolation::default();
        };
        match value.as_str() {
            Some("block") => OnViolation::Block,
            Some("approval" | "require_approval") => OnViolation::Approval,
            _ => {
                self.wrong(
                    span,
                    format!(
                        "attribute `on_violation` must be \"block\" or \"approval\", found {}",
                        describe(&value)
                    ),
                    "write `on_violation = \"block\"` (refuse the change) or `on_violation = \"approval\"` (the change waits for an approval)".into(),
                );
                OnViolation::default()
            }
        }
    }
}

/// A value as the user wrote it, for messages: strings and numbers are shown.
fn describe(value: &hcl::Value) -> String {
    match value {
        hcl::Value::String(text) => format!("\"{text}\""),
        hcl::Value::Number(number) => number.to_string(),
        other => kind(other).to_owned(),
    }
}
