//! Loading and validating a project from source text.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use hcl::edit::Span;
use hcl::edit::expr::{Expression, ObjectKey, TraversalOperator};
use hcl::edit::structure::{Block, Body};
use hcl::edit::visit::{self, Visit};
use rayon::prelude::*;

use super::access::{
    Credentials, StageCredentials, StateConfig, load_credentials, load_state, string_map,
};
use super::eval::{Env, Scope};
use super::schema::{Checked, Schema, span_of};
use super::{
    DEFAULT_DATA_DIR, Dependency, EngineKind, Execution, Generate, Input, PROJECT_FILE, Project,
    Stack, Stage,
};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::graph::StackGraph;
use crate::module_files::join_module_source;
use crate::source::{Location, SourceFile};
use crate::terraform::ModuleDeclarations;

/// Everything the loader reads: the project file and each stack's files.
#[derive(Debug, Clone)]
pub struct ProjectSources {
    /// `slipway.hcl`.
    pub config: SourceFile,
    pub stacks: Vec<StackSources>,
}

/// One stack folder's files.
#[derive(Debug, Clone)]
pub struct StackSources {
    /// Folder relative to the project root (`""` for a stack at the root).
    pub dir: PathBuf,
    /// The folder's `stack.hcl`.
    pub config: SourceFile,
    /// The folder's `*.tf` files.
    pub terraform: Vec<SourceFile>,
}

const PROJECT_SCHEMA: Schema = Schema {
    what: PROJECT_FILE,
    attributes: &[],
    blocks: &[
        ("project", 0),
        ("stage", 1),
        ("generate", 1),
        ("state", 0),
        ("credentials", 1),
        ("store", 0),
        ("artifacts", 0),
        ("stateful_resources", 0),
        ("advisor", 0),
        ("verify", 0),
        ("pull_requests", 0),
        ("preview", 0),
        ("schedule", 1),
    ],
};
const PROJECT_BLOCK: Schema = Schema {
    what: "block `project`",
    attributes: &[
        "name",
        "engine",
        "data_dir",
        "parallelism",
        "step_timeout",
        "interrupt_grace",
        "lock_timeout",
    ],
    blocks: &[],
};
const STORE_BLOCK: Schema = Schema {
    what: "block `store`",
    attributes: &["url"],
    blocks: &[],
};
const ARTIFACTS_BLOCK: Schema = Schema {
    what: "block `artifacts`",
    attributes: &["url"],
    blocks: &[],
};
const STAGE_BLOCK: Schema = Schema {
    what: "block `stage`",
    attributes: &[
        "variables",
        "approval",
        "four_eyes",
        "credentials",
        "plan_credentials",
        "worker_labels",
    ],
    blocks: &[("generate", 1), ("policy", 0)],
};
const GENERATE_BLOCK: Schema = Schema {
    what: "block `generate`",
    attributes: &["path", "contents"],
    blocks: &[],
};
const STACK_FILE_SCHEMA: Schema = Schema {
    what: "stack.hcl",
    attributes: &["inputs"],
    blocks: &[("stack", 0), ("dependency", 1), ("check", 1)],
};
const STACK_BLOCK: Schema = Schema {
    what: "block `stack`",
    attributes: &["name", "team", "capability", "description"],
    blocks: &[],
};
const DEPENDENCY_BLOCK: Schema = Schema {
    what: "block `dependency`",
    attributes: &["path"],
    blocks: &[],
};

/// A stack loaded before from files that have not changed since, given by what the checks
/// across stacks need of it instead of by its files: a caller that keeps what it loaded
/// (the change index) reads again only the folders that changed, while names, dependency
/// paths, inputs, cycles and the stacks stages name are still checked on the whole project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownStack {
    pub name: String,
    /// Folder relative to the project root, with `/` separators.
    pub dir: String,
    /// Its `dependency` blocks by name and path; the stacks they point at are resolved
    /// again, since those folders may have changed.
    pub dependencies: Vec<Dependency>,
    /// `(dependency, output)` pairs its inputs read.
    pub input_reads: Vec<(String, String)>,
    /// The outputs its code declares, with whether each is sensitive.
    pub outputs: BTreeMap<String, bool>,
    /// A file of its code that did not parse, if any: its outputs are then not all known.
    pub unreadable_file: Option<String>,
}

/// Stacks of a project that are neither read nor known: checked before, and neither their
/// folders nor the folders their dependencies point into changed since. They take part in
/// the checks across stacks only as what the other stacks see of them: a name (unique names,
/// the stacks stages name), a folder (dependency paths) and outputs (inputs). Their own
/// dependencies are not resolved again and are not in the loaded project's graph: a caller
/// checks cycles on the whole graph.
pub trait Settled {
    /// The name of the settled stack in `dir`.
    fn name_at(&self, dir: &str) -> Option<&str>;
    /// Whether a settled stack is named `name`.
    fn has_name(&self, name: &str) -> bool;
    /// The outputs the settled stack `name` declares, with whether each is sensitive; None
    /// when they are not all known (a file of its code did not parse).
    fn outputs(&self, name: &str) -> Option<BTreeMap<String, bool>>;
}

/// No settled stacks.
impl Settled for () {
    fn name_at(&self, _: &str) -> Option<&str> {
        None
    }
    fn has_name(&self, _: &str) -> bool {
        false
    }
    fn outputs(&self, _: &str) -> Option<BTreeMap<String, bool>> {
        None
    }
}

