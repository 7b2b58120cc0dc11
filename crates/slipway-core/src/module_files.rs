//! What a stack's code is: the files Terraform loads for it, and nothing else.
//!
//! One definition serves working copies, artifacts (and so their ids) and change detection:
//! - the stack's own folder, whole (its `.tf` files, lock file, `stack.hcl`, the files its
//!   checks use), less nested stacks;
//! - for each local module it calls, transitively: the `*.tf` and `*.tf.json` files directly
//!   in the module's folder, which is all Terraform loads from it;
//! - the files that code reads through `file()`, `templatefile()`, `fileset()` or a path built
//!   on `path.module`/`path.root`, where the path can be read off the code;
//! - where it cannot, the whole folder of the module that reads it, with a note that says so.
//!
//! A module folder is not a folder tree: the VPC module at a repository's root does not make
//! the repository's README, CI files or other examples part of every stack that calls it.
//!
//! Pure: the caller hands over each folder's [`ModuleDeclarations`]; listing and reading
//! files is the adapters' business.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::terraform::{FileRead, ModuleDeclarations, PathBase, is_terraform_file};

/// The files that make up one stack's code, as rules over repository paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackFiles {
    /// The stack's folder, relative to the project root (`""` for the root).
    pub stack_dir: String,
    /// The stack's own folder first, then each local module in the order found.
    pub parts: Vec<ModulePart>,
    /// Local module sources that climb above the project root: `(calling folder, source)`.
    pub escaping_sources: Vec<(String, String)>,
}

/// One module folder of a stack and what of it belongs to the stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModulePart {
    /// The folder, relative to the project root (`""` for the root).
    pub dir: String,
    /// The `source` as written by the first caller, and that caller's folder; `None` for the
    /// stack itself.
    pub called_as: Option<(String, String)>,
    /// Why the whole folder (and everything below it) belongs to the stack, when it does.
    pub whole_folder: Option<WholeFolder>,
    /// Files and folders the code reads, as repository paths.
    pub reads: Vec<ResolvedRead>,
}

/// Why a whole folder is part of a stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "because", rename_all = "snake_case")]
pub enum WholeFolder {
    /// It is the stack's own folder.
    StackFolder,
    /// The module's code reads a path slipway cannot work out (`expression`, as written).
    UnresolvedRead { expression: String },
    /// A `.tf` file of the module could not be parsed, so its reads are unknown.
    UnreadableCode { file: String },
}

/// A read resolved to repository paths.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ResolvedRead {
    /// This file, or this folder and everything below it.
    Path { path: String },
    /// The files below `dir` whose path relative to `dir` matches `pattern` (Terraform's
    /// `fileset` syntax: `*`, `**`, `?`, `{a,b}`, `[...]`).
    Glob { dir: String, pattern: String },
}

impl StackFiles {
    /// Follows `stack_dir`'s local modules and file reads. `declarations_of(dir)` reads the
    /// `.tf`/`.tf.json` files directly in `dir`; `Ok(None)` for a folder that does not exist.
    pub fn resolve<E>(
        stack_dir: &str,
        mut declarations_of: impl FnMut(&str) -> Result<Option<ModuleDeclarations>, E>,
    ) -> Result<Self, E> {
        let mut parts: Vec<ModulePart> = Vec::new();
        let mut escaping_sources = Vec::new();
        let mut seen = BTreeSet::from([stack_dir.to_owned()]);
        let mut queue = std::collections::VecDeque::from([(stack_dir.to_owned(), None)]);
        while let Some((dir, called_as)) = queue.pop_front() {
            let declarations = declarations_of(&dir)?.unwrap_or_default();
            let mut part = ModulePart {
                dir: dir.clone(),
                called_as,
                whole_folder: (dir == stack_dir).then_some(WholeFolder::StackFolder),
                reads: Vec::new(),
            };
            if part.whole_folder.is_none() {
                if let Some(file) = declarations.unreadable_files.first() {
                    part.whole_folder = Some(WholeFolder::UnreadableCode { file: file.clone() });
                }
            }
            for read in &declarations.file_reads {
                let base_dir = |base: PathBase| match base {
                    PathBase::Module => dir.as_str(),
                    PathBase::Root => stack_dir,
                };
                match read {
                    FileRead::Path { base, path } => {
                        if let Some(path) = join_module_source(base_dir(*base), path) {
                            part.reads.push(ResolvedRead::Path { path });
                        }
                    }
                    FileRead::Glob { base, dir, pattern } => {
                        if let Some(dir) = join_module_source(base_dir(*base), dir) {
                            part.reads.push(ResolvedRead::Glob {
                                dir,
                                pattern: pattern.clone(),
                            });
                        }
                    }
                    FileRead::Unresolved { expression } => {
                        if part.whole_folder.is_none() {
                            part.whole_folder = Some(WholeFolder::UnresolvedRead {
                                expression: expression.clone(),
                            });
                        }
                    }
                }
            }
            part.reads.sort();
            part.reads.dedup();
            for source in &declarations.local_module_sources {
                match join_module_source(&dir, source) {
                    Some(module_dir) => {
                        if seen.insert(module_dir.clone()) {
                            queue.push_back((module_dir, Some((source.clone(), dir.clone()))));
                        }
                    }
                    None => escaping_sources.push((dir.clone(), source.clone())),
                }
            }
            parts.push(part);
        }
        Ok(Self {
            stack_dir: stack_dir.to_owned(),
            parts,
            escaping_sources,
        })
    }

