//! What the advisor and adoption read from a folder of `.tf` files: resource blocks by type
//! and where they are, provider configurations and aliases, local module calls, the
//! backend, and `terraform_remote_state` data sources.
//!
//! Like `slipway_core::terraform`, this reads declarations and never evaluates: only
//! literal values are understood, and everything else is reported as unknown.

use std::collections::BTreeMap;

use hcl::edit::Span;
use hcl::edit::expr::{Expression, ObjectKey};
use hcl::edit::structure::{Block, Body, Structure};

/// One `.tf` file: its path (relative to the project root, `/` separators) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TfFile {
    pub path: String,
    pub text: String,
}

impl TfFile {
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            text: text.into(),
        }
    }
}

/// A `resource` block.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResourceBlock {
    /// The resource type, e.g. `aws_vpc`.
    pub kind: String,
    pub name: String,
    pub file: String,
    /// First line of the block (1-based).
    pub line: usize,
    /// The module call path it is reached through (`module.vpc`; empty in the root module).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub module: String,
    /// Instances its `count`/`for_each` (and those of the module calls above it) evaluate
    /// to; `None` when they cannot be worked out from literals and defaults.
    #[serde(skip)]
    pub instances: Option<usize>,
}

impl ResourceBlock {
    /// `aws_vpc.main`, as Terraform addresses it.
    pub fn address(&self) -> String {
        format!("{}.{}", self.kind, self.name)
    }
}

/// A backend block: its type and literal settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Backend {
    pub kind: String,
    pub settings: BTreeMap<String, String>,
}

/// A `data "terraform_remote_state"` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteState {
    pub name: String,
    pub file: String,
    pub line: usize,
    /// `None` when `backend` is not a literal string.
    pub backend: Option<String>,
    /// The literal entries of `config`; entries that are expressions are left out and
    /// counted in `unknown_config`.
    pub config: BTreeMap<String, String>,
    pub unknown_config: usize,
}

/// Everything read from one folder's `.tf` files.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModuleCode {
    pub resources: Vec<ResourceBlock>,
    /// `provider` blocks: provider name and alias (`None` for the default configuration).
    pub providers: Vec<(String, Option<String>)>,
    /// `source` of every `module` call to a local folder (`./`, `../`).
    pub local_modules: Vec<String>,
    pub backend: Option<Backend>,
    pub remote_states: Vec<RemoteState>,
    /// Files that did not parse.
    pub unreadable: Vec<String>,
}

impl ModuleCode {
    /// Reads every given file of one folder.
    pub fn read(files: &[TfFile]) -> Self {
        let mut code = Self::default();
        for file in files {
            match hcl::edit::parser::parse_body(&file.text) {
                Ok(body) => code.add(file, &body),
                Err(_) => code.unreadable.push(file.path.clone()),
            }
        }
        code
    }

    /// Whether this folder is a root module: it configures a provider or a backend (a
    /// module called by others gets both from its caller).
    pub fn is_root(&self) -> bool {
        !self.providers.is_empty() || self.backend.is_some()
    }

    fn add(&mut self, file: &TfFile, body: &Body) {
        for structure in body.iter() {
            let Structure::Block(block) = structure else {
                continue;
            };
            let labels: Vec<&str> = block.labels.iter().map(|l| l.as_str()).collect();
            let line = line_of(&file.text, block);
            match (block.ident.as_str(), labels.as_slice()) {
                ("resource", [kind, name, ..]) => self.resources.push(ResourceBlock {
                    kind: (*kind).to_owned(),
                    name: (*name).to_owned(),
                    file: file.path.clone(),
                    line,
                    module: String::new(),
                    instances: None,
                }),
                ("provider", [name, ..]) => {
                    let alias = block
                        .body
                        .get_attribute("alias")
                        .and_then(|a| literal(&a.value));
                    self.providers.push(((*name).to_owned(), alias));
                }
                ("module", [_, ..]) => {
                    if let Some(source) = block
                        .body
                        .get_attribute("source")
                        .and_then(|a| literal(&a.value))
                        .filter(|s| s.starts_with("./") || s.starts_with("../"))
                    {
                        self.local_modules.push(source);
                    }
                }
                ("terraform", _) => {
                    if let Some(backend) = block.body.get_blocks("backend").next() {
                        self.backend = Some(Backend {
                            kind: backend
                                .labels
                                .first()
                                .map(|l| l.as_str().to_owned())
                                .unwrap_or_default(),
                            settings: literal_attributes(&backend.body),
                        });
                    }
                }
                ("data", ["terraform_remote_state", name, ..]) => {
                    let backend = block
                        .body
                        .get_attribute("backend")
                        .and_then(|a| literal(&a.value));
                    let (config, unknown_config) = match block.body.get_attribute("config") {
                        Some(attribute) => object_literals(&attribute.value),
                        None => (BTreeMap::new(), 0),
                    };
                    self.remote_states.push(RemoteState {
                        name: (*name).to_owned(),
                        file: file.path.clone(),
                        line,
                        backend,
                        config,
                        unknown_config,
                    });
                }
                _ => {}
            }
        }
    }
}

