//! Strict reading of HCL bodies: every block and attribute must be one slipway knows, and a
//! misspelt one gets a "did you mean" instead of being silently ignored.

use std::collections::BTreeSet;
use std::ops::Range;

use hcl::edit::Span;
use hcl::edit::expr::Expression;
use hcl::edit::structure::{Attribute, Block, Body, Structure};

use crate::config::eval::{self, Env, Scope};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::source::SourceFile;

/// What a body may contain.
pub(crate) struct Schema {
    /// Human name of the body, e.g. "block `stack`" or "slipway.hcl".
    pub what: &'static str,
    pub attributes: &'static [&'static str],
    /// Block types with the number of labels each takes.
    pub blocks: &'static [(&'static str, usize)],
}

/// A body checked against a schema, with its file for locating diagnostics.
pub(crate) struct Checked<'a> {
    pub file: &'a SourceFile,
    pub body: &'a Body,
}

impl<'a> Checked<'a> {
    /// Reports unknown or repeated attributes, unknown blocks and wrong label counts.
    pub fn new(
        file: &'a SourceFile,
        body: &'a Body,
        schema: &Schema,
        diagnostics: &mut Diagnostics,
    ) -> Self {
        let mut seen = BTreeSet::new();
        for structure in body.iter() {
            match structure {
                Structure::Attribute(attribute) => {
                    let key = attribute.key.as_str();
                    if !schema.attributes.contains(&key) {
                        diagnostics.push(unknown(
                            file,
                            attribute.span(),
                            "attribute",
                            key,
                            schema,
                            schema.attributes,
                        ));
                    } else if !seen.insert(key.to_owned()) {
                        diagnostics.push(
                            Diagnostic::at(
                                file,
                                attribute.span(),
                                format!("attribute `{key}` is set twice in {}", schema.what),
                            )
                            .help("keep one of them"),
                        );
                    }
                }
                Structure::Block(block) => {
                    let ident = block.ident.as_str();
                    let known: Vec<&str> = schema.blocks.iter().map(|(name, _)| *name).collect();
                    match schema.blocks.iter().find(|(name, _)| *name == ident) {
                        None => diagnostics.push(unknown(
                            file,
                            block.span(),
                            "block",
                            ident,
                            schema,
                            &known,
                        )),
                        Some((_, labels)) if block.labels.len() != *labels => {
                            let expected = match labels {
                                0 => format!("`{ident} {{ ... }}`"),
                                _ => format!("`{ident} \"NAME\" {{ ... }}`"),
                            };
                            diagnostics.push(
                                Diagnostic::at(
                                    file,
                                    block.span(),
                                    format!(
                                        "block `{ident}` takes {labels} label{}, found {}",
                                        if *labels == 1 { "" } else { "s" },
                                        block.labels.len()
                                    ),
                                )
                                .help(format!("write it as {expected}")),
                            );
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        Self { file, body }
    }

    pub fn attribute(&self, key: &str) -> Option<&'a Attribute> {
        self.body.get_attribute(key)
    }

    pub fn blocks(&self, ident: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
        // Only well-formed blocks: label-count errors were reported by `new`.
        self.body.get_blocks(ident)
    }

    /// The attribute's value as a string, evaluated; reports a missing required one.
    pub fn string(
        &self,
        key: &str,
        required: Option<&str>,
        scope: &Scope<'_>,
        env: &Env,
        diagnostics: &mut Diagnostics,
    ) -> Option<String> {
        let Some(attribute) = self.attribute(key) else {
            if let Some(parent) = required {
                diagnostics.push(
                    Diagnostic::at(
                        self.file,
                        self.body.span().map(|s| s.start..s.start),
                        format!("{parent} needs attribute `{key}`"),
                    )
                    .help(format!("add `{key} = \"...\"` to {parent}")),
                );
            }
            return None;
        };
        match evaluate_attribute(self.file, attribute, scope, env, diagnostics)? {
            hcl::Value::String(s) => Some(s),
            other => {
                diagnostics.push(
                    Diagnostic::at(
                        self.file,
                        attribute.value.span(),
                        format!("attribute `{key}` must be a string, found {}", kind(&other)),
                    )
                    .help(format!("write it as `{key} = \"...\"`")),
                );
                None
            }
        }
    }

    pub fn bool(
        &self,
        key: &str,
        scope: &Scope<'_>,
        env: &Env,
        diagnostics: &mut Diagnostics,
    ) -> Option<bool> {
        let attribute = self.attribute(key)?;
        match evaluate_attribute(self.file, attribute, scope, env, diagnostics)? {
            hcl::Value::Bool(b) => Some(b),
            other => {
                diagnostics.push(
                    Diagnostic::at(
                        self.file,
                        attribute.value.span(),
                        format!(
                            "attribute `{key}` must be true or false, found {}",
                            kind(&other)
                        ),
                    )
                    .help(format!("write `{key} = true` or `{key} = false`")),
                );
                None
            }
        }
    }

    pub fn positive_integer(
        &self,
        key: &str,
        scope: &Scope<'_>,
        env: &Env,
        diagnostics: &mut Diagnostics,
    ) -> Option<u64> {
        let attribute = self.attribute(key)?;
        let value = evaluate_attribute(self.file, attribute, scope, env, diagnostics)?;
        match value.as_u64().filter(|n| *n > 0) {
            Some(n) => Some(n),
            None => {
                diagnostics.push(
                    Diagnostic::at(
                        self.file,
                        attribute.value.span(),
                        format!("attribute `{key}` must be a whole number above zero"),
                    )
                    .help(format!("for example `{key} = 4`")),
                );
                None
            }
        }
    }

    pub fn duration(
        &self,
        key: &str,
        scope: &Scope<'_>,
        env: &Env,
        diagnostics: &mut Diagnostics,
    ) -> Option<std::time::Duration> {
        let attribute = self.attribute(key)?;
        let text = self.string(key, None, scope, env, diagnostics)?;
        match humantime::parse_duration(&text) {
            Ok(duration) if !duration.is_zero() => Some(duration),
            _ => {
                diagnostics.push(
                    Diagnostic::at(
                        self.file,
                        attribute.value.span(),
                        format!("attribute `{key}` is not a duration: `{text}`"),
                    )
                    .help(format!(
                        "write a duration such as `{key} = \"30s\"`, \"10m\" or \"1h 30m\""
                    )),
                );
                None
            }
        }
    }
}

/// Evaluates an attribute's expression, reporting a failure at the attribute.
pub(crate) fn evaluate_attribute(
    file: &SourceFile,
    attribute: &Attribute,
    scope: &Scope<'_>,
    env: &Env,
    diagnostics: &mut Diagnostics,
) -> Option<hcl::Value> {
    let expr: hcl::Expression = attribute.value.clone().into();
    match eval::evaluate(&expr, scope, env) {
        Ok(value) => Some(value),
        Err(error) => {
            diagnostics.push(
                Diagnostic::at(
                    file,
                    attribute.value.span(),
                    format!("cannot evaluate `{}`: {error}", attribute.key.as_str()),
                )
                .help(
                    "configuration may use literals, env(\"NAME\"), project.name, stage.name and instance.name",
                ),
            );
            None
        }
    }
}

pub(crate) fn kind(value: &hcl::Value) -> &'static str {
    match value {
        hcl::Value::Null => "null",
        hcl::Value::Bool(_) => "a bool",
        hcl::Value::Number(_) => "a number",
        hcl::Value::String(_) => "a string",
        hcl::Value::Array(_) => "a list",
        hcl::Value::Object(_) => "an object",
    }
}

fn unknown(
    file: &SourceFile,
    span: Option<Range<usize>>,
    kind: &str,
    name: &str,
    schema: &Schema,
    known: &[&str],
) -> Diagnostic {
    let diagnostic = Diagnostic::at(
        file,
        span,
        format!("unknown {kind} `{name}` in {}", schema.what),
    );
    let suggestion = known
        .iter()
        .map(|candidate| (strsim::jaro_winkler(name, candidate), *candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match (suggestion, known.is_empty()) {
        (Some((_, candidate)), _) => diagnostic.help(format!("did you mean `{candidate}`?")),
        (None, true) => diagnostic.help(format!("{} takes no {kind}s", schema.what)),
        (None, false) => diagnostic.help(format!(
            "{} accepts these {kind}s: {}",
            schema.what,
            known.join(", ")
        )),
    }
}

/// The span of an expression, for callers outside this module.
pub(crate) fn span_of(expr: &Expression) -> Option<Range<usize>> {
    expr.span()
}
