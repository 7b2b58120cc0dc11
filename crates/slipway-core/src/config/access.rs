//! Where state lives and which credentials each stack's engine processes receive: the
//! `state` and `credentials` blocks of slipway.hcl and a stage's credential assignments.
//!
//! Credentials are described, never written: a `credentials` block names environment
//! variables to copy, a file to read or a command to run. The values are fetched by the
//! adapter when a process needs them.

use std::collections::BTreeMap;

use hcl::edit::Span;
use hcl::edit::structure::{Attribute, Block};

use super::eval::{Env, Scope};
use super::schema::{Checked, Schema, evaluate_attribute, kind};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::source::{Location, SourceFile};

/// The project's state backend.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StateConfig {
    /// One local state file per instance and stack in the data folder.
    #[default]
    Local,
    S3(S3State),
}

/// Terraform's S3 backend, locked through a DynamoDB table or a lock object in the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3State {
    pub bucket: String,
    pub region: String,
    pub dynamodb_table: Option<String>,
    /// S3 native locking: a `<key>.tflock` object beside the state (Terraform 1.10+,
    /// OpenTofu 1.8+), instead of or alongside the DynamoDB table.
    pub use_lockfile: bool,
    /// For S3-compatible stores and emulators.
    pub endpoint: Option<String>,
    /// Defaults to `endpoint`.
    pub dynamodb_endpoint: Option<String>,
    pub force_path_style: bool,
    /// Skip the STS call that validates credentials (emulators).
    pub skip_credentials_validation: bool,
    /// Prepended to every key; keys are `<prefix>/<project>/<instance>/<stack>.tfstate`.
    pub key_prefix: Option<String>,
}

impl S3State {
    /// The object key of one instance's state of one stack.
    pub fn key(&self, project: &str, instance: &str, stack: &str) -> String {
        let tail = format!("{project}/{instance}/{stack}.tfstate");
        match self.key_prefix.as_deref().map(|p| p.trim_matches('/')) {
            Some(prefix) if !prefix.is_empty() => format!("{prefix}/{tail}"),
            _ => tail,
        }
    }
}

/// A named set of credentials: where its values come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub name: String,
    pub sources: Vec<CredentialSource>,
    /// The labels a worker must carry to use them (`worker_labels = { tier = "prod" }`):
    /// every stage that uses the set asks for them too.
    pub worker_labels: crate::labels::Labels,
    pub location: Location,
}

impl Credentials {
    /// The variable names this set provides, where known before fetching.
    pub fn provided_names(&self) -> impl Iterator<Item = &str> {
        self.sources.iter().flat_map(|source| match source {
            CredentialSource::Env(map) => map.keys().map(String::as_str).collect::<Vec<_>>(),
            _ => Vec::new(),
        })
    }

    /// The variables of slipway's own environment this set reads.
    pub fn source_names(&self) -> impl Iterator<Item = &str> {
        self.sources.iter().flat_map(|source| match source {
            CredentialSource::Env(map) => map.values().map(String::as_str).collect::<Vec<_>>(),
            _ => Vec::new(),
        })
    }
}

/// One source of credential values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// Variable the engine sees -> variable of slipway's environment it is copied from.
    Env(BTreeMap<String, String>),
    /// A file holding a JSON object of names to values (relative paths from the project root).
    File(String),
    /// A command printing a JSON object of names to values.
    Command(Vec<String>),
}

/// Which credentials a stage's stacks use, for applying and (optionally) for planning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageCredentials {
    /// Stack name (or `default`) -> credentials name.
    pub apply: BTreeMap<String, String>,
    /// Stack name (or `default`) -> credentials name for `plan`; falls back to `apply`.
    pub plan: BTreeMap<String, String>,
}

/// What an engine process is for, which decides the credentials it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Reading: init, plan, show, output.
    Plan,
    /// Changing: apply, destroy.
    Apply,
}

impl StageCredentials {
    pub fn is_empty(&self) -> bool {
        self.apply.is_empty() && self.plan.is_empty()
    }

    /// The credentials name for `stack`, if the stage assigns any.
    pub fn for_stack(&self, stack: &str, purpose: Purpose) -> Option<&str> {
        fn pick<'a>(map: &'a BTreeMap<String, String>, stack: &str) -> Option<&'a str> {
            map.get(stack)
                .or_else(|| map.get("default"))
                .map(String::as_str)
        }
        match purpose {
            Purpose::Plan => pick(&self.plan, stack).or_else(|| pick(&self.apply, stack)),
            Purpose::Apply => pick(&self.apply, stack),
        }
    }
}

