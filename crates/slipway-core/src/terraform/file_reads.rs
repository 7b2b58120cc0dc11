//! The files a module's code reads at plan time: `file()`, `templatefile()`, `fileset()` and
//! their kin, and any string built on `path.module` or `path.root` (an `archive_file`'s
//! `source_dir`, say).
//!
//! Terraform evaluates these; slipway only needs to know which repository paths a module
//! can reach, so that working copies and artifacts hold them and a change to them counts.
//! A path that can be read off the code (a literal, or a literal after `path.module`) is
//! kept exactly; one built from variables cannot, and is reported as [`FileRead::Unresolved`]
//! so the caller can fall back to the whole folder and say so.

use hcl::expr::{Expression, ObjectKey, TemplateExpr, TraversalOperator};
use hcl::structure::{Body, Structure};
use hcl::template::{Directive, Element, Template};
use serde::{Deserialize, Serialize};

/// Functions whose first argument is a path read from disk.
const PATH_FUNCTIONS: &[&str] = &[
    "file",
    "filebase64",
    "filebase64sha256",
    "filebase64sha512",
    "fileexists",
    "filemd5",
    "filesha1",
    "filesha256",
    "filesha512",
    "templatefile",
];

/// What a path in the code is relative to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathBase {
    /// `path.module`: the folder of the module whose code holds the expression.
    Module,
    /// `path.root`, `path.cwd` or a plain relative path: the root module's folder, where
    /// Terraform runs.
    Root,
}

/// One place the code reads files from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FileRead {
    /// A file, or a folder and everything below it (the code does not say which).
    Path { base: PathBase, path: String },
    /// `fileset(dir, pattern)`: the files below `dir` matching `pattern`.
    Glob {
        base: PathBase,
        dir: String,
        pattern: String,
    },
    /// A read whose path is built from values only Terraform knows; `expression` is the
    /// code as written, for the message that says the whole folder was taken instead.
    Unresolved { expression: String },
}

/// False when code with this text cannot read a file: every read calls a function whose
/// name holds `file` ([`PATH_FUNCTIONS`], `fileset`) or names `path.module`, `path.root` or
/// `path.cwd`. Most modules read none, and [`file_reads`] needs the whole body converted.
pub fn may_read_files(text: &str) -> bool {
    text.contains("file") || text.contains("path")
}

/// Every file read in `body`, in the order found, without duplicates.
pub fn file_reads(body: &Body) -> Vec<FileRead> {
    let mut reads = Vec::new();
    visit_body(body, &mut reads);
    let mut seen = std::collections::BTreeSet::new();
    reads.retain(|r| seen.insert(r.clone()));
    reads
}

/// The file reads in the string values of a `.tf.json` document: Terraform's JSON syntax
/// embeds expressions as `${...}` templates inside strings.
pub fn file_reads_in_json(value: &serde_json::Value) -> Vec<FileRead> {
    let mut reads = Vec::new();
    visit_json(value, &mut reads);
    let mut seen = std::collections::BTreeSet::new();
    reads.retain(|r| seen.insert(r.clone()));
    reads
}

fn visit_json(value: &serde_json::Value, reads: &mut Vec<FileRead>) {
    match value {
        serde_json::Value::String(text) if text.contains("${") || text.contains("%{") => {
            if let Ok(template) = text.parse::<Template>() {
                visit_template_as_value(&template, text, reads);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| visit_json(v, reads)),
        serde_json::Value::Object(map) => map.values().for_each(|v| visit_json(v, reads)),
        _ => {}
    }
}

fn visit_body(body: &Body, reads: &mut Vec<FileRead>) {
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attribute) => visit(&attribute.expr, reads),
            Structure::Block(block) => visit_body(&block.body, reads),
        }
    }
}

