//! Reading a project as it is at a commit: the same `ProjectSources` a working tree gives,
//! and the local module folders each stack uses.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use slipway_core::config::{
    DEFAULT_DATA_DIR, PROJECT_FILE, ProjectSources, STACK_FILE, StackSources,
};
use slipway_core::module_files::module_closure;
use slipway_core::terraform::ModuleDeclarations;
use slipway_core::{SourceFile, Stack};

use crate::batch::CatFile;
use crate::error::GitError;
use crate::repo::{Repo, failed};

/// Reads files of one commit through a single `git cat-file --batch` process.
pub struct TreeReader<'r> {
    repo: &'r Repo,
    commit: String,
    batch: CatFile,
    /// `.tf` files by folder, from the listing (filled by [`TreeReader::project_sources`]).
    tf_by_dir: HashMap<String, Vec<String>>,
}

impl std::fmt::Debug for TreeReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeReader")
            .field("commit", &self.commit)
            .finish_non_exhaustive()
    }
}

impl<'r> TreeReader<'r> {
    /// A reader of `commit` (an object id, or any revision git resolves).
    pub fn new(repo: &'r Repo, commit: &str) -> Result<Self, GitError> {
        Ok(Self {
            repo,
            commit: commit.to_owned(),
            batch: CatFile::start(repo)?,
            tf_by_dir: HashMap::new(),
        })
    }

    /// The text of each path (relative to the project root), `None` where the commit has no
    /// such text file.
    pub fn read(&mut self, paths: &[String]) -> Result<Vec<Option<String>>, GitError> {
        let full: Vec<String> = paths
            .iter()
            .map(|p| format!("{}{p}", self.repo.prefix()))
            .collect();
        self.batch.read(&self.commit, &full)
    }

    /// `slipway.hcl` and every stack folder (a folder with a `stack.hcl`, with its `.tf`
    /// files), as the working-tree reader finds them: stacks in path order, each stack's
    /// `.tf` files sorted, `.git`, `.terraform` and the data folder skipped.
    pub fn project_sources(&mut self) -> Result<ProjectSources, GitError> {
        let listing = self.list()?;
        let mut stack_dirs: Vec<String> = Vec::new();
        self.tf_by_dir.clear();
        for path in &listing {
            let (dir, name) = split(path);
            if name == STACK_FILE {
                stack_dirs.push(dir.to_owned());
            } else if slipway_core::terraform::is_terraform_file(name) {
                self.tf_by_dir
                    .entry(dir.to_owned())
                    .or_default()
                    .push(path.clone());
            }
        }
        stack_dirs.sort();
        let mut wanted = vec![PROJECT_FILE.to_owned()];
        for dir in &stack_dirs {
            wanted.push(join(dir, STACK_FILE));
            wanted.extend(self.tf_by_dir.get(dir).into_iter().flatten().cloned());
        }
        let mut texts = self.read(&wanted)?.into_iter();
        let Some(config) = texts.next().flatten() else {
            return Err(GitError::BadOutput {
                command: format!("git cat-file {}:{PROJECT_FILE}", self.commit),
                detail: format!("commit {} has no {PROJECT_FILE}", self.commit),
            });
        };
        let mut stacks = Vec::with_capacity(stack_dirs.len());
        for dir in &stack_dirs {
            let stack_config = texts.next().flatten().unwrap_or_default();
            let mut terraform = Vec::new();
            for path in self.tf_by_dir.get(dir).into_iter().flatten() {
                if let Some(text) = texts.next().flatten() {
                    terraform.push(SourceFile::new(path, text));
                }
            }
            terraform.sort_by(|a, b| a.path.cmp(&b.path));
            stacks.push(StackSources {
                dir: PathBuf::from(dir),
                config: SourceFile::new(join(dir, STACK_FILE), stack_config),
                terraform,
            });
        }
        Ok(ProjectSources {
            config: SourceFile::new(PROJECT_FILE, config),
            stacks,
        })
    }

    /// For each stack (by name), every local module folder it uses, transitively. Module
    /// folders are read level by level, each level in one batch.
    ///
    /// Call after [`TreeReader::project_sources`], whose listing says which `.tf` files each
    /// folder holds.
    pub fn module_dirs(
        &mut self,
        stacks: &[Stack],
    ) -> Result<BTreeMap<String, Vec<String>>, GitError> {
        let mut sources_by_dir: HashMap<String, BTreeSet<String>> = stacks
            .iter()
            .map(|s| (s.dir.clone(), s.declarations.local_module_sources.clone()))
            .collect();
        let mut frontier: BTreeSet<String> = module_folders(&sources_by_dir, &sources_by_dir);
        while !frontier.is_empty() {
            let dirs: Vec<String> = frontier.into_iter().collect();
            let files: Vec<(usize, String)> = dirs
                .iter()
                .enumerate()
                .flat_map(|(i, dir)| {
                    self.tf_by_dir
                        .get(dir)
                        .into_iter()
                        .flatten()
                        .map(move |p| (i, p.clone()))
                })
                .collect();
            let paths: Vec<String> = files.iter().map(|(_, p)| p.clone()).collect();
            let texts = self.read(&paths)?;
            let mut per_dir: Vec<Vec<SourceFile>> = vec![Vec::new(); dirs.len()];
            for ((i, path), text) in files.into_iter().zip(texts) {
                if let Some(text) = text {
                    per_dir[i].push(SourceFile::new(path, text));
                }
            }
            let mut level: HashMap<String, BTreeSet<String>> = HashMap::new();
            for (dir, files) in dirs.into_iter().zip(per_dir) {
                level.insert(dir, ModuleDeclarations::read(&files).local_module_sources);
            }
            let next = module_folders(&level, &sources_by_dir);
            sources_by_dir.extend(level);
            frontier = next;
        }
        Ok(stacks
            .iter()
            .map(|s| {
                let closure = module_closure(&s.dir, |dir| sources_by_dir.get(dir));
                (s.name.clone(), closure)
            })
            .collect())
    }

    /// Every file path at the commit below the project folder, relative to it, skipping the
    /// folders the working-tree reader skips.
    fn list(&self) -> Result<Vec<String>, GitError> {
        let mut args = vec!["ls-tree", "-r", "-z", "--name-only", &self.commit, "--"];
        let prefix = self.repo.prefix();
        if !prefix.is_empty() {
            args.push(prefix);
        }
        let output = self.repo.run(&args)?;
        if !output.status.success() {
            return Err(failed("git ls-tree", &output));
        }
        Ok(output
            .stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .filter_map(|p| std::str::from_utf8(p).ok())
            .filter_map(|p| p.strip_prefix(prefix))
            .filter(|p| {
                !p.split('/')
                    .any(|part| part == ".git" || part == ".terraform" || part == DEFAULT_DATA_DIR)
            })
            .map(str::to_owned)
            .collect())
    }
}

/// Module folders called from `from` that `known` has not read yet.
fn module_folders(
    from: &HashMap<String, BTreeSet<String>>,
    known: &HashMap<String, BTreeSet<String>>,
) -> BTreeSet<String> {
    from.iter()
        .flat_map(|(dir, sources)| {
            sources
                .iter()
                .filter_map(|s| slipway_core::module_files::join_module_source(dir, s))
        })
        .filter(|dir| !known.contains_key(dir))
        .collect()
}

fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}
