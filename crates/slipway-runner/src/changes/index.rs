//! The change index: what change detection needs to know about the project at one commit
//! (its stacks with their dependencies and local module folders, its stages, where its
//! record is), kept in the repository's git folder so `slipway changed` does not read and
//! load every stack at every run.
//!
//! The index names the commit it describes and the blob id of every file it was built from.
//! Asked about the same commit, it answers without reading a tree. Asked about another
//! commit, `git diff --raw` from the indexed commit names the project files that changed:
//! only the stacks and module folders holding them are read again (by blob id). The other
//! stacks take part in validation as known stacks (`config::load_with_known`): by the
//! names, folders, dependencies, input reads and outputs the index kept, so every check
//! across stacks (names, dependency paths, inputs, cycles, the stacks stages name) runs on
//! the whole project without parsing what did not change. Any doubt (no index, a corrupt or
//! foreign one, `slipway.hcl` changed, environment variables the configuration reads
//! changed, an update that does not validate) falls back to the full read, which is also
//! the only path that reports configuration errors: the answer is always the one a full
//! read gives.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use slipway_core::SourceFile;
use slipway_core::changes::HeadStack;
use slipway_core::config::{
    self, Dependency, Env, KnownStack, PROJECT_FILE, Project, ProjectSources, STACK_FILE,
    StackSources,
};
use slipway_core::graph::StackGraph;
use slipway_core::module_files::join_module_source;
use slipway_core::module_files::{ModulePart, StackFiles, WholeFolder};
use slipway_core::terraform::{FileRead, ModuleDeclarations, is_terraform_file};
use slipway_git::{BlobChange, BlobReader, GitError, Repo};

use crate::project::ConfigErrors;

/// Bumped whenever the stored shape or its meaning changes; another format is ignored.
const FORMAT: u32 = 5;
/// What every run reads: the stacks and the graph at the indexed commit, in a compact
/// binary encoding (postcard), since reading it is most of a warm run's own work.
const HEAD_FILE: &str = "changes-v5.head";
/// What only bringing the index forward reads: what each stack and module folder was
/// loaded from, and what the checks across stacks need of each stack. Binary too: it is
/// read and written whole at every update.
const SOURCES_FILE: &str = "changes-v5.sources";

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
    dependencies: Vec<IndexedDependency>,
    /// What the stack's own Terraform files call and read.
    module_code: ModuleCode,
    /// The files that make up the stack's code.
    files: StackFiles,
    /// Environment variables its `stack.hcl` reads.
    env: BTreeSet<String>,
    /// `(dependency, output)` pairs its inputs read.
    input_reads: Vec<(String, String)>,
    /// The outputs its code declares, with whether each is sensitive.
    outputs: BTreeMap<String, bool>,
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
#[derive(Debug, PartialEq, Serialize, Deserialize)]
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
    #[serde(with = "reads_as_json")]
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

/// File reads inside the binary sources file, as JSON text: their enum is tagged by a
/// field, which a binary encoding without field names cannot read back. Most folders read
/// none, stored as an empty text.
mod reads_as_json {
    use std::borrow::Cow;
    use std::collections::BTreeSet;

    use serde::{Deserialize, Deserializer, Serializer, de, ser};
    use slipway_core::terraform::FileRead;