fn visit(expr: &Expression, reads: &mut Vec<FileRead>) {
    match expr {
        Expression::Null | Expression::Bool(_) | Expression::Number(_) => {}
        Expression::String(_) | Expression::Variable(_) => {}
        Expression::Array(items) => items.iter().for_each(|e| visit(e, reads)),
        Expression::Object(object) => {
            for (key, value) in object {
                if let ObjectKey::Expression(key) = key {
                    visit(key, reads);
                }
                visit(value, reads);
            }
        }
        Expression::TemplateExpr(template) => {
            let text = template_text(template);
            if let Ok(parsed) = Template::from_expr(template) {
                visit_template_as_value(&parsed, &text, reads);
            }
        }
        Expression::Traversal(traversal) => {
            if let Some(base) = path_reference(expr) {
                // `path.module` on its own, handed to something that reads below it.
                reads.push(FileRead::Path {
                    base,
                    path: String::new(),
                });
                return;
            }
            visit(&traversal.expr, reads);
            for operator in &traversal.operators {
                if let TraversalOperator::Index(index) = operator {
                    visit(index, reads);
                }
            }
        }
        Expression::FuncCall(call) => visit_call(call, reads),
        Expression::Parenthesis(inner) => visit(inner, reads),
        Expression::Conditional(c) => {
            visit(&c.cond_expr, reads);
            visit(&c.true_expr, reads);
            visit(&c.false_expr, reads);
        }
        Expression::Operation(operation) => match operation.as_ref() {
            hcl::expr::Operation::Unary(op) => visit(&op.expr, reads),
            hcl::expr::Operation::Binary(op) => {
                visit(&op.lhs_expr, reads);
                visit(&op.rhs_expr, reads);
            }
        },
        Expression::ForExpr(for_expr) => {
            visit(&for_expr.collection_expr, reads);
            if let Some(key) = &for_expr.key_expr {
                visit(key, reads);
            }
            visit(&for_expr.value_expr, reads);
            if let Some(cond) = &for_expr.cond_expr {
                visit(cond, reads);
            }
        }
        _ => {}
    }
}

fn visit_call(call: &hcl::expr::FuncCall, reads: &mut Vec<FileRead>) {
    let name = call.name.name.as_str();
    let namespaced = !call.name.namespace.is_empty();
    let mut rest = call.args.iter();
    if !namespaced && name == "fileset" && call.args.len() >= 2 {
        let (dir, pattern) = (&call.args[0], &call.args[1]);
        match (static_path(dir), literal(pattern)) {
            (Some((base, dir, true)), Some(pattern)) => {
                reads.push(FileRead::Glob { base, dir, pattern })
            }
            _ => reads.push(unresolved(&Expression::FuncCall(Box::new(call.clone())))),
        }
        rest.nth(1);
    } else if !namespaced && PATH_FUNCTIONS.contains(&name) {
        if let Some(first) = rest.next() {
            match static_path(first) {
                Some((base, path, true)) => reads.push(FileRead::Path { base, path }),
                // A literal folder followed by a computed name: everything below the folder.
                Some((base, folder, false)) => reads.push(FileRead::Path { base, path: folder }),
                None => reads.push(unresolved(&Expression::FuncCall(Box::new(call.clone())))),
            }
        }
    }
    rest.for_each(|arg| visit(arg, reads));
}

/// A template used as a value: a path when it starts with `path.module`/`path.root`,
/// otherwise only the expressions interpolated into it matter.
fn visit_template_as_value(template: &Template, text: &str, reads: &mut Vec<FileRead>) {
    match template_path(template) {
        TemplatePath::NotAPath => visit_template(template, reads),
        TemplatePath::Exact(base, path) => reads.push(FileRead::Path { base, path }),
        TemplatePath::Below(base, folder) => reads.push(FileRead::Path { base, path: folder }),
        TemplatePath::Opaque => reads.push(FileRead::Unresolved {
            expression: format!("\"{text}\""),
        }),
    }
}

fn visit_template(template: &Template, reads: &mut Vec<FileRead>) {
    for element in template.elements() {
        match element {
            Element::Literal(_) => {}
            Element::Interpolation(interpolation) => visit(&interpolation.expr, reads),
            Element::Directive(directive) => match directive.as_ref() {
                Directive::If(d) => {
                    visit(&d.cond_expr, reads);
                    visit_template(&d.true_template, reads);
                    if let Some(f) = &d.false_template {
                        visit_template(f, reads);
                    }
                }
                Directive::For(d) => {
                    visit(&d.collection_expr, reads);
                    visit_template(&d.template, reads);
                }
            },
        }
    }
}

