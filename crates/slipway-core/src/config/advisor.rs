//! The `advisor { ... }` block of slipway.hcl: settings of `slipway advise`, the
//! stack-slicing advisor. Every attribute is optional; what is left out keeps the
//! advisor's documented default (docs/advisor.md), so this module only reads and checks.

use std::collections::BTreeMap;
use std::time::Duration;

use hcl::edit::Span;
use hcl::edit::structure::Block;

use super::access::string_map;
use super::eval::{Env, Scope};
use super::schema::{Checked, Schema, evaluate_attribute, kind};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::source::SourceFile;

/// The thresholds, written once for both the list below and the block's schema: the
/// attributes given first come before them.
macro_rules! with_thresholds {
    ($($first:literal),*) => {
        &[
            $($first,)*
            "team_share",
            "team_min_commits",
            "hot_per_month",
            "hot_ratio",
            "capability_min_resources",
            "coupling",
            "coupling_min_commits",
            "coupling_max_stacks",
            "max_resources",
            "max_dependents",
        ]
    };
}

/// The numeric thresholds the block may set, in the order docs/advisor.md lists them.
pub const THRESHOLDS: &[&str] = with_thresholds!();

const ADVISOR_BLOCK: Schema = Schema {
    what: "block `advisor`",
    attributes: with_thresholds!(
        "history",
        "teams",
        "permission_domains",
        "capabilities",
        "privileged_domains"
    ),
    blocks: &[],
};

/// What the `advisor` block says; `None` and empty maps mean "the default".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdvisorConfig {
    /// How far back `slipway advise` reads the history.
    pub history: Option<Duration>,
    /// Author email to team.
    pub teams: BTreeMap<String, String>,
    /// Resource type pattern to permission domain, on top of the defaults.
    pub permission_domains: BTreeMap<String, String>,
    /// Resource type pattern to capability, on top of the defaults.
    pub capabilities: BTreeMap<String, String>,
    pub privileged_domains: Option<Vec<String>>,
    /// Threshold name (one of [`THRESHOLDS`]) to value.
    pub thresholds: BTreeMap<String, f64>,
}

pub(crate) fn load_advisor<'a>(
    file: &SourceFile,
    mut blocks: impl Iterator<Item = &'a Block>,
    scope: &Scope<'_>,
    env: &Env,
    diagnostics: &mut Diagnostics,
) -> AdvisorConfig {
    let mut config = AdvisorConfig::default();
    let Some(block) = blocks.next() else {
        return config;
    };
    for extra in blocks {
        diagnostics.push(
            Diagnostic::at(file, extra.span(), "a second `advisor` block")
                .help("a project has one `advisor` block; merge them"),
        );
    }
    let body = Checked::new(file, &block.body, &ADVISOR_BLOCK, diagnostics);
    config.history = body.duration("history", scope, env, diagnostics);
    for (key, target) in [
        ("teams", &mut config.teams),
        ("permission_domains", &mut config.permission_domains),
        ("capabilities", &mut config.capabilities),
    ] {
        if let Some(attribute) = body.attribute(key) {
            if let Some(map) = string_map(file, attribute, scope, env, diagnostics) {
                *target = map;
            }
        }
    }
    if let Some(attribute) = body.attribute("privileged_domains") {
        match evaluate_attribute(file, attribute, scope, env, diagnostics) {
            Some(hcl::Value::Array(items)) => {
                let names: Option<Vec<String>> = items
                    .into_iter()
                    .map(|v| match v {
                        hcl::Value::String(s) => Some(s),
                        _ => None,
                    })
                    .collect();
                match names {
                    Some(names) => config.privileged_domains = Some(names),
                    None => diagnostics.push(
                        Diagnostic::at(
                            file,
                            attribute.value.span(),
                            "`privileged_domains` must be a list of strings",
                        )
                        .help("write `privileged_domains = [\"identity\", \"encryption\"]`"),
                    ),
                }
            }
            Some(other) => diagnostics.push(
                Diagnostic::at(
                    file,
                    attribute.value.span(),
                    format!(
                        "`privileged_domains` must be a list, found {}",
                        kind(&other)
                    ),
                )
                .help("write `privileged_domains = [\"identity\", \"encryption\"]`"),
            ),
            None => {}
        }
    }
    for key in THRESHOLDS {
        let Some(attribute) = body.attribute(key) else {
            continue;
        };
        match evaluate_attribute(file, attribute, scope, env, diagnostics) {
            Some(hcl::Value::Number(n)) if n.as_f64().is_some_and(|v| v >= 0.0) => {
                config
                    .thresholds
                    .insert((*key).to_owned(), n.as_f64().unwrap_or_default());
            }
            Some(other) => diagnostics.push(
                Diagnostic::at(
                    file,
                    attribute.value.span(),
                    format!(
                        "`{key}` must be a number of zero or more, found {}",
                        kind(&other)
                    ),
                )
                .help(format!(
                    "write `{key} = 5`; docs/advisor.md lists the defaults"
                )),
            ),
            None => {}
        }
    }
    config
}
