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

use std::collections::{BTreeMap, BTreeSet};

// Folders and names are hashed with foldhash (fast, seeded per process).
use foldhash::{HashMap, HashMapExt, HashSet};
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
use slipway_core::module_files::{ModulePart, ResolvedRead, StackFiles, WholeFolder};
use slipway_core::terraform::{FileRead, ModuleDeclarations, is_terraform_file};
use slipway_git::{BlobChange, BlobReader, GitError, Repo};

use crate::project::ConfigErrors;

/// Bumped whenever the stored shape or its meaning changes; another format is ignored.
const FORMAT: u32 = 6;
/// What every run reads: the stacks and the graph at the indexed commit, in a compact
/// binary encoding (postcard), since reading it is most of a warm run's own work.
const HEAD_FILE: &str = "changes-v6.head";
/// What only bringing the index forward reads: what each stack and module folder was
/// loaded from, and what the checks across stacks need of each stack. Binary too: it is
/// read and written whole at every update.
const SOURCES_FILE: &str = "changes-v6.sources";

/// The project at one commit, as change detection sees it and as it was read: the two
/// files as they are written.
#[derive(Debug, PartialEq)]
struct ChangeIndex {
    head: HeadFile,
    sources: SourcesFile,
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

/// [`HEAD_FILE`]: kept small, since parsing it is most of a warm run's own time.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct HeadFile {
    format: u32,
    /// The project folder inside the repository (`""`, or ending in `/`).
    prefix: String,
    /// The commit described.
    commit: String,
    /// The environment variables the configuration reads with `env()`, with their values
    /// when the index was built: stack names and paths may depend on them.
    env: BTreeMap<String, Option<String>>,
    project: ProjectSummary,
    /// In folder order, as the loader returns them.
    stacks: Vec<StoredStack>,
}

/// One stack in the head file.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct StoredStack {
    name: String,
    dir: String,
    /// The stacks it depends on, by name.
    dependencies: Vec<String>,
    /// The files of its code; left out (None) for a stack whose code is its own folder
    /// alone, most stacks, which keeps the file about a third as big.
    files: Option<StoredFiles>,
    /// Environment variables its `stack.hcl` reads.
    env: Vec<String>,
}

/// The files of a stack's code inside the binary head file, only for stacks that call
/// modules or read files outside their folder: in public module repositories, where every
/// example calls the repository's own module, that is every stack, read at every run.
///
/// Stored as tuples and plain enums ([`StoredWhole`], [`StoredRead`]): the core types tag
/// their enums by a field (for JSON readers), which an encoding without field names cannot
/// read back.
#[derive(Debug, PartialEq)]
struct StoredFiles(StackFiles);

/// [`WholeFolder`] as stored: `S` is `&str` when writing, `String` when reading.
#[derive(Serialize, Deserialize)]
enum StoredWhole<S> {
    StackFolder,
    UnresolvedRead(S),
    UnreadableCode(S),
}

/// [`ResolvedRead`] as stored.
#[derive(Serialize, Deserialize)]
enum StoredRead<S> {
    Path(S),
    Glob(S, S),
}

/// One [`ModulePart`] as stored: folder, how it was called, why it is whole, its reads.
type StoredPart<S> = (
    S,
    Option<(S, S)>,
    Option<StoredWhole<S>>,
    Vec<StoredRead<S>>,
);

impl Serialize for StoredFiles {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let files = &self.0;
        let parts: Vec<StoredPart<&str>> = files
            .parts
            .iter()
            .map(|part| {
                (
                    part.dir.as_str(),
                    part.called_as
                        .as_ref()
                        .map(|(source, caller)| (source.as_str(), caller.as_str())),
                    part.whole_folder.as_ref().map(|whole| match whole {
                        WholeFolder::StackFolder => StoredWhole::StackFolder,
                        WholeFolder::UnresolvedRead { expression } => {
                            StoredWhole::UnresolvedRead(expression.as_str())
                        }
                        WholeFolder::UnreadableCode { file } => {
                            StoredWhole::UnreadableCode(file.as_str())
                        }
                    }),
                    part.reads
                        .iter()
                        .map(|read| match read {
                            ResolvedRead::Path { path } => StoredRead::Path(path.as_str()),
                            ResolvedRead::Glob { dir, pattern } => {
                                StoredRead::Glob(dir.as_str(), pattern.as_str())
                            }
                        })
                        .collect(),
                )
            })
            .collect();
        (&files.stack_dir, parts, &files.escaping_sources).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for StoredFiles {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (stack_dir, parts, escaping_sources): (
            String,
            Vec<StoredPart<String>>,
            Vec<(String, String)>,
        ) = Deserialize::deserialize(deserializer)?;
        let parts = parts
            .into_iter()
            .map(|(dir, called_as, whole_folder, reads)| ModulePart {
                dir,
                called_as,
                whole_folder: whole_folder.map(|whole| match whole {
                    StoredWhole::StackFolder => WholeFolder::StackFolder,
                    StoredWhole::UnresolvedRead(expression) => {
                        WholeFolder::UnresolvedRead { expression }
                    }
                    StoredWhole::UnreadableCode(file) => WholeFolder::UnreadableCode { file },
                }),
                reads: reads
                    .into_iter()
                    .map(|read| match read {
                        StoredRead::Path(path) => ResolvedRead::Path { path },
                        StoredRead::Glob(dir, pattern) => ResolvedRead::Glob { dir, pattern },
                    })
                    .collect(),
            })
            .collect();
        Ok(StoredFiles(StackFiles {
            stack_dir,
            parts,
            escaping_sources,
        }))
    }
}

