//! Finding the project on disk and loading it: the filesystem side of configuration; and
//! finding the stages and stacks a command names.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use slipway_core::config::{self, PROJECT_FILE, Project, ProjectSources, STACK_FILE, StackSources};
use slipway_core::{Diagnostics, SourceFile, Stage};
use walkdir::{DirEntry, WalkDir};

use crate::Settings;
use crate::events::{InterruptSource, Observer, Reporter, Unobserved};

/// A loaded project, where it lives, and what the front end driving it provides: its
/// settings, where events go, and the interrupt engine steps obey.
#[derive(Clone)]
pub struct Workspace {
    pub root: PathBuf,
    pub project: Project,
    pub settings: Settings,
    pub observer: Arc<dyn Observer>,
    pub interrupts: InterruptSource,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace")
            .field("root", &self.root)
            .field("project", &self.project.name)
            .finish_non_exhaustive()
    }
}

impl Workspace {
    /// The same workspace, whose events also go to `observer`.
    pub fn observed_also(&self, observer: Arc<dyn Observer>) -> Workspace {
        let mut also = self.clone();
        also.observer = Arc::new(crate::events::Tee(vec![
            Arc::clone(&self.observer),
            observer,
        ]));
        also
    }

    /// A workspace whose events go nowhere and whose engine steps are never interrupted;
    /// front ends replace both.
    pub fn new(root: PathBuf, project: Project, settings: Settings) -> Self {
        Self {
            root,
            project,
            settings,
            observer: Arc::new(Unobserved),
            interrupts: InterruptSource::never(),
        }
    }

    pub fn observed_by(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    pub fn interrupted_by(mut self, interrupts: InterruptSource) -> Self {
        self.interrupts = interrupts;
        self
    }

    /// Reports events about `stage`'s own instance.
    pub fn reporter(&self, stage: &str) -> Reporter {
        Reporter::new(Arc::clone(&self.observer), stage, stage)
    }

    /// The absolute data folder.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join(&self.project.data_dir)
    }

    /// The data folder, created, and kept out of git.
    pub fn ensure_data_dir(&self) -> Result<PathBuf> {
        let dir = self.data_dir();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the data folder {}", dir.display()))?;
        // Marks the folder as slipway's, so discovery never mistakes a working copy for a stack.
        let marker = dir.join(DATA_MARKER);
        if !marker.exists() {
            std::fs::write(&marker, "")?;
        }
        let ignore = dir.join(".gitignore");
        if !ignore.exists() {
            std::fs::write(
                &ignore,
                "# slipway's data folder: state, logs, working copies.\n*\n",
            )?;
        }
        Ok(dir)
    }
}

/// The file that marks a folder as slipway's data folder, whatever slipway.hcl names it.
const DATA_MARKER: &str = ".slipway-data";

/// Every file and folder below `root`, by name, without `.git`, `.terraform` and slipway's
/// data folder. The data folder may be renamed in slipway.hcl; both the default and anything
/// holding slipway's own marker are skipped, so a working copy is never mistaken for code.
pub fn walk_sources(root: &Path) -> impl Iterator<Item = walkdir::Result<DirEntry>> {
    WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            !(e.file_type().is_dir()
                && (name == ".git"
                    || name == ".terraform"
                    || name == config::DEFAULT_DATA_DIR
                    || e.path().join(DATA_MARKER).exists()))
        })
}

/// Configuration errors, rendered with their locations.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigErrors(pub Diagnostics);

/// The project folder: `explicit` if given, else the nearest folder at or above `cwd` that
/// holds slipway.hcl.
pub fn find_root(explicit: Option<&Path>, cwd: &Path) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        let dir = if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            cwd.join(dir)
        };
        if !dir.join(PROJECT_FILE).is_file() {
            bail!(
                "no {PROJECT_FILE} in {}\n  help: point --project-dir at the folder that holds {PROJECT_FILE}",
                dir.display()
            );
        }
        return Ok(dir);
    }
    for dir in cwd.ancestors() {
        if dir.join(PROJECT_FILE).is_file() {
            return Ok(dir.to_path_buf());
        }
    }
    bail!(
        "no {PROJECT_FILE} found in {} or any folder above it\n  help: run slipway inside a project, or pass --project-dir DIR",
        cwd.display()
    )
}

