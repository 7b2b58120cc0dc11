//! Change detection: from the files a commit range changed to the stacks it affects, and why.
//!
//! Pure: the caller (the git adapter) hands over the changed paths with their status, the
//! stacks at the head commit (with the local module folders each uses, transitively), the
//! stacks at the base commit that may have gone away, and the head's stack graph. The answer
//! names every affected stack with its reasons, the stacks that depend on them, and the
//! stacks that were renamed or deleted.
//!
//! Paths are relative to the project root, with `/` separators; `""` is the root folder.
//! Matching a path to stacks and modules walks the path's ancestor folders and looks each
//! one up in an index, so the cost grows with changed files times path depth, never with
//! changed files times stacks.
//!
//! A deleted stack is reported, never scheduled: destroying its instances takes an explicit
//! command. When the base commit is unknown, [`ChangeSet::all_changed`] marks every stack as
//! changed with the reason: missing history never reads as "nothing changed".

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Fast and seeded per process: every head stack is hashed on each detection, and names and
/// folders come from whatever a pull request proposes.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<T> = HashSet<T, foldhash::fast::RandomState>;

use serde::Serialize;

use crate::config::{PROJECT_FILE, STACK_FILE};
use crate::graph::StackGraph;
use crate::module_files::{ModulePart, StackFiles};

/// What happened to one path between base and head.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum FileStatus {
    Added,
    Modified,
    Deleted,
    /// Moved (possibly edited) from `from`.
    Renamed {
        from: String,
    },
}

/// One changed path, as `git diff --name-status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct FileChange {
    /// The path at head (for a deletion: the path that was deleted).
    pub path: String,
    #[serde(flatten)]
    pub status: FileStatus,
}

impl FileChange {
    pub fn new(path: impl Into<String>, status: FileStatus) -> Self {
        Self {
            path: path.into(),
            status,
        }
    }

    /// The paths this change touches: both ends of a rename.
    fn paths(&self) -> impl Iterator<Item = &str> {
        let from = match &self.status {
            FileStatus::Renamed { from } => Some(from.as_str()),
            _ => None,
        };
        std::iter::once(self.path.as_str()).chain(from)
    }
}

impl std::fmt::Display for FileChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.status {
            FileStatus::Added => write!(f, "added {}", self.path),
            FileStatus::Modified => write!(f, "modified {}", self.path),
            FileStatus::Deleted => write!(f, "deleted {}", self.path),
            FileStatus::Renamed { from } => write!(f, "renamed {from} -> {}", self.path),
        }
    }
}

/// A stack at the head commit, as change detection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadStack {
    pub name: String,
    /// Folder relative to the project root.
    pub dir: String,
    /// The files that make up its code: the one rule working copies and artifacts use.
    /// None when its code is its own folder alone (it calls no local module and reads
    /// nothing outside its folder), as for most stacks: that needs no lookup of its own.
    pub files: Option<StackFiles>,
}

/// A stack at the base commit: enough to notice that it was renamed or deleted.
///
/// Callers may pass every base stack or only those whose `stack.hcl` the diff deleted or
/// renamed; only stacks whose folder holds no stack at head matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseStack {
    pub name: String,
    pub dir: String,
}

/// Why a stack counts as affected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// `slipway.hcl` changed: stages, generated files and settings reach every stack.
    ProjectConfig { change: FileChange },
    /// The stack's own `stack.hcl` changed.
    StackConfig { change: FileChange },
    /// A file inside the stack's folder changed.
    FileInStack { change: FileChange },
    /// A file of a local module the stack uses (directly or transitively) changed: one of
    /// its Terraform files, or a file its code reads. `module_dir` is `""` for a module at
    /// the repository root.
    Module {
        module_dir: String,
        change: FileChange,
    },
    /// The stack did not exist at base.
    NewStack,
    /// The stack's folder moved.
    RenamedStack { from_dir: String, from_name: String },
    /// Nothing could be compared; the text says why.
    AllChanged { because: String },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::ProjectConfig { change } => {
                write!(f, "project configuration: {change}")
            }
            Reason::StackConfig { change } => write!(f, "stack configuration: {change}"),
            Reason::FileInStack { change } => write!(f, "{change}"),
            Reason::Module { module_dir, change } if module_dir.is_empty() => {
                write!(f, "module at the repository root: {change}")
            }
            Reason::Module { module_dir, change } => {
                write!(f, "module {module_dir}: {change}")
            }
            Reason::NewStack => write!(f, "new stack"),
            Reason::RenamedStack {
                from_dir,
                from_name,
            } => write!(f, "moved from {from_dir} (was `{from_name}`)"),
            Reason::AllChanged { because } => write!(f, "{because}"),
        }
    }
}

