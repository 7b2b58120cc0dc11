//! Finding the project on disk and loading it: the filesystem side of configuration.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use slipway_core::config::{
    self, Env, PROJECT_FILE, Project, ProjectSources, STACK_FILE, StackSources,
};
use slipway_core::{Diagnostics, SourceFile};
use walkdir::WalkDir;

/// A loaded project and where it lives.
#[derive(Debug)]
pub struct Workspace {
    pub root: PathBuf,
    pub project: Project,
}

impl Workspace {
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
        let marker = dir.join(".slipway-data");
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
    // The data folder may be renamed in slipway.hcl; skip both the default and anything
    // holding slipway's own marker so a working copy is never mistaken for a stack.
    let mut stacks = Vec::new();
    let walker = WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            !(e.file_type().is_dir()
                && (name == ".git"
                    || name == ".terraform"
                    || name == config::DEFAULT_DATA_DIR
                    || e.path().join(".slipway-data").exists()))
        });
    for entry in walker {
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
            if path.extension().is_some_and(|e| e == "tf") && path.is_file() {
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

/// Finds, reads and validates the project.
pub fn open(explicit: Option<&Path>) -> Result<Workspace> {
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    let root = find_root(explicit, &cwd)?;
    let sources = read_sources(&root)?;
    let env: Env = std::env::vars().collect();
    let project = config::load(&sources, &env).map_err(ConfigErrors)?;
    Ok(Workspace { root, project })
}
