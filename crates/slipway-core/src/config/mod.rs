//! The configuration model: a project (`slipway.hcl`) with its stages, and its stacks (one
//! `stack.hcl` each), loaded from source text into validated values.
//!
//! [`load`] checks the whole tree in one pass and returns every problem it found, each with
//! its file, line and a fix.

pub mod access;
pub mod advisor;
pub mod check;
pub mod eval;
mod load;
pub mod policy;
pub mod pull_requests;
pub mod schedule;
mod schema;
pub mod verify;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use access::{CredentialSource, Credentials, Purpose, S3State, StageCredentials, StateConfig};
pub use eval::Env;
pub use load::{KnownStack, ProjectSources, Settled, StackSources, load, load_with_known};
pub use policy::{OnViolation, StagePolicy, StatefulResources};

use crate::graph::StackGraph;
use crate::source::{Location, SourceFile};
use crate::terraform::ModuleDeclarations;
use eval::Scope;

/// Name of the project configuration file at the repository root.
pub const PROJECT_FILE: &str = "slipway.hcl";
/// Name of the file that marks a folder as a stack.
pub const STACK_FILE: &str = "stack.hcl";
/// Default data folder, relative to the project root.
pub const DEFAULT_DATA_DIR: &str = ".slipway";

/// Which infrastructure-as-code engine drives the stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Terraform,
    Tofu,
}

impl EngineKind {
    /// The binary name looked up on `PATH`.
    pub fn binary_name(self) -> &'static str {
        match self {
            EngineKind::Terraform => "terraform",
            EngineKind::Tofu => "tofu",
        }
    }
}

/// A validated project: settings, stages in pipeline order, stacks and their graph.
#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    /// The run record's URL (`store { url = ... }`); default: SQLite in the data folder.
    pub store_url: Option<String>,
    /// Settings of `slipway advise` (`advisor { ... }`).
    pub advisor: advisor::AdvisorConfig,
    /// How `slipway run` verifies a change before its first stage (`verify { ... }`).
    pub verify: verify::VerifyConfig,
    /// How the server plans pull requests (`pull_requests { ... }`).
    pub pull_requests: pull_requests::PullRequestsConfig,
    /// Ephemeral instances of pull requests (`preview { ... }`); `None`: none.
    pub preview: Option<pull_requests::PreviewConfig>,
    /// Drift checks and drills the server starts on a cron schedule (`schedule "NAME"`).
    pub schedules: Vec<schedule::Schedule>,
    /// The artifact store's URL (`artifacts { url = ... }`); default: `<data>/artifacts`.
    pub artifacts_url: Option<String>,
    /// How the built-in list of stateful resource types changes (`stateful_resources`).
    pub stateful_resources: StatefulResources,
    pub state: StateConfig,
    pub credentials: Vec<Credentials>,
    pub engine: EngineKind,
    /// The data folder, relative to the project root.
    pub data_dir: PathBuf,
    pub execution: Execution,
    pub generate: Vec<Generate>,
    pub stages: Vec<Stage>,
    pub stacks: Vec<Stack>,
    pub graph: StackGraph,
    /// Where each stack name first appears in `stacks`, as loaded: [`Project::stack`] looks
    /// a name up for every stack of a listing, which a scan made quadratic in the number of
    /// stacks. Names are unique in a loaded project; the name is checked before use (falling
    /// back to the scan), since `stacks` is public and may have changed since.
    stack_index: BTreeMap<String, usize>,
    config_file: SourceFile,
    env: Env,
}

/// How stack instances are run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// How many stack instances may run at once (default: 4).
    pub parallelism: usize,
    /// How long one engine step may take before it is interrupted (default: 1 hour).
    pub step_timeout: Duration,
    /// How long an interrupted engine step gets to save its state before it is killed
    /// (default: 30 seconds).
    pub interrupt_grace: Duration,
    /// How long a command waits for a state lock held by another process before it fails
    /// naming the holder (default: 0, fail at once).
    pub lock_timeout: Duration,
}

impl Default for Execution {
    fn default() -> Self {
        Self {
            parallelism: 4,
            step_timeout: Duration::from_secs(3600),
            interrupt_grace: Duration::from_secs(30),
            lock_timeout: Duration::ZERO,
        }
    }
}

/// A long-lived environment in the pipeline.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    pub approval: bool,
    /// Whoever approves this stage's plans may be neither the author of the commit nor
    /// the person who started the run (enforced where approvals are made by known people:
    /// the server's API).
    pub four_eyes: bool,
    /// The labels a worker must carry to run this stage's work (`worker_labels = { tier =
    /// "prod" }`): a queued run reaching the stage is handed on to such a worker. Empty: any
    /// worker, and the server itself.
    pub worker_labels: crate::labels::Labels,
    /// Blast radius limits (`policy { ... }`); none: every change passes.
    pub policy: Option<StagePolicy>,
    pub credentials: StageCredentials,
    pub generate: Vec<Generate>,
    pub location: Location,
    variables: Option<hcl::Expression>,
}

/// A file written into each working copy before `init`.
#[derive(Debug, Clone)]
pub struct Generate {
    pub name: String,
    pub path: String,
    pub location: Location,
    contents: hcl::Expression,
}

