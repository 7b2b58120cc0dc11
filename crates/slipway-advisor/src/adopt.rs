//! Adoption of existing Terraform: which folders are root modules (stacks to be), and which
//! of them read another one's state through `terraform_remote_state` (dependencies).
//!
//! A dependency is inferred only when a remote state's literal settings name exactly the
//! state another root module writes: a local `path` resolving to that module's state file,
//! or an S3 `key` (and `bucket`, when both sides give one), a GCS `prefix`. Everything else
//! is reported, never guessed.

use std::collections::{BTreeMap, BTreeSet};

use crate::code::{ModuleCode, TfFile};

/// One folder holding `.tf` files.
#[derive(Debug, Clone)]
pub struct Folder {
    /// Relative to the project root, `/` separators, `""` for the root itself.
    pub dir: String,
    pub files: Vec<TfFile>,
    /// Whether the folder already has a `stack.hcl`.
    pub has_stack_file: bool,
}

/// A root module found, with its inferred dependencies.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AdoptedStack {
    pub dir: String,
    /// The stack's name: its folder's name, or its path joined with `-` when two folders
    /// share a name.
    pub name: String,
    /// Whether the folder's name differs from `name`, so `stack.hcl` must say it.
    pub needs_name: bool,
    /// Folders of the stacks it depends on.
    pub dependencies: Vec<String>,
    /// Whether it already had a `stack.hcl` (left as it is).
    pub existing: bool,
}

/// What adoption found, and what it could not infer.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Adoption {
    pub stacks: Vec<AdoptedStack>,
    /// One line per thing a person has to look at.
    pub unresolved: Vec<String>,
}

/// Where a root module's state lives, as far as its literal settings say.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum StateKey {
    Local(String),
    S3 {
        bucket: Option<String>,
        key: String,
    },
    Gcs {
        bucket: Option<String>,
        prefix: String,
    },
}

impl StateKey {
    fn matches(&self, other: &StateKey) -> bool {
        let same_bucket = |a: &Option<String>, b: &Option<String>| match (a, b) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        match (self, other) {
            (StateKey::Local(a), StateKey::Local(b)) => a == b,
            (StateKey::S3 { bucket: ba, key: a }, StateKey::S3 { bucket: bb, key: b }) => {
                a == b && same_bucket(ba, bb)
            }
            (
                StateKey::Gcs {
                    bucket: ba,
                    prefix: a,
                },
                StateKey::Gcs {
                    bucket: bb,
                    prefix: b,
                },
            ) => a.trim_end_matches('/') == b.trim_end_matches('/') && same_bucket(ba, bb),
            _ => false,
        }
    }
}

/// Finds the root modules among `folders` and the dependencies between them.
pub fn adopt(folders: &[Folder]) -> Adoption {
    let mut adoption = Adoption::default();
    let mut roots: Vec<(&Folder, ModuleCode)> = Vec::new();
    for folder in folders {
        let code = ModuleCode::read(&folder.files);
        for file in &code.unreadable {
            adoption.unresolved.push(format!(
                "{file}: does not parse; its folder was judged on the other files"
            ));
        }
        if code.is_root() || folder.has_stack_file {
            roots.push((folder, code));
        }
    }

    let mut keys: Vec<(StateKey, &str)> = Vec::new();
    for (folder, code) in &roots {
        match state_key(&folder.dir, code) {
            Ok(key) => keys.push((key, &folder.dir)),
            Err(why) => adoption
                .unresolved
                .push(format!("{}: {why}", display_dir(&folder.dir))),
        }
    }

    let mut base_count: BTreeMap<&str, usize> = BTreeMap::new();
    for (folder, _) in &roots {
        *base_count.entry(base_name(&folder.dir)).or_default() += 1;
    }

    for (folder, code) in &roots {
        let mut dependencies = BTreeSet::new();
        for remote in &code.remote_states {
            let what = format!(
                "{}:{}: data.terraform_remote_state.{}",
                remote.file, remote.line, remote.name
            );
            let wanted = match remote_key(&folder.dir, remote) {
                Ok(key) => key,
                Err(why) => {
                    adoption.unresolved.push(format!("{what}: {why}"));
                    continue;
                }
            };
            match keys.iter().find(|(key, _)| key.matches(&wanted)) {
                Some((_, dir)) if *dir == folder.dir => {}
                Some((_, dir)) => {
                    dependencies.insert((*dir).to_owned());
                }
                None => adoption.unresolved.push(format!(
                    "{what}: reads {}, which no root module here writes",
                    describe(&wanted)
                )),
            }
        }
        let base = base_name(&folder.dir);
        let name = if base_count.get(base).copied().unwrap_or(0) > 1 || base.is_empty() {
            sanitize(&folder.dir.replace('/', "-"))
        } else {
            sanitize(base)
        };
        adoption.stacks.push(AdoptedStack {
            dir: folder.dir.clone(),
            needs_name: name != base,
            name,
            dependencies: dependencies.into_iter().collect(),
            existing: folder.has_stack_file,
        });
    }
    if !adoption.stacks.iter().all(|s| s.dependencies.is_empty()) {
        adoption.unresolved.push(
            "stacks still read each other's state through terraform_remote_state: once slipway manages their state, replace those data sources with `inputs` from `dependency.NAME.outputs`".to_owned(),
        );
    }
    adoption
}

fn display_dir(dir: &str) -> &str {
    if dir.is_empty() { "." } else { dir }
}

