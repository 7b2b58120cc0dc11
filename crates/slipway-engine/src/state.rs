//! Where each stack instance keeps its Terraform state.
//!
//! The backend is chosen once per project; the rest of slipway only asks it for the backend
//! block to generate and the `-backend-config` arguments for one instance, so a remote
//! backend replaces the local one without touching the core.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use slipway_core::config::{S3State, StateConfig};

use crate::output::Output;

/// The state backend of a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateBackend {
    /// One state file per (instance, stack) under `root`.
    Local { root: PathBuf },
    /// One object per (instance, stack) in a bucket, locked through DynamoDB or a lock
    /// object beside it.
    S3 { project: String, settings: S3State },
}

impl StateBackend {
    /// Local state in the project's data folder.
    pub fn local(data_dir: &Path) -> Self {
        StateBackend::Local {
            root: data_dir.join("state"),
        }
    }

    /// The backend a project's configuration asks for.
    pub fn from_config(config: &StateConfig, project: &str, data_dir: &Path) -> Self {
        match config {
            StateConfig::Local => Self::local(data_dir),
            StateConfig::S3(settings) => StateBackend::S3 {
                project: project.to_owned(),
                settings: settings.clone(),
            },
        }
    }

    /// The Terraform backend type name.
    pub fn kind(&self) -> &'static str {
        match self {
            StateBackend::Local { .. } => "local",
            StateBackend::S3 { .. } => "s3",
        }
    }

    /// The local state file of one instance of one stack (where local state lives, and
    /// where it lived before a migration to a remote backend).
    pub fn local_state_path(data_dir: &Path, instance: &str, stack: &str) -> PathBuf {
        data_dir
            .join("state")
            .join(instance)
            .join(stack)
            .join("terraform.tfstate")
    }

    /// The root-module outputs in an instance's local state, read from the state file the
    /// engine just wrote: the same values `output -json` prints, without an engine start on
    /// the way to the stacks that wait for them. `None` for a remote backend, a missing
    /// file, or a state format other than version 4 (then ask the engine).
    pub fn local_outputs(&self, instance: &str, stack: &str) -> Option<BTreeMap<String, Output>> {
        let StateBackend::Local { root } = self else {
            return None;
        };
        let path = root.join(instance).join(stack).join("terraform.tfstate");
        let bytes = std::fs::read(path).ok()?;
        outputs_of_state(&bytes)
    }

    /// What a failure the engine reported means for this backend, when its own words do not
    /// say: an S3 backend's lock table or bucket that does not exist. `None` otherwise.
    pub fn explain_failure(&self, failure: &str) -> Option<String> {
        let StateBackend::S3 { settings, .. } = self else {
            return None;
        };
        let bootstrap = "create it with `slipway bootstrap --stage STAGE`, or correct the `state` block of slipway.hcl";
        if failure.contains("state lock") && failure.contains("ResourceNotFoundException") {
            let table = settings.dynamodb_table.as_deref()?;
            return Some(format!(
                "the state lock table `{table}` does not exist in {} (or these credentials cannot see it)\n    help: {bootstrap}",
                settings.region
            ));
        }
        if failure.contains("NoSuchBucket") {
            return Some(format!(
                "the state bucket `{}` does not exist (or these credentials cannot see it)\n    help: {bootstrap}",
                settings.bucket
            ));
        }
        None
    }

    /// Where the state of one instance of one stack is, for people: a path or an S3 URL.
    pub fn describe(&self, instance: &str, stack: &str) -> String {
        match self {
            StateBackend::Local { root } => root
                .join(instance)
                .join(stack)
                .join("terraform.tfstate")
                .display()
                .to_string(),
            StateBackend::S3 { project, settings } => format!(
                "s3://{}/{}",
                settings.bucket,
                settings.key(project, instance, stack)
            ),
        }
    }

    /// Partial backend configuration passed to `init` as `-backend-config=KEY=VALUE`. It
    /// never holds credentials: those reach the engine through its environment.
    pub fn backend_config(&self, instance: &str, stack: &str) -> Vec<(String, String)> {
        match self {
            StateBackend::Local { root } => vec![(
                "path".to_owned(),
                root.join(instance)
                    .join(stack)
                    .join("terraform.tfstate")
                    .to_string_lossy()
                    .into_owned(),
            )],
            StateBackend::S3 { project, settings } => {
                let mut pairs = vec![
                    ("bucket".to_owned(), settings.bucket.clone()),
                    ("key".to_owned(), settings.key(project, instance, stack)),
                    ("region".to_owned(), settings.region.clone()),
                ];
                if let Some(table) = &settings.dynamodb_table {
                    pairs.push(("dynamodb_table".to_owned(), table.clone()));
                }
                if settings.use_lockfile {
                    pairs.push(("use_lockfile".to_owned(), "true".to_owned()));
                }
                if let Some(endpoint) = &settings.endpoint {
                    pairs.push(("endpoint".to_owned(), endpoint.clone()));
                    let dynamodb = settings.dynamodb_endpoint.as_ref().unwrap_or(endpoint);
                    pairs.push(("dynamodb_endpoint".to_owned(), dynamodb.clone()));
                    pairs.push(("iam_endpoint".to_owned(), endpoint.clone()));
                    pairs.push(("sts_endpoint".to_owned(), endpoint.clone()));
                    pairs.push(("skip_metadata_api_check".to_owned(), "true".to_owned()));
                    pairs.push(("skip_region_validation".to_owned(), "true".to_owned()));
                } else if let Some(dynamodb) = &settings.dynamodb_endpoint {
                    pairs.push(("dynamodb_endpoint".to_owned(), dynamodb.clone()));
                }
                if settings.force_path_style {
                    pairs.push(("force_path_style".to_owned(), "true".to_owned()));
                }
                if settings.skip_credentials_validation {
                    pairs.push(("skip_credentials_validation".to_owned(), "true".to_owned()));
                }
                pairs
            }
        }
    }

    /// The empty backend block slipway writes into the working copy; its settings arrive
    /// through [`Self::backend_config`].
    pub fn backend_block(&self) -> String {
        format!(
            "# Written by slipway: state lives where slipway's configuration says.\nterraform {{\n  backend \"{}\" {{}}\n}}\n",
            self.kind()
        )
    }
}