/// Loads and validates a project, reporting every problem in the tree at once.
pub fn load(sources: &ProjectSources, env: &Env) -> Result<Project, Diagnostics> {
    load_with_known(sources, Vec::new(), &(), env)
}

/// [`load`] for a project whose stacks are those of `sources`, the `known` ones and the
/// `settled` ones, of which only the first are read: a known stack comes back as a stack
/// with its name, folder, resolved dependencies and outputs, and nothing else of its
/// `stack.hcl` or code; a settled one does not come back. A problem a known or settled
/// stack takes part in is reported at its `stack.hcl` without a position.
pub fn load_with_known(
    sources: &ProjectSources,
    known: Vec<KnownStack>,
    settled: &dyn Settled,
    env: &Env,
) -> Result<Project, Diagnostics> {
    let mut diagnostics = Diagnostics::default();
    let settings = load_project_file(&sources.config, env, &mut diagnostics);
    let project_name = settings
        .as_ref()
        .map_or_else(|| "project".to_owned(), |s| s.name.clone());

    // Stacks load on every core; their diagnostics join in the order of the sources, as if
    // loaded one after the other.
    let loaded: Vec<(Option<(Stack, StackFileFacts)>, Diagnostics)> = sources
        .stacks
        .par_iter()
        .map(|stack_sources| {
            let mut found = Diagnostics::default();
            let stack = load_stack(stack_sources, &project_name, env, &mut found);
            (stack, found)
        })
        .collect();
    let known_files: Vec<SourceFile> = known
        .iter()
        .map(|k| SourceFile::new(stack_file_path(&k.dir), String::new()))
        .collect();
    let mut stacks: Vec<LoadedStack<'_>> = Vec::with_capacity(loaded.len() + known.len());
    // Folders whose stack.hcl did not parse: already reported, so dependencies pointing at
    // them are not reported a second time.
    let mut unreadable: BTreeSet<String> = BTreeSet::new();
    for ((stack, found), stack_sources) in loaded.into_iter().zip(&sources.stacks) {
        diagnostics.extend(found);
        match stack {
            Some((stack, facts)) => stacks.push((stack, &stack_sources.config, facts)),
            None => {
                unreadable.insert(dir_string(&stack_sources.dir));
            }
        }
    }
    for (known, file) in known.into_iter().zip(&known_files) {
        stacks.push(known_stack(known, file));
    }
    stacks.sort_by(|a, b| a.0.dir.cmp(&b.0.dir));

    check_unique_names(&stacks, settled, &mut diagnostics);
    resolve_dependencies(&mut stacks, settled, &unreadable, &mut diagnostics);
    check_inputs(&stacks, settled, &mut diagnostics);

    let stacks: Vec<Stack> = stacks.into_iter().map(|(stack, _, _)| stack).collect();
    let graph = StackGraph::from_edges(
        stacks
            .iter()
            .map(|s| (s.name.as_str(), s.dependency_stacks().collect::<Vec<_>>())),
    );
    for cycle in graph.cycles() {
        let first = &stacks[graph.index(&cycle[0]).unwrap_or_default()];
        let path: Vec<&str> = cycle
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(cycle[0].as_str()))
            .collect();
        diagnostics.push(
            Diagnostic::new(
                format!("dependency cycle: {}", path.join(" -> ")),
                first.location.clone(),
            )
            .help(format!(
                "stacks on a cycle can never be applied in order; remove one of the `dependency` blocks between {}",
                cycle.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
            )),
        );
    }

    let Some(settings) = settings else {
        return Err(diagnostics.sorted());
    };
    for stage in &settings.stages {
        for stack in stage
            .credentials
            .apply
            .keys()
            .chain(stage.credentials.plan.keys())
        {
            if stack != "default"
                && !stacks.iter().any(|s| &s.name == stack)
                && !settled.has_name(stack)
            {
                diagnostics.push(
                    Diagnostic::new(
                        format!("stage `{}` assigns credentials to stack `{stack}`, which does not exist", stage.name),
                        stage.location.clone(),
                    )
                    .help("use a stack's name, or `default` for every stack without its own"),
                );
            }
        }
    }
    let mut stack_index = BTreeMap::new();
    for (i, stack) in stacks.iter().enumerate() {
        stack_index.entry(stack.name.clone()).or_insert(i);
    }
    diagnostics.into_result(Project {
        stateful_resources: settings.stateful_resources,
        advisor: settings.advisor,
        verify: settings.verify,
        pull_requests: settings.pull_requests,
        preview: settings.preview,
        schedules: settings.schedules,
        store_url: settings.store_url,
        artifacts_url: settings.artifacts_url,
        state: settings.state,
        credentials: settings.credentials,
        name: settings.name,
        engine: settings.engine,
        data_dir: settings.data_dir,
        execution: settings.execution,
        generate: settings.generate,
        stages: settings.stages,
        stacks,
        graph,
        stack_index,
        config_file: sources.config.clone(),
        env: env.clone(),
    })
}

/// A loaded stack, its stack.hcl, and what the checks across stacks need of that file.
type LoadedStack<'a> = (Stack, &'a SourceFile, StackFileFacts);

fn stack_file_path(dir: &str) -> PathBuf {
    if dir.is_empty() {
        PathBuf::from(super::STACK_FILE)
    } else {
        Path::new(dir).join(super::STACK_FILE)
    }
}