impl StoredFiles {
    /// What the head file stores for `files`.
    fn of(files: StackFiles) -> Option<Self> {
        (files != own_folder_only(&files.stack_dir)).then_some(Self(files))
    }
}

/// [`SOURCES_FILE`] as written: its records run parallel to the head file's stacks.
#[derive(Debug, PartialEq, Serialize)]
struct SourcesFile {
    format: u32,
    commit: String,
    /// Each stack's [`StackSource`], encoded on its own so that an update decodes only the
    /// stacks it looks at and copies the others as they are.
    records: Records,
    /// What the code of each folder (other than a stack's) that some stack uses calls and
    /// reads.
    modules: BTreeMap<String, ModuleCode>,
    /// Every project file at the commit (`slipway.hcl`, `stack.hcl`, `.tf`, `.tf.json`)
    /// with its blob id, as [`FileList`] text.
    files: String,
}

/// [`SOURCES_FILE`] as read, borrowing from the file's bytes.
#[derive(Debug, Deserialize)]
struct SourcesRead<'a> {
    format: u32,
    commit: String,
    #[serde(borrow)]
    records: Vec<&'a [u8]>,
    modules: BTreeMap<String, ModuleCode>,
    #[serde(borrow)]
    files: &'a str,
}

/// The encoded [`StackSource`] of each stack, one after the other in one buffer: an
/// update copies most of them as they are.
#[derive(Debug, Default, PartialEq)]
struct Records {
    bytes: Vec<u8>,
    /// Where each record ends in `bytes`.
    ends: Vec<usize>,
}

impl Records {
    fn with_capacity(records: usize, bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(records),
        }
    }

    fn push(&mut self, record: &[u8]) {
        self.bytes.extend_from_slice(record);
        self.ends.push(self.bytes.len());
    }

    fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        let start = i.checked_sub(1).map_or(0, |before| self.ends[before]);
        self.bytes.get(start..end)
    }

    /// Each record; its exact length known ahead, which a sequence postcard writes needs.
    fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        (0..self.ends.len()).map(|i| self.get(i).unwrap_or_default())
    }
}

/// Written as the sequence of byte strings [`SourcesRead`] reads back.
impl Serialize for Records {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Bytes<'a>(&'a [u8]);
        impl Serialize for Bytes<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        serializer.collect_seq(self.iter().map(Bytes))
    }
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

/// What the index keeps of how a stack was loaded: what an update needs of a stack it does
/// not read again.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct StackSource {
    /// `(name, path)` of each dependency block.
    dependencies: Vec<(String, String)>,
    /// What the stack's own Terraform files call and read.
    module_code: ModuleCode,
    /// `(dependency, output)` pairs its inputs read.
    input_reads: Vec<(String, String)>,
    /// The outputs its code declares, with whether each is sensitive.
    outputs: BTreeMap<String, bool>,
}

impl StackSource {
    fn decode(record: &[u8]) -> Option<Self> {
        postcard::from_bytes(record).ok()
    }

    /// The known stack the loader checks in place of `stack`, whose record this is, and the
    /// code of the stack's own folder.
    fn into_known(self, stack: &StoredStack) -> (KnownStack, ModuleCode) {
        let known = KnownStack {
            name: stack.name.clone(),
            dir: stack.dir.clone(),
            dependencies: self
                .dependencies
                .into_iter()
                .map(|(name, path)| Dependency {
                    name,
                    stack: String::new(),
                    path,
                })
                .collect(),
            input_reads: self.input_reads,
            outputs: self.outputs,
            unreadable_file: self.module_code.unreadable.clone(),
        };
        (known, self.module_code)
    }

    fn encode(&self) -> Vec<u8> {
        // Encoding into memory fails only for types postcard cannot encode, none here.
        postcard::to_extend(self, Vec::with_capacity(64)).unwrap_or_default()
    }
}

/// Every project file at a commit with its blob id: `path NUL blob NUL` for each, sorted by
/// path. Kept as one text, since an update reads and writes all of it and looks at a few.
#[derive(Debug, Default)]
struct FileList<'a> {
    entries: Vec<(&'a str, &'a str)>,
}

impl<'a> FileList<'a> {
    fn parse(text: &'a str) -> Option<Self> {
        let mut parts = text.split_terminator('\0');
        let mut entries = Vec::with_capacity(text.len() / 64);
        while let Some(path) = parts.next() {
            entries.push((path, parts.next()?));
        }
        entries
            .is_sorted_by(|a, b| a.0 < b.0)
            .then_some(Self { entries })
    }

    fn text(&self) -> String {
        let len = self
            .entries
            .iter()
            .map(|(p, b)| p.len() + b.len() + 2)
            .sum();
        let mut text = String::with_capacity(len);
        for (path, blob) in &self.entries {
            text.push_str(path);
            text.push('\0');
            text.push_str(blob);
            text.push('\0');
        }
        text
    }

