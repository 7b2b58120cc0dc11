//! The change index: what change detection needs to know about the project at one commit
//! (its stacks with their dependencies and local module folders, its stages, where its
//! record is), kept in the repository's git folder so `slipway changed` does not read and
//! load every stack at every run.
//!
//! The index names the commit it describes and the blob id of every file it was built from.
//! Asked about the same commit, it answers without reading a tree. Asked about another
//! commit, `git diff --raw` from the indexed commit names the project files that changed:
//! only the stacks and module folders holding them are read again (by blob id), and the
//! other stacks take part in validation as stubs carrying what the cross-stack checks can
//! still find wrong (name, folder, the dependencies pointing into a changed folder), with
//! cycles checked on the whole graph. Any doubt (no index, a corrupt or foreign one, `slipway.hcl`
//! changed, environment variables the configuration reads changed, an update that does not
//! validate) falls back to the full read, which is also the only path that reports
//! configuration errors: the answer is always the one a full read gives.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use slipway_core::SourceFile;
use slipway_core::changes::HeadStack;
use slipway_core::config::{
    self, Env, PROJECT_FILE, Project, ProjectSources, STACK_FILE, StackSources,
};
use slipway_core::graph::StackGraph;
use slipway_core::module_files::join_module_source;
use slipway_core::module_files::{ModulePart, StackFiles, WholeFolder};
use slipway_core::terraform::{FileRead, ModuleDeclarations, is_terraform_file};
use slipway_git::{BlobChange, BlobReader, GitError, Repo};

use crate::project::ConfigErrors;

/// Bumped whenever the stored shape or its meaning changes; another format is ignored.
const FORMAT: u32 = 4;
/// What every run reads: the stacks and the graph at the indexed commit, in a compact
/// binary encoding (postcard), since reading it is most of a warm run's own work.
const HEAD_FILE: &str = "changes-v4.head";
/// What only bringing the index forward reads: what each stack and module folder was
/// loaded from.
const SOURCES_FILE: &str = "changes-v4.sources.json";

/// The project at one commit, as change detection sees it and as it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ChangeIndex {
    /// The project folder inside the repository (`""`, or ending in `/`).
    prefix: String,
    /// The commit described.
    commit: String,
    project: ProjectSummary,
    /// The environment variables the configuration reads with `env()`, with their values
    /// when the index was built: stack names and paths may depend on them.
    env: BTreeMap<String, Option<String>>,
    /// In folder order, as the loader returns them.
    stacks: Vec<IndexedStack>,
    /// What the code of each folder (other than a stack's) that some stack uses calls and
    /// reads.
    modules: BTreeMap<String, ModuleCode>,
    /// Every project file at the commit (`slipway.hcl`, `stack.hcl`, `.tf`, `.tf.json`)
    /// with its blob id.
    files: BTreeMap<String, String>,
}

/// The project settings change detection uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectSummary {
    pub name: String,
    /// Stage names in pipeline order.
    pub stages: Vec<String>,
    pub store_url: Option<String>,
    pub data_dir: PathBuf,
}

/// One stack at the indexed commit.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IndexedStack {
    name: String,
    dir: String,
    /// Whether `stack.hcl` sets the name (otherwise it is the folder's).
    explicit_name: bool,
    dependencies: Vec<IndexedDependency>,
    /// What the stack's own Terraform files call and read.
    module_code: ModuleCode,
    /// The files that make up the stack's code.
    files: StackFiles,
    /// Environment variables its `stack.hcl` reads.
    env: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct IndexedDependency {
    name: String,
    path: String,
    /// The depended-on stack's name.
    stack: String,
}

/// [`HEAD_FILE`]: kept small, since parsing it is most of a warm run's own time.
#[derive(Debug, Serialize, Deserialize)]
struct HeadFile {
    format: u32,
    prefix: String,
    commit: String,
    env: BTreeMap<String, Option<String>>,
    project: ProjectSummary,
    /// `(name, folder, dependencies by stack name, the files of its code)`; the files are
    /// left out (None) for a stack whose code is its own folder alone, most stacks, which
    /// keeps the file about a third as big.
    stacks: Vec<(String, String, Vec<String>, Option<StoredFiles>)>,
}

/// The files of a stack's code inside the binary head file. They are stored as JSON text:
/// their enums are tagged by a field, which a binary encoding without field names cannot
/// read back, and only stacks that call modules or read files outside their folder have
/// them.
#[derive(Debug)]
struct StoredFiles(StackFiles);

impl Serialize for StoredFiles {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let json = serde_json::to_string(&self.0).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&json)
    }
}

impl<'de> Deserialize<'de> for StoredFiles {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = String::deserialize(deserializer)?;
        serde_json::from_str(&json)
            .map(StoredFiles)
            .map_err(serde::de::Error::custom)
    }
}

/// [`SOURCES_FILE`]: its stacks run parallel to the head file's.
#[derive(Debug, Serialize, Deserialize)]
struct SourcesFile {
    format: u32,
    commit: String,
    stacks: Vec<StackSource>,
    modules: BTreeMap<String, ModuleCode>,
    files: BTreeMap<String, String>,
}