/// A stack the change affects, with every reason found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AffectedStack {
    pub name: String,
    pub dir: String,
    pub reasons: Vec<Reason>,
}

/// A stack that did not change itself but depends on one that did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependent {
    pub name: String,
    pub dir: String,
    /// Its direct dependencies that are affected or are dependents themselves.
    pub via: Vec<String>,
}

/// A stack present at base whose folder holds no stack at head. Its instances keep running
/// until destroyed explicitly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeletedStack {
    pub name: String,
    pub dir: String,
}

/// A stack whose folder moved between base and head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenamedStack {
    /// Its name at head.
    pub name: String,
    pub dir: String,
    pub from_name: String,
    pub from_dir: String,
}

/// What a change affects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChangeSet {
    /// Affected stacks in dependency order.
    pub affected: Vec<AffectedStack>,
    /// Stacks reached only through dependencies, in dependency order.
    pub dependents: Vec<Dependent>,
    pub deleted_stacks: Vec<DeletedStack>,
    pub renamed_stacks: Vec<RenamedStack>,
    /// Set when every stack counts as changed, with the reason.
    pub all_changed_because: Option<String>,
}

/// Everything change detection reads.
#[derive(Debug, Clone, Copy)]
pub struct ChangeInput<'a> {
    pub files: &'a [FileChange],
    pub head: &'a [HeadStack],
    pub base: &'a [BaseStack],
    /// The stack graph at head.
    pub graph: &'a StackGraph,
}

impl ChangeSet {
    /// Every stack counts as changed, for `because` (no base, a base missing from history).
    pub fn all_changed(head: &[HeadStack], graph: &StackGraph, because: &str) -> Self {
        let mut affected: BTreeMap<&str, AffectedStack> = head
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    AffectedStack {
                        name: s.name.clone(),
                        dir: s.dir.clone(),
                        reasons: vec![Reason::AllChanged {
                            because: because.to_owned(),
                        }],
                    },
                )
            })
            .collect();
        Self {
            affected: in_dependency_order(graph, &mut affected),
            all_changed_because: Some(because.to_owned()),
            ..Self::default()
        }
    }

    /// Names of the stacks to run: affected ones, then dependents, each in dependency order.
    pub fn stacks_to_run(&self) -> impl Iterator<Item = &str> {
        self.affected
            .iter()
            .map(|s| s.name.as_str())
            .chain(self.dependents.iter().map(|d| d.name.as_str()))
    }

    /// True when no stack is affected and none was renamed or deleted.
    pub fn is_empty(&self) -> bool {
        self.affected.is_empty()
            && self.dependents.is_empty()
            && self.deleted_stacks.is_empty()
            && self.renamed_stacks.is_empty()
    }
}

