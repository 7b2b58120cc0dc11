//! The slicing advisor's input, gathered from a project: the stacks' `.tf` code with their
//! local modules, the git history of a window, CODEOWNERS, the advisor settings, and the
//! resources that exist in a stage's state. `slipway advise` and the server's advice page
//! both analyse what [`gather`] returns.
//!
//! Resources are read from the state of one stage (the one asked for, else the last stage)
//! for each stack whose state there exists; the other stacks' resources are counted from
//! their declarations (`count`/`for_each` from literals and defaults), and the report says
//! which. Remote state is read only for a stage asked for by name, since that costs one
//! engine `init` per stack.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};
use slipway_advisor::code::{ModuleCode, TfFile};
use slipway_advisor::codeowners::CodeOwners;
use slipway_advisor::domains::TypeMap;
use slipway_advisor::instances::instantiate;
use slipway_advisor::{Basis, Commit, Input, Observed, Settings, StackInput};
use slipway_core::Stage;
use slipway_core::config::StateConfig;
use slipway_core::config::advisor::AdvisorConfig;
use slipway_core::module_files::join_module_source;
use slipway_engine::StateBackend;

use crate::project::Workspace;
use crate::stage_executor::{ExecutorOptions, executor_for};
use crate::verify::inventory::{Counts, counts_of_state, pull_state};

/// The window read when neither the request nor the `advisor` block's `history` names one.
pub const DEFAULT_HISTORY_DAYS: f64 = 180.0;
const SECONDS_PER_DAY: f64 = 86_400.0;

/// What to gather.
#[derive(Debug, Clone, Default)]
pub struct AdviseRequest {
    /// The window's length in days; `None`: the `advisor` block's `history`, else
    /// [`DEFAULT_HISTORY_DAYS`].
    pub window_days: Option<f64>,
    /// The stage whose state says what exists; `None`: the last stage, local state only.
    pub stage: Option<String>,
    /// Now, in seconds since the Unix epoch: the window ends here.
    pub now: i64,
}

/// Something the person asking should know about what was gathered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Part of the input could not be read; the analysis went on without it.
    Warning(String),
    /// The stage read keeps its state remotely and was not asked for by name, so resources
    /// were counted from declarations; asking for it by name reads what exists (one engine
    /// `init` per stack).
    RemoteStateNotRead { stage: String },
}

/// The advisor's input, and what to tell about how it was gathered.
#[derive(Debug, Clone)]
pub struct Gathered {
    pub input: Input,
    pub notices: Vec<Notice>,
}

/// Gathers the advisor's input for `workspace`. Fails on an unknown stage, an unreadable
/// file or a broken git history; a folder outside git is measured without history.
pub async fn gather(workspace: &Workspace, request: &AdviseRequest) -> Result<Gathered> {
    let project = &workspace.project;
    let mut notices = Vec::new();
    let window_days = request.window_days.unwrap_or_else(|| {
        project
            .advisor
            .history
            .map_or(DEFAULT_HISTORY_DAYS, |d| d.as_secs_f64() / SECONDS_PER_DAY)
    });
    let since_seconds = (window_days * SECONDS_PER_DAY).round() as i64;

    let stage = match &request.stage {
        Some(name) => Some(crate::project::find_stage(workspace, name)?),
        None => project.stages.last(),
    };
    let mut existing = match stage {
        Some(stage) => {
            existing_resources(workspace, stage, request.stage.is_some(), &mut notices).await?
        }
        None => BTreeMap::new(),
    };
    let mut stacks = Vec::with_capacity(project.stacks.len());
    for stack in &project.stacks {
        let observed = existing.remove(&stack.name).map(|counts| Observed {
            basis: Basis::Existing,
            stage: stage.map(|s| s.name.clone()).unwrap_or_default(),
            counts,
        });
        stacks.push(read_stack(workspace, stack, observed)?);
    }

    let (commits, prefix) = match slipway_git::Repo::open(&workspace.root) {
        Ok(repo) => {
            let log = repo
                .log_since(&format!("@{}", request.now - since_seconds))
                .context("cannot read the history")?;
            let commits = log
                .into_iter()
                .map(|e| Commit {
                    id: e.id,
                    author: e.author,
                    time: e.time,
                    files: e.files,
                })
                .collect();
            (commits, repo.prefix().to_owned())
        }
        Err(slipway_git::GitError::NotARepository { .. }) => {
            notices.push(Notice::Warning(
                "not a git repository: measuring code only, no history".to_owned(),
            ));
            (Vec::new(), String::new())
        }
        Err(error) => return Err(error).context("cannot open the git repository"),
    };
    let codeowners = read_codeowners(workspace, &prefix);

    Ok(Gathered {
        input: Input {
            stacks,
            commits,
            codeowners,
            codeowners_prefix: prefix,
            window_days,
            settings: settings(&project.advisor),
        },
        notices,
    })
}