    /// [`StackFiles::resolve`] over declarations already at hand.
    pub fn from_declarations(
        stack_dir: &str,
        mut declarations_of: impl FnMut(&str) -> Option<ModuleDeclarations>,
    ) -> Self {
        match Self::resolve(stack_dir, |dir| {
            Ok::<_, std::convert::Infallible>(declarations_of(dir))
        }) {
            Ok(files) => files,
            Err(never) => match never {},
        }
    }

    /// The local module folders, without the stack's own.
    pub fn module_dirs(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().skip(1).map(|p| p.dir.as_str())
    }

    /// The part that claims `path`, if any: the stack's own folder first, then modules in
    /// the order found. Nested stacks are the caller's to leave out.
    pub fn part_of(&self, path: &str) -> Option<&ModulePart> {
        self.parts.iter().find(|part| part.contains(path))
    }

    /// True when `path` (relative to the project root) is part of the stack's code.
    pub fn contains(&self, path: &str) -> bool {
        self.part_of(path).is_some()
    }

    /// One line per part taken whole for want of a better answer, for the person running
    /// the command.
    pub fn notes(&self) -> Vec<String> {
        self.parts
            .iter()
            .filter_map(|part| {
                let why = match part.whole_folder.as_ref()? {
                    WholeFolder::StackFolder => return None,
                    WholeFolder::UnresolvedRead { expression } => {
                        format!("its code reads `{expression}`, a path slipway cannot work out")
                    }
                    WholeFolder::UnreadableCode { file } => {
                        format!("`{file}` does not parse, so the files it reads are unknown")
                    }
                };
                Some(format!(
                    "the whole folder of module {} is included: {why}",
                    part.describe()
                ))
            })
            .collect()
    }
}

impl ModulePart {
    /// True when `path` belongs to this part.
    pub fn contains(&self, path: &str) -> bool {
        if self.whole_folder.is_some() {
            if is_below(path, &self.dir) {
                return true;
            }
        } else if parent(path) == self.dir && is_terraform_file(file_name(path)) {
            return true;
        }
        self.reads.iter().any(|read| read.contains(path))
    }

    /// `` `../../` (the repository root, called from examples/simple) `` and the like.
    pub fn describe(&self) -> String {
        let folder = if self.dir.is_empty() {
            "the repository root".to_owned()
        } else {
            self.dir.clone()
        };
        match &self.called_as {
            Some((source, caller)) => {
                let caller = if caller.is_empty() {
                    "the root"
                } else {
                    caller
                };
                format!("`{source}` ({folder}, called from {caller})")
            }
            None => format!("`{folder}` (the stack's folder)"),
        }
    }
}

impl ResolvedRead {
    /// True when `path` is this file, below this folder, or matched by this glob.
    pub fn contains(&self, path: &str) -> bool {
        match self {
            ResolvedRead::Path { path: read } => is_below(path, read),
            ResolvedRead::Glob { dir, pattern } => {
                let Some(rest) = strip_folder(path, dir) else {
                    return false;
                };
                globset::GlobBuilder::new(pattern)
                    .literal_separator(true)
                    .build()
                    .map(|glob| glob.compile_matcher().is_match(rest))
                    .unwrap_or(false)
            }
        }
    }

    /// The folder (or file) below which every match lies.
    pub fn root(&self) -> &str {
        match self {
            ResolvedRead::Path { path } => path,
            ResolvedRead::Glob { dir, .. } => dir,
        }
    }
}

/// True when `path` is `folder` or lies below it; every path lies below the root `""`.
pub fn is_below(path: &str, folder: &str) -> bool {
    strip_folder(path, folder).is_some() || path == folder
}

fn strip_folder<'a>(path: &'a str, folder: &str) -> Option<&'a str> {
    if folder.is_empty() {
        return Some(path);
    }
    path.strip_prefix(folder)?.strip_prefix('/')
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

fn file_name(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, name)| name)
}