/// Works out which stacks `input.files` affect.
pub fn detect<'a>(input: ChangeInput<'a>) -> ChangeSet {
    let head_by_dir: FastMap<&str, &HeadStack> =
        input.head.iter().map(|s| (s.dir.as_str(), s)).collect();
    // Each module part is looked up by the folders below which its files lie: its own
    // folder and the roots of the paths its code reads.
    let mut parts_by_folder: HashMap<&str, Vec<(&HeadStack, &ModulePart)>> = HashMap::new();
    for stack in input.head {
        let parts = stack.files.iter().flat_map(|files| &files.parts);
        for (index, part) in parts.enumerate() {
            let own = (index > 0).then_some(part.dir.as_str());
            let reads = part.reads.iter().map(|r| r.root());
            let mut folders: Vec<&str> = own.into_iter().chain(reads).collect();
            folders.sort_unstable();
            folders.dedup();
            for folder in folders {
                parts_by_folder
                    .entry(folder)
                    .or_default()
                    .push((stack, part));
            }
        }
    }

    let mut affected: BTreeMap<&str, AffectedStack> = BTreeMap::new();
    let mut add = |stack: &'a HeadStack, reason: Reason| {
        let entry = affected
            .entry(stack.name.as_str())
            .or_insert_with(|| AffectedStack {
                name: stack.name.clone(),
                dir: stack.dir.clone(),
                reasons: Vec::new(),
            });
        if !entry.reasons.contains(&reason) {
            entry.reasons.push(reason);
        }
    };

    let mut project_config_change = None;
    for change in input.files {
        for path in change.paths() {
            if path == PROJECT_FILE {
                project_config_change.get_or_insert_with(|| change.clone());
                continue;
            }
            // The deepest stack folder holding the path owns it: a nested stack is its own unit.
            if let Some(stack) = ancestors(path).find_map(|dir| head_by_dir.get(dir)) {
                let reason = if is_stack_file_of(path, &stack.dir) {
                    Reason::StackConfig {
                        change: change.clone(),
                    }
                } else {
                    Reason::FileInStack {
                        change: change.clone(),
                    }
                };
                add(stack, reason);
            }
            // A module's Terraform files, and the files any part's code reads.
            for folder in std::iter::once(path).chain(ancestors(path)) {
                for (stack, part) in parts_by_folder.get(folder).into_iter().flatten() {
                    if !part.contains(path) {
                        continue;
                    }
                    let reason = if part.dir == stack.dir {
                        Reason::FileInStack {
                            change: change.clone(),
                        }
                    } else {
                        Reason::Module {
                            module_dir: part.dir.clone(),
                            change: change.clone(),
                        }
                    };
                    add(stack, reason);
                }
            }
        }
    }
    if let Some(change) = project_config_change {
        for stack in input.head {
            add(
                stack,
                Reason::ProjectConfig {
                    change: change.clone(),
                },
            );
        }
    }

    let new_stacks = new_stack_dirs(input.files);
    let (renamed_stacks, deleted_stacks) = moved_and_deleted(input, &head_by_dir, &new_stacks);
    let renamed_to: HashMap<&str, &RenamedStack> =
        renamed_stacks.iter().map(|r| (r.dir.as_str(), r)).collect();
    let base_dirs: BTreeSet<&str> = input.base.iter().map(|s| s.dir.as_str()).collect();
    for stack in input.head {
        if let Some(renamed) = renamed_to.get(stack.dir.as_str()) {
            add(
                stack,
                Reason::RenamedStack {
                    from_dir: renamed.from_dir.clone(),
                    from_name: renamed.from_name.clone(),
                },
            );
        } else if !base_dirs.contains(stack.dir.as_str()) && new_stacks.contains(stack.dir.as_str())
        {
            add(stack, Reason::NewStack);
        }
    }

    let all_changed_because = project_config_change_seen(&affected).then(|| {
        format!(
            "{PROJECT_FILE} changed: its stages, settings and generated files reach every stack"
        )
    });
    let mut affected_map = affected;
    let affected = in_dependency_order(input.graph, &mut affected_map);
    let dependents = dependents_of(input, &affected);
    ChangeSet {
        affected,
        dependents,
        deleted_stacks,
        renamed_stacks,
        all_changed_because,
    }
}

fn project_config_change_seen(affected: &BTreeMap<&str, AffectedStack>) -> bool {
    affected.values().any(|s| {
        s.reasons
            .iter()
            .any(|r| matches!(r, Reason::ProjectConfig { .. }))
    })
}

/// The folders holding `path`, deepest first, ending with the root folder `""`.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(path);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.rfind('/') {
            Some(i) => {
                rest = Some(&current[..i]);
                Some(&current[..i])
            }
            None => {
                rest = None;
                Some("")
            }
        }
    })
}

fn is_stack_file_of(path: &str, dir: &str) -> bool {
    if dir.is_empty() {
        path == STACK_FILE
    } else {
        path.strip_prefix(dir)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|rest| rest == STACK_FILE)
    }
}

fn stack_file(dir: &str) -> String {
    if dir.is_empty() {
        STACK_FILE.to_owned()
    } else {
        format!("{dir}/{STACK_FILE}")
    }
}

/// The folders whose `stack.hcl` the diff added (or moved in from a folder that was not a
/// stack's): a head stack in one of them is new. Gathered once, since every head stack asks.
fn new_stack_dirs(files: &[FileChange]) -> HashSet<&str> {
    files
        .iter()
        .filter(|f| matches!(f.status, FileStatus::Added | FileStatus::Renamed { .. }))
        .filter_map(|f| {
            if f.path == STACK_FILE {
                Some("")
            } else {
                f.path.strip_suffix(STACK_FILE)?.strip_suffix('/')
            }
        })
        .collect()
}