    fn blob(&self, path: &str) -> Option<&'a str> {
        let i = self
            .entries
            .binary_search_by(|(p, _)| (*p).cmp(path))
            .ok()?;
        Some(self.entries[i].1)
    }

    /// The Terraform files directly in `dir`.
    fn terraform_files<'s>(&'s self, dir: &str) -> impl Iterator<Item = &'a str> + 's {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let start = self.entries.partition_point(|(p, _)| *p < prefix.as_str());
        let len = prefix.len();
        self.entries[start..]
            .iter()
            .map(|(path, _)| *path)
            .take_while(move |path| path.starts_with(&prefix))
            .filter(move |path| {
                let name = &path[len..];
                !name.contains('/') && is_terraform_file(name)
            })
    }

    /// The folders holding a `stack.hcl`.
    fn stack_dirs(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.entries.iter().filter_map(|(path, _)| {
            let (dir, name) = split(path);
            (name == STACK_FILE).then_some(dir)
        })
    }
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
    /// The index being written meanwhile; keep it until the answer is given.
    pub saving: Saving,
}

impl Snapshot {
    /// The snapshot of a head file, with its graph when it is already built.
    fn of(head: HeadFile, graph: Option<StackGraph>) -> Self {
        let graph = graph.unwrap_or_else(|| graph_of(&head.stacks));
        let stacks = head
            .stacks
            .into_iter()
            .map(|stack| HeadStack {
                name: stack.name,
                dir: stack.dir,
                files: stack.files.map(|f| f.0),
            })
            .collect();
        Self {
            project: head.project,
            stacks,
            graph,
            saving: Saving::default(),
        }
    }
}

/// The stack graph of the head file's stacks, built as the loader builds it.
fn graph_of(stacks: &[StoredStack]) -> StackGraph {
    StackGraph::from_edges(stacks.iter().map(|s| {
        let deps = s.dependencies.iter().map(String::as_str).collect();
        (s.name.as_str(), deps)
    }))
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
            return Ok((Snapshot::of(head, None), Source::Warm));
        }
        let bytes = std::fs::read(dir.join(SOURCES_FILE)).unwrap_or_default();
        if let Some((index, graph)) = update(repo, head, &bytes, commit, env) {
            return Ok((save(&dir, index, graph), Source::Updated));
        }
    }
    let (index, graph) = full_read(repo, commit, rev, env)?;
    Ok((save(&dir, index, graph), Source::Cold))
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
/// The files are written on a second thread while the snapshot is built and the answer
/// decided; the snapshot's [`Saving`] waits for it.
fn save(dir: &Path, index: ChangeIndex, graph: StackGraph) -> Snapshot {
    let ChangeIndex { head, sources } = index;
    let opaque = head.env.contains_key(OPAQUE_ENV);
    // Sized ahead: growing a buffer of this size copies it several times over.
    let head_bytes = (!opaque)
        .then(|| postcard::to_extend(&head, Vec::with_capacity(head.stacks.len() * 96 + 4096)));
    let writing = match head_bytes {
        Some(Ok(head_bytes)) => {
            let dir = dir.to_path_buf();
            let spawned = std::thread::Builder::new().spawn(move || {
                if std::fs::create_dir_all(&dir).is_ok() {
                    let size = sources.files.len()
                        + sources.records.bytes.len()
                        + sources.records.ends.len() * 2
                        + 4096;
                    let _ = postcard::to_extend(&sources, Vec::with_capacity(size))
                        .map_err(std::io::Error::other)
                        .and_then(|bytes| write_file(&dir.join(SOURCES_FILE), bytes))
                        .and_then(|()| write_file(&dir.join(HEAD_FILE), head_bytes));
                }
            });
            // Without a thread the index is not written; the next run reads in full.
            spawned.ok()
        }
        _ => None,
    };
    let mut snapshot = Snapshot::of(head, Some(graph));
    snapshot.saving = Saving(writing);
    snapshot
}

/// The index files being written, if they are: dropping it waits for them, so that the
/// process does not end half-way through.
#[derive(Debug, Default)]
pub struct Saving(Option<std::thread::JoinHandle<()>>);