enum TemplatePath {
    NotAPath,
    Exact(PathBase, String),
    Below(PathBase, String),
    Opaque,
}

/// Reads `"${path.module}/a/b"` as a path. A template that uses `path.*` anywhere else (or
/// computes part of the name) gives the longest literal folder, or [`TemplatePath::Opaque`].
fn template_path(template: &Template) -> TemplatePath {
    let elements = template.elements();
    let mentions_path = elements.iter().any(|e| match e {
        Element::Interpolation(i) => path_reference(&i.expr).is_some(),
        _ => false,
    });
    if !mentions_path {
        return TemplatePath::NotAPath;
    }
    let Some(Element::Interpolation(first)) = elements.first() else {
        return TemplatePath::Opaque;
    };
    let Some(base) = path_reference(&first.expr) else {
        return TemplatePath::Opaque;
    };
    let mut literal = String::new();
    let mut complete = true;
    for element in &elements[1..] {
        match element {
            Element::Literal(text) if complete => literal.push_str(text),
            _ => complete = false,
        }
    }
    let path = literal.trim_start_matches('/').to_owned();
    if complete {
        TemplatePath::Exact(base, path)
    } else {
        // Only whole folder names before the first computed part are certain.
        let folder = match path.rfind('/') {
            Some(end) => path[..end].to_owned(),
            None => String::new(),
        };
        TemplatePath::Below(base, folder)
    }
}

/// `(base, path, exact)` for an expression naming a path: a literal (relative to the root
/// module), `path.module`/`path.root` alone, or a template starting with one of them.
/// `exact` is false when only a folder prefix is certain.
fn static_path(expr: &Expression) -> Option<(PathBase, String, bool)> {
    match expr {
        Expression::String(text) => Some((PathBase::Root, text.clone(), true)),
        Expression::Parenthesis(inner) => static_path(inner),
        Expression::Traversal(_) => path_reference(expr).map(|base| (base, String::new(), true)),
        Expression::TemplateExpr(template) => {
            let parsed = Template::from_expr(template).ok()?;
            match template_path(&parsed) {
                TemplatePath::Exact(base, path) => Some((base, path, true)),
                TemplatePath::Below(base, folder) => Some((base, folder, false)),
                TemplatePath::Opaque => None,
                TemplatePath::NotAPath => {
                    let text = literal_template(&parsed)?;
                    Some((PathBase::Root, text, true))
                }
            }
        }
        _ => None,
    }
}

fn literal(expr: &Expression) -> Option<String> {
    match expr {
        Expression::String(text) => Some(text.clone()),
        Expression::Parenthesis(inner) => literal(inner),
        Expression::TemplateExpr(template) => {
            literal_template(&Template::from_expr(template).ok()?)
        }
        _ => None,
    }
}

fn literal_template(template: &Template) -> Option<String> {
    let mut text = String::new();
    for element in template.elements() {
        match element {
            Element::Literal(part) => text.push_str(part),
            _ => return None,
        }
    }
    Some(text)
}

/// `path.module` → Module; `path.root` and `path.cwd` → Root.
fn path_reference(expr: &Expression) -> Option<PathBase> {
    let Expression::Traversal(traversal) = expr else {
        return None;
    };
    let Expression::Variable(variable) = &traversal.expr else {
        return None;
    };
    if variable.as_str() != "path" || traversal.operators.len() != 1 {
        return None;
    }
    match &traversal.operators[0] {
        TraversalOperator::GetAttr(name) => match name.as_str() {
            "module" => Some(PathBase::Module),
            "root" | "cwd" => Some(PathBase::Root),
            _ => None,
        },
        _ => None,
    }
}