fn base_name(dir: &str) -> &str {
    dir.rsplit('/').next().unwrap_or(dir)
}

/// A valid stack name: letters, digits, `-`, `_`, starting with a letter.
fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic()) {
        out.insert_str(0, "stack-");
    }
    out
}

fn state_key(dir: &str, code: &ModuleCode) -> Result<StateKey, String> {
    let Some(backend) = &code.backend else {
        return Ok(StateKey::Local(join(dir, "terraform.tfstate")));
    };
    let get = |k: &str| backend.settings.get(k).cloned();
    match backend.kind.as_str() {
        "local" => Ok(StateKey::Local(join(
            dir,
            &get("path").unwrap_or_else(|| "terraform.tfstate".into()),
        ))),
        "s3" => get("key")
            .map(|key| StateKey::S3 {
                bucket: get("bucket"),
                key,
            })
            .ok_or_else(|| {
                "its s3 backend's `key` is not written in the code (given with -backend-config?), so stacks reading its state cannot be matched to it".to_owned()
            }),
        "gcs" => get("prefix")
            .map(|prefix| StateKey::Gcs {
                bucket: get("bucket"),
                prefix,
            })
            .ok_or_else(|| {
                "its gcs backend's `prefix` is not written in the code, so stacks reading its state cannot be matched to it".to_owned()
            }),
        other => Err(format!(
            "its `{other}` backend is not one adoption can match remote state reads against"
        )),
    }
}

fn remote_key(dir: &str, remote: &crate::code::RemoteState) -> Result<StateKey, String> {
    let get = |k: &str| remote.config.get(k).cloned();
    let unknown = || {
        if remote.unknown_config > 0 {
            " (its `config` is computed, not literal)"
        } else {
            ""
        }
    };
    match remote.backend.as_deref() {
        None => Err("its `backend` is not a literal string".into()),
        Some("local") => Ok(StateKey::Local(join(
            dir,
            &get("path").unwrap_or_else(|| "terraform.tfstate".into()),
        ))),
        Some("s3") => get("key")
            .map(|key| StateKey::S3 {
                bucket: get("bucket"),
                key,
            })
            .ok_or_else(|| format!("no literal s3 `key`{}", unknown())),
        Some("gcs") => get("prefix")
            .map(|prefix| StateKey::Gcs {
                bucket: get("bucket"),
                prefix,
            })
            .ok_or_else(|| format!("no literal gcs `prefix`{}", unknown())),
        Some(other) => Err(format!("backend `{other}` is not one adoption can match")),
    }
}

fn describe(key: &StateKey) -> String {
    match key {
        StateKey::Local(path) => format!("local state `{path}`"),
        StateKey::S3 { key, .. } => format!("s3 key `{key}`"),
        StateKey::Gcs { prefix, .. } => format!("gcs prefix `{prefix}`"),
    }
}

/// `dir` joined with a relative `path`, `.` and `..` resolved lexically.
fn join(dir: &str, path: &str) -> String {
    let mut parts: Vec<&str> = if path.starts_with('/') {
        Vec::new()
    } else {
        dir.split('/').filter(|p| !p.is_empty()).collect()
    };
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(dir: &str, text: &str) -> Folder {
        Folder {
            dir: dir.into(),
            files: vec![TfFile::new(format!("{dir}/main.tf"), text)],
            has_stack_file: false,
        }
    }

    #[test]
    fn infers_local_and_s3_dependencies_and_reports_the_rest() {
        let folders = vec![
            folder("network", "provider \"aws\" {}\n"),
            folder(
                "data",
                "terraform {\n  backend \"s3\" {\n    bucket = \"st\"\n    key = \"data.tfstate\"\n  }\n}\n",
            ),
            folder(
                "app",
                r#"provider "aws" {}
data "terraform_remote_state" "net" {
  backend = "local"
  config = { path = "../network/terraform.tfstate" }
}
data "terraform_remote_state" "data" {
  backend = "s3"
  config = { bucket = "st", key = "data.tfstate" }
}
data "terraform_remote_state" "gone" {
  backend = "s3"
  config = { key = "elsewhere.tfstate" }
}
data "terraform_remote_state" "computed" {
  backend = "s3"
  config = { key = var.key }
}
"#,
            ),
            folder("modules/bucket", "resource \"aws_s3_bucket\" \"b\" {}\n"),
        ];
        let adoption = adopt(&folders);
        let names: Vec<_> = adoption.stacks.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["network", "data", "app"]);
        assert_eq!(adoption.stacks[2].dependencies, ["data", "network"]);
        let text = adoption.unresolved.join("\n");
        assert!(
            text.contains(
                "app/main.tf:10: data.terraform_remote_state.gone: reads s3 key `elsewhere.tfstate`"
            ),
            "{text}"
        );
        assert!(
            text.contains("computed: no literal s3 `key` (its `config` is computed"),
            "{text}"
        );
    }

    #[test]
    fn folders_sharing_a_name_get_their_path_as_name() {
        let adoption = adopt(&[
            folder("dev/network", "provider \"aws\" {}"),
            folder("prod/network", "provider \"aws\" {}"),
        ]);
        assert_eq!(adoption.stacks[0].name, "dev-network");
        assert!(adoption.stacks[0].needs_name);
        assert!(adoption.unresolved.is_empty());
    }

    #[test]
    fn joins_paths_lexically() {
        assert_eq!(join("a/b", "../c/x.tfstate"), "a/c/x.tfstate");
        assert_eq!(join("", "./x"), "x");
    }
}