/// A known stack as the checks across stacks see a loaded one. Its inputs have no names,
/// so the check of input names against its variables (which did not change) is skipped.
fn known_stack(known: KnownStack, file: &SourceFile) -> LoadedStack<'_> {
    let facts = StackFileFacts {
        dependency_paths: Vec::new(),
        inputs: known
            .input_reads
            .into_iter()
            .map(|(dependency, output)| InputEntry {
                name: String::new(),
                key_span: None,
                references: vec![(Some(dependency), Some(output), None, true)],
            })
            .collect(),
    };
    let stack = Stack {
        name: known.name,
        dir: known.dir,
        team: None,
        capability: None,
        description: None,
        // Resolved again with the stacks loaded now.
        dependencies: known
            .dependencies
            .into_iter()
            .map(|d| Dependency {
                stack: String::new(),
                ..d
            })
            .collect(),
        inputs: Vec::new(),
        checks: Vec::new(),
        declarations: ModuleDeclarations {
            outputs: known.outputs,
            unreadable_files: known.unreadable_file.into_iter().collect(),
            ..ModuleDeclarations::default()
        },
        location: Location::at(&file.path, 1, 1),
    };
    (stack, file, facts)
}

/// What the checks across stacks need of a stack.hcl, kept instead of its parsed body (which
/// holds every span and piece of whitespace, many times the size of the text).
struct StackFileFacts {
    /// Each labelled `dependency` block's label and the span of its `path` value, in order.
    dependency_paths: Vec<(String, Option<Range<usize>>)>,
    /// Each entry of the `inputs` object (none when `inputs` is missing or not an object).
    inputs: Vec<InputEntry>,
}

/// One entry of a stack.hcl's `inputs` object.
struct InputEntry {
    /// The key as written (empty when it is an expression other than a string).
    name: String,
    key_span: Option<Range<usize>>,
    /// The `dependency` references in its value.
    references: Vec<Reference>,
}

impl StackFileFacts {
    fn read(body: &Body) -> Self {
        let dependency_paths = body
            .get_blocks("dependency")
            .filter_map(|block| {
                let label = block.labels.first()?;
                let span = block
                    .body
                    .get_attribute("path")
                    .and_then(|a| a.value.span());
                Some((label.as_str().to_owned(), span))
            })
            .collect();
        let inputs = match body.get_attribute("inputs").map(|a| &a.value) {
            Some(Expression::Object(object)) => object
                .iter()
                .map(|(key, value)| {
                    let name = match key {
                        ObjectKey::Ident(ident) => ident.as_str().to_owned(),
                        ObjectKey::Expression(e) => {
                            e.as_str().map(str::to_owned).unwrap_or_default()
                        }
                    };
                    let mut references = DependencyReferences::default();
                    references.visit_expr(value.expr());
                    InputEntry {
                        name,
                        key_span: key.span(),
                        references: references.found,
                    }
                })
                .collect(),
            _ => Vec::new(),
        };
        Self {
            dependency_paths,
            inputs,
        }
    }

    /// The span of the `path` of the first `dependency` block labelled `name`.
    fn dependency_path(&self, name: &str) -> Option<Range<usize>> {
        self.dependency_paths
            .iter()
            .find(|(label, _)| label == name)
            .and_then(|(_, span)| span.clone())
    }
}

struct Settings {
    schedules: Vec<super::schedule::Schedule>,
    stateful_resources: super::policy::StatefulResources,
    advisor: super::advisor::AdvisorConfig,
    verify: super::verify::VerifyConfig,
    pull_requests: super::pull_requests::PullRequestsConfig,
    preview: Option<super::pull_requests::PreviewConfig>,
    store_url: Option<String>,
    artifacts_url: Option<String>,
    state: StateConfig,
    credentials: Vec<Credentials>,
    name: String,
    engine: EngineKind,
    data_dir: PathBuf,
    execution: Execution,
    generate: Vec<Generate>,
    stages: Vec<Stage>,
}

fn parse(file: &SourceFile, diagnostics: &mut Diagnostics) -> Option<Body> {
    match hcl::edit::parser::parse_body(&file.text) {
        Ok(body) => Some(body),
        Err(error) => {
            let location = error.location();
            let mut diagnostic = Diagnostic::new(
                format!("invalid HCL: {}", error.message()),
                Location::at(&file.path, location.line(), location.column()),
            )
            .help("fix the syntax at the marked position; HCL blocks look like `name \"label\" { key = value }`");
            diagnostic.snippet = Some(error.line().to_owned());
            diagnostics.push(diagnostic);
            None
        }
    }
}

