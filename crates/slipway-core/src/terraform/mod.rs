//! What slipway needs to know about a stack's Terraform code, read from its `.tf` and
//! `.tf.json` files: the variables it declares, the outputs it exposes, the local modules it
//! calls, the files it reads ([`file_reads`]) and whether it declares a backend.
//!
//! This is a light reading of declarations, not an evaluation: Terraform stays the only
//! interpreter of Terraform code.

use std::collections::{BTreeMap, BTreeSet};

use hcl::edit::expr::Expression;
use hcl::edit::structure::{Body, Structure};

use crate::source::SourceFile;

pub mod file_reads;

pub use file_reads::{FileRead, PathBase};

/// True for the files Terraform loads as a module's code: `*.tf` and `*.tf.json`.
pub fn is_terraform_file(name: &str) -> bool {
    name.ends_with(".tf") || name.ends_with(".tf.json")
}

/// Declarations found in one folder of `.tf` files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleDeclarations {
    pub variables: BTreeSet<String>,
    /// Output name to whether it is marked `sensitive = true`.
    pub outputs: BTreeMap<String, bool>,
    /// `source` of each `module` block that points at a local folder (`./` or `../`).
    pub local_module_sources: BTreeSet<String>,
    /// The files the code reads (`file()`, `templatefile()`, `fileset()`, `path.module`).
    pub file_reads: BTreeSet<FileRead>,
    /// Whether a `terraform { backend "..." {} }` block is present.
    pub declares_backend: bool,
    /// Files that did not parse; their declarations are unknown, so checks that need them
    /// are skipped rather than reported wrongly.
    pub unreadable_files: Vec<String>,
}

impl ModuleDeclarations {
    /// Reads the declarations of every given `.tf` file (one module folder).
    pub fn read(files: &[SourceFile]) -> Self {
        let mut declarations = Self::default();
        for file in files {
            let read = if file.path.to_string_lossy().ends_with(".json") {
                serde_json::from_str(&file.text)
                    .map(|value| declarations.add_json(&value))
                    .is_ok()
            } else {
                hcl::edit::parser::parse_body(&file.text)
                    .map(|body| {
                        declarations.add_body(&body);
                        if file_reads::may_read_files(&file.text) {
                            declarations
                                .file_reads
                                .extend(file_reads::file_reads(&hcl::Body::from(body)));
                        }
                    })
                    .is_ok()
            };
            if !read {
                declarations
                    .unreadable_files
                    .push(file.path.to_string_lossy().into_owned());
            }
        }
        declarations
    }

    /// Terraform's JSON syntax: the same blocks as objects keyed by type and label.
    fn add_json(&mut self, value: &serde_json::Value) {
        let section = |name: &str| value.get(name).and_then(serde_json::Value::as_object);
        if let Some(variables) = section("variable") {
            self.variables.extend(variables.keys().cloned());
        }
        if let Some(outputs) = section("output") {
            for (name, output) in outputs {
                let sensitive = output
                    .get("sensitive")
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(false);
                self.outputs.insert(name.clone(), sensitive);
            }
        }
        if let Some(modules) = section("module") {
            for module in modules.values() {
                // A label may hold one object or a list of them.
                let bodies = match module {
                    serde_json::Value::Array(items) => items.iter().collect(),
                    other => vec![other],
                };
                for body in bodies {
                    if let Some(source) = body
                        .get("source")
                        .and_then(serde_json::Value::as_str)
                        .filter(|s| s.starts_with("./") || s.starts_with("../"))
                    {
                        self.local_module_sources.insert(source.to_owned());
                    }
                }
            }
        }
        if let Some(terraform) = value.get("terraform") {
            let blocks = match terraform {
                serde_json::Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            self.declares_backend |= blocks.iter().any(|b| b.get("backend").is_some());
        }
        self.file_reads
            .extend(file_reads::file_reads_in_json(value));
    }

    /// True when every file parsed, so the sets above are complete.
    pub fn is_complete(&self) -> bool {
        self.unreadable_files.is_empty()
    }

    fn add_body(&mut self, body: &Body) {
        for structure in body.iter() {
            let Structure::Block(block) = structure else {
                continue;
            };
            let label = block.labels.first().map(|l| l.as_str().to_owned());
            match (block.ident.as_str(), label) {
                ("variable", Some(name)) => {
                    self.variables.insert(name);
                }
                ("output", Some(name)) => {
                    let sensitive = block
                        .body
                        .get_attribute("sensitive")
                        .and_then(|a| a.value.as_bool())
                        .unwrap_or(false);
                    self.outputs.insert(name, sensitive);
                }
                ("module", Some(_)) => {
                    if let Some(source) = block
                        .body
                        .get_attribute("source")
                        .and_then(|a| string_literal(&a.value))
                        .filter(|s| s.starts_with("./") || s.starts_with("../"))
                    {
                        self.local_module_sources.insert(source);
                    }
                }
                ("terraform", _) => {
                    self.declares_backend |= block.body.get_blocks("backend").next().is_some();
                }
                _ => {}
            }
        }
    }
}

fn string_literal(expr: &Expression) -> Option<String> {
    match expr {
        Expression::String(s) => Some(s.value().to_string()),
        Expression::StringTemplate(t) => {
            let value: hcl::Expression = Expression::StringTemplate(t.clone()).into();
            match value {
                hcl::Expression::String(s) => Some(s),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_variables_outputs_modules_and_backend() {
        let main = SourceFile::new(
            "main.tf",
            r#"
terraform {
  backend "s3" {}
}
variable "env" {}
variable "vpc_id" { type = string }
module "bucket" { source = "../../modules/bucket" }
module "remote" { source = "terraform-aws-modules/vpc/aws" }
output "id" { value = 1 }
output "secret" {
  value     = 2
  sensitive = true
}
"#,
        );
        let d = ModuleDeclarations::read(&[main]);
        assert_eq!(
            d.variables.iter().collect::<Vec<_>>(),
            ["env", "vpc_id"].iter().collect::<Vec<_>>()
        );
        assert_eq!(d.outputs.get("id"), Some(&false));
        assert_eq!(d.outputs.get("secret"), Some(&true));
        assert_eq!(
            d.local_module_sources.iter().collect::<Vec<_>>(),
            vec!["../../modules/bucket"]
        );
        assert!(d.declares_backend);
        assert!(d.is_complete());
    }

    #[test]
    fn unparsable_file_is_recorded_not_fatal() {
        let d = ModuleDeclarations::read(&[SourceFile::new("bad.tf", "output \"x\" {")]);
        assert!(!d.is_complete());
        assert_eq!(d.unreadable_files, vec!["bad.tf"]);
    }
}