/// Base stacks whose folder holds no stack at head: renamed when their `stack.hcl` moved to a
/// head stack's folder (or a head stack new in this change carries the same name), deleted
/// otherwise.
fn moved_and_deleted(
    input: ChangeInput<'_>,
    head_by_dir: &FastMap<&str, &HeadStack>,
    new_stacks: &HashSet<&str>,
) -> (Vec<RenamedStack>, Vec<DeletedStack>) {
    let base_dirs: BTreeSet<&str> = input.base.iter().map(|s| s.dir.as_str()).collect();
    let stack_file_moves: HashMap<String, &str> = input
        .files
        .iter()
        .filter_map(|f| match &f.status {
            FileStatus::Renamed { from } => Some((from.clone(), f.path.as_str())),
            _ => None,
        })
        .collect();
    let mut renamed = Vec::new();
    let mut deleted = Vec::new();
    let mut claimed: BTreeSet<&str> = BTreeSet::new();
    let mut gone: Vec<&BaseStack> = input
        .base
        .iter()
        .filter(|s| !head_by_dir.contains_key(s.dir.as_str()))
        .collect();
    gone.sort_by(|a, b| a.dir.cmp(&b.dir));
    gone.dedup_by(|a, b| a.dir == b.dir);
    for base in gone {
        let by_move = stack_file_moves
            .get(&stack_file(&base.dir))
            .and_then(|to| to.rsplit_once('/').map_or(Some(""), |(d, _)| Some(d)))
            .and_then(|to_dir| head_by_dir.get(to_dir))
            .filter(|head| !base_dirs.contains(head.dir.as_str()));
        let by_name = || {
            input.head.iter().find(|h| {
                h.name == base.name
                    && !base_dirs.contains(h.dir.as_str())
                    && new_stacks.contains(h.dir.as_str())
            })
        };
        match by_move
            .copied()
            .or_else(by_name)
            .filter(|h| !claimed.contains(h.dir.as_str()))
        {
            Some(head) => {
                claimed.insert(head.dir.as_str());
                renamed.push(RenamedStack {
                    name: head.name.clone(),
                    dir: head.dir.clone(),
                    from_name: base.name.clone(),
                    from_dir: base.dir.clone(),
                });
            }
            None => deleted.push(DeletedStack {
                name: base.name.clone(),
                dir: base.dir.clone(),
            }),
        }
    }
    (renamed, deleted)
}

/// Takes the collected stacks out of `by_name` in dependency order; stacks the graph cannot
/// order (unknown to it, or on a cycle) follow by name.
fn in_dependency_order<T>(graph: &StackGraph, by_name: &mut BTreeMap<&str, T>) -> Vec<T> {
    let names: Vec<&str> = by_name.keys().copied().collect();
    let mut ordered = Vec::with_capacity(names.len());
    for name in graph.order_of(names.iter().copied()) {
        if let Some(item) = by_name.remove(name) {
            ordered.push(item);
        }
    }
    ordered.extend(std::mem::take(by_name).into_values());
    ordered
}

fn dependents_of(input: ChangeInput<'_>, affected: &[AffectedStack]) -> Vec<Dependent> {
    let roots: Vec<&str> = affected.iter().map(|s| s.name.as_str()).collect();
    let reached = input.graph.with_dependents(&roots);
    let affected_names: HashSet<&str> = roots.iter().copied().collect();
    // Hashed for the lookups below: every head stack is looked up.
    let reached_names: FastSet<&str> = reached.iter().copied().collect();
    let dirs: HashMap<&str, &str> = input
        .head
        .iter()
        .filter(|s| reached_names.contains(s.name.as_str()))
        .map(|s| (s.name.as_str(), s.dir.as_str()))
        .collect();
    let mut dependents: BTreeMap<&str, Dependent> = reached
        .iter()
        .filter(|name| !affected_names.contains(*name))
        .map(|name| {
            let via = input
                .graph
                .dependencies(name)
                .into_iter()
                .filter(|d| reached_names.contains(d))
                .map(str::to_owned)
                .collect();
            (
                *name,
                Dependent {
                    name: (*name).to_owned(),
                    dir: dirs.get(name).map_or_else(String::new, |d| (*d).to_owned()),
                    via,
                },
            )
        })
        .collect();
    in_dependency_order(input.graph, &mut dependents)
}