    pub fn serialize<S: Serializer>(reads: &BTreeSet<FileRead>, s: S) -> Result<S::Ok, S::Error> {
        if reads.is_empty() {
            return s.serialize_str("");
        }
        s.serialize_str(&serde_json::to_string(reads).map_err(ser::Error::custom)?)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeSet<FileRead>, D::Error> {
        let text = Cow::<str>::deserialize(d)?;
        if text.is_empty() {
            return Ok(BTreeSet::new());
        }
        serde_json::from_str(&text).map_err(de::Error::custom)
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct StackSource {
    /// `(name, path)` of each dependency block.
    dependencies: Vec<(String, String)>,
    module_code: ModuleCode,
    env: BTreeSet<String>,
    input_reads: Vec<(String, String)>,
    outputs: BTreeMap<String, bool>,
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
                    dependencies: s
                        .dependencies
                        .iter()
                        .map(|d| (d.name.clone(), d.path.clone()))
                        .collect(),
                    module_code: s.module_code.clone(),
                    env: s.env.clone(),
                    input_reads: s.input_reads.clone(),
                    outputs: s.outputs.clone(),
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
                dependencies,
                module_code: source.module_code,
                files,
                env: source.env,
                input_reads: source.input_reads,
                outputs: source.outputs,
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
            postcard::from_bytes::<SourcesFile>(b)
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
                    let _ = postcard::to_stdvec(&sources)
                        .map_err(std::io::Error::other)
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
    let ChangeIndex {
        project,
        stacks,
        modules,
        mut files,
        ..
    } = previous;
    let mut dirty = BTreeSet::new();
    for change in changes {
        dirty.insert(parent(change.path()).to_owned());
        match change {
            BlobChange::Set { path, blob } => {
                files.insert(path, blob);
            }
            BlobChange::Deleted { path } => {
                files.remove(&path);
            }
        }
    }
    let previous = Previous {
        project_name: project.name,
        stacks,
        modules,
        dirty,
    };
    match build(repo, commit, files, Some(previous), env).ok()? {
        Built::Index(index) => Some(with_env(*index, env)),
        Built::Invalid(_) => None,
    }
}

/// What an update keeps of the index it brings forward.
struct Previous {
    project_name: String,
    stacks: Vec<IndexedStack>,
    modules: BTreeMap<String, ModuleCode>,
    /// Folders holding a project file that changed, was added or was deleted since.
    dirty: BTreeSet<String>,
}

/// What the index keeps of a stack that is not read again, beside what it gives the loader.
struct KeptStack {
    module_code: ModuleCode,
    files: StackFiles,
    env: BTreeSet<String>,
    input_reads: Vec<(String, String)>,
}

enum Built {
    Index(Box<ChangeIndex>),
    Invalid(slipway_core::Diagnostics),
}

/// Builds the index at `commit` from its project files. With `previous` (an index of
/// another commit and the folders whose files changed since), stacks in unchanged folders
/// are not read: the loader checks them as known stacks and they keep what `previous`
/// knew.
fn build(
    repo: &Repo,
    commit: &str,
    files: BTreeMap<String, String>,
    previous: Option<Previous>,
    env: &Env,
) -> Result<Built> {
    let (project_name_hint, previous_stacks, mut modules, dirty) = match previous {
        Some(p) => (Some(p.project_name), p.stacks, p.modules, Some(p.dirty)),
        None => (None, Vec::new(), BTreeMap::new(), None),
    };
    let is_dirty = |dir: &str| dirty.as_ref().is_none_or(|dirty| dirty.contains(dir));
    // A stack in a folder where nothing changed is known; its folder still holds its
    // stack.hcl, unchanged.
    let mut known = Vec::new();
    let mut kept: HashMap<String, KeptStack> = HashMap::new();
    for stack in previous_stacks {
        if is_dirty(&stack.dir) {
            continue;
        }
        let unreadable_file = stack.module_code.unreadable.clone();
        kept.insert(
            stack.dir.clone(),
            KeptStack {
                module_code: stack.module_code,
                files: stack.files,
                env: stack.env,
                input_reads: stack.input_reads.clone(),
            },
        );
        known.push(KnownStack {
            name: stack.name,
            dir: stack.dir,
            dependencies: stack
                .dependencies
                .into_iter()
                .map(|d| Dependency {
                    name: d.name,
                    stack: d.stack,
                    path: d.path,
                })
                .collect(),
            input_reads: stack.input_reads,
            outputs: stack.outputs,
            unreadable_file,
        });
    }
    let stack_dirs: Vec<&str> = files
        .keys()
        .filter_map(|path| {
            let (dir, name) = split(path);
            (name == STACK_FILE && !kept.contains_key(dir)).then_some(dir)
        })
        .collect();

    let mut wanted = vec![PROJECT_FILE.to_owned()];
    for dir in &stack_dirs {
        wanted.push(join(dir, STACK_FILE));
        wanted.extend(terraform_files(&files, dir).map(str::to_owned));
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
    let mut stack_env: HashMap<&str, BTreeSet<String>> = HashMap::new();
    let mut read_stacks = Vec::with_capacity(stack_dirs.len());
    for dir in &stack_dirs {
        let text = texts.next().flatten().unwrap_or_default();
        let mut names = BTreeSet::new();
        opaque |= env_reads(&text, &mut names).is_none();
        stack_env.insert(dir, names);
        let mut terraform = Vec::new();
        for path in terraform_files(&files, dir) {
            if let Some(text) = texts.next().flatten() {
                terraform.push(SourceFile::new(path, text));
            }
        }
        read_stacks.push(StackSources {
            dir: PathBuf::from(dir),
            config: SourceFile::new(join(dir, STACK_FILE), text),
            terraform,
        });
    }
    let sources = ProjectSources {
        config: SourceFile::new(PROJECT_FILE, config_text),
        stacks: read_stacks,
    };
    let project = match config::load_with_known(&sources, known, env) {
        Ok(project) => project,
        Err(diagnostics) => return Ok(Built::Invalid(diagnostics)),
    };
    if project_name_hint
        .as_deref()
        .is_some_and(|name| name != project.name)
    {
        // Known stacks may be named after the project; slipway.hcl is unchanged here, so
        // this cannot happen, but a full read is the safe answer if it does.
        return Ok(Built::Invalid(slipway_core::Diagnostics::default()));
    }
    let summary = summary(&project);

    let mut indexed: Vec<IndexedStack> = Vec::with_capacity(project.stacks.len());
    for stack in project.stacks {
        let dependencies = stack
            .dependencies
            .into_iter()
            .map(|d| IndexedDependency {
                name: d.name,
                path: d.path,
                stack: d.stack,
            })
            .collect();
        let stack = match kept.remove(&stack.dir) {
            Some(kept) => {
                // Its files stay as they were unless a folder of its code changed; then
                // they are resolved again below.
                let files = if kept.files.parts.iter().any(|part| is_dirty(&part.dir)) {
                    unresolved_files(&stack.dir)
                } else {
                    kept.files
                };
                IndexedStack {
                    name: stack.name,
                    dir: stack.dir,
                    dependencies,
                    module_code: kept.module_code,
                    files,
                    env: kept.env,
                    input_reads: kept.input_reads,
                    outputs: stack.declarations.outputs,
                }
            }
            None => IndexedStack {
                module_code: ModuleCode::from(&stack.declarations),
                env: stack_env.remove(stack.dir.as_str()).unwrap_or_default(),
                files: unresolved_files(&stack.dir),
                input_reads: stack
                    .inputs
                    .iter()
                    .flat_map(|input| input.reads.iter().cloned())
                    .collect(),
                outputs: stack.declarations.outputs,
                name: stack.name,
                dir: stack.dir,
                dependencies,
            },
        };
        env_names.extend(stack.env.iter().cloned());
        indexed.push(stack);
    }

    // The code of every folder some stack's code may call: stacks' own folders, module
    // folders that did not change, and (read below) the others.
    let stack_index: HashMap<&str, usize> = indexed
        .iter()
        .enumerate()
        .map(|(i, s)| (s.dir.as_str(), i))
        .collect();
    modules.retain(|dir, _| !is_dirty(dir) && !stack_index.contains_key(dir.as_str()));
    let code_of = |modules: &BTreeMap<String, ModuleCode>, dir: &str| -> Option<ModuleCode> {
        match stack_index.get(dir) {
            Some(&i) => Some(indexed[i].module_code.clone()),
            None => modules.get(dir).cloned(),
        }
    };
    let known_dir = |modules: &BTreeMap<String, ModuleCode>, dir: &str| {
        stack_index.contains_key(dir) || modules.contains_key(dir)
    };
    // Module folders not known yet are read level by level, each level in one batch.
    let mut frontier: BTreeSet<String> = indexed
        .iter()
        .map(|s| (&s.dir, &s.module_code))
        .chain(modules.iter())
        .flat_map(|(dir, code)| called_dirs(dir, code))
        .filter(|dir| !known_dir(&modules, dir))
        .collect();
    while !frontier.is_empty() {
        let dirs: Vec<String> = std::mem::take(&mut frontier).into_iter().collect();
        let paths: Vec<String> = dirs
            .iter()
            .flat_map(|d| terraform_files(&files, d).map(str::to_owned))
            .collect();
        let mut texts = read(&mut reader, &paths)?.into_iter();
        let mut level = Vec::with_capacity(dirs.len());
        for dir in dirs {
            let mut module_files = Vec::new();
            for path in terraform_files(&files, &dir) {
                if let Some(text) = texts.next().flatten() {
                    module_files.push(SourceFile::new(path, text));
                }
            }
            let declarations = ModuleDeclarations::read(&module_files);
            level.push((dir, ModuleCode::from(&declarations)));
        }
        frontier = level
            .iter()
            .flat_map(|(dir, code)| called_dirs(dir, code))
            .filter(|dir| !known_dir(&modules, dir) && !level.iter().any(|(d, _)| d == dir))
            .collect();
        modules.extend(level);
    }
    let resolved: Vec<(usize, StackFiles)> = indexed
        .iter()
        .enumerate()
        .filter(|(_, s)| s.files.parts.is_empty())
        .map(|(i, s)| {
            let files = StackFiles::from_declarations(&s.dir, |dir| {
                code_of(&modules, dir).as_ref().map(ModuleCode::declarations)
            });
            (i, files)
        })
        .collect();
    drop(stack_index);
    for (i, files) in resolved {
        indexed[i].files = files;
    }
    let stack_dirs: HashSet<&str> = indexed.iter().map(|s| s.dir.as_str()).collect();
    let used: BTreeSet<&str> = indexed
        .iter()
        .flat_map(|s| s.files.module_dirs())
        .filter(|dir| !stack_dirs.contains(dir))
        .collect();
    let modules = used
        .into_iter()
        .filter_map(|dir| modules.get(dir).map(|code| (dir.to_owned(), code.clone())))
        .collect();
    if opaque {
        env_names.insert(OPAQUE_ENV.to_owned());
    }
    Ok(Built::Index(Box::new(ChangeIndex {
        prefix: repo.prefix().to_owned(),
        commit: commit.to_owned(),
        project: summary,
        env: env_names.into_iter().map(|name| (name, None)).collect(),
        stacks: indexed,
        modules,
        files,
    })))
}

/// The Terraform files directly in `dir`, from the project's files by path.
fn terraform_files<'a>(
    files: &'a BTreeMap<String, String>,
    dir: &str,
) -> impl Iterator<Item = &'a str> + 'a {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let len = prefix.len();
    files
        .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
        .map(|(path, _)| path.as_str())
        .take_while(move |path| path.starts_with(&prefix))
        .filter(move |path| {
            let name = &path[len..];
            !name.contains('/') && is_terraform_file(name)
        })
}

/// The folders `code` (the code of `dir`) calls as local modules.
fn called_dirs<'a>(dir: &'a str, code: &'a ModuleCode) -> impl Iterator<Item = String> + 'a {
    code.sources
        .iter()
        .filter_map(move |source| join_module_source(dir, source))
}

/// A stack's files before they are resolved: no parts yet.
fn unresolved_files(dir: &str) -> StackFiles {
    StackFiles {
        stack_dir: dir.to_owned(),
        parts: Vec::new(),
        escaping_sources: Vec::new(),
    }
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

    /// Unchanged stacks are not read again, so what only they show (cycles through them, a
    /// renamed or deleted stack one depends on) must still end as the full read ends.
    #[test]
    fn updates_with_known_stacks_answer_as_a_full_read() {
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
        let sources = postcard::from_bytes(&postcard::to_stdvec(&sources).unwrap()).unwrap();
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

    /// Inputs read outputs across stacks: an update checks an unchanged stack's inputs
    /// against the outputs a changed one declares now, and a changed stack's against an
    /// unchanged one's, without reading the unchanged one.
    #[test]
    fn updates_check_inputs_across_changed_and_unchanged_stacks() {
        let history = History::new();
        let network_tf = |output: &str| format!("output \"{output}\" {{\n  value = 1\n}}\n");
        let reader = |output: &str| {
            format!(
                "stack {{}}\ndependency \"net\" {{\n  path = \"../network\"\n}}\ninputs = {{\n  vpc = dependency.net.outputs.{output}\n}}\n"
            )
        };
        let first = history.commit(&[
            (
                "slipway.hcl",
                Some("project {\n  name = \"p\"\n  engine = \"terraform\"\n}\nstage \"dev\" {}\n"),
            ),
            ("stacks/network/stack.hcl", Some("stack {}\n")),
            ("stacks/network/main.tf", Some(&network_tf("vpc_id"))),
            ("stacks/app/stack.hcl", Some(&reader("vpc_id"))),
            ("stacks/app/main.tf", Some("variable \"vpc\" {}\n")),
            ("stacks/db/stack.hcl", Some(&reader("vpc_id"))),
            ("stacks/db/main.tf", Some("variable \"vpc\" {}\n")),
        ]);
        let repo = Repo::open(history.dir.path()).unwrap();
        let env = Env::new();
        let base = full_read(&repo, &first, "first", &env).unwrap();
        assert_eq!(
            base.stacks[0].input_reads,
            [("net".to_owned(), "vpc_id".to_owned())]
        );
        // The network gains an output and the app reads it: both brought forward.
        history.commit(&[("stacks/network/main.tf", Some(&format!("{}{}", network_tf("vpc_id"), network_tf("subnet"))))]);
        let reads_new = history.commit(&[("stacks/app/stack.hcl", Some(&reader("subnet")))]);
        let updated = update(&repo, base.clone(), &reads_new, &env);
        assert_eq!(updated, Some(full_read(&repo, &reads_new, "head", &env).unwrap()));
        // The network drops `vpc_id`, which the unchanged db still reads: no answer but the
        // full read's error.
        let dropped = history.commit(&[("stacks/network/main.tf", Some(&network_tf("subnet")))]);
        assert!(full_read(&repo, &dropped, "head", &env).is_err());
        assert_eq!(update(&repo, base.clone(), &dropped, &env), None);
        // The app reads an output the unchanged network never declared.
        let unknown = history.commit(&[
            ("stacks/network/main.tf", Some(&network_tf("vpc_id"))),
            ("stacks/app/stack.hcl", Some(&reader("nothing"))),
        ]);
        assert!(full_read(&repo, &unknown, "head", &env).is_err());
        assert_eq!(update(&repo, base, &unknown, &env), None);
    }
}