impl Drop for Saving {
    fn drop(&mut self) {
        if let Some(writing) = self.0.take() {
            let _ = writing.join();
        }
    }
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
fn full_read(repo: &Repo, commit: &str, rev: &str, env: &Env) -> Result<(ChangeIndex, StackGraph)> {
    let mut listed: Vec<(String, String)> = repo
        .project_blobs(commit)
        .with_context(|| format!("cannot read the project at {rev}"))?
        .into_iter()
        .map(|e| (e.path, e.blob))
        .collect();
    listed.sort_unstable();
    listed.dedup_by(|a, b| a.0 == b.0);
    let files = FileList {
        entries: listed
            .iter()
            .map(|(p, b)| (p.as_str(), b.as_str()))
            .collect(),
    };
    match build(repo, commit, &files, None, env)? {
        Built::Index(index, graph) => Ok((*index, graph)),
        Built::Invalid(diagnostics) => Err(anyhow::Error::new(ConfigErrors(diagnostics)))
            .with_context(|| format!("the project at {rev} does not load")),
    }
}

/// Brings the index `head` (with the sources file's `bytes`) forward to `commit`; None when
/// only a full read can answer.
fn update(
    repo: &Repo,
    head: HeadFile,
    bytes: &[u8],
    commit: &str,
    env: &Env,
) -> Option<(ChangeIndex, StackGraph)> {
    let sources: SourcesRead<'_> = postcard::from_bytes(bytes).ok()?;
    if sources.format != FORMAT
        || sources.commit != head.commit
        || sources.records.len() != head.stacks.len()
    {
        return None;
    }
    let before = FileList::parse(sources.files)?;
    // Fails for a commit this repository does not have (an index copied from elsewhere, a
    // history rewritten since): then everything is read again.
    let mut changes = repo.project_blob_changes(&head.commit, commit).ok()?;
    if changes.iter().any(|c| c.path() == PROJECT_FILE) {
        return None;
    }
    changes.sort_by(|a, b| a.path().cmp(b.path()));
    let dirty: HashSet<String> = changes
        .iter()
        .map(|c| parent(c.path()).to_owned())
        .collect();
    let files = FileList {
        entries: merge(&before.entries, &changes),
    };
    let previous = Previous {
        head,
        records: sources.records,
        modules: sources.modules,
        dirty,
    };
    match build(repo, commit, &files, Some(previous), env).ok()? {
        Built::Index(index, graph) => Some((*index, graph)),
        Built::Invalid(_) => None,
    }
}

/// The files of `before` with `changes` (sorted by path) made.
fn merge<'a>(before: &[(&'a str, &'a str)], changes: &'a [BlobChange]) -> Vec<(&'a str, &'a str)> {
    let mut merged = Vec::with_capacity(before.len() + changes.len());
    let mut old = before.iter().peekable();
    for change in changes {
        while let Some(&&entry) = old.peek() {
            if entry.0 >= change.path() {
                break;
            }
            merged.push(entry);
            old.next();
        }
        if old.peek().is_some_and(|entry| entry.0 == change.path()) {
            old.next();
        }
        if let BlobChange::Set { path, blob } = change {
            merged.push((path.as_str(), blob.as_str()));
        }
    }
    merged.extend(old.copied());
    merged
}

/// What an update starts from.
struct Previous<'a> {
    head: HeadFile,
    records: Vec<&'a [u8]>,
    modules: BTreeMap<String, ModuleCode>,
    /// Folders holding a project file that changed, was added or was deleted since.
    dirty: HashSet<String>,
}

enum Built {
    Index(Box<ChangeIndex>, StackGraph),
    Invalid(slipway_core::Diagnostics),
}

/// How a stack of the previous index takes part in an update.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Its folder changed: read again (if it is still a stack).
    Read,
    /// A dependency points into a folder that changed: the loader resolves and checks it
    /// again, from what the index kept.
    Known,
    /// Nothing it depends on changed: taken as it was, by name, folder and outputs.
    Settled,
}

/// How each stack of the previous index takes part in an update, given which folders
/// changed.
fn roles_of(stacks: &[StoredStack], is_dirty: impl Fn(&str) -> bool) -> Vec<Role> {
    let dir_of: HashMap<&str, &str> = stacks
        .iter()
        .map(|s| (s.name.as_str(), s.dir.as_str()))
        .collect();
    stacks
        .iter()
        .map(|s| {
            if is_dirty(&s.dir) {
                Role::Read
            } else if s
                .dependencies
                .iter()
                .any(|d| dir_of.get(d.as_str()).is_none_or(|dir| is_dirty(dir)))
            {
                Role::Known
            } else {
                Role::Settled
            }
        })
        .collect()
}

/// The previous index's settled stacks, as the loader asks about them.
struct SettledStacks<'a> {
    stacks: &'a [StoredStack],
    records: &'a [&'a [u8]],
    by_dir: HashMap<&'a str, usize>,
    by_name: HashMap<&'a str, usize>,
}

impl<'a> SettledStacks<'a> {
    fn new(stacks: &'a [StoredStack], records: &'a [&'a [u8]], roles: &[Role]) -> Self {
        let settled = || {
            stacks
                .iter()
                .enumerate()
                .filter(|(i, _)| roles[*i] == Role::Settled)
        };
        Self {
            stacks,
            records,
            by_dir: settled().map(|(i, s)| (s.dir.as_str(), i)).collect(),
            by_name: settled().map(|(i, s)| (s.name.as_str(), i)).collect(),
        }
    }
}

impl config::Settled for SettledStacks<'_> {
    fn name_at(&self, dir: &str) -> Option<&str> {
        self.by_dir.get(dir).map(|&i| self.stacks[i].name.as_str())
    }