fn load_project_file(
    file: &SourceFile,
    env: &Env,
    diagnostics: &mut Diagnostics,
) -> Option<Settings> {
    let body = parse(file, diagnostics)?;
    let top = Checked::new(file, &body, &PROJECT_SCHEMA, diagnostics);

    let project_blocks: Vec<&Block> = top.blocks("project").collect();
    let Some(project_block) = project_blocks.first() else {
        diagnostics.push(
            Diagnostic::new("no `project` block", Location::at(&file.path, 1, 1)).help(
                "start slipway.hcl with `project { name = \"NAME\" engine = \"terraform\" }`",
            ),
        );
        return None;
    };
    for extra in &project_blocks[1..] {
        diagnostics.push(
            Diagnostic::at(file, extra.span(), "a second `project` block")
                .help("merge it into the first: a project has one `project` block"),
        );
    }
    let scope = Scope {
        project: "",
        ..Scope::default()
    };
    let project = Checked::new(file, &project_block.body, &PROJECT_BLOCK, diagnostics);
    let name = project
        .string("name", Some("block `project`"), &scope, env, diagnostics)
        .unwrap_or_default();
    let engine = match project
        .string("engine", None, &scope, env, diagnostics)
        .as_deref()
    {
        None | Some("terraform") => EngineKind::Terraform,
        Some("tofu" | "opentofu") => EngineKind::Tofu,
        Some(other) => {
            diagnostics.push(
                Diagnostic::at(
                    file,
                    project.attribute("engine").and_then(|a| a.value.span()),
                    format!("unknown engine `{other}`"),
                )
                .help("use `engine = \"terraform\"` or `engine = \"tofu\"`"),
            );
            EngineKind::Terraform
        }
    };
    let data_dir = project
        .string("data_dir", None, &scope, env, diagnostics)
        .map_or_else(|| PathBuf::from(DEFAULT_DATA_DIR), PathBuf::from);
    let defaults = Execution::default();
    let execution = Execution {
        parallelism: project
            .positive_integer("parallelism", &scope, env, diagnostics)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(defaults.parallelism),
        step_timeout: project
            .duration("step_timeout", &scope, env, diagnostics)
            .unwrap_or(defaults.step_timeout),
        interrupt_grace: project
            .duration("interrupt_grace", &scope, env, diagnostics)
            .unwrap_or(defaults.interrupt_grace),
        lock_timeout: project
            .duration("lock_timeout", &scope, env, diagnostics)
            .unwrap_or(defaults.lock_timeout),
    };
    let scope = Scope {
        project: &name,
        ..Scope::default()
    };

    let generate = load_generates(file, top.blocks("generate"), &scope, env, diagnostics);
    let advisor =
        super::advisor::load_advisor(file, top.blocks("advisor"), &scope, env, diagnostics);
    let stateful_resources = super::policy::load_stateful_resources(
        file,
        top.blocks("stateful_resources"),
        &scope,
        env,
        diagnostics,
    );

    let state_blocks: Vec<&Block> = top.blocks("state").collect();
    for extra in state_blocks.iter().skip(1) {
        diagnostics.push(
            Diagnostic::at(file, extra.span(), "a second `state` block")
                .help("a project has one state backend; merge the blocks"),
        );
    }
    let state = state_blocks
        .first()
        .map(|block| load_state(file, block, &scope, env, diagnostics))
        .unwrap_or_default();
    let artifacts_url = top.blocks("artifacts").next().and_then(|block| {
        let body = Checked::new(file, &block.body, &ARTIFACTS_BLOCK, diagnostics);
        body.string("url", Some("block `artifacts`"), &scope, env, diagnostics)
            // `url = env("X", "")` with X unset: the default store.
            .filter(|url| !url.is_empty())
    });
    let store_url = top.blocks("store").next().and_then(|block| {
        let body = Checked::new(file, &block.body, &STORE_BLOCK, diagnostics);
        body.string("url", Some("block `store`"), &scope, env, diagnostics)
            .filter(|url| !url.is_empty())
    });
    let mut credentials: Vec<Credentials> = Vec::new();
    for block in top.blocks("credentials") {
        if let Some(set) = load_credentials(file, block, &scope, env, diagnostics) {
            if credentials.iter().any(|c| c.name == set.name) {
                diagnostics.push(
                    Diagnostic::at(
                        file,
                        block.span(),
                        format!("credentials `{}` are defined twice", set.name),
                    )
                    .help("give each credentials block its own name"),
                );
                continue;
            }
            credentials.push(set);
        }
    }

    let mut stages: Vec<Stage> = Vec::new();
    for block in top.blocks("stage") {
        let Some(label) = block.labels.first() else {
            continue;
        };
        let stage_name = label.as_str().to_owned();
        if let Some(first) = stages.iter().find(|s| s.name == stage_name) {
            diagnostics.push(
                Diagnostic::at(file, block.span(), format!("stage `{stage_name}` is defined twice"))
                    .help(format!(
                        "stage names are unique; the first `{stage_name}` is at {}; rename or remove this one",
                        first.location
                    )),
            );
            continue;
        }
        if let Err(problem) = check_name(&stage_name) {
            diagnostics.push(
                Diagnostic::at(
                    file,
                    label.span(),
                    format!("stage name `{stage_name}` {problem}"),
                )
                .help("use letters, digits, `-` and `_`, starting with a letter"),
            );
        }
        let body = Checked::new(file, &block.body, &STAGE_BLOCK, diagnostics);
        let stage_scope = Scope {
            project: &name,
            stage: Some(&stage_name),
            instance: Some(&stage_name),
            ..Scope::default()
        };
        let approval = body
            .bool("approval", &stage_scope, env, diagnostics)
            .unwrap_or(false);
        let four_eyes = body
            .bool("four_eyes", &stage_scope, env, diagnostics)
            .unwrap_or(false);
        let variables =
            body.attribute("variables").and_then(
                |attribute| match super::schema::evaluate_attribute(
                    file,
                    attribute,
                    &stage_scope,
                    env,
                    diagnostics,
                ) {
                    Some(hcl::Value::Object(_)) => Some(attribute.value.clone().into()),
                    Some(other) => {
                        diagnostics.push(
                            Diagnostic::at(
                                file,
                                attribute.value.span(),
                                format!(
                                    "`variables` must be an object, found {}",
                                    super::schema::kind(&other)
                                ),
                            )
                            .help("write `variables = { env = \"dev\" }`"),
                        );
                        None
                    }
                    None => None,
                },
            );
        let generate = load_generates(
            file,
            body.blocks("generate"),
            &stage_scope,
            env,
            diagnostics,
        );
        let mut stage_credentials = StageCredentials::default();
        for (key, target) in [
            ("credentials", &mut stage_credentials.apply),
            ("plan_credentials", &mut stage_credentials.plan),
        ] {
            let Some(attribute) = body.attribute(key) else {
                continue;
            };
            let Some(map) = string_map(file, attribute, &stage_scope, env, diagnostics) else {
                continue;
            };
            for (stack, name) in &map {
                if !credentials.iter().any(|c| &c.name == name) {
                    let known: Vec<&str> = credentials.iter().map(|c| c.name.as_str()).collect();
                    diagnostics.push(
                        Diagnostic::at(
                            file,
                            attribute.value.span(),
                            format!(
                                "`{key}.{stack}` names credentials `{name}`, which are not defined"
                            ),
                        )
                        .help(if known.is_empty() {
                            format!(
                                "define them: `credentials \"{name}\" {{ from_env = {{ ... }} }}`"
                            )
                        } else {
                            format!("defined credentials: {}", known.join(", "))
                        }),
                    );
                }
            }
            *target = map;
        }
        let mut worker_labels = super::access::worker_labels(&body, &stage_scope, env, diagnostics);
        // Credentials that ask for labels ask them of every stage that uses them.
        let used: BTreeSet<&String> = stage_credentials
            .apply
            .values()
            .chain(stage_credentials.plan.values())
            .collect();
        for set in credentials.iter().filter(|c| used.contains(&c.name)) {
            for (name, value) in &set.worker_labels.0 {
                match worker_labels.0.get(name) {
                    Some(own) if own != value => diagnostics.push(
                        Diagnostic::at(
                            file,
                            block.span(),
                            format!(
                                "stage `{stage_name}` asks for worker label `{name}={own}`, but the credentials `{}` it uses ask for `{name}={value}`",
                                set.name
                            ),
                        )
                        .help(format!(
                            "no worker carries both: make them agree (the credentials are defined at {})",
                            set.location
                        )),
                    ),
                    _ => {
                        worker_labels.0.insert(name.clone(), value.clone());
                    }
                }
            }
        }
        let policy = super::policy::load_stage_policy(
            file,
            body.blocks("policy"),
            &stage_scope,
            env,
            diagnostics,
        );
        stages.push(Stage {
            name: stage_name,
            policy,
            credentials: stage_credentials,
            approval,
            four_eyes,
            worker_labels,
            generate,
            location: file.location(block.span()),
            variables,
        });
    }
    if stages.is_empty() {
        diagnostics.push(
            Diagnostic::new("no stage is defined", Location::at(&file.path, 1, 1)).help(
                "add at least one stage, in pipeline order: `stage \"dev\" { variables = { env = \"dev\" } }`",
            ),
        );
    }
    let stage_names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
    let verify = super::verify::load_verify(
        file,
        top.blocks("verify"),
        &stage_names,
        &scope,
        env,
        diagnostics,
    );
    let pull_requests = super::pull_requests::load_pull_requests(
        file,
        top.blocks("pull_requests"),
        &stage_names,
        &scope,
        env,
        diagnostics,
    );
    let preview = super::pull_requests::load_preview(
        file,
        top.blocks("preview"),
        &stage_names,
        &scope,
        env,
        diagnostics,
    );
    let schedules = super::schedule::load_schedules(
        file,
        top.blocks("schedule"),
        &stage_names,
        &scope,
        env,
        diagnostics,
    );
    Some(Settings {
        schedules,
        verify,
        pull_requests,
        preview,
        advisor,
        stateful_resources,
        store_url,
        artifacts_url,
        state,
        credentials,
        name,
        engine,
        data_dir,
        execution,
        generate,
        stages,
    })
}