pub(crate) const STATE_BLOCK: Schema = Schema {
    what: "block `state`",
    attributes: &[
        "backend",
        "bucket",
        "region",
        "dynamodb_table",
        "use_lockfile",
        "endpoint",
        "dynamodb_endpoint",
        "force_path_style",
        "skip_credentials_validation",
        "key_prefix",
    ],
    blocks: &[],
};

pub(crate) const CREDENTIALS_BLOCK: Schema = Schema {
    what: "block `credentials`",
    attributes: &["from_env", "from_file", "from_command", "worker_labels"],
    blocks: &[],
};

pub(crate) fn load_state(
    file: &SourceFile,
    block: &Block,
    scope: &Scope<'_>,
    env: &Env,
    diagnostics: &mut Diagnostics,
) -> StateConfig {
    let body = Checked::new(file, &block.body, &STATE_BLOCK, diagnostics);
    let backend = body.string("backend", None, scope, env, diagnostics);
    match backend.as_deref() {
        None | Some("local") => {
            if let Some(attr) = ["bucket", "region", "dynamodb_table", "use_lockfile"]
                .into_iter()
                .find_map(|k| body.attribute(k))
            {
                diagnostics.push(
                    Diagnostic::at(
                        file,
                        attr.span(),
                        format!("`{}` only applies to the s3 backend", attr.key.as_str()),
                    )
                    .help("set `backend = \"s3\"`, or remove the attribute"),
                );
            }
            StateConfig::Local
        }
        Some("s3") => {
            let what = "block `state` with backend \"s3\"";
            let bucket = body.string("bucket", Some(what), scope, env, diagnostics);
            let region = body.string("region", Some(what), scope, env, diagnostics);
            let optional = |key: &str, diagnostics: &mut Diagnostics| {
                body.string(key, None, scope, env, diagnostics)
                    .filter(|s| !s.is_empty())
            };
            let state = S3State {
                bucket: bucket.unwrap_or_default(),
                region: region.unwrap_or_default(),
                dynamodb_table: optional("dynamodb_table", diagnostics),
                use_lockfile: body
                    .bool("use_lockfile", scope, env, diagnostics)
                    .unwrap_or(false),
                endpoint: optional("endpoint", diagnostics),
                dynamodb_endpoint: optional("dynamodb_endpoint", diagnostics),
                force_path_style: body
                    .bool("force_path_style", scope, env, diagnostics)
                    .unwrap_or(false),
                skip_credentials_validation: body
                    .bool("skip_credentials_validation", scope, env, diagnostics)
                    .unwrap_or(false),
                key_prefix: optional("key_prefix", diagnostics),
            };
            StateConfig::S3(state)
        }
        Some(other) => {
            diagnostics.push(
                Diagnostic::at(
                    file,
                    body.attribute("backend").and_then(|a| a.value.span()),
                    format!("unknown state backend `{other}`"),
                )
                .help("use `backend = \"local\"` (the default) or `backend = \"s3\"`"),
            );
            StateConfig::Local
        }
    }
}

/// A block's `worker_labels = { name = "value" }`, checked; none when unset or wrong.
pub(crate) fn worker_labels(
    body: &Checked<'_>,
    scope: &Scope<'_>,
    env: &Env,
    diagnostics: &mut Diagnostics,
) -> crate::labels::Labels {
    let Some(attribute) = body.attribute("worker_labels") else {
        return crate::labels::Labels::default();
    };
    let Some(labels) = string_map(body.file, attribute, scope, env, diagnostics) else {
        return crate::labels::Labels::default();
    };
    let bad = labels
        .iter()
        .find_map(|(k, v)| crate::labels::label_problem(k, v).map(|p| (k, p)));
    if let Some((key, problem)) = bad {
        diagnostics.push(
            Diagnostic::at(
                body.file,
                attribute.value.span(),
                format!("`worker_labels.{key}` {problem}"),
            )
            .help("write `worker_labels = { tier = \"prod\" }`: names of letters, digits, `-`, `_`, `.` and `/`, values without `,` or `=`, as `slipway worker --labels tier=prod` gives them"),
        );
        return crate::labels::Labels::default();
    }
    crate::labels::Labels(labels)
}