/// The stack's name as its `stack.hcl` sets it (`stack { name = "..." }`), else its folder's
/// name, else `project` for a stack at the root. Used for base stacks, which are not loaded.
pub fn stack_name(dir: &str, stack_hcl: &str, project: &str) -> String {
    let explicit = hcl::parse(stack_hcl).ok().and_then(|body| {
        body.blocks()
            .filter(|b| b.identifier() == "stack")
            .flat_map(|b| b.body().attributes())
            .find(|a| a.key() == "name")
            .and_then(|a| match a.expr() {
                hcl::Expression::String(s) => Some(s.clone()),
                _ => None,
            })
    });
    explicit.unwrap_or_else(|| {
        dir.rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or(project)
            .to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stack whose modules are taken whole (as when their code reads computed paths).
    fn stack(name: &str, dir: &str, modules: &[&str]) -> HeadStack {
        HeadStack {
            name: name.into(),
            dir: dir.into(),
            files: Some(whole_modules(dir, modules)),
        }
    }

    fn whole_modules(dir: &str, modules: &[&str]) -> StackFiles {
        use crate::module_files::WholeFolder;
        let part = |dir: &str, whole| ModulePart {
            dir: dir.into(),
            called_as: None,
            whole_folder: Some(whole),
            reads: Vec::new(),
        };
        let mut parts = vec![part(dir, WholeFolder::StackFolder)];
        parts.extend(modules.iter().map(|m| {
            part(
                m,
                WholeFolder::UnresolvedRead {
                    expression: "var.x".into(),
                },
            )
        }));
        StackFiles {
            stack_dir: dir.into(),
            parts,
            escaping_sources: Vec::new(),
        }
    }

    fn base(name: &str, dir: &str) -> BaseStack {
        BaseStack {
            name: name.into(),
            dir: dir.into(),
        }
    }

    fn modified(path: &str) -> FileChange {
        FileChange::new(path, FileStatus::Modified)
    }

    fn renamed(from: &str, to: &str) -> FileChange {
        FileChange::new(to, FileStatus::Renamed { from: from.into() })
    }

    /// network <- app <- edge; data alone; app uses modules/service which uses modules/base.
    fn webshop() -> (Vec<HeadStack>, StackGraph) {
        let head = vec![
            stack("network", "stacks/network", &[]),
            stack("app", "stacks/app", &["modules/base", "modules/service"]),
            stack("edge", "stacks/edge", &[]),
            stack("data", "stacks/data", &["modules/base"]),
        ];
        let graph = StackGraph::from_edges([
            ("network", vec![]),
            ("app", vec!["network"]),
            ("edge", vec!["app"]),
            ("data", vec![]),
        ]);
        (head, graph)
    }

    fn detect_on(files: &[FileChange], base_stacks: &[BaseStack]) -> ChangeSet {
        let (head, graph) = webshop();
        let base_stacks: Vec<BaseStack> = if base_stacks.is_empty() {
            head.iter().map(|s| base(&s.name, &s.dir)).collect()
        } else {
            base_stacks.to_vec()
        };
        detect(ChangeInput {
            files,
            head: &head,
            base: &base_stacks,
            graph: &graph,
        })
    }

    fn names(set: &ChangeSet) -> (Vec<&str>, Vec<&str>) {
        (
            set.affected.iter().map(|s| s.name.as_str()).collect(),
            set.dependents.iter().map(|s| s.name.as_str()).collect(),
        )
    }

    #[test]
    fn ancestors_walk_up_to_the_root() {
        assert_eq!(
            ancestors("a/b/c.tf").collect::<Vec<_>>(),
            vec!["a/b", "a", ""]
        );
        assert_eq!(ancestors("c.tf").collect::<Vec<_>>(), vec![""]);
    }

    #[test]
    fn table_of_changes_and_the_stacks_they_affect() {
        // (changed paths, affected stacks, dependents)
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            (&["stacks/network/main.tf"], &["network"], &["app", "edge"]),
            (&["stacks/edge/main.tf"], &["edge"], &[]),
            (&["modules/service/main.tf"], &["app"], &["edge"]),
            // modules/base is used by app through modules/service, and by data directly.
            (
                &["modules/base/files/policy.json"],
                &["app", "data"],
                &["edge"],
            ),
            (&["README.md", "docs/x.md"], &[], &[]),
            (&["stacks/networking/main.tf"], &[], &[]),
            (
                &["stacks/data/stack.hcl", "stacks/app/variables.tf"],
                &["app", "data"],
                &["edge"],
            ),
            (&["slipway.hcl"], &["data", "network", "app", "edge"], &[]),
        ];
        for (paths, affected, dependents) in cases {
            let files: Vec<FileChange> = paths.iter().map(|p| modified(p)).collect();
            let set = detect_on(&files, &[]);
            let (got_affected, got_dependents) = names(&set);
            assert_eq!(&got_affected, affected, "affected by {paths:?}");
            assert_eq!(&got_dependents, dependents, "dependents of {paths:?}");
        }
    }

    #[test]
    fn a_module_at_the_repository_root_counts_only_what_terraform_loads() {
        use crate::source::SourceFile;
        use crate::terraform::ModuleDeclarations;
        let code = |dir: &str, text: &str| {
            ModuleDeclarations::read(&[SourceFile::new(format!("{dir}/main.tf"), text)])
        };
        let example = code("examples/simple", r#"module "vpc" { source = "../../" }"#);
        let root = code(
            "",
            r#"locals { t = file("${path.module}/tags/default.json") }"#,
        );
        let files = |dir: &str| {
            StackFiles::from_declarations(dir, |d| match d {
                "" => Some(root.clone()),
                _ => Some(example.clone()),
            })
        };
        let head = vec![
            HeadStack {
                name: "simple".into(),
                dir: "examples/simple".into(),
                files: Some(files("examples/simple")),
            },
            HeadStack {
                name: "complete".into(),
                dir: "examples/complete".into(),
                files: Some(files("examples/complete")),
            },
        ];
        let graph = StackGraph::from_edges(head.iter().map(|s| (s.name.as_str(), vec![])));
        let detect_on = |paths: &[&str]| {
            let changes: Vec<FileChange> = paths.iter().map(|p| modified(p)).collect();
            detect(ChangeInput {
                files: &changes,
                head: &head,
                base: &[
                    base("simple", "examples/simple"),
                    base("complete", "examples/complete"),
                ],
                graph: &graph,
            })
        };

        let noise = detect_on(&[
            "README.md",
            "CHANGELOG.md",
            ".github/workflows/ci.yml",
            "modules/extra/main.tf",
            "tags/other.json",
            "examples/complete/main.tf",
        ]);
        assert_eq!(names(&noise).0, vec!["complete"]);

        let module = detect_on(&["main.tf", "tags/default.json"]);
        assert_eq!(names(&module).0, vec!["complete", "simple"]);
        let reasons: Vec<String> = module.affected[0]
            .reasons
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            reasons,
            vec![
                "module at the repository root: modified main.tf",
                "module at the repository root: modified tags/default.json",
            ]
        );
    }

    #[test]
    fn reasons_name_the_file_the_module_and_the_stack_config() {
        let set = detect_on(
            &[
                modified("stacks/app/stack.hcl"),
                modified("stacks/app/main.tf"),
                modified("modules/base/main.tf"),
            ],
            &[],
        );
        let app = &set.affected[0];
        assert_eq!(app.name, "app");
        assert_eq!(
            app.reasons,
            vec![
                Reason::StackConfig {
                    change: modified("stacks/app/stack.hcl")
                },
                Reason::FileInStack {
                    change: modified("stacks/app/main.tf")
                },
                Reason::Module {
                    module_dir: "modules/base".into(),
                    change: modified("modules/base/main.tf")
                },
            ]
        );
        assert_eq!(
            set.dependents,
            vec![Dependent {
                name: "edge".into(),
                dir: "stacks/edge".into(),
                via: vec!["app".into()]
            }]
        );
    }

    #[test]
    fn slipway_hcl_change_affects_every_stack_and_says_so() {
        let set = detect_on(&[modified("slipway.hcl")], &[]);
        assert_eq!(set.affected.len(), 4);
        assert!(
            set.all_changed_because
                .as_deref()
                .is_some_and(|b| b.starts_with("slipway.hcl changed"))
        );
        assert!(set.dependents.is_empty(), "everything is already affected");
    }

    #[test]
    fn a_file_renamed_between_stacks_affects_both() {
        let set = detect_on(
            &[renamed("stacks/app/queue.tf", "stacks/data/queue.tf")],
            &[],
        );
        let (affected, _) = names(&set);
        assert_eq!(affected, vec!["app", "data"]);
    }

    #[test]
    fn moved_stack_folder_is_a_rename_not_a_deletion() {
        let (mut head, graph) = webshop();
        head[2] = stack("edge", "stacks/frontdoor", &[]);
        let base_stacks = vec![base("edge", "stacks/edge")];
        let files = vec![
            renamed("stacks/edge/stack.hcl", "stacks/frontdoor/stack.hcl"),
            renamed("stacks/edge/main.tf", "stacks/frontdoor/main.tf"),
        ];
        let set = detect(ChangeInput {
            files: &files,
            head: &head,
            base: &base_stacks,
            graph: &graph,
        });
        assert!(set.deleted_stacks.is_empty());
        assert_eq!(
            set.renamed_stacks,
            vec![RenamedStack {
                name: "edge".into(),
                dir: "stacks/frontdoor".into(),
                from_name: "edge".into(),
                from_dir: "stacks/edge".into(),
            }]
        );
        let edge = &set.affected[0];
        assert!(edge.reasons.contains(&Reason::RenamedStack {
            from_dir: "stacks/edge".into(),
            from_name: "edge".into()
        }));
        assert!(!edge.reasons.contains(&Reason::NewStack));
    }

    #[test]
    fn stack_moved_with_a_rewritten_stack_hcl_is_matched_by_name() {
        let (mut head, graph) = webshop();
        head[3] = stack("data", "stacks/storage", &["modules/base"]);
        let base_stacks = vec![base("data", "stacks/data")];
        let files = vec![
            FileChange::new("stacks/data/stack.hcl", FileStatus::Deleted),
            FileChange::new("stacks/storage/stack.hcl", FileStatus::Added),
        ];
        let set = detect(ChangeInput {
            files: &files,
            head: &head,
            base: &base_stacks,
            graph: &graph,
        });
        assert_eq!(set.renamed_stacks.len(), 1);
        assert_eq!(set.renamed_stacks[0].from_dir, "stacks/data");
        assert!(set.deleted_stacks.is_empty());
    }

    #[test]
    fn deleted_stack_is_reported_and_not_affected() {
        let files = vec![
            FileChange::new("stacks/old/stack.hcl", FileStatus::Deleted),
            FileChange::new("stacks/old/main.tf", FileStatus::Deleted),
        ];
        let set = detect_on(&files, &[base("old", "stacks/old")]);
        assert_eq!(
            set.deleted_stacks,
            vec![DeletedStack {
                name: "old".into(),
                dir: "stacks/old".into()
            }]
        );
        assert!(set.affected.is_empty());
        assert_eq!(set.stacks_to_run().count(), 0);
    }

    #[test]
    fn new_stack_is_marked_new() {
        let (mut head, graph) = webshop();
        head.push(stack("cache", "stacks/cache", &[]));
        let base_stacks: Vec<BaseStack> = head[..4].iter().map(|s| base(&s.name, &s.dir)).collect();
        let files = vec![
            FileChange::new("stacks/cache/stack.hcl", FileStatus::Added),
            FileChange::new("stacks/cache/main.tf", FileStatus::Added),
        ];
        let set = detect(ChangeInput {
            files: &files,
            head: &head,
            base: &base_stacks,
            graph: &graph,
        });
        assert_eq!(set.affected.len(), 1);
        assert_eq!(
            set.affected[0].reasons[0],
            Reason::StackConfig {
                change: FileChange::new("stacks/cache/stack.hcl", FileStatus::Added)
            }
        );
        assert!(set.affected[0].reasons.contains(&Reason::NewStack));
    }

    #[test]
    fn nested_stack_owns_its_files() {
        let head = vec![
            stack("outer", "infra", &[]),
            stack("inner", "infra/inner", &[]),
        ];
        let graph = StackGraph::from_edges([("outer", vec![]), ("inner", vec![])]);
        let base_stacks: Vec<BaseStack> = head.iter().map(|s| base(&s.name, &s.dir)).collect();
        let files = vec![modified("infra/inner/main.tf")];
        let set = detect(ChangeInput {
            files: &files,
            head: &head,
            base: &base_stacks,
            graph: &graph,
        });
        assert_eq!(names(&set).0, vec!["inner"]);
    }

    #[test]
    fn all_changed_marks_every_stack_with_the_reason() {
        let (head, graph) = webshop();
        let set = ChangeSet::all_changed(
            &head,
            &graph,
            "no base: nothing has been released to dev yet",
        );
        assert_eq!(names(&set).0, vec!["data", "network", "app", "edge"]);
        assert!(set.affected.iter().all(|s| s.reasons
            == vec![Reason::AllChanged {
                because: "no base: nothing has been released to dev yet".into()
            }]));
        assert!(!set.is_empty());
    }

    #[test]
    fn stack_name_reads_an_explicit_name_or_the_folder() {
        assert_eq!(
            stack_name("stacks/a", "stack {\n  name = \"alpha\"\n}\n", "p"),
            "alpha"
        );
        assert_eq!(stack_name("stacks/a", "stack {}\n", "p"), "a");
        assert_eq!(stack_name("", "", "p"), "p");
        assert_eq!(stack_name("x", "not hcl {{{", "p"), "x");
    }

    #[test]
    fn reasons_serialize_with_a_kind_tag() {
        let reason = Reason::Module {
            module_dir: "modules/base".into(),
            change: renamed("modules/base/a.tf", "modules/base/b.tf"),
        };
        assert_eq!(
            serde_json::to_value(&reason).unwrap(),
            serde_json::json!({
                "kind": "module",
                "module_dir": "modules/base",
                "change": {"path": "modules/base/b.tf", "status": "renamed", "from": "modules/base/a.tf"}
            })
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Folders from a small alphabet, so generated paths often share prefixes.
        fn folder() -> impl Strategy<Value = String> {
            proptest::collection::vec(prop_oneof![Just("a"), Just("b"), Just("m")], 1..4)
                .prop_map(|parts| parts.join("/"))
        }

        fn file() -> impl Strategy<Value = String> {
            (
                folder(),
                prop_oneof![Just("main.tf"), Just("stack.hcl"), Just("x.json")],
            )
                .prop_map(|(dir, name)| format!("{dir}/{name}"))
        }

        /// The obvious quadratic reading of the rules, to check the indexed one against.
        fn naive(files: &[String], head: &[HeadStack]) -> BTreeSet<String> {
            let inside = |path: &str, dir: &str| path.starts_with(&format!("{dir}/"));
            let mut affected = BTreeSet::new();
            for path in files {
                let owner = head
                    .iter()
                    .filter(|s| inside(path, &s.dir))
                    .max_by_key(|s| s.dir.len());
                if let Some(owner) = owner {
                    affected.insert(owner.name.clone());
                }
                for stack in head {
                    if stack
                        .files
                        .as_ref()
                        .is_some_and(|f| f.parts[1..].iter().any(|m| inside(path, &m.dir)))
                    {
                        affected.insert(stack.name.clone());
                    }
                }
            }
            affected
        }

        proptest! {
            #[test]
            fn indexed_detection_matches_the_naive_reading(
                dirs in proptest::collection::btree_set(folder(), 1..8),
                modules in proptest::collection::vec(proptest::collection::vec(folder(), 0..3), 8),
                files in proptest::collection::vec(file(), 0..12),
            ) {
                let head: Vec<HeadStack> = dirs
                    .iter()
                    .enumerate()
                    .map(|(i, dir)| {
                        let modules: Vec<&str> = modules[i].iter().map(String::as_str).collect();
                        HeadStack {
                            name: format!("s{i}"),
                            dir: dir.clone(),
                            files: Some(whole_modules(dir, &modules)),
                        }
                    })
                    .collect();
                let graph = StackGraph::from_edges(head.iter().map(|s| (s.name.as_str(), vec![])));
                let base: Vec<BaseStack> = head.iter().map(|s| base(&s.name, &s.dir)).collect();
                let changes: Vec<FileChange> = files.iter().map(|p| modified(p)).collect();
                let set = detect(ChangeInput { files: &changes, head: &head, base: &base, graph: &graph });
                let got: BTreeSet<String> = set.affected.iter().map(|s| s.name.clone()).collect();
                prop_assert_eq!(got, naive(&files, &head));
                prop_assert!(set.dependents.is_empty());
                prop_assert!(set.deleted_stacks.is_empty() && set.renamed_stacks.is_empty());
            }

            #[test]
            fn every_dependent_depends_on_something_affected(
                edges in proptest::collection::vec((0usize..10, 0usize..10), 0..20),
                changed in proptest::collection::btree_set(0usize..10, 0..4),
            ) {
                // Only edges from a lower to a higher number, so the graph has no cycle.
                let names: Vec<String> = (0..10).map(|i| format!("s{i}")).collect();
                let deps: Vec<(&str, Vec<&str>)> = (0..10)
                    .map(|i| {
                        let d = edges
                            .iter()
                            .filter(|(from, to)| *to == i && from < to)
                            .map(|(from, _)| names[*from].as_str())
                            .collect();
                        (names[i].as_str(), d)
                    })
                    .collect();
                let graph = StackGraph::from_edges(deps);
                let head: Vec<HeadStack> =
                    names.iter().map(|n| stack(n, &format!("stacks/{n}"), &[])).collect();
                let base: Vec<BaseStack> = head.iter().map(|s| base(&s.name, &s.dir)).collect();
                let changes: Vec<FileChange> =
                    changed.iter().map(|i| modified(&format!("stacks/s{i}/main.tf"))).collect();
                let set = detect(ChangeInput { files: &changes, head: &head, base: &base, graph: &graph });
                let affected: BTreeSet<&str> = set.affected.iter().map(|s| s.name.as_str()).collect();
                let roots: Vec<&str> = affected.iter().copied().collect();
                let expected: BTreeSet<&str> = graph
                    .with_dependents(&roots)
                    .into_iter()
                    .filter(|n| !affected.contains(n))
                    .collect();
                let got: BTreeSet<&str> = set.dependents.iter().map(|d| d.name.as_str()).collect();
                prop_assert_eq!(got, expected);
                let mut seen: BTreeSet<&str> = affected.clone();
                for dependent in &set.dependents {
                    prop_assert!(!dependent.via.is_empty());
                    // Dependency order: whatever a dependent comes via is listed before it.
                    for via in &dependent.via {
                        prop_assert!(seen.contains(via.as_str()), "{} before {}", via, dependent.name);
                    }
                    seen.insert(dependent.name.as_str());
                }
            }
        }
    }
}