pub(crate) fn line_of(text: &str, block: &Block) -> usize {
    let start = block.span().map_or(0, |range| range.start);
    text.as_bytes()[..start.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The value of a literal string (or a template without interpolation).
pub(crate) fn literal(expr: &Expression) -> Option<String> {
    match expr {
        Expression::String(s) => Some(s.value().to_string()),
        Expression::StringTemplate(_) => match hcl::Expression::from(expr.clone()) {
            hcl::Expression::String(s) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

fn literal_attributes(body: &Body) -> BTreeMap<String, String> {
    body.attributes()
        .filter_map(|a| Some((a.key.as_str().to_owned(), literal(&a.value)?)))
        .collect()
}

fn object_literals(expr: &Expression) -> (BTreeMap<String, String>, usize) {
    let Expression::Object(object) = expr else {
        return (BTreeMap::new(), 1);
    };
    let mut found = BTreeMap::new();
    let mut unknown = 0;
    for (key, value) in object.iter() {
        let key = match key {
            ObjectKey::Ident(ident) => ident.as_str().to_owned(),
            ObjectKey::Expression(e) => match literal(e) {
                Some(k) => k,
                None => {
                    unknown += 1;
                    continue;
                }
            },
        };
        match literal(value.expr()) {
            Some(v) => {
                found.insert(key, v);
            }
            None => unknown += 1,
        }
    }
    (found, unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_resources_providers_backend_and_remote_state() {
        let code = ModuleCode::read(&[TfFile::new(
            "app/main.tf",
            r#"
terraform {
  backend "s3" {
    bucket = "state"
    key    = "app/terraform.tfstate"
  }
}
provider "aws" {}
provider "aws" {
  alias = "audit"
}
module "m" { source = "../modules/m" }
module "r" { source = "terraform-aws-modules/vpc/aws" }

resource "aws_iam_role" "app" {}
data "terraform_remote_state" "network" {
  backend = "s3"
  config = {
    bucket = "state"
    key    = "network/terraform.tfstate"
    region = var.region
  }
}
"#,
        )]);
        assert!(code.is_root());
        assert_eq!(code.resources[0].address(), "aws_iam_role.app");
        assert_eq!(code.resources[0].line, 15);
        assert_eq!(
            code.providers,
            vec![("aws".into(), None), ("aws".into(), Some("audit".into()))]
        );
        assert_eq!(code.local_modules, vec!["../modules/m"]);
        let backend = code.backend.unwrap();
        assert_eq!(backend.kind, "s3");
        assert_eq!(backend.settings["key"], "app/terraform.tfstate");
        let remote = &code.remote_states[0];
        assert_eq!(remote.backend.as_deref(), Some("s3"));
        assert_eq!(remote.config["key"], "network/terraform.tfstate");
        assert_eq!(remote.unknown_config, 1);
    }

    #[test]
    fn a_called_module_is_not_a_root() {
        let code = ModuleCode::read(&[TfFile::new(
            "m/main.tf",
            "resource \"aws_s3_bucket\" \"b\" {}",
        )]);
        assert!(!code.is_root());
        let broken = ModuleCode::read(&[TfFile::new("x.tf", "resource {")]);
        assert_eq!(broken.unreadable, vec!["x.tf"]);
    }
}