fn load_generates<'a>(
    file: &SourceFile,
    blocks: impl Iterator<Item = &'a Block>,
    scope: &Scope<'_>,
    env: &Env,
    diagnostics: &mut Diagnostics,
) -> Vec<Generate> {
    let mut generates: Vec<Generate> = Vec::new();
    for block in blocks {
        let Some(label) = block.labels.first() else {
            continue;
        };
        let name = label.as_str().to_owned();
        if generates.iter().any(|g| g.name == name) {
            diagnostics.push(
                Diagnostic::at(
                    file,
                    block.span(),
                    format!("`generate \"{name}\"` is defined twice here"),
                )
                .help("give each generated file its own name"),
            );
            continue;
        }
        let body = Checked::new(file, &block.body, &GENERATE_BLOCK, diagnostics);
        let what = format!("block `generate \"{name}\"`");
        let path = body.string("path", Some(&what), scope, env, diagnostics);
        if let (Some(path), Some(attribute)) = (&path, body.attribute("path")) {
            if let Err(problem) = check_generated_path(path) {
                diagnostics.push(
                    Diagnostic::at(
                        file,
                        attribute.value.span(),
                        format!("generate path `{path}` {problem}"),
                    )
                    .help("give a file name relative to the stack folder, such as `provider.tf`"),
                );
            }
        }
        let contents = match body.attribute("contents") {
            Some(attribute) => {
                // Validate the expression now; unset environment variables are only an error
                // when the file is generated for a run.
                let lenient = Scope {
                    missing_env_is_empty: true,
                    ..scope.clone()
                };
                super::schema::evaluate_attribute(file, attribute, &lenient, env, diagnostics);
                Some(attribute.value.clone().into())
            }
            None => {
                diagnostics.push(
                    Diagnostic::at(
                        file,
                        block.span(),
                        format!("{what} needs attribute `contents`"),
                    )
                    .help("add `contents = <<-EOT ... EOT` with the file's text"),
                );
                None
            }
        };
        if let (Some(path), Some(contents)) = (path, contents) {
            generates.push(Generate {
                name,
                path,
                location: file.location(block.span()),
                contents,
            });
        }
    }
    generates
}

