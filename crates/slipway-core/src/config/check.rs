//! Stack checks: `check "NAME"` blocks in a stack.hcl, run after the stack is applied to
//! an instance (ephemeral instances, drills, recovery).
//!
//! ```hcl
//! check "queue_answers" {
//!   command = ["sh", "-c", "curl -sf \"$SLIPWAY_OUTPUT_QUEUE_URL\""]
//!   expect  = { queue_url = "^http://" }
//! }
//! ```
//!
//! `command` runs with the stack's outputs in its environment; `expect` maps output names to
//! regular expressions their values must match. Only the settings live here; running them
//! is the CLI's job (the core does no I/O).

use std::collections::BTreeMap;

use hcl::edit::Span;
use hcl::edit::structure::Block;

use super::eval::{Env, Scope};
use super::schema::{Checked, Schema, evaluate_attribute, kind};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::source::{Location, SourceFile};

pub(crate) const CHECK_BLOCK: Schema = Schema {
    what: "block `check`",
    attributes: &["command", "expect"],
    blocks: &[],
};

/// One `check "NAME"` block of a stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    /// Program and arguments, run in the stack's folder of the working copy; empty: none.
    pub command: Vec<String>,
    /// Output name -> regular expression its value (JSON for non-strings) must match.
    pub expect: BTreeMap<String, String>,
    pub location: Location,
}

/// Reads a stack's `check` blocks.
pub(crate) fn load_checks<'a>(
    file: &SourceFile,
    blocks: impl Iterator<Item = &'a Block>,
    scope: &Scope<'_>,
    env: &Env,
    diagnostics: &mut Diagnostics,
) -> Vec<Check> {
    let mut checks: Vec<Check> = Vec::new();
    for block in blocks {
        let Some(label) = block.labels.first() else {
            continue;
        };
        let name = label.as_str().to_owned();
        let body = Checked::new(file, &block.body, &CHECK_BLOCK, diagnostics);
        if checks.iter().any(|c| c.name == name) {
            diagnostics.push(
                Diagnostic::at(
                    file,
                    block.span(),
                    format!("check `{name}` is declared twice"),
                )
                .help("give each check of a stack its own name"),
            );
            continue;
        }
        let mut command = Vec::new();
        if let Some(attribute) = body.attribute("command") {
            match evaluate_attribute(file, attribute, scope, env, diagnostics) {
                Some(hcl::Value::Array(items))
                    if !items.is_empty() && items.iter().all(|i| i.is_string()) =>
                {
                    command = items
                        .into_iter()
                        .filter_map(|i| i.as_str().map(str::to_owned))
                        .collect();
                }
                Some(other) => diagnostics.push(
                    Diagnostic::at(
                        file,
                        attribute.value.span(),
                        format!(
                            "`command` of check `{name}` must be a non-empty list of strings, found {}",
                            kind(&other)
                        ),
                    )
                    .help("write `command = [\"sh\", \"-c\", \"...\"]`"),
                ),
                None => {}
            }
        }
        let mut expect = BTreeMap::new();
        if let Some(attribute) = body.attribute("expect") {
            match evaluate_attribute(file, attribute, scope, env, diagnostics) {
                Some(hcl::Value::Object(map)) if map.values().all(hcl::Value::is_string) => {
                    expect = map
                        .into_iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_owned())))
                        .collect();
                }
                Some(other) => diagnostics.push(
                    Diagnostic::at(
                        file,
                        attribute.value.span(),
                        format!(
                            "`expect` of check `{name}` must map output names to patterns, found {}",
                            kind(&other)
                        ),
                    )
                    .help("write `expect = { queue_url = \"^https://\" }`"),
                ),
                None => {}
            }
        }
        if body.attribute("command").is_none() && body.attribute("expect").is_none() {
            diagnostics.push(
                Diagnostic::at(file, block.span(), format!("check `{name}` checks nothing")).help(
                    "give it a `command = [...]`, an `expect = { OUTPUT = \"PATTERN\" }`, or both",
                ),
            );
        }
        checks.push(Check {
            name,
            command,
            expect,
            location: file.location(block.span()),
        });
    }
    checks
}