/// A generated file with its contents evaluated for one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    pub name: String,
    pub path: String,
    pub contents: String,
}

/// One stack: a Terraform root module with a `stack.hcl`.
#[derive(Debug, Clone)]
pub struct Stack {
    pub name: String,
    /// Folder relative to the project root, with `/` separators.
    pub dir: String,
    pub team: Option<String>,
    pub capability: Option<String>,
    pub description: Option<String>,
    pub dependencies: Vec<Dependency>,
    pub inputs: Vec<Input>,
    /// `check "NAME"` blocks, run after the stack is applied (see [`check`]).
    pub checks: Vec<check::Check>,
    pub declarations: ModuleDeclarations,
    pub location: Location,
}

/// Stack B's use of stack A's outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The name the stack uses for it (`dependency "NAME"`).
    pub name: String,
    /// The depended-on stack's name.
    pub stack: String,
    pub path: String,
}

/// One entry of a stack's `inputs`.
#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    /// `(dependency name, output name)` pairs the expression reads.
    pub reads: Vec<(String, String)>,
    pub location: Location,
    expr: hcl::Expression,
}

/// Evaluation failed for an expression that validated at load time (for example an
/// environment variable removed since, or an output a dependency did not produce).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{location}: {message}")]
pub struct EvalError {
    pub location: Location,
    pub message: String,
}

impl Project {
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }

    pub fn stack(&self, name: &str) -> Option<&Stack> {
        self.stack_index
            .get(name)
            .and_then(|&i| self.stacks.get(i))
            .filter(|s| s.name == name)
            .or_else(|| self.stacks.iter().find(|s| s.name == name))
    }

    pub fn credentials(&self, name: &str) -> Option<&Credentials> {
        self.credentials.iter().find(|c| c.name == name)
    }

    pub fn stage_names(&self) -> Vec<&str> {
        self.stages.iter().map(|s| s.name.as_str()).collect()
    }

    fn scope<'a>(&'a self, stage: &'a Stage, instance: &'a str) -> Scope<'a> {
        Scope {
            project: &self.name,
            stage: Some(&stage.name),
            instance: Some(instance),
            ..Scope::default()
        }
    }

    /// The stage's variables for one instance (`instance.name` is the instance's name).
    pub fn variables(
        &self,
        stage: &Stage,
        instance: &str,
    ) -> Result<BTreeMap<String, serde_json::Value>, EvalError> {
        let Some(expr) = &stage.variables else {
            return Ok(BTreeMap::new());
        };
        let value =
            eval::evaluate(expr, &self.scope(stage, instance), &self.env).map_err(|message| {
                EvalError {
                    location: stage.location.clone(),
                    message,
                }
            })?;
        match eval::hcl_to_json(&value) {
            serde_json::Value::Object(map) => Ok(map.into_iter().collect()),
            _ => Err(EvalError {
                location: stage.location.clone(),
                message: "`variables` must be an object".into(),
            }),
        }
    }

    /// The files to generate into a working copy of `stage` for `instance`: the project's
    /// `generate` blocks, with a stage's block of the same name replacing the project's.
    pub fn generated_files(
        &self,
        stage: &Stage,
        instance: &str,
    ) -> Result<Vec<GeneratedFile>, EvalError> {
        let mut blocks: BTreeMap<&str, &Generate> = BTreeMap::new();
        for block in self.generate.iter().chain(&stage.generate) {
            blocks.insert(&block.name, block);
        }
        let scope = self.scope(stage, instance);
        blocks
            .into_values()
            .map(|block| {
                let value =
                    eval::evaluate(&block.contents, &scope, &self.env).map_err(|message| {
                        EvalError {
                            location: block.location.clone(),
                            message,
                        }
                    })?;
                match value {
                    hcl::Value::String(contents) => Ok(GeneratedFile {
                        name: block.name.clone(),
                        path: block.path.clone(),
                        contents,
                    }),
                    other => Err(EvalError {
                        location: block.location.clone(),
                        message: format!(
                            "`contents` must be a string, found {}",
                            schema::kind(&other)
                        ),
                    }),
                }
            })
            .collect()
    }

    /// A stack's inputs for one instance, from its dependencies' outputs (dependency name to
    /// output name to value).
    pub fn inputs(
        &self,
        stack: &Stack,
        stage: &Stage,
        instance: &str,
        outputs: &BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    ) -> Result<BTreeMap<String, serde_json::Value>, EvalError> {
        let scope = Scope {
            dependencies: Some(outputs),
            ..self.scope(stage, instance)
        };
        stack
            .inputs
            .iter()
            .map(|input| {
                eval::evaluate(&input.expr, &scope, &self.env)
                    .map(|value| (input.name.clone(), eval::hcl_to_json(&value)))
                    .map_err(|message| EvalError {
                        location: input.location.clone(),
                        message: format!(
                            "input `{}` of stack `{}`: {message}",
                            input.name, stack.name
                        ),
                    })
            })
            .collect()
    }

    /// The configuration file the project was loaded from.
    pub fn config_file(&self) -> &SourceFile {
        &self.config_file
    }
}

impl Stack {
    /// Names of the stacks this one depends on.
    pub fn dependency_stacks(&self) -> impl Iterator<Item = &str> {
        self.dependencies.iter().map(|d| d.stack.as_str())
    }
}