fn check_generated_path(path: &str) -> Result<(), &'static str> {
    let p = Path::new(path);
    if path.is_empty() {
        return Err("is empty");
    }
    if p.is_absolute() {
        return Err("is absolute");
    }
    if p.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err("leaves the stack folder");
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), &'static str> {
    let mut chars = name.chars();
    match chars.next() {
        None => Err("is empty"),
        Some(c) if !c.is_ascii_alphabetic() => Err("must start with a letter"),
        _ if !chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') => {
            Err("may hold only letters, digits, `-` and `_`")
        }
        _ => Ok(()),
    }
}

fn dir_string(dir: &Path) -> String {
    dir.components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn load_stack(
    sources: &StackSources,
    project: &str,
    env: &Env,
    diagnostics: &mut Diagnostics,
) -> Option<(Stack, StackFileFacts)> {
    let file = &sources.config;
    let body = parse(file, diagnostics)?;
    let top = Checked::new(file, &body, &STACK_FILE_SCHEMA, diagnostics);
    let scope = Scope {
        project,
        ..Scope::default()
    };
    let dir = dir_string(&sources.dir);
    let default_name = dir
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or(project)
        .to_owned();

    let stack_blocks: Vec<&Block> = top.blocks("stack").collect();
    for extra in stack_blocks.iter().skip(1) {
        diagnostics.push(
            Diagnostic::at(file, extra.span(), "a second `stack` block")
                .help("merge it into the first: a stack.hcl has one `stack` block"),
        );
    }
    let (mut name, mut team, mut capability, mut description) = (None, None, None, None);
    if let Some(block) = stack_blocks.first() {
        let stack = Checked::new(file, &block.body, &STACK_BLOCK, diagnostics);
        name = stack.string("name", None, &scope, env, diagnostics);
        team = stack.string("team", None, &scope, env, diagnostics);
        capability = stack.string("capability", None, &scope, env, diagnostics);
        description = stack.string("description", None, &scope, env, diagnostics);
        if let (Some(n), Some(attribute)) = (&name, stack.attribute("name")) {
            if let Err(problem) = check_name(n) {
                diagnostics.push(
                    Diagnostic::at(
                        file,
                        attribute.value.span(),
                        format!("stack name `{n}` {problem}"),
                    )
                    .help("use letters, digits, `-` and `_`, starting with a letter"),
                );
            }
        }
    }

    let mut dependencies: Vec<Dependency> = Vec::new();
    for block in top.blocks("dependency") {
        let Some(label) = block.labels.first() else {
            continue;
        };
        let dep_name = label.as_str().to_owned();
        let body = Checked::new(file, &block.body, &DEPENDENCY_BLOCK, diagnostics);
        let what = format!("block `dependency \"{dep_name}\"`");
        if dependencies.iter().any(|d| d.name == dep_name) {
            diagnostics.push(
                Diagnostic::at(
                    file,
                    block.span(),
                    format!("dependency `{dep_name}` is declared twice"),
                )
                .help("keep one `dependency` block per name"),
            );
            continue;
        }
        let Some(path) = body.string("path", Some(&what), &scope, env, diagnostics) else {
            continue;
        };
        dependencies.push(Dependency {
            name: dep_name,
            stack: String::new(),
            path,
        });
    }

    let inputs = match top.attribute("inputs") {
        None => Vec::new(),
        Some(attribute) => match &attribute.value {
            Expression::Object(object) => object
                .iter()
                .filter_map(|(key, value)| {
                    let name = match key {
                        hcl::edit::expr::ObjectKey::Ident(ident) => ident.as_str().to_owned(),
                        hcl::edit::expr::ObjectKey::Expression(Expression::String(s)) => {
                            s.value().to_string()
                        }
                        hcl::edit::expr::ObjectKey::Expression(other) => {
                            diagnostics.push(
                                Diagnostic::at(file, span_of(other), "input names must be plain names")
                                    .help("write `inputs = { vpc_id = dependency.network.outputs.vpc_id }`"),
                            );
                            return None;
                        }
                    };
                    let expr = value.expr();
                    let mut references = DependencyReferences::default();
                    references.visit_expr(expr);
                    let reads = references
                        .found
                        .into_iter()
                        .filter_map(|(dep, output, _, _)| Some((dep?, output?)))
                        .collect();
                    Some(Input {
                        name,
                        reads,
                        location: file.location(key.span()),
                        expr: expr.clone().into(),
                    })
                })
                .collect(),
            other => {
                diagnostics.push(
                    Diagnostic::at(file, span_of(other), "`inputs` must be an object")
                        .help("write `inputs = { NAME = dependency.DEP.outputs.OUTPUT }`"),
                );
                Vec::new()
            }
        },
    };

    let checks = super::check::load_checks(file, top.blocks("check"), &scope, env, diagnostics);
    let declarations = ModuleDeclarations::read(&sources.terraform);
    let facts = StackFileFacts::read(&body);
    Some((
        Stack {
            name: name.unwrap_or(default_name),
            dir,
            team,
            capability,
            description,
            dependencies,
            inputs,
            checks,
            declarations,
            location: Location::at(&file.path, 1, 1),
        },
        facts,
    ))
}

fn check_unique_names(
    stacks: &[LoadedStack<'_>],
    settled: &dyn Settled,
    diagnostics: &mut Diagnostics,
) {
    let mut seen: BTreeMap<&str, &Stack> = BTreeMap::new();
    for (stack, _, _) in stacks {
        if settled.has_name(&stack.name) {
            diagnostics.push(
                Diagnostic::new(
                    format!(
                        "two stacks are named `{}`: one unchanged and `{}`",
                        stack.name, stack.dir
                    ),
                    stack.location.clone(),
                )
                .help(format!(
                    "a stack is named after its folder; give one of them its own name with `stack {{ name = \"...\" }}` in {}",
                    stack.location.path.display()
                )),
            );
        }
        if let Some(first) = seen.get(stack.name.as_str()) {
            diagnostics.push(
                Diagnostic::new(
                    format!(
                        "two stacks are named `{}`: `{}` and `{}`",
                        stack.name, first.dir, stack.dir
                    ),
                    stack.location.clone(),
                )
                .help(format!(
                    "a stack is named after its folder; give one of them its own name with `stack {{ name = \"...\" }}` in {}",
                    stack.location.path.display()
                )),
            );
        } else {
            seen.insert(&stack.name, stack);
        }
    }
}

fn resolve_dependencies(
    stacks: &mut [LoadedStack<'_>],
    settled: &dyn Settled,
    unreadable: &BTreeSet<String>,
    diagnostics: &mut Diagnostics,
) {
    let by_dir: BTreeMap<String, String> = stacks
        .iter()
        .map(|(s, _, _)| (s.dir.clone(), s.name.clone()))
        .collect();
    for (stack, file, facts) in stacks.iter_mut() {
        for dependency in &mut stack.dependencies {
            let span = facts.dependency_path(&dependency.name);
            let target = if Path::new(&dependency.path).is_absolute() {
                None
            } else {
                // A dependency path joins a stack folder as a module source does.
                join_module_source(&stack.dir, &dependency.path)
            };
            let found = target.as_ref().and_then(|t| {
                by_dir
                    .get(t)
                    .map(String::as_str)
                    .or_else(|| settled.name_at(t))
            });
            match found {
                Some(name) if *name == stack.name => diagnostics.push(
                    Diagnostic::at(
                        file,
                        span,
                        format!("stack `{}` depends on itself", stack.name),
                    )
                    .help("a dependency's path must point at another stack's folder"),
                ),
                Some(name) => dependency.stack = name.to_owned(),
                None if target.as_ref().is_some_and(|t| unreadable.contains(t)) => {}
                None => {
                    let shown = target.unwrap_or_else(|| dependency.path.clone());
                    let basename = |path: &str| path.rsplit('/').next().unwrap_or(path).to_owned();
                    let suggestion = by_dir
                        .keys()
                        .map(|dir| (strsim::jaro_winkler(&basename(&shown), &basename(dir)), dir))
                        .filter(|(score, _)| *score > 0.8)
                        .max_by(|a, b| a.0.total_cmp(&b.0));
                    let help = match suggestion {
                        Some((_, dir)) => format!(
                            "did you mean the stack at `{dir}`? paths are relative to this stack's folder"
                        ),
                        None => format!(
                            "point `path` at a folder that holds a stack.hcl (relative to this stack's folder); stacks are at: {}",
                            by_dir
                                .keys()
                                .map(String::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    diagnostics.push(
                        Diagnostic::at(
                            file,
                            span,
                            format!(
                                "dependency `{}` points at `{shown}`, where there is no stack",
                                dependency.name
                            ),
                        )
                        .help(help),
                    );
                }
            }
        }
        // Unresolved dependencies stay out of the graph; they were reported above.
        stack.dependencies.retain(|d| !d.stack.is_empty());
    }
}

/// Collects `dependency.NAME.outputs.OUTPUT` references with their spans.
#[derive(Default)]
struct DependencyReferences {
    found: Vec<Reference>,
}

/// `(dependency, output, span, whether the middle word was `outputs`)`.
type Reference = (
    Option<String>,
    Option<String>,
    Option<std::ops::Range<usize>>,
    bool,
);

impl Visit for DependencyReferences {
    fn visit_traversal(&mut self, node: &hcl::edit::expr::Traversal) {
        if let Expression::Variable(root) = &node.expr {
            if root.as_str() == "dependency" {
                let names: Vec<Option<&str>> = node
                    .operators
                    .iter()
                    .map(|op| match op.value() {
                        TraversalOperator::GetAttr(ident) => Some(ident.as_str()),
                        _ => None,
                    })
                    .collect();
                let dep = names.first().copied().flatten().map(str::to_owned);
                let outputs_word = names.get(1).copied().flatten() == Some("outputs");
                let output = names.get(2).copied().flatten().map(str::to_owned);
                self.found.push((dep, output, node.span(), outputs_word));
                // The root was handled here; only index expressions can hold more references.
                for operator in &node.operators {
                    visit::visit_traversal_operator(self, operator.value());
                }
                return;
            }
        }
        visit::visit_traversal(self, node);
    }

    fn visit_expr(&mut self, node: &Expression) {
        if let Expression::Variable(variable) = node {
            if variable.as_str() == "dependency" {
                self.found.push((None, None, node.span(), false));
            }
        }
        visit::visit_expr(self, node);
    }
}

fn check_inputs(stacks: &[LoadedStack<'_>], settled: &dyn Settled, diagnostics: &mut Diagnostics) {
    let by_name: BTreeMap<&str, &Stack> = stacks
        .iter()
        .map(|(s, _, _)| (s.name.as_str(), s))
        .collect();
    for (stack, file, facts) in stacks {
        if facts.inputs.is_empty() {
            continue;
        }
        let declared: BTreeSet<&str> = stack.dependencies.iter().map(|d| d.name.as_str()).collect();
        for entry in &facts.inputs {
            let input_name = entry.name.as_str();
            if stack.declarations.is_complete()
                && !input_name.is_empty()
                && !stack.declarations.variables.contains(input_name)
            {
                diagnostics.push(
                    Diagnostic::at(
                        file,
                        entry.key_span.clone(),
                        format!("input `{input_name}` is not a variable of stack `{}`", stack.name),
                    )
                    .help(format!(
                        "declare `variable \"{input_name}\" {{}}` in the stack's .tf files, or remove the input"
                    )),
                );
            }
            for (dep, output, span, outputs_word) in entry.references.iter().cloned() {
                let Some(dep) = dep else {
                    diagnostics.push(
                        Diagnostic::at(
                            file,
                            span,
                            "`dependency` must name a dependency and an output",
                        )
                        .help("write `dependency.NAME.outputs.OUTPUT`"),
                    );
                    continue;
                };
                if !declared.contains(dep.as_str()) {
                    let help = if declared.is_empty() {
                        format!(
                            "declare it first: `dependency \"{dep}\" {{ path = \"../{dep}\" }}`"
                        )
                    } else {
                        format!(
                            "declare `dependency \"{dep}\"`, or use one of: {}",
                            declared.iter().copied().collect::<Vec<_>>().join(", ")
                        )
                    };
                    diagnostics.push(
                        Diagnostic::at(
                            file,
                            span,
                            format!("input `{input_name}` references unknown dependency `{dep}`"),
                        )
                        .help(help),
                    );
                    continue;
                }
                if !outputs_word || output.is_none() {
                    diagnostics.push(
                        Diagnostic::at(
                            file,
                            span,
                            format!("input `{input_name}` must read an output of `{dep}`"),
                        )
                        .help(format!("write `dependency.{dep}.outputs.OUTPUT`")),
                    );
                    continue;
                }
                let output = output.unwrap_or_default();
                let Some(target) = stack.dependencies.iter().find(|d| d.name == dep) else {
                    continue;
                };
                let target = target.stack.as_str();
                // The target's outputs when they are all known.
                let settled_outputs;
                let outputs = match by_name.get(target) {
                    Some(loaded) if loaded.declarations.is_complete() => {
                        &loaded.declarations.outputs
                    }
                    Some(_) => continue,
                    None => match settled.outputs(target) {
                        Some(outputs) => {
                            settled_outputs = outputs;
                            &settled_outputs
                        }
                        None => continue,
                    },
                };
                if !outputs.contains_key(&output) {
                    let known: Vec<&str> = outputs.keys().map(String::as_str).collect();
                    diagnostics.push(
                        Diagnostic::at(
                            file,
                            span,
                            format!(
                                "input `{input_name}` reads output `{output}`, which stack `{target}` does not declare"
                            ),
                        )
                        .help(if known.is_empty() {
                            format!("stack `{target}` declares no outputs; add `output \"{output}\" {{ value = ... }}` to it")
                        } else {
                            format!("stack `{target}` declares: {}", known.join(", "))
                        }),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_lexically() {
        assert_eq!(
            join_module_source("stacks/app", "../network").as_deref(),
            Some("stacks/network")
        );
        assert_eq!(join_module_source("app", "../../x"), None);
        assert_eq!(join_module_source("", "./net").as_deref(), Some("net"));
    }

    #[test]
    fn stacks_are_found_by_name_also_after_the_list_changed() {
        let stack = |dir: &str, name: &str| StackSources {
            dir: dir.into(),
            config: SourceFile::new(
                format!("{dir}/stack.hcl"),
                format!("stack {{\n  name = \"{name}\"\n}}\n"),
            ),
            terraform: vec![],
        };
        let sources = ProjectSources {
            config: SourceFile::new(
                PROJECT_FILE,
                "project {\n  name = \"p\"\n}\nstage \"dev\" {}\n",
            ),
            // Named against the order of their folders, so names and positions differ.
            stacks: vec![stack("a", "zeta"), stack("b", "alpha"), stack("c", "mid")],
        };
        let mut project = load(&sources, &Env::new()).expect("loads");
        for name in ["zeta", "alpha", "mid"] {
            assert_eq!(project.stack(name).map(|s| s.name.as_str()), Some(name));
        }
        assert!(project.stack("nope").is_none());
        // The list is public: a lookup after it changed still finds what it holds.
        project.stacks.remove(0);
        assert!(project.stack("zeta").is_none());
        assert_eq!(project.stack("alpha").map(|s| s.dir.as_str()), Some("b"));
        assert_eq!(project.stack("mid").map(|s| s.dir.as_str()), Some("c"));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("dev").is_ok());
        assert!(check_name("prod-eu_1").is_ok());
        assert!(check_name("1dev").is_err());
        assert!(check_name("de v").is_err());
    }
}
