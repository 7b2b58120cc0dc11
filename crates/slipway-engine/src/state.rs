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

/// One managed resource instance of a state document, as the engine's UI names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateInstance {
    /// `module.vpc.aws_subnet.public["us-east-1a"]`.
    pub address: String,
    /// The resource it is an instance of: `module.vpc.aws_subnet.public`.
    pub resource: String,
    /// The resources it was created from (the state's `dependencies`).
    pub dependencies: Vec<String>,
}

/// The managed resource instances of a version 4 state document (empty for anything else:
/// an instance with no state yet prints nothing).
pub fn state_instances(bytes: &[u8]) -> Vec<StateInstance> {
    let Ok(state) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Vec::new();
    };
    let mut instances = Vec::new();
    for resource in state["resources"].as_array().into_iter().flatten() {
        if resource["mode"] != "managed" {
            continue;
        }
        let (Some(kind), Some(name)) = (resource["type"].as_str(), resource["name"].as_str())
        else {
            continue;
        };
        let address = match resource["module"].as_str() {
            Some(module) => format!("{module}.{kind}.{name}"),
            None => format!("{kind}.{name}"),
        };
        for instance in resource["instances"].as_array().into_iter().flatten() {
            let key = match &instance["index_key"] {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(key) => {
                    format!("[{}]", serde_json::Value::String(key.clone()))
                }
                other => format!("[{other}]"),
            };
            instances.push(StateInstance {
                address: format!("{address}{key}"),
                resource: address.clone(),
                dependencies: instance["dependencies"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|d| d.as_str().map(str::to_owned))
                    .collect(),
            });
        }
    }
    instances
}

/// The same state emptied: no resources, no outputs, the same lineage and the next serial,
/// so the backend takes it as the state's next version. `None` when `bytes` is not a
/// version 4 state.
pub fn emptied_state(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut state = serde_json::from_slice::<serde_json::Value>(bytes).ok()?;
    if state["version"] != 4 {
        return None;
    }
    let serial = state["serial"].as_u64().unwrap_or(0) + 1;
    state["serial"] = serial.into();
    state["resources"] = serde_json::Value::Array(Vec::new());
    state["outputs"] = serde_json::Value::Object(serde_json::Map::new());
    serde_json::to_vec_pretty(&state).ok()
}

/// Where a state set aside by a recovery is kept: `<data>/state-backups/<instance>/<stack>/
/// <stamp>.tfstate`, beside (never inside) the state folder, whatever the backend.
pub fn backup_path(data_dir: &Path, instance: &str, stack: &str, stamp: &str) -> PathBuf {
    data_dir
        .join("state-backups")
        .join(instance)
        .join(stack)
        .join(format!("{stamp}.tfstate"))
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
    fn state_instances_are_named_as_the_engine_names_them() {
        let state = br#"{"version": 4, "serial": 7, "lineage": "l-1", "outputs": {"a": {"value": 1, "type": "number"}},
            "resources": [
              {"module": "module.vpc", "mode": "managed", "type": "aws_subnet", "name": "public",
               "instances": [{"index_key": "us-east-1a", "dependencies": ["module.vpc.aws_vpc.this"]},
                             {"index_key": "us-east-1b"}]},
              {"mode": "managed", "type": "aws_vpc", "name": "main", "instances": [{}]},
              {"mode": "managed", "type": "aws_sqs_queue", "name": "q", "instances": [{"index_key": 0}]},
              {"mode": "data", "type": "aws_caller_identity", "name": "me", "instances": [{}]}
            ]}"#;
        let instances = state_instances(state);
        let addresses: Vec<&str> = instances.iter().map(|i| i.address.as_str()).collect();
        assert_eq!(
            addresses,
            [
                r#"module.vpc.aws_subnet.public["us-east-1a"]"#,
                r#"module.vpc.aws_subnet.public["us-east-1b"]"#,
                "aws_vpc.main",
                "aws_sqs_queue.q[0]",
            ]
        );
        assert_eq!(instances[0].resource, "module.vpc.aws_subnet.public");
        assert_eq!(instances[0].dependencies, ["module.vpc.aws_vpc.this"]);
        assert!(state_instances(b"").is_empty());

        let emptied: serde_json::Value =
            serde_json::from_slice(&emptied_state(state).unwrap()).unwrap();
        assert_eq!(emptied["serial"], 8);
        assert_eq!(emptied["lineage"], "l-1");
        assert_eq!(emptied["resources"], serde_json::json!([]));
        assert_eq!(emptied["outputs"], serde_json::json!({}));
        assert!(emptied_state(br#"{"version": 3}"#).is_none());
        assert_eq!(
            backup_path(
                Path::new("/p/.slipway"),
                "prod",
                "network",
                "20261201T230000Z"
            ),
            Path::new("/p/.slipway/state-backups/prod/network/20261201T230000Z.tfstate")
        );
    }

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