/// Reads slipway.hcl and every stack folder below `root`.
pub fn read_sources(root: &Path) -> Result<ProjectSources> {
    let config_path = root.join(PROJECT_FILE);
    let text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("cannot read {}", config_path.display()))?;
    let config = SourceFile::new(PROJECT_FILE, text);
    let mut stacks = Vec::new();
    for entry in walk_sources(root) {
        let entry = entry.with_context(|| format!("cannot walk {}", root.display()))?;
        if !entry.file_type().is_file() || entry.file_name() != STACK_FILE {
            continue;
        }
        let dir = entry.path().parent().unwrap_or(root);
        let relative = dir.strip_prefix(root).unwrap_or(dir).to_path_buf();
        let stack_config = SourceFile::new(
            relative.join(STACK_FILE),
            std::fs::read_to_string(entry.path())
                .with_context(|| format!("cannot read {}", entry.path().display()))?,
        );
        let mut terraform = Vec::new();
        for file in std::fs::read_dir(dir)? {
            let path = file?.path();
            let is_code = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(slipway_core::terraform::is_terraform_file);
            if is_code && path.is_file() {
                let name = path.file_name().map(PathBuf::from).unwrap_or_default();
                terraform.push(SourceFile::new(
                    relative.join(name),
                    std::fs::read_to_string(&path)?,
                ));
            }
        }
        terraform.sort_by(|a, b| a.path.cmp(&b.path));
        stacks.push(StackSources {
            dir: relative,
            config: stack_config,
            terraform,
        });
    }
    Ok(ProjectSources { config, stacks })
}

/// Finds (from `explicit`, else upwards from `cwd`), reads and validates the project, with
/// `env()` in configuration resolved against the settings' environment.
pub fn open(explicit: Option<&Path>, cwd: &Path, settings: Settings) -> Result<Workspace> {
    let root = find_root(explicit, cwd)?;
    let sources = read_sources(&root)?;
    let project = config::load(&sources, &settings.environment).map_err(ConfigErrors)?;
    Ok(Workspace::new(root, project, settings))
}

/// The stage named on the command line.
pub fn find_stage<'a>(workspace: &'a Workspace, name: &str) -> Result<&'a Stage> {
    let project = &workspace.project;
    project.stage(name).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown stage `{name}`\n  help: the stages in slipway.hcl are: {}",
            project.stage_names().join(", ")
        )
    })
}

/// The stack named on the command line.
pub fn check_stack(workspace: &Workspace, name: &str) -> Result<()> {
    let project = &workspace.project;
    if project.stack(name).is_none() {
        let known: Vec<&str> = project.stacks.iter().map(|s| s.name.as_str()).collect();
        bail!(
            "unknown stack `{name}`\n  help: the stacks are: {}",
            known.join(", ")
        );
    }
    Ok(())
}

/// The stacks named on the command line, each checked; every stack when none is named.
pub fn chosen_stacks(workspace: &Workspace, names: &[String]) -> Result<BTreeSet<String>> {
    if names.is_empty() {
        return Ok(workspace
            .project
            .stacks
            .iter()
            .map(|s| s.name.clone())
            .collect());
    }
    for name in names {
        check_stack(workspace, name)?;
    }
    Ok(names.iter().cloned().collect())
}

/// `names` and every stack they depend on, transitively.
pub fn with_dependencies<'a>(
    project: &Project,
    names: impl IntoIterator<Item = &'a String>,
) -> BTreeSet<String> {
    let names: Vec<&str> = names.into_iter().map(String::as_str).collect();
    project
        .graph
        .with_dependencies(&names)
        .into_iter()
        .map(str::to_owned)
        .collect()
}