fn template_text(template: &TemplateExpr) -> String {
    match template {
        TemplateExpr::QuotedString(text) => text.clone(),
        TemplateExpr::Heredoc(heredoc) => heredoc.template.clone(),
    }
}

fn unresolved(expr: &Expression) -> FileRead {
    FileRead::Unresolved {
        expression: hcl::format::to_string(expr).unwrap_or_else(|_| "an expression".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(code: &str) -> Vec<FileRead> {
        file_reads(&hcl::parse(code).expect("valid HCL"))
    }

    fn path(base: PathBase, path: &str) -> FileRead {
        FileRead::Path {
            base,
            path: path.into(),
        }
    }

    #[test]
    fn literal_paths_after_path_module_are_exact() {
        let found = reads(
            r#"
resource "aws_iam_policy" "p" {
  policy = file("${path.module}/policies/read.json")
}
data "archive_file" "zip" {
  source_dir = "${path.module}/lambda"
}
locals {
  user_data = templatefile("${path.root}/templates/boot.sh.tpl", { name = file("motd.txt") })
}
"#,
        );
        assert_eq!(
            found,
            vec![
                path(PathBase::Module, "policies/read.json"),
                path(PathBase::Module, "lambda"),
                path(PathBase::Root, "templates/boot.sh.tpl"),
                path(PathBase::Root, "motd.txt"),
            ]
        );
    }

    #[test]
    fn fileset_is_a_glob_below_its_folder() {
        let found = reads(r#"locals { f = fileset(path.module, "configs/*.json") }"#);
        assert_eq!(
            found,
            vec![FileRead::Glob {
                base: PathBase::Module,
                dir: String::new(),
                pattern: "configs/*.json".into(),
            }]
        );
    }

    #[test]
    fn computed_names_keep_the_literal_folder_or_are_unresolved() {
        let found = reads(
            r#"
locals {
  a = file("${path.module}/policies/${var.name}.json")
  b = file(var.policy_path)
  c = "${var.prefix}/${path.module}"
}
"#,
        );
        assert_eq!(found[0], path(PathBase::Module, "policies"));
        assert!(
            matches!(&found[1], FileRead::Unresolved { expression } if expression.contains("var.policy_path")),
            "{found:?}"
        );
        assert!(
            matches!(&found[2], FileRead::Unresolved { .. }),
            "{found:?}"
        );
    }

    #[test]
    fn plain_strings_and_other_functions_read_nothing() {
        let found = reads(
            r#"
resource "aws_s3_bucket" "b" {
  bucket = "my-bucket"
  tags   = { Name = upper("x"), Path = "${var.env}-${local.name}" }
}
"#,
        );
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn json_syntax_templates_are_read_too() {
        let value = serde_json::json!({
            "resource": {"aws_iam_policy": {"p": {"policy": "${file(\"${path.module}/p.json\")}"}}},
            "locals": {"dir": "${path.module}/files"}
        });
        let mut found = file_reads_in_json(&value);
        found.sort();
        assert_eq!(
            found,
            vec![
                path(PathBase::Module, "files"),
                path(PathBase::Module, "p.json")
            ]
        );
    }

    #[test]
    fn code_that_reads_files_is_never_passed_over() {
        let reading = [
            r#"locals { a = file("a.txt") }"#,
            r#"locals { a = templatefile("t.tpl", {}) }"#,
            r#"locals { a = filebase64sha256("${path.module}/x") }"#,
            r#"locals { a = fileset(path.module, "*.json") }"#,
            r#"locals { a = "${path.module}/files" }"#,
            r#"locals { a = path.root }"#,
            r#"module "m" { dir = path.cwd }"#,
            r#"locals { a = [for f in ["x"] : file(f)] }"#,
        ];
        for code in reading {
            assert!(!reads(code).is_empty(), "{code}");
            assert!(may_read_files(code), "{code}");
        }
        let quiet = r#"variable "size" { default = 2 }
output "id" { value = "s1" }
module "m" { source = "../../modules/m" }"#;
        assert!(reads(quiet).is_empty());
        assert!(!may_read_files(quiet));
    }
}