/// What one folder's Terraform files call (local module sources) and read, as far as the
/// rule in `slipway_core::module_files` needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct ModuleCode {
    sources: BTreeSet<String>,
    reads: BTreeSet<FileRead>,
    /// A file that did not parse, if any.
    unreadable: Option<String>,
}

impl From<&ModuleDeclarations> for ModuleCode {
    fn from(declarations: &ModuleDeclarations) -> Self {
        Self {
            sources: declarations.local_module_sources.clone(),
            reads: declarations.file_reads.clone(),
            unreadable: declarations.unreadable_files.first().cloned(),
        }
    }
}

impl ModuleCode {
    fn declarations(&self) -> ModuleDeclarations {
        ModuleDeclarations {
            local_module_sources: self.sources.clone(),
            file_reads: self.reads.clone(),
            unreadable_files: self.unreadable.iter().cloned().collect(),
            ..ModuleDeclarations::default()
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct StackSource {
    explicit_name: bool,
    /// `(name, path)` of each dependency block.
    dependencies: Vec<(String, String)>,
    module_code: ModuleCode,
    env: BTreeSet<String>,
}

/// How the index answered, for tests and measurements (`SLIPWAY_DEBUG_INDEX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The index described the commit.
    Warm,
    /// The index was brought forward from another commit.
    Updated,
    /// Everything was read.
    Cold,
}

/// The project at a commit, ready for change detection.
#[derive(Debug)]
pub struct Snapshot {
    pub project: ProjectSummary,
    pub stacks: Vec<HeadStack>,
    /// The stack graph, built as the loader builds it.
    pub graph: StackGraph,
}

impl From<HeadFile> for Snapshot {
    fn from(head: HeadFile) -> Self {
        let graph =
            StackGraph::from_edges(head.stacks.iter().map(|(name, _, deps, _)| {
                (name.as_str(), deps.iter().map(String::as_str).collect())
            }));
        let stacks = head
            .stacks
            .into_iter()
            .map(|(name, dir, _, files)| {
                let files = files.map_or_else(|| own_folder_only(&dir), |f| f.0);
                HeadStack { name, dir, files }
            })
            .collect();
        Self {
            project: head.project,
            stacks,
            graph,
        }
    }
}

impl Snapshot {
    /// What `HeadFile::into` gives for the head file of `index`.
    fn of(index: &ChangeIndex) -> Self {
        let graph = StackGraph::from_edges(index.stacks.iter().map(|s| {
            let deps = s.dependencies.iter().map(|d| d.stack.as_str()).collect();
            (s.name.as_str(), deps)
        }));
        let stacks = index
            .stacks
            .iter()
            .map(|s| HeadStack {
                name: s.name.clone(),
                dir: s.dir.clone(),
                files: s.files.clone(),
            })
            .collect();
        Self {
            project: index.project.clone(),
            stacks,
            graph,
        }
    }
}

impl ChangeIndex {
    fn split(&self) -> (HeadFile, SourcesFile) {
        let head = HeadFile {
            format: FORMAT,
            prefix: self.prefix.clone(),
            commit: self.commit.clone(),
            env: self.env.clone(),
            project: self.project.clone(),
            stacks: self
                .stacks
                .iter()
                .map(|s| {
                    let deps = s.dependencies.iter().map(|d| d.stack.clone()).collect();
                    let files =
                        (s.files != own_folder_only(&s.dir)).then(|| StoredFiles(s.files.clone()));
                    (s.name.clone(), s.dir.clone(), deps, files)
                })
                .collect(),
        };
        let sources = SourcesFile {
            format: FORMAT,
            commit: self.commit.clone(),
            stacks: self
                .stacks
                .iter()
                .map(|s| StackSource {
                    explicit_name: s.explicit_name,
                    dependencies: s
                        .dependencies
                        .iter()
                        .map(|d| (d.name.clone(), d.path.clone()))
                        .collect(),
                    module_code: s.module_code.clone(),
                    env: s.env.clone(),
                })
                .collect(),
            modules: self.modules.clone(),
            files: self.files.clone(),
        };
        (head, sources)
    }

    /// Both files of one index; None when they do not describe the same commit.
    fn join(head: HeadFile, sources: SourcesFile) -> Option<Self> {
        if sources.format != FORMAT
            || sources.commit != head.commit
            || sources.stacks.len() != head.stacks.len()
        {
            return None;
        }
        let mut stacks = Vec::with_capacity(head.stacks.len());
        for ((name, dir, deps, files), source) in head.stacks.into_iter().zip(sources.stacks) {
            if deps.len() != source.dependencies.len() {
                return None;
            }
            let dependencies = source
                .dependencies
                .into_iter()
                .zip(deps)
                .map(|((name, path), stack)| IndexedDependency { name, path, stack })
                .collect();
            let files = files.map_or_else(|| own_folder_only(&dir), |f| f.0);
            stacks.push(IndexedStack {
                name,
                dir,
                explicit_name: source.explicit_name,
                dependencies,
                module_code: source.module_code,
                files,
                env: source.env,
            });
        }
        Some(Self {
            prefix: head.prefix,
            commit: head.commit,
            project: head.project,
            env: head.env,
            stacks,
            modules: sources.modules,
            files: sources.files,
        })
    }
}

/// The folder of `repo`'s index: in its git folder, shared by its worktrees, never
/// committed and never in a working tree.
pub fn dir(repo: &Repo) -> PathBuf {
    repo.common_dir().join("slipway")
}

/// The project at `commit` (`rev` names it in messages), from the index when it can be,
/// and the index brought up to date.
pub fn project_at(repo: &Repo, commit: &str, rev: &str, env: &Env) -> Result<(Snapshot, Source)> {
    let dir = dir(repo);
    let stored = read(&dir.join(HEAD_FILE), |b| {
        postcard::from_bytes::<HeadFile>(b)
    })
    .filter(|head| {
        head.format == FORMAT && head.prefix == repo.prefix() && env_matches(&head.env, env)
    });
    if let Some(head) = stored {
        if head.commit == commit {
            return Ok((head.into(), Source::Warm));
        }
        let previous = read(&dir.join(SOURCES_FILE), |b| {
            serde_json::from_slice::<SourcesFile>(b)
        })
        .and_then(|sources| ChangeIndex::join(head, sources));
        if let Some(index) = previous.and_then(|p| update(repo, p, commit, env)) {
            return Ok((save(&dir, &index), Source::Updated));
        }
    }
    let index = full_read(repo, commit, rev, env)?;
    Ok((save(&dir, &index), Source::Cold))
}

/// A stored file, or None when there is none or it cannot be read: a damaged index is
/// rebuilt, never an error.
fn read<T, E>(file: &Path, decode: impl for<'a> FnOnce(&'a [u8]) -> Result<T, E>) -> Option<T> {
    let bytes = std::fs::read(file).ok()?;
    decode(&bytes).ok()
}

/// Writes both files, each through a temporary file and a rename so a reader never sees
/// half of one; a reader that sees one new and one old file finds their commits differ.
/// Failing to write only costs the next run a full read.
///
/// The files are written on a second thread while the snapshot is built from the index.
fn save(dir: &Path, index: &ChangeIndex) -> Snapshot {
    std::thread::scope(|scope| {
        if !index.env.contains_key(OPAQUE_ENV) {
            scope.spawn(|| {
                let (head, sources) = index.split();
                if std::fs::create_dir_all(dir).is_ok() {
                    let _ = serde_json::to_vec(&sources)
                        .map_err(std::io::Error::from)
                        .and_then(|bytes| write_file(&dir.join(SOURCES_FILE), bytes))
                        .and_then(|()| postcard::to_stdvec(&head).map_err(std::io::Error::other))
                        .and_then(|bytes| write_file(&dir.join(HEAD_FILE), bytes));
                }
            });
        }
        Snapshot::of(index)
    })
}

fn write_file(file: &Path, bytes: Vec<u8>) -> std::io::Result<()> {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    let temp = file.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::write(&temp, bytes).and_then(|()| std::fs::rename(&temp, file));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Marks an index whose configuration calls `env()` with a name slipway cannot read: it is
/// never saved, since no fingerprint of the environment would be sure.
const OPAQUE_ENV: &str = "";

fn env_matches(recorded: &BTreeMap<String, Option<String>>, env: &Env) -> bool {
    recorded
        .iter()
        .all(|(name, value)| env.get(name) == value.as_ref())
}

/// Reads and loads every stack at `commit`.
fn full_read(repo: &Repo, commit: &str, rev: &str, env: &Env) -> Result<ChangeIndex> {
    let files: BTreeMap<String, String> = repo
        .project_blobs(commit)
        .with_context(|| format!("cannot read the project at {rev}"))?
        .into_iter()
        .map(|e| (e.path, e.blob))
        .collect();
    match build(repo, commit, files, None, env)? {
        Built::Index(index) => Ok(*index),
        Built::Invalid(diagnostics) => Err(anyhow::Error::new(ConfigErrors(diagnostics)))
            .with_context(|| format!("the project at {rev} does not load")),
    }
    .map(|index| with_env(index, env))
}

/// Brings `previous` forward to `commit`; None when only a full read can answer.
fn update(repo: &Repo, previous: ChangeIndex, commit: &str, env: &Env) -> Option<ChangeIndex> {
    // Fails for a commit this repository does not have (an index copied from elsewhere, a
    // history rewritten since): then everything is read again.
    let changes = repo.project_blob_changes(&previous.commit, commit).ok()?;
    if changes.iter().any(|c| c.path() == PROJECT_FILE) {
        return None;
    }
    let mut files = previous.files.clone();
    let mut dirty = BTreeSet::new();
    for change in &changes {
        match change {
            BlobChange::Set { path, blob } => {
                files.insert(path.clone(), blob.clone());
            }
            BlobChange::Deleted { path } => {
                files.remove(path);
            }
        }
        dirty.insert(parent(change.path()).to_owned());
    }
    match build(repo, commit, files, Some((&previous, &dirty)), env).ok()? {
        Built::Index(index) => Some(with_env(*index, env)),
        Built::Invalid(_) => None,
    }
}

enum Built {
    Index(Box<ChangeIndex>),
    Invalid(slipway_core::Diagnostics),
}

/// Builds the index at `commit` from its project files. With `previous` (an index of
/// another commit and the folders whose files changed since), stacks in unchanged folders
/// are not read: they are validated as stubs and keep what `previous` knew.
fn build(
    repo: &Repo,
    commit: &str,
    files: BTreeMap<String, String>,
    previous: Option<(&ChangeIndex, &BTreeSet<String>)>,
    env: &Env,
) -> Result<Built> {
    let mut tf_by_dir: HashMap<&str, Vec<String>> = HashMap::new();
    let mut stack_dirs: Vec<&str> = Vec::new();
    for path in files.keys() {
        let (dir, name) = split(path);
        if name == STACK_FILE {
            stack_dirs.push(dir);
        } else if is_terraform_file(name) {
            tf_by_dir.entry(dir).or_default().push(path.clone());
        }
    }
    stack_dirs.sort_unstable();
    let known: HashMap<&str, &IndexedStack> = previous
        .map(|(p, _)| p.stacks.iter().map(|s| (s.dir.as_str(), s)).collect())
        .unwrap_or_default();
    let kept = |dir: &str| -> Option<&IndexedStack> {
        let (_, dirty) = previous?;
        (!dirty.contains(dir))
            .then(|| known.get(dir).copied())
            .flatten()
    };

    let mut wanted = vec![PROJECT_FILE.to_owned()];
    for dir in stack_dirs.iter().filter(|d| kept(d).is_none()) {
        wanted.push(join(dir, STACK_FILE));
        wanted.extend(tf_by_dir.get(dir).into_iter().flatten().cloned());
    }
    // Every file is read by the blob id the listing or the diff gave: cheaper for git than
    // a path at the commit, and the same text.
    let mut reader = BlobReader::new(repo)?;
    let read = |reader: &mut BlobReader, paths: &[String]| {
        let blobs: Vec<&str> = paths
            .iter()
            .map(|p| files.get(p).map_or("", String::as_str))
            .collect();
        reader.read(&blobs)
    };
    let mut texts = read(&mut reader, &wanted)?.into_iter();
    let Some(config_text) = texts.next().flatten() else {
        return Err(GitError::BadOutput {
            command: format!("git cat-file {commit}:{PROJECT_FILE}"),
            detail: format!("commit {commit} has no {PROJECT_FILE}"),
        }
        .into());
    };
    let mut env_names: BTreeSet<String> = BTreeSet::new();
    let mut opaque = env_reads(&config_text, &mut env_names).is_none();
    let project_name_hint = previous.map(|(p, _)| p.project.name.clone());
    let mut stack_env: HashMap<&str, BTreeSet<String>> = HashMap::new();
    let mut stacks = Vec::with_capacity(stack_dirs.len());
    for dir in &stack_dirs {
        let stack_file = join(dir, STACK_FILE);
        if let Some(stub) = kept(dir) {
            let name = project_name_hint.as_deref().unwrap_or_default();
            // Only dependencies on folders that changed can resolve differently now; the
            // others were checked when the stub's stack was read, and leaving them out
            // keeps most stubs empty, which is most of what validation costs here. Cycles
            // through them are checked below on the whole graph.
            let recheck = |dependency: &IndexedDependency| {
                join_module_source(&stub.dir, &dependency.path)
                    .is_none_or(|target| previous.is_some_and(|(_, dirty)| dirty.contains(&target)))
            };
            stacks.push(StackSources {
                dir: PathBuf::from(dir),
                config: SourceFile::new(stack_file, stub_text(stub, name, recheck)),
                terraform: Vec::new(),
            });
            continue;
        }
        let text = texts.next().flatten().unwrap_or_default();
        let mut names = BTreeSet::new();
        opaque |= env_reads(&text, &mut names).is_none();
        stack_env.insert(dir, names);
        let mut terraform = Vec::new();
        for path in tf_by_dir.get(dir).into_iter().flatten() {
            if let Some(text) = texts.next().flatten() {
                terraform.push(SourceFile::new(path, text));
            }
        }
        stacks.push(StackSources {
            dir: PathBuf::from(dir),
            config: SourceFile::new(stack_file, text),
            terraform,
        });
    }
    let sources = ProjectSources {
        config: SourceFile::new(PROJECT_FILE, config_text),
        stacks,
    };
    let project = match config::load(&sources, env) {
        Ok(project) => project,
        Err(diagnostics) => return Ok(Built::Invalid(diagnostics)),
    };
    if previous.is_some() && project_name_hint.as_deref() != Some(project.name.as_str()) {
        // Stubs named after the old project name would be wrong; slipway.hcl is unchanged
        // here, so this cannot happen, but a full read is the safe answer if it does.
        return Ok(Built::Invalid(slipway_core::Diagnostics::default()));
    }

    // Local module sources of every folder known so far: stacks, then module folders that
    // did not change.
    let mut sources_by_dir: HashMap<String, ModuleCode> = HashMap::new();
    let mut indexed: Vec<IndexedStack> = Vec::with_capacity(project.stacks.len());
    for stack in &project.stacks {
        let loaded = |d: &slipway_core::config::Dependency| IndexedDependency {
            name: d.name.clone(),
            path: d.path.clone(),
            stack: d.stack.clone(),
        };
        // A kept stack's files stay as they were unless a folder of its code changed.
        let files = kept(&stack.dir)
            .map(|stub| &stub.files)
            .filter(|files| {
                let dirty = previous.map(|(_, dirty)| dirty);
                files
                    .parts
                    .iter()
                    .all(|part| dirty.is_some_and(|dirty| !dirty.contains(&part.dir)))
            })
            .cloned();
        let (module_code, env, dependencies) = match kept(&stack.dir) {
            // A stub loaded with some of its dependencies: those name the stack they
            // resolve to now, the others what they resolved to before.
            Some(stub) => (
                stub.module_code.clone(),
                stub.env.clone(),
                stub.dependencies
                    .iter()
                    .map(|before| {
                        stack
                            .dependencies
                            .iter()
                            .find(|d| d.name == before.name)
                            .map_or_else(|| before.clone(), loaded)
                    })
                    .collect(),
            ),
            None => (
                ModuleCode::from(&stack.declarations),
                stack_env.remove(stack.dir.as_str()).unwrap_or_default(),
                stack.dependencies.iter().map(loaded).collect(),
            ),
        };
        env_names.extend(env.iter().cloned());
        sources_by_dir.insert(stack.dir.clone(), module_code.clone());
        indexed.push(IndexedStack {
            name: stack.name.clone(),
            dir: stack.dir.clone(),
            explicit_name: stack.name != default_name(&stack.dir, &project.name),
            dependencies,
            module_code,
            // Resolved below, once every module folder is known.
            files: files.unwrap_or_else(|| StackFiles {
                stack_dir: stack.dir.clone(),
                parts: Vec::new(),
                escaping_sources: Vec::new(),
            }),
            env,
        });
    }
    if previous.is_some() && has_cycle(&indexed) {
        // The loader saw only some stubs' dependencies, so not every cycle; a full read
        // reports it.
        return Ok(Built::Invalid(slipway_core::Diagnostics::default()));
    }
    if let Some((previous, dirty)) = previous {
        for (dir, sources) in &previous.modules {
            if !dirty.contains(dir) && !sources_by_dir.contains_key(dir) {
                sources_by_dir.insert(dir.clone(), sources.clone());
            }
        }
    }
    // Module folders not known yet are read level by level, each level in one batch.
    let mut frontier = unknown_modules(sources_by_dir.iter(), &sources_by_dir);
    while !frontier.is_empty() {
        let dirs: Vec<String> = frontier.into_iter().collect();
        let paths: Vec<String> = dirs
            .iter()
            .flat_map(|d| tf_by_dir.get(d.as_str()).into_iter().flatten().cloned())
            .collect();
        let mut texts = read(&mut reader, &paths)?.into_iter();
        let mut level = HashMap::new();
        for dir in dirs {
            let mut module_files = Vec::new();
            for path in tf_by_dir.get(dir.as_str()).into_iter().flatten() {
                if let Some(text) = texts.next().flatten() {
                    module_files.push(SourceFile::new(path, text));
                }
            }
            let declarations = ModuleDeclarations::read(&module_files);
            level.insert(dir, ModuleCode::from(&declarations));
        }
        frontier = unknown_modules(level.iter(), &sources_by_dir);
        sources_by_dir.extend(level);
    }
    let mut used: BTreeSet<String> = BTreeSet::new();
    for stack in &mut indexed {
        // Every resolved rule has the stack's own folder as its first part.
        if stack.files.parts.is_empty() {
            stack.files = StackFiles::from_declarations(&stack.dir, |dir| {
                sources_by_dir.get(dir).map(ModuleCode::declarations)
            });
        }
        used.extend(stack.files.module_dirs().map(str::to_owned));
    }
    let stack_dirs: BTreeSet<&str> = indexed.iter().map(|s| s.dir.as_str()).collect();
    let modules = used
        .into_iter()
        .filter(|dir| !stack_dirs.contains(dir.as_str()))
        .filter_map(|dir| sources_by_dir.remove(&dir).map(|s| (dir, s)))
        .collect();
    if opaque {
        env_names.insert(OPAQUE_ENV.to_owned());
    }
    Ok(Built::Index(Box::new(ChangeIndex {
        prefix: repo.prefix().to_owned(),
        commit: commit.to_owned(),
        project: summary(&project),
        env: env_names.into_iter().map(|name| (name, None)).collect(),
        stacks: indexed,
        modules,
        files,
    })))
}

/// Records the values of the environment variables the configuration reads.
fn with_env(mut index: ChangeIndex, env: &Env) -> ChangeIndex {
    for (name, value) in &mut index.env {
        *value = env.get(name).cloned();
    }
    index
}

fn summary(project: &Project) -> ProjectSummary {
    ProjectSummary {
        name: project.name.clone(),
        stages: project.stages.iter().map(|s| s.name.clone()).collect(),
        store_url: project.store_url.clone(),
        data_dir: project.data_dir.clone(),
    }
}

/// Module folders called from `from` that `known` does not hold yet.
fn unknown_modules<'a>(
    from: impl Iterator<Item = (&'a String, &'a ModuleCode)>,
    known: &HashMap<String, ModuleCode>,
) -> BTreeSet<String> {
    from.flat_map(|(dir, code)| {
        code.sources
            .iter()
            .filter_map(|s| join_module_source(dir, s))
    })
    .filter(|dir| !known.contains_key(dir))
    .collect()
}

/// The name a stack gets without `stack { name = ... }`, as the loader gives it.
fn default_name(dir: &str, project: &str) -> String {
    dir.rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or(project)
        .to_owned()
}

/// The files of a stack whose code calls no local module and reads nothing outside its
/// folder: what the head file leaves out.
fn own_folder_only(dir: &str) -> StackFiles {
    // What `StackFiles::from_declarations(dir, |_| None)` gives, built directly: the head
    // file has one per stack to rebuild.
    StackFiles {
        stack_dir: dir.to_owned(),
        parts: vec![ModulePart {
            dir: dir.to_owned(),
            called_as: None,
            whole_folder: Some(WholeFolder::StackFolder),
            reads: Vec::new(),
        }],
        escaping_sources: Vec::new(),
    }
}

/// Whether the stacks' dependencies (by stack name) go round in a circle.
fn has_cycle(stacks: &[IndexedStack]) -> bool {
    let graph = StackGraph::from_edges(stacks.iter().map(|s| {
        let deps = s.dependencies.iter().map(|d| d.stack.as_str()).collect();
        (s.name.as_str(), deps)
    }));
    !graph.cycles().is_empty()
}

/// A `stack.hcl` that loads to the same name and folder as the stack it stands for, with
/// the dependencies `include` picks, and nothing else: what the loader's checks across
/// stacks (unique names, dependency paths, cycles, stacks named by stages) look at.
fn stub_text(
    stack: &IndexedStack,
    project: &str,
    include: impl Fn(&IndexedDependency) -> bool,
) -> String {
    let mut text = String::new();
    if stack.explicit_name || stack.name != default_name(&stack.dir, project) {
        text.push_str(&format!("stack {{\n  name = {}\n}}\n", quote(&stack.name)));
    }
    for dependency in stack.dependencies.iter().filter(|d| include(d)) {
        text.push_str(&format!(
            "dependency {} {{\n  path = {}\n}}\n",
            quote(&dependency.name),
            quote(&dependency.path)
        ));
    }
    text
}

/// An HCL string literal holding exactly `value` (no interpolation).
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Adds the names `text` passes to `env("NAME", ...)`; None when a call's name is not a
/// plain string literal, so the variables read cannot be known.
fn env_reads(text: &str, names: &mut BTreeSet<String>) -> Option<()> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(found) = text[from..].find("env") {
        let start = from + found;
        from = start + 3;
        let part_of_word = start > 0
            && (bytes[start - 1].is_ascii_alphanumeric()
                || bytes[start - 1] == b'_'
                || bytes[start - 1] == b'-');
        let Some(args) = text[from..].trim_start().strip_prefix('(') else {
            continue;
        };
        if part_of_word {
            continue;
        }
        let quoted = args.trim_start().strip_prefix('"')?;
        let name = &quoted[..quoted.find('"')?];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return None;
        }
        names.insert(name.to_owned());
    }
    Some(())
}

fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

fn parent(path: &str) -> &str {
    split(path).0
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_reads_find_literal_names_and_give_up_on_others() {
        let mut names = BTreeSet::new();
        let text = "a = env(\"PORT\")\nb = env( \"HOST\", \"x\")\nenv = \"dev\"\nmy-env(\"NO\")\n";
        assert_eq!(env_reads(text, &mut names), Some(()));
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            vec!["HOST".to_owned(), "PORT".to_owned()]
        );
        assert_eq!(env_reads("x = env(var.name)", &mut BTreeSet::new()), None);
    }

    #[test]
    fn own_folder_only_is_the_rule_of_code_that_calls_and_reads_nothing() {
        for dir in ["", "stacks/a"] {
            assert_eq!(
                own_folder_only(dir),
                StackFiles::from_declarations(dir, |_| None)
            );
        }
    }

    /// A repository whose commits are given as `(path, text)` files, `None` deleting one.
    struct History {
        dir: tempfile::TempDir,
    }

    impl History {
        fn new() -> Self {
            let history = Self {
                dir: tempfile::tempdir().unwrap(),
            };
            history.git(&["init", "-q", "-b", "main"]);
            history
        }

        fn git(&self, args: &[&str]) -> String {
            let output = std::process::Command::new("git")
                .current_dir(self.dir.path())
                .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
                .args(["-c", "commit.gpgsign=false"])
                .args(args)
                .output()
                .unwrap();
            assert!(output.status.success(), "git {args:?}: {output:?}");
            String::from_utf8(output.stdout).unwrap().trim().to_owned()
        }

        fn commit(&self, files: &[(&str, Option<&str>)]) -> String {
            for (path, text) in files {
                let file = self.dir.path().join(path);
                match text {
                    Some(text) => {
                        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                        std::fs::write(file, text).unwrap();
                    }
                    None => std::fs::remove_file(file).unwrap(),
                }
            }
            self.git(&["add", "-A"]);
            self.git(&["commit", "-q", "-m", "step"]);
            self.git(&["rev-parse", "HEAD"])
        }
    }

    fn stack(dependency: Option<&str>) -> String {
        let mut text = "stack {}\n".to_owned();
        if let Some(path) = dependency {
            text.push_str(&format!("dependency \"up\" {{\n  path = \"{path}\"\n}}\n"));
        }
        text
    }

    /// Stubs carry only the dependencies on changed folders, so what the loader does not
    /// see (cycles through unchanged stacks, a renamed or deleted stack an unchanged one
    /// depends on) must still end as the full read ends.
    #[test]
    fn updates_with_partial_stubs_answer_as_a_full_read() {
        let history = History::new();
        let (chain_a, chain_b, chain_c) = (stack(None), stack(Some("../a")), stack(Some("../b")));
        let first = history.commit(&[
            (
                "slipway.hcl",
                Some("project {\n  name = \"p\"\n  engine = \"terraform\"\n}\nstage \"dev\" {}\n"),
            ),
            ("stacks/a/stack.hcl", Some(&chain_a)),
            ("stacks/b/stack.hcl", Some(&chain_b)),
            ("stacks/c/stack.hcl", Some(&chain_c)),
            ("stacks/d/stack.hcl", Some(&stack(Some("../c")))),
            (
                "stacks/d/main.tf",
                Some("module \"m\" {\n  source = \"../../modules/m\"\n}\n"),
            ),
            ("modules/m/main.tf", Some("variable \"x\" {}\n")),
        ]);
        let repo = Repo::open(history.dir.path()).unwrap();
        let env = Env::new();
        let base = full_read(&repo, &first, "first", &env).unwrap();
        // Both files read back to the same index, the stack with a module and those
        // without.
        let (head, sources) = base.split();
        let head: HeadFile = postcard::from_bytes(&postcard::to_stdvec(&head).unwrap()).unwrap();
        assert!(head.stacks[3].3.is_some() && head.stacks[0].3.is_none());
        let sources = serde_json::from_slice(&serde_json::to_vec(&sources).unwrap()).unwrap();
        assert_eq!(ChangeIndex::join(head, sources).as_ref(), Some(&base));
        let check = |commit: &str, loads: bool| {
            let updated = update(&repo, base.clone(), commit, &env);
            match full_read(&repo, commit, "head", &env) {
                Ok(full) => {
                    assert!(loads, "the project at {commit} loads");
                    assert_eq!(updated, Some(full));
                }
                Err(_) => {
                    assert!(!loads, "the project at {commit} does not load");
                    assert_eq!(updated, None);
                }
            }
        };
        // b renamed: c, unchanged, now depends on `bee`.
        let renamed = history.commit(&[(
            "stacks/b/stack.hcl",
            Some("stack {\n  name = \"bee\"\n}\ndependency \"up\" {\n  path = \"../a\"\n}\n"),
        )]);
        check(&renamed, true);
        // a depends on d: a cycle through b and c, which did not change.
        let cycle = history.commit(&[("stacks/a/stack.hcl", Some(&stack(Some("../d"))))]);
        check(&cycle, false);
        // Back to a chain; then c, which d depends on, is deleted.
        history.commit(&[("stacks/a/stack.hcl", Some(&chain_a))]);
        let deleted = history.commit(&[("stacks/c/stack.hcl", None)]);
        check(&deleted, false);
        // A new stack taking an unchanged stack's name.
        history.commit(&[("stacks/c/stack.hcl", Some(&chain_c))]);
        let duplicate =
            history.commit(&[("stacks/e/stack.hcl", Some("stack {\n  name = \"a\"\n}\n"))]);
        check(&duplicate, false);
    }

    /// A kept stack keeps the files of its code from the previous index unless a folder of
    /// that code changed: each step below changes a module folder some unchanged stack
    /// uses, and must end as the full read ends.
    #[test]
    fn updates_follow_changes_to_the_modules_of_unchanged_stacks() {
        let history = History::new();
        let module = |source: &str| format!("module \"m\" {{\n  source = \"{source}\"\n}}\n");
        let first = history.commit(&[
            (
                "slipway.hcl",
                Some("project {\n  name = \"p\"\n  engine = \"terraform\"\n}\nstage \"dev\" {}\n"),
            ),
            ("stacks/a/stack.hcl", Some("stack {}\n")),
            ("stacks/a/main.tf", Some(&module("../../modules/m"))),
            ("stacks/b/stack.hcl", Some("stack {}\n")),
            ("stacks/b/main.tf", Some(&module("../../modules/missing"))),
            ("stacks/c/stack.hcl", Some("stack {}\n")),
            ("modules/m/main.tf", Some("variable \"x\" {}\n")),
        ]);
        let repo = Repo::open(history.dir.path()).unwrap();
        let env = Env::new();
        let mut previous = full_read(&repo, &first, "first", &env).unwrap();
        let mut step = |files: &[(&str, Option<&str>)]| {
            let commit = history.commit(files);
            let updated = update(&repo, previous.clone(), &commit, &env);
            let full = full_read(&repo, &commit, "head", &env).unwrap();
            assert_eq!(updated.as_ref(), Some(&full), "{files:?}");
            previous = full;
        };
        // The module now calls another module and reads a file: a's code grows.
        step(&[
            (
                "modules/m/main.tf",
                Some(&format!(
                    "{}locals {{\n  t = file(\"${{path.module}}/t.json\")\n}}\n",
                    module("../n")
                )),
            ),
            ("modules/n/main.tf", Some("variable \"y\" {}\n")),
        ]);
        // The folder b calls, missing until now, appears.
        step(&[("modules/missing/main.tf", Some("variable \"z\" {}\n"))]);
        // The inner module moves away: the folder m calls is gone.
        step(&[
            ("modules/n/main.tf", None),
            ("modules/n2/main.tf", Some("variable \"y\" {}\n")),
        ]);
        // A stack is deleted, another renamed by its folder, and c becomes a module of b.
        step(&[
            ("stacks/a/stack.hcl", None),
            ("stacks/a/main.tf", None),
            ("stacks/c/stack.hcl", None),
            ("stacks/see/stack.hcl", Some("stack {}\n")),
            ("stacks/b/main.tf", Some(&module("../see"))),
        ]);
        assert_eq!(
            previous
                .stacks
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            ["b", "see"]
        );
        let b = &previous.stacks[0];
        assert_eq!(b.files.module_dirs().collect::<Vec<_>>(), ["stacks/see"]);
    }

    /// `(name, folder, [(dependency, path, stack)])`.
    type Loaded = (String, String, Vec<(String, String, String)>);

    #[test]
    fn stubs_load_back_to_the_same_names_and_dependencies() {
        let odd = "w\"e${x}%{y}\\";
        // Each stack as it must load back, and whether its stack.hcl names it.
        let stacks: [(Loaded, bool); 2] = [
            ((odd.to_owned(), format!("stacks/{odd}"), vec![]), false),
            (
                (
                    "renamed".to_owned(),
                    "stacks/a".to_owned(),
                    vec![("up".to_owned(), format!("../{odd}"), odd.to_owned())],
                ),
                true,
            ),
        ];
        let stubs: Vec<IndexedStack> = stacks
            .iter()
            .map(|((name, dir, dependencies), explicit)| IndexedStack {
                name: name.clone(),
                dir: dir.clone(),
                explicit_name: *explicit,
                dependencies: dependencies
                    .iter()
                    .map(|(name, path, stack)| IndexedDependency {
                        name: name.clone(),
                        path: path.clone(),
                        stack: stack.clone(),
                    })
                    .collect(),
                module_code: ModuleCode::default(),
                files: StackFiles::from_declarations(dir, |_| None),
                env: BTreeSet::new(),
            })
            .collect();
        let sources = ProjectSources {
            config: SourceFile::new(
                PROJECT_FILE,
                "project {\n  name = \"p\"\n  engine = \"terraform\"\n}\nstage \"dev\" {}\n",
            ),
            stacks: stubs
                .iter()
                .map(|s| StackSources {
                    dir: PathBuf::from(&s.dir),
                    config: SourceFile::new(join(&s.dir, STACK_FILE), stub_text(s, "p", |_| true)),
                    terraform: Vec::new(),
                })
                .collect(),
        };
        let project = config::load(&sources, &Env::new()).unwrap();
        let loaded: Vec<Loaded> = project
            .stacks
            .iter()
            .map(|s| {
                let deps = s
                    .dependencies
                    .iter()
                    .map(|d| (d.name.clone(), d.path.clone(), d.stack.clone()))
                    .collect();
                (s.name.clone(), s.dir.clone(), deps)
            })
            .collect();
        let mut expected: Vec<Loaded> = stacks.into_iter().map(|(stack, _)| stack).collect();
        expected.sort_by(|a, b| a.1.cmp(&b.1));
        assert_eq!(loaded, expected);
    }
}