/// The outputs of a version 4 state document (Terraform 0.12 and later, OpenTofu).
fn outputs_of_state(bytes: &[u8]) -> Option<BTreeMap<String, Output>> {
    #[derive(serde::Deserialize)]
    struct State {
        version: u32,
        #[serde(default)]
        outputs: BTreeMap<String, Output>,
    }
    let state: State = serde_json::from_slice(bytes).ok()?;
    (state.version == 4).then_some(state.outputs)
}

#[cfg(test)]
mod tests {
    #[test]
    fn outputs_are_read_from_a_version_4_state_only() {
        let state = br#"{"version": 4, "terraform_version": "1.0.3", "serial": 3,
            "outputs": {"vpc_id": {"value": "vpc-1", "type": "string"},
                        "password": {"value": "s3cret", "type": "string", "sensitive": true},
                        "subnets": {"value": ["a", "b"], "type": ["list", "string"]}},
            "resources": []}"#;
        let outputs = super::outputs_of_state(state).unwrap();
        assert_eq!(outputs["vpc_id"].value, serde_json::json!("vpc-1"));
        assert!(!outputs["vpc_id"].sensitive);
        assert!(outputs["password"].sensitive);
        assert_eq!(outputs["subnets"].value, serde_json::json!(["a", "b"]));
        let empty = br#"{"version": 4, "serial": 1, "resources": []}"#;
        assert!(super::outputs_of_state(empty).unwrap().is_empty());
        assert!(super::outputs_of_state(br#"{"version": 3, "modules": []}"#).is_none());
        assert!(super::outputs_of_state(b"not json").is_none());
    }

    use super::*;

    #[test]
    fn local_state_is_one_file_per_instance_and_stack() {
        let backend = StateBackend::local(Path::new("/p/.slipway"));
        assert_eq!(
            backend.describe("dev", "network"),
            "/p/.slipway/state/dev/network/terraform.tfstate"
        );
        assert_eq!(
            backend.backend_config("zero-1", "app"),
            vec![(
                "path".to_owned(),
                "/p/.slipway/state/zero-1/app/terraform.tfstate".to_owned()
            )]
        );
        assert!(backend.backend_block().contains("backend \"local\" {}"));
    }

    #[test]
    fn s3_state_key_comes_from_project_instance_and_stack() {
        let backend = StateBackend::from_config(
            &StateConfig::S3(S3State {
                bucket: "tf-state".into(),
                region: "us-east-1".into(),
                dynamodb_table: Some("locks".into()),
                use_lockfile: false,
                endpoint: Some("http://127.0.0.1:5000".into()),
                dynamodb_endpoint: None,
                force_path_style: true,
                skip_credentials_validation: true,
                key_prefix: None,
            }),
            "webshop",
            Path::new("/p/.slipway"),
        );
        let config = backend.backend_config("prod", "app");
        let get = |k: &str| {
            config
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("key"), Some("webshop/prod/app.tfstate"));
        assert_eq!(get("dynamodb_table"), Some("locks"));
        assert_eq!(get("dynamodb_endpoint"), Some("http://127.0.0.1:5000"));
        assert_eq!(get("force_path_style"), Some("true"));
        assert_eq!(
            backend.describe("prod", "app"),
            "s3://tf-state/webshop/prod/app.tfstate"
        );
        assert!(backend.backend_block().contains("backend \"s3\" {}"));
        assert_eq!(get("use_lockfile"), None);
    }

    #[test]
    fn s3_native_locking_is_passed_to_the_backend() {
        let backend = StateBackend::from_config(
            &StateConfig::S3(S3State {
                bucket: "tf-state".into(),
                region: "us-east-1".into(),
                dynamodb_table: None,
                use_lockfile: true,
                endpoint: None,
                dynamodb_endpoint: None,
                force_path_style: false,
                skip_credentials_validation: false,
                key_prefix: None,
            }),
            "webshop",
            Path::new("/p/.slipway"),
        );
        let config = backend.backend_config("dev", "app");
        assert!(config.contains(&("use_lockfile".to_owned(), "true".to_owned())));
        assert!(!config.iter().any(|(k, _)| k.starts_with("dynamodb")));
    }
}