/// A path with forward slashes, as the advisor and git name files.
fn slash(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// The advisor's settings: its defaults with the `advisor` block on top.
pub fn settings(config: &AdvisorConfig) -> Settings {
    let mut settings = Settings {
        teams: config.teams.clone(),
        types: TypeMap::new(&config.permission_domains, &config.capabilities),
        ..Settings::default()
    };
    if let Some(domains) = &config.privileged_domains {
        settings.privileged_domains = domains.clone();
    }
    let t = &config.thresholds;
    let float = |key: &str, default: f64| t.get(key).copied().unwrap_or(default);
    let count = |key: &str, default: usize| t.get(key).map_or(default, |v| v.round() as usize);
    settings.team_share = float("team_share", settings.team_share);
    settings.team_min_commits = count("team_min_commits", settings.team_min_commits);
    settings.hot_per_month = float("hot_per_month", settings.hot_per_month);
    settings.hot_ratio = float("hot_ratio", settings.hot_ratio);
    settings.capability_min_resources = count(
        "capability_min_resources",
        settings.capability_min_resources,
    );
    settings.coupling = float("coupling", settings.coupling);
    settings.coupling_min_commits = count("coupling_min_commits", settings.coupling_min_commits);
    settings.coupling_max_stacks = count("coupling_max_stacks", settings.coupling_max_stacks);
    settings.max_resources = count("max_resources", settings.max_resources);
    settings.max_dependents = count("max_dependents", settings.max_dependents);
    settings
}

/// The managed resource instances by type in `stage`'s state, per stack that has one there.
/// Local state is read from its files; remote state through the engine (`init` and `state
/// pull` per stack, as `slipway drift` does), only when the stage was asked for by name.
async fn existing_resources(
    workspace: &Workspace,
    stage: &Stage,
    asked: bool,
    notices: &mut Vec<Notice>,
) -> Result<BTreeMap<String, Counts>> {
    let project = &workspace.project;
    let mut found = BTreeMap::new();
    match &project.state {
        StateConfig::Local => {
            let data_dir = workspace.data_dir();
            for stack in &project.stacks {
                let path = StateBackend::local_state_path(&data_dir, &stage.name, &stack.name);
                if let Ok(state) = std::fs::read(path)
                    && ever_written(&state)
                {
                    found.insert(stack.name.clone(), counts_of_state(&state));
                }
            }
        }
        StateConfig::S3(_) if asked => {
            let stacks: BTreeSet<String> = project.stacks.iter().map(|s| s.name.clone()).collect();
            let executor = executor_for(workspace, stage, &stacks, &ExecutorOptions::default())?;
            for stack in &stacks {
                match pull_state(&executor, stack).await {
                    Ok(state) if ever_written(&state) => {
                        found.insert(stack.clone(), counts_of_state(&state));
                    }
                    Ok(_) => {}
                    Err(error) => {
                        let stage = &stage.name;
                        notices.push(Notice::Warning(format!(
                            "cannot read the state of {stack} in {stage}: {error:#}; \
                             counting its declarations"
                        )));
                    }
                }
            }
        }
        StateConfig::S3(_) => notices.push(Notice::RemoteStateNotRead {
            stage: stage.name.clone(),
        }),
    }
    Ok(found)
}

/// Whether a state document is one an apply wrote: not empty, and with resources or a serial
/// above zero (a remote backend answers `state pull` for a stack never applied with nothing,
/// or with an empty state of serial 0). A stack destroyed since keeps its serial: nothing
/// exists, and that is what it says.
fn ever_written(state: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(state) else {
        return false;
    };
    value["serial"].as_u64().is_some_and(|s| s > 0)
        || value["resources"].as_array().is_some_and(|r| !r.is_empty())
}

/// A stack's code with its local modules (followed transitively, instantiated with their
/// arguments), and what exists of it when a state was read.
fn read_stack(
    workspace: &Workspace,
    stack: &slipway_core::config::Stack,
    observed: Option<Observed>,
) -> Result<StackInput> {
    let mut folders: BTreeMap<String, Vec<TfFile>> = BTreeMap::new();
    let mut todo = vec![stack.dir.clone()];
    let mut providers = Vec::new();
    while let Some(dir) = todo.pop() {
        if folders.contains_key(&dir) {
            continue;
        }
        let folder = read_tf_folder(&workspace.root, &dir)?;
        let module = ModuleCode::read(&folder);
        for source in &module.local_modules {
            if let Some(next) = join_module_source(&dir, source) {
                todo.push(next);
            }
        }
        if dir == stack.dir {
            providers = module.providers;
        }
        folders.insert(dir, folder);
    }
    let code = instantiate(&stack.dir, &folders, &join_module_source);
    let mut files: Vec<String> = folders
        .values()
        .flat_map(|files| files.iter().map(|f| f.path.clone()))
        .collect();
    files
        .push(join_module_source(&stack.dir, slipway_core::config::STACK_FILE).unwrap_or_default());
    files.sort();
    files.dedup();
    Ok(StackInput {
        name: stack.name.clone(),
        dir: stack.dir.clone(),
        team: stack.team.clone(),
        dependencies: stack.dependency_stacks().map(str::to_owned).collect(),
        resources: code.resources,
        providers,
        files,
        observed,
    })
}

fn read_tf_folder(root: &Path, dir: &str) -> Result<Vec<TfFile>> {
    let path = root.join(dir);
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(&path) else {
        // A module source that does not exist: Terraform reports it; the advisor skips it.
        return Ok(files);
    };
    for entry in entries {
        let file = entry?.path();
        if file.extension().is_some_and(|e| e == "tf") && file.is_file() {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            files.push(TfFile::new(
                slash(file.strip_prefix(root).unwrap_or(&file)),
                text,
            ));
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// CODEOWNERS where GitHub and GitLab look for it, relative to the repository's top.
fn read_codeowners(workspace: &Workspace, prefix: &str) -> CodeOwners {
    let depth = prefix.split('/').filter(|p| !p.is_empty()).count();
    let top = workspace
        .root
        .ancestors()
        .nth(depth)
        .unwrap_or(&workspace.root);
    for candidate in [
        "CODEOWNERS",
        ".github/CODEOWNERS",
        ".gitlab/CODEOWNERS",
        "docs/CODEOWNERS",
    ] {
        if let Ok(text) = std::fs::read_to_string(top.join(candidate)) {
            return CodeOwners::parse(&text);
        }
    }
    CodeOwners::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_never_written_is_no_state() {
        assert!(!ever_written(b""));
        assert!(!ever_written(br#"{"version":4,"serial":0,"resources":[]}"#));
        assert!(ever_written(br#"{"version":4,"serial":3,"resources":[]}"#));
        assert!(ever_written(
            br#"{"version":4,"resources":[{"mode":"managed","type":"aws_vpc","instances":[{}]}]}"#
        ));
    }

    #[test]
    fn module_paths_resolve_inside_the_project() {
        assert_eq!(
            join_module_source("stacks/app", "../../modules/b").as_deref(),
            Some("modules/b")
        );
        assert_eq!(join_module_source("app", "../../x"), None);
    }
}