    fn has_name(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    fn outputs(&self, name: &str) -> Option<BTreeMap<String, bool>> {
        let record = StackSource::decode(self.records[*self.by_name.get(name)?])?;
        record
            .module_code
            .unreadable
            .is_none()
            .then_some(record.outputs)
    }
}

/// Where the record of a stack of the index being built comes from.
enum RecordOf {
    /// The previous index's record of the stack with this index, unchanged.
    Kept(usize),
    New(Vec<u8>),
}

/// A stack of the index being built.
struct Entry {
    stored: StoredStack,
    /// None until the rule for the files of its code is resolved.
    files: Option<Option<StoredFiles>>,
    record: RecordOf,
    /// Its own code, when known without decoding its record.
    module_code: Option<ModuleCode>,
}

/// Builds the index at `commit` from its project files. With `previous` (an index of
/// another commit and the folders whose files changed since), stacks in unchanged folders
/// are not read: the loader checks those whose dependencies point into a changed folder as
/// known stacks, and takes the others as settled; they keep what `previous` knew.
fn build(
    repo: &Repo,
    commit: &str,
    files: &FileList<'_>,
    previous: Option<Previous<'_>>,
    env: &Env,
) -> Result<Built> {
    let (project_name_hint, mut old_stacks, records, mut modules, dirty) = match previous {
        Some(p) => (
            Some(p.head.project.name),
            p.head.stacks,
            p.records,
            p.modules,
            Some(p.dirty),
        ),
        None => (None, Vec::new(), Vec::new(), BTreeMap::new(), None),
    };
    let is_dirty = |dir: &str| dirty.as_ref().is_none_or(|dirty| dirty.contains(dir));
    let roles = roles_of(&old_stacks, is_dirty);
    let stack_dirs: Vec<&str> = if dirty.is_some() {
        // Stack folders that changed and still hold a stack.hcl, and new ones.
        let mut dirs: Vec<&str> = dirty
            .iter()
            .flatten()
            .filter(|dir| files.blob(&join(dir, STACK_FILE)).is_some())
            .map(String::as_str)
            .collect();
        dirs.sort_unstable();
        dirs
    } else {
        files.stack_dirs().collect()
    };

    let mut wanted = vec![PROJECT_FILE.to_owned()];
    for dir in &stack_dirs {
        wanted.push(join(dir, STACK_FILE));
        wanted.extend(files.terraform_files(dir).map(str::to_owned));
    }
    // Every file is read by the blob id the listing or the diff gave: cheaper for git than
    // a path at the commit, and the same text.
    let mut reader = BlobReader::new(repo)?;
    let read = |reader: &mut BlobReader, paths: &[String]| {
        let blobs: Vec<&str> = paths.iter().map(|p| files.blob(p).unwrap_or("")).collect();
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
    let mut stack_env: HashMap<&str, Vec<String>> = HashMap::new();
    let mut read_stacks = Vec::with_capacity(stack_dirs.len());
    for dir in &stack_dirs {
        let text = texts.next().flatten().unwrap_or_default();
        let mut names = BTreeSet::new();
        opaque |= env_reads(&text, &mut names).is_none();
        stack_env.insert(dir, names.into_iter().collect());
        let mut terraform = Vec::new();
        for path in files.terraform_files(dir) {
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

    // Known stacks, from what their records kept.
    let mut known = Vec::new();
    // What the index builds on of each known stack's record: its own code.
    let mut known_code: HashMap<String, ModuleCode> = HashMap::new();
    for (i, stack) in old_stacks.iter().enumerate() {
        if roles[i] != Role::Known {
            continue;
        }
        let Some(source) = records.get(i).and_then(|r| StackSource::decode(r)) else {
            return Ok(Built::Invalid(slipway_core::Diagnostics::default()));
        };
        let (known_stack, module_code) = source.into_known(stack);
        known.push(known_stack);
        known_code.insert(stack.dir.clone(), module_code);
    }
    let settled = SettledStacks::new(&old_stacks, &records, &roles);
    let project = match config::load_with_known(&sources, known, &settled, env) {
        Ok(project) => project,
        Err(diagnostics) => return Ok(Built::Invalid(diagnostics)),
    };
    drop(settled);
    if project_name_hint
        .as_deref()
        .is_some_and(|name| name != project.name)
    {
        // Unchanged stacks may be named after the project; slipway.hcl is unchanged here,
        // so this cannot happen, but a full read is the safe answer if it does.
        return Ok(Built::Invalid(slipway_core::Diagnostics::default()));
    }
    let summary = summary(&project);

    // Every stack in folder order: the loaded ones (read and known) between the settled.
    let mut settled_stacks: Vec<(usize, StoredStack)> = Vec::with_capacity(old_stacks.len());
    let mut known_stacks: HashMap<String, (usize, StoredStack)> = HashMap::new();
    for (i, stack) in std::mem::take(&mut old_stacks).into_iter().enumerate() {
        match roles[i] {
            Role::Settled => settled_stacks.push((i, stack)),
            Role::Known => {
                known_stacks.insert(stack.dir.clone(), (i, stack));
            }
            Role::Read => {}
        }
    }
    // A stack keeps the files of its code unless a folder of that code changed.
    let kept_files = |files: Option<StoredFiles>| {
        let touched = files
            .as_ref()
            .is_some_and(|f| f.0.parts.iter().any(|part| is_dirty(&part.dir)));
        (!touched).then_some(files)
    };
    let mut settled_stacks = settled_stacks.into_iter().peekable();
    let mut entries: Vec<Entry> = Vec::with_capacity(project.stacks.len() + settled_stacks.len());
    let mut take_settled = |entries: &mut Vec<Entry>, until: Option<&str>| {
        while let Some((i, mut stack)) =
            settled_stacks.next_if(|(_, s)| until.is_none_or(|until| s.dir.as_str() < until))
        {
            let files = kept_files(stack.files.take());
            entries.push(Entry {
                stored: stack,
                files,
                record: RecordOf::Kept(i),
                module_code: None,
            });
        }
    };
    for stack in project.stacks {
        take_settled(&mut entries, Some(&stack.dir));
        let dependencies = stack.dependencies.iter().map(|d| d.stack.clone()).collect();
        let entry = match known_stacks.remove(&stack.dir) {
            Some((i, mut old)) => {
                let module_code = known_code.remove(&stack.dir);
                Entry {
                    stored: StoredStack {
                        name: stack.name,
                        dir: stack.dir,
                        dependencies,
                        files: None,
                        env: std::mem::take(&mut old.env),
                    },
                    files: kept_files(old.files.take()),
                    record: RecordOf::Kept(i),
                    module_code,
                }
            }
            None => {
                let source = StackSource {
                    dependencies: stack
                        .dependencies
                        .iter()
                        .map(|d| (d.name.clone(), d.path.clone()))
                        .collect(),
                    module_code: ModuleCode::from(&stack.declarations),
                    input_reads: stack
                        .inputs
                        .iter()
                        .flat_map(|input| input.reads.iter().cloned())
                        .collect(),
                    outputs: stack.declarations.outputs,
                };
                Entry {
                    stored: StoredStack {
                        env: stack_env.remove(stack.dir.as_str()).unwrap_or_default(),
                        name: stack.name,
                        dir: stack.dir,
                        dependencies,
                        files: None,
                    },
                    files: None,
                    record: RecordOf::New(source.encode()),
                    module_code: Some(source.module_code),
                }
            }
        };
        entries.push(entry);
    }
    take_settled(&mut entries, None);
    if !known_stacks.is_empty() {
        // Every known stack comes back from the loader; a full read is the safe answer if
        // one does not.
        return Ok(Built::Invalid(slipway_core::Diagnostics::default()));
    }
    let graph = StackGraph::from_edges(entries.iter().map(|e| {
        let deps = e.stored.dependencies.iter().map(String::as_str).collect();
        (e.stored.name.as_str(), deps)
    }));
    if dirty.is_some() && !graph.cycles().is_empty() {
        // The loader saw the edges of read and known stacks only; a full read reports it.
        return Ok(Built::Invalid(slipway_core::Diagnostics::default()));
    }

    // The code of every folder some stack's code may call: stacks' own folders, module
    // folders that did not change, and (read below) the others.
    let entry_at: HashMap<&str, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.stored.dir.as_str(), i))
        .collect();
    modules.retain(|dir, _| !is_dirty(dir) && !entry_at.contains_key(dir.as_str()));
    let code_of = |modules: &BTreeMap<String, ModuleCode>, dir: &str| -> Option<ModuleCode> {
        match entry_at.get(dir) {
            Some(&i) => entries[i].module_code.clone().or_else(|| {
                let record = match &entries[i].record {
                    RecordOf::Kept(old) => records.get(*old).copied(),
                    RecordOf::New(bytes) => Some(bytes.as_slice()),
                };
                record
                    .and_then(StackSource::decode)
                    .map(|source| source.module_code)
            }),
            None => modules.get(dir).cloned(),
        }
    };
    let known_dir = |modules: &BTreeMap<String, ModuleCode>, dir: &str| {
        entry_at.contains_key(dir) || modules.contains_key(dir)
    };
    // Stacks whose files are resolved again: their code, then the module folders it calls
    // that are not known yet, level by level, each level read in one batch.
    let resolving: Vec<(usize, ModuleCode)> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.files.is_none())
        .map(|(i, e)| (i, code_of(&modules, &e.stored.dir).unwrap_or_default()))
        .collect();
    let mut frontier: BTreeSet<String> = resolving
        .iter()
        .map(|(i, code)| (entries[*i].stored.dir.as_str(), code))
        .chain(modules.iter().map(|(dir, code)| (dir.as_str(), code)))
        .flat_map(|(dir, code)| called_dirs(dir, code))
        .filter(|dir| !known_dir(&modules, dir))
        .collect();
    while !frontier.is_empty() {
        let dirs: Vec<String> = std::mem::take(&mut frontier).into_iter().collect();
        let paths: Vec<String> = dirs
            .iter()
            .flat_map(|d| files.terraform_files(d).map(str::to_owned))
            .collect();
        let mut texts = read(&mut reader, &paths)?.into_iter();
        let mut level = Vec::with_capacity(dirs.len());
        for dir in dirs {
            let mut module_files = Vec::new();
            for path in files.terraform_files(&dir) {
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
    let resolved: Vec<(usize, StackFiles)> = resolving
        .into_iter()
        .map(|(i, code)| {
            let dir = entries[i].stored.dir.as_str();
            let files = StackFiles::from_declarations(dir, |d| {
                if d == dir {
                    Some(code.declarations())
                } else {
                    code_of(&modules, d).as_ref().map(ModuleCode::declarations)
                }
            });
            (i, files)
        })
        .collect();
    drop(entry_at);
    for (i, files) in resolved {
        entries[i].files = Some(StoredFiles::of(files));
    }
    let size = records.iter().map(|r| r.len()).sum::<usize>() + 4096;
    let mut new_records = Records::with_capacity(entries.len(), size);
    let stacks: Vec<StoredStack> = entries
        .into_iter()
        .map(|e| {
            match &e.record {
                RecordOf::Kept(old) => {
                    new_records.push(records.get(*old).copied().unwrap_or_default())
                }
                RecordOf::New(bytes) => new_records.push(bytes),
            }
            StoredStack {
                files: e.files.flatten(),
                ..e.stored
            }
        })
        .collect();
    let stack_dirs: HashSet<&str> = stacks.iter().map(|s| s.dir.as_str()).collect();
    let used: BTreeSet<&str> = stacks
        .iter()
        .filter_map(|s| s.files.as_ref())
        .flat_map(|f| f.0.module_dirs())
        .filter(|dir| !stack_dirs.contains(dir))
        .collect();
    let modules = used
        .into_iter()
        .filter_map(|dir| modules.get(dir).map(|code| (dir.to_owned(), code.clone())))
        .collect();
    drop(stack_dirs);
    env_names.extend(stacks.iter().flat_map(|s| s.env.iter().cloned()));
    if opaque {
        env_names.insert(OPAQUE_ENV.to_owned());
    }
    let head = HeadFile {
        format: FORMAT,
        prefix: repo.prefix().to_owned(),
        commit: commit.to_owned(),
        env: env_names
            .into_iter()
            .map(|name| {
                let value = env.get(&name).cloned();
                (name, value)
            })
            .collect(),
        project: summary,
        stacks,
    };
    let sources = SourcesFile {
        format: FORMAT,
        commit: commit.to_owned(),
        records: new_records,
        modules,
        files: files.text(),
    };
    Ok(Built::Index(Box::new(ChangeIndex { head, sources }), graph))
}

/// The folders `code` (the code of `dir`) calls as local modules.
fn called_dirs<'a>(dir: &'a str, code: &'a ModuleCode) -> impl Iterator<Item = String> + 'a {
    code.sources
        .iter()
        .filter_map(move |source| join_module_source(dir, source))
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

    #[test]
    fn stored_files_read_back_as_written_with_every_kind_of_part_and_read() {
        let files = StackFiles {
            stack_dir: "stacks/app".into(),
            parts: vec![
                ModulePart {
                    dir: "stacks/app".into(),
                    called_as: None,
                    whole_folder: Some(WholeFolder::StackFolder),
                    reads: vec![ResolvedRead::Path {
                        path: "policies/app.json".into(),
                    }],
                },
                ModulePart {
                    dir: "modules/net".into(),
                    called_as: Some(("../../modules/net".into(), "stacks/app".into())),
                    whole_folder: Some(WholeFolder::UnresolvedRead {
                        expression: "file(var.path)".into(),
                    }),
                    reads: vec![ResolvedRead::Glob {
                        dir: "modules/net/templates".into(),
                        pattern: "**/*.tpl".into(),
                    }],
                },
                ModulePart {
                    dir: "modules/broken".into(),
                    called_as: Some(("../broken".into(), "modules/net".into())),
                    whole_folder: Some(WholeFolder::UnreadableCode {
                        file: "modules/broken/main.tf".into(),
                    }),
                    reads: Vec::new(),
                },
            ],
            escaping_sources: vec![("stacks/app".into(), "../../../outside".into())],
        };
        let bytes = postcard::to_stdvec(&StoredFiles(files.clone())).unwrap();
        let read: StoredFiles = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(read.0, files);
    }

    /// The full read of `commit`, or None when the project there does not load.
    fn full(repo: &Repo, commit: &str, env: &Env) -> Option<ChangeIndex> {
        full_read(repo, commit, "head", env)
            .ok()
            .map(|(index, _)| index)
    }

    /// `index` brought forward to `commit` the way `project_at` does: from its files as
    /// they are written.
    fn brought_forward(
        repo: &Repo,
        index: &ChangeIndex,
        commit: &str,
        env: &Env,
    ) -> Option<ChangeIndex> {
        let head = postcard::from_bytes(&postcard::to_stdvec(&index.head).unwrap()).unwrap();
        let sources = postcard::to_stdvec(&index.sources).unwrap();
        update(repo, head, &sources, commit, env).map(|(index, _)| index)
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
        let base = full(&repo, &first, &env).unwrap();
        // The stack with a module stores the files of its code, those without do not; the
        // index brought forward to its own commit is itself.
        assert!(base.head.stacks[3].files.is_some() && base.head.stacks[0].files.is_none());
        assert_eq!(
            brought_forward(&repo, &base, &first, &env).as_ref(),
            Some(&base)
        );
        let check = |commit: &str, loads: bool| {
            let updated = brought_forward(&repo, &base, commit, &env);
            let full = full(&repo, commit, &env);
            assert_eq!(
                full.is_some(),
                loads,
                "whether the project at {commit} loads"
            );
            assert_eq!(updated, full);
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
        let mut previous = full(&repo, &first, &env).unwrap();
        let mut step = |files: &[(&str, Option<&str>)]| {
            let commit = history.commit(files);
            let updated = brought_forward(&repo, &previous, &commit, &env);
            let full = full(&repo, &commit, &env).unwrap();
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
                .head
                .stacks
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            ["b", "see"]
        );
        let b = previous.head.stacks[0].files.as_ref().unwrap();
        assert_eq!(b.0.module_dirs().collect::<Vec<_>>(), ["stacks/see"]);
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
        let base = full(&repo, &first, &env).unwrap();
        let app = StackSource::decode(base.sources.records.get(0).unwrap()).unwrap();
        assert_eq!(app.input_reads, [("net".to_owned(), "vpc_id".to_owned())]);
        // The network gains an output and the app reads it: both brought forward.
        history.commit(&[(
            "stacks/network/main.tf",
            Some(&format!("{}{}", network_tf("vpc_id"), network_tf("subnet"))),
        )]);
        let reads_new = history.commit(&[("stacks/app/stack.hcl", Some(&reader("subnet")))]);
        let updated = brought_forward(&repo, &base, &reads_new, &env);
        assert_eq!(updated, Some(full(&repo, &reads_new, &env).unwrap()));
        // The network drops `vpc_id`, which the unchanged db still reads: no answer but the
        // full read's error.
        let dropped = history.commit(&[("stacks/network/main.tf", Some(&network_tf("subnet")))]);
        assert_eq!(full(&repo, &dropped, &env), None);
        assert_eq!(brought_forward(&repo, &base, &dropped, &env), None);
        // The app reads an output the unchanged network never declared.
        let unknown = history.commit(&[
            ("stacks/network/main.tf", Some(&network_tf("vpc_id"))),
            ("stacks/app/stack.hcl", Some(&reader("nothing"))),
        ]);
        assert_eq!(full(&repo, &unknown, &env), None);
        assert_eq!(brought_forward(&repo, &base, &unknown, &env), None);
    }

    /// An update where a changed stack calls an unchanged stack's folder as a module (its
    /// code then comes from the index's record), the project's root folder is a stack, and
    /// stack.hcl files read the environment: each step must end as the full read ends.
    #[test]
    fn updates_read_kept_records_and_environment_as_a_full_read() {
        let history = History::new();
        let first = history.commit(&[
            (
                "slipway.hcl",
                Some("project {\n  name = \"p\"\n  engine = \"terraform\"\n}\nstage \"dev\" {}\n"),
            ),
            ("stack.hcl", Some("stack {}\n")),
            ("main.tf", Some("variable \"x\" {}\n")),
            (
                "shared/stack.hcl",
                Some("stack {\n  team = env(\"TEAM\", \"a\")\n}\n"),
            ),
            (
                "shared/main.tf",
                Some("module \"m\" {\n  source = \"../modules/m\"\n}\n"),
            ),
            ("modules/m/main.tf", Some("variable \"y\" {}\n")),
            (
                "app/stack.hcl",
                Some("stack {\n  description = env(\"WHAT\", \"d\")\n}\n"),
            ),
            ("app/main.tf", Some("variable \"z\" {}\n")),
        ]);
        let repo = Repo::open(history.dir.path()).unwrap();
        let env = Env::from([("TEAM".to_owned(), "platform".to_owned())]);
        let mut previous = full(&repo, &first, &env).unwrap();
        assert_eq!(
            previous.head.env.keys().collect::<Vec<_>>(),
            ["TEAM", "WHAT"]
        );
        let step = |previous: &mut ChangeIndex, files: &[(&str, Option<&str>)]| {
            let commit = history.commit(files);
            let updated = brought_forward(&repo, previous, &commit, &env);
            let full = full(&repo, &commit, &env).unwrap();
            assert_eq!(updated.as_ref(), Some(&full), "{files:?}");
            *previous = full;
        };
        // The app calls the unchanged shared stack's folder as a module, and through it
        // modules/m.
        step(
            &mut previous,
            &[(
                "app/main.tf",
                Some("module \"s\" {\n  source = \"../shared\"\n}\n"),
            )],
        );
        let app = previous
            .head
            .stacks
            .iter()
            .find(|s| s.name == "app")
            .unwrap();
        assert_eq!(
            app.files
                .as_ref()
                .unwrap()
                .0
                .module_dirs()
                .collect::<Vec<_>>(),
            ["shared", "modules/m"]
        );
        // The app stops reading WHAT; the root stack changes too.
        step(
            &mut previous,
            &[
                ("app/stack.hcl", Some("stack {}\n")),
                ("main.tf", Some("variable \"x2\" {}\n")),
            ],
        );
        assert_eq!(previous.head.env.keys().collect::<Vec<_>>(), ["TEAM"]);
        // The module the shared stack calls changes: the app's code (through shared)
        // is resolved again.
        step(
            &mut previous,
            &[(
                "modules/m/main.tf",
                Some("variable \"y\" {}\nlocals {\n  t = file(\"${path.module}/t.json\")\n}\n"),
            )],
        );
    }
}