/// Joins a module folder and a relative `source` (`./x`, `../y`), resolving `.` and `..`
/// lexically. `None` when the source climbs above the project root.
pub fn join_module_source(dir: &str, source: &str) -> Option<String> {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in source.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

/// The local module folders `stack_dir` uses, transitively: sorted, without `stack_dir`.
///
/// `sources_in(dir)` gives the local module `source`s declared by the `.tf` files directly in
/// `dir` (as [`crate::terraform::ModuleDeclarations::local_module_sources`]), or `None` when
/// the folder is unknown. Sources that climb above the project root are skipped: loading the
/// stack reports them.
pub fn module_closure<'a, F>(stack_dir: &str, mut sources_in: F) -> Vec<String>
where
    F: FnMut(&str) -> Option<&'a BTreeSet<String>>,
{
    let mut found = BTreeSet::new();
    let mut queue = vec![stack_dir.to_owned()];
    while let Some(dir) = queue.pop() {
        let Some(sources) = sources_in(&dir) else {
            continue;
        };
        for source in sources {
            if let Some(module_dir) = join_module_source(&dir, source) {
                if module_dir != stack_dir && found.insert(module_dir.clone()) {
                    queue.push(module_dir);
                }
            }
        }
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::convert::Infallible;

    use super::*;
    use crate::source::SourceFile;

    /// Folders of `.tf` code by path; `resolve` reads from it.
    fn repo(folders: &[(&str, &str)]) -> BTreeMap<String, ModuleDeclarations> {
        folders
            .iter()
            .map(|(dir, code)| {
                let file = SourceFile::new(format!("{dir}/main.tf"), *code);
                ((*dir).to_owned(), ModuleDeclarations::read(&[file]))
            })
            .collect()
    }

    fn resolve(stack: &str, folders: &BTreeMap<String, ModuleDeclarations>) -> StackFiles {
        StackFiles::resolve(stack, |dir| Ok::<_, Infallible>(folders.get(dir).cloned()))
            .expect("infallible")
    }

    #[test]
    fn a_module_at_the_repository_root_brings_its_code_not_the_repository() {
        let folders = repo(&[
            ("examples/simple", r#"module "vpc" { source = "../../" }"#),
            ("", r#"resource "aws_vpc" "this" {}"#),
        ]);
        let files = resolve("examples/simple", &folders);
        for path in [
            "main.tf",
            "variables.tf",
            "versions.tf.json",
            "examples/simple/x.md",
        ] {
            assert!(files.contains(path), "{path} is part of the stack");
        }
        for path in [
            "README.md",
            "CHANGELOG.md",
            ".github/workflows/ci.yml",
            "examples/complete/main.tf",
            "modules/endpoints/main.tf",
            ".slipway/artifacts/x",
        ] {
            assert!(!files.contains(path), "{path} is not part of the stack");
        }
        assert_eq!(files.module_dirs().collect::<Vec<_>>(), vec![""]);
        assert!(files.notes().is_empty());
        assert_eq!(
            files.part_of("main.tf").unwrap().describe(),
            "`../../` (the repository root, called from examples/simple)"
        );
    }

    #[test]
    fn files_the_code_reads_belong_to_the_stack() {
        let folders = repo(&[
            (
                "stacks/app",
                r#"module "svc" { source = "../../modules/svc" }"#,
            ),
            (
                "modules/svc",
                r#"
locals {
  policy = file("${path.module}/policies/read.json")
  confs  = fileset("${path.module}/conf", "*.yaml")
  shared = file("${path.module}/../shared/tags.json")
}
"#,
            ),
        ]);
        let files = resolve("stacks/app", &folders);
        assert!(files.contains("modules/svc/policies/read.json"));
        assert!(files.contains("modules/svc/conf/a.yaml"));
        assert!(
            !files.contains("modules/svc/conf/deeper/a.yaml"),
            "* stops at /"
        );
        assert!(!files.contains("modules/svc/conf/a.json"));
        assert!(files.contains("modules/shared/tags.json"));
        assert!(!files.contains("modules/svc/README.md"));
        assert!(!files.contains("modules/svc/policies2/x.json"));
    }

    #[test]
    fn an_unresolvable_read_takes_the_whole_folder_and_says_so() {
        let folders = repo(&[
            (
                "stacks/app",
                r#"module "svc" { source = "../../modules/svc" }"#,
            ),
            ("modules/svc", r#"locals { p = file(var.policy) }"#),
        ]);
        let files = resolve("stacks/app", &folders);
        assert!(files.contains("modules/svc/anything/at/all.txt"));
        let notes = files.notes();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains("modules/svc") && notes[0].contains("var.policy"),
            "{notes:?}"
        );
    }

    #[test]
    fn modules_are_followed_transitively_once_and_escapes_are_reported() {
        let folders = repo(&[
            (
                "a",
                r#"
module "b" { source = "./b" }
module "c" { source = "../../outside" }
"#,
            ),
            ("a/b", r#"module "a" { source = "../" }"#),
        ]);
        let files = resolve("a", &folders);
        assert_eq!(files.module_dirs().collect::<Vec<_>>(), vec!["a/b"]);
        assert_eq!(
            files.escaping_sources,
            vec![("a".to_owned(), "../../outside".to_owned())]
        );
    }

    #[test]
    fn module_closure_follows_modules_transitively_and_skips_escapes() {
        let sources: BTreeMap<&str, BTreeSet<String>> = BTreeMap::from([
            (
                "stacks/app",
                BTreeSet::from(["../../modules/service".to_owned(), "./local".to_owned()]),
            ),
            ("modules/service", BTreeSet::from(["../base".to_owned()])),
            (
                "modules/base",
                BTreeSet::from(["../../../outside".to_owned()]),
            ),
            ("stacks/app/local", BTreeSet::from(["..".to_owned()])),
        ]);
        let closure = module_closure("stacks/app", |dir| sources.get(dir));
        assert_eq!(
            closure,
            vec!["modules/base", "modules/service", "stacks/app/local"]
        );
    }
}