pub(crate) fn load_credentials(
    file: &SourceFile,
    block: &Block,
    scope: &Scope<'_>,
    env: &Env,
    diagnostics: &mut Diagnostics,
) -> Option<Credentials> {
    let name = block.labels.first()?.as_str().to_owned();
    let body = Checked::new(file, &block.body, &CREDENTIALS_BLOCK, diagnostics);
    let mut sources = Vec::new();
    if let Some(attribute) = body.attribute("from_env") {
        if let Some(map) = string_map(file, attribute, scope, env, diagnostics) {
            sources.push(CredentialSource::Env(map));
        }
    }
    if let Some(path) = body.string("from_file", None, scope, env, diagnostics) {
        sources.push(CredentialSource::File(path));
    }
    if let Some(attribute) = body.attribute("from_command") {
        match evaluate_attribute(file, attribute, scope, env, diagnostics) {
            Some(hcl::Value::Array(items))
                if !items.is_empty() && items.iter().all(|i| i.is_string()) =>
            {
                sources.push(CredentialSource::Command(
                    items
                        .into_iter()
                        .filter_map(|i| i.as_str().map(str::to_owned))
                        .collect(),
                ));
            }
            Some(_) => diagnostics.push(
                Diagnostic::at(
                    file,
                    attribute.value.span(),
                    "`from_command` must be a list of strings: the program and its arguments",
                )
                .help("for example `from_command = [\"vault\", \"read\", \"-format=json\", \"aws/creds/app\"]`"),
            ),
            None => {}
        }
    }
    if sources.is_empty() {
        diagnostics.push(
            Diagnostic::at(file, block.span(), format!("credentials `{name}` say nowhere to read values from"))
                .help("add `from_env = { AWS_ACCESS_KEY_ID = \"APP_AWS_ACCESS_KEY_ID\" }`, `from_file = \"...\"` or `from_command = [...]`"),
        );
    }
    let worker_labels = worker_labels(&body, scope, env, diagnostics);
    Some(Credentials {
        name,
        sources,
        worker_labels,
        location: file.location(block.span()),
    })
}

/// An object of string values, such as `{ AWS_ACCESS_KEY_ID = "APP_KEY_ID" }`.
pub(crate) fn string_map(
    file: &SourceFile,
    attribute: &Attribute,
    scope: &Scope<'_>,
    env: &Env,
    diagnostics: &mut Diagnostics,
) -> Option<BTreeMap<String, String>> {
    let key = attribute.key.as_str();
    match evaluate_attribute(file, attribute, scope, env, diagnostics)? {
        hcl::Value::Object(map) => {
            let mut out = BTreeMap::new();
            for (k, v) in map {
                match v {
                    hcl::Value::String(s) => {
                        out.insert(k, s);
                    }
                    other => {
                        diagnostics.push(
                            Diagnostic::at(
                                file,
                                attribute.value.span(),
                                format!("`{key}.{k}` must be a string, found {}", kind(&other)),
                            )
                            .help(format!("write `{key} = {{ {k} = \"...\" }}`")),
                        );
                        return None;
                    }
                }
            }
            Some(out)
        }
        other => {
            diagnostics.push(
                Diagnostic::at(
                    file,
                    attribute.value.span(),
                    format!("`{key}` must be an object, found {}", kind(&other)),
                )
                .help(format!("write `{key} = {{ NAME = \"...\" }}`")),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_keys_are_derived_from_project_instance_and_stack() {
        let mut state = S3State {
            bucket: "b".into(),
            region: "r".into(),
            dynamodb_table: None,
            use_lockfile: false,
            endpoint: None,
            dynamodb_endpoint: None,
            force_path_style: false,
            skip_credentials_validation: false,
            key_prefix: None,
        };
        assert_eq!(
            state.key("webshop", "dev", "app"),
            "webshop/dev/app.tfstate"
        );
        state.key_prefix = Some("/teams/shop/".into());
        assert_eq!(
            state.key("webshop", "zero-1a", "app"),
            "teams/shop/webshop/zero-1a/app.tfstate"
        );
    }

    #[test]
    fn plan_credentials_fall_back_to_apply_and_default() {
        let creds = StageCredentials {
            apply: BTreeMap::from([
                ("default".into(), "deployer".into()),
                ("network".into(), "network-admin".into()),
            ]),
            plan: BTreeMap::from([("default".into(), "reader".into())]),
        };
        assert_eq!(
            creds.for_stack("network", Purpose::Apply),
            Some("network-admin")
        );
        assert_eq!(creds.for_stack("app", Purpose::Apply), Some("deployer"));
        assert_eq!(creds.for_stack("app", Purpose::Plan), Some("reader"));
        let apply_only = StageCredentials {
            apply: BTreeMap::from([("app".into(), "app".into())]),
            plan: BTreeMap::new(),
        };
        assert_eq!(apply_only.for_stack("app", Purpose::Plan), Some("app"));
        assert_eq!(apply_only.for_stack("data", Purpose::Plan), None);
    }
}
