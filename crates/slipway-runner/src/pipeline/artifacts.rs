//! Building artifacts at a commit into the project's artifact store (and the record), and
//! turning a stored artifact back into files for a delivery, verified first.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use slipway_artifact::{
    ArtifactId, ArtifactStore, BundleInput, DEFAULT_SIZE_CAP, ExtractLimits, GitCommit, PutOutcome,
    RelPath, S3Options, build_bundle, extract, open_store, select,
};
use slipway_store::{AnyStore, Artifact, Store, UnixMillis};

use crate::help::WithHelp;
use crate::project::Workspace;

/// The artifact store's URL: the settings' (`SLIPWAY_ARTIFACTS_URL`), else `artifacts { url }` in
/// slipway.hcl, else `<data>/artifacts`.
pub fn store_url(workspace: &Workspace) -> Result<String> {
    if let Some(url) = &workspace.settings.artifacts_url {
        return Ok(url.clone());
    }
    if let Some(url) = &workspace.project.artifacts_url {
        return Ok(url.clone());
    }
    Ok(workspace
        .ensure_data_dir()?
        .join("artifacts")
        .display()
        .to_string())
}

/// Opens the project's artifact store.
pub fn open(workspace: &Workspace) -> Result<slipway_artifact::Store> {
    let url = store_url(workspace)?;
    open_store(&url, &S3Options::default())
        .with_context(|| format!("cannot open the artifact store at {url}"))
}

/// One stack's artifact at a commit.
#[derive(Debug, Clone)]
pub struct Built {
    pub id: ArtifactId,
    pub size: u64,
    /// False when the store already held it (the same content was built before).
    pub new: bool,
}

/// The full hash of `rev`, after checking that the project is the repository's top folder
/// (artifact paths are relative to the repository root).
pub fn resolve_commit(workspace: &Workspace, rev: &str) -> Result<GitCommit> {
    let prefix = std::process::Command::new("git")
        .args(["rev-parse", "--show-prefix"])
        .current_dir(&workspace.root)
        .output()
        .context("cannot run git")?;
    if !prefix.status.success() {
        bail!(
            "{} is not inside a git repository\n  help: artifacts are built from commits; run `git init` and commit the project",
            workspace.root.display()
        );
    }
    if !String::from_utf8_lossy(&prefix.stdout).trim().is_empty() {
        bail!(
            "the project folder {} is not the top folder of its git repository\n  help: keep slipway.hcl at the repository root",
            workspace.root.display()
        );
    }
    GitCommit::open(&workspace.root, rev)
        .with_context(|| format!("cannot build from `{rev}`"))
        .help("name a commit, branch or tag of this repository")
}

/// Builds the artifacts of `stacks` at `commit`, stores them and records them.
pub async fn build(
    workspace: &Workspace,
    record: &AnyStore,
    artifacts: &slipway_artifact::Store,
    commit: &GitCommit,
    stacks: &BTreeSet<String>,
) -> Result<BTreeMap<String, Built>> {
    let mut built = BTreeMap::new();
    for name in stacks {
        let stack = workspace
            .project
            .stack(name)
            .with_context(|| format!("unknown stack `{name}`"))?;
        let stack_dir = RelPath::new(&stack.dir)
            .with_context(|| format!("stack folder `{}` is not a repository path", stack.dir))?;
        let selection = select(commit, &stack_dir, DEFAULT_SIZE_CAP)
            .with_context(|| format!("cannot choose the files of stack `{name}`"))?;
        let bundle = build_bundle(
            commit,
            &BundleInput {
                stack: name.clone(),
                selection,
                slipway_version: env!("CARGO_PKG_VERSION").to_owned(),
            },
        )
        .with_context(|| {
            format!(
                "cannot build the artifact of `{name}` at {}",
                commit.commit_hash()
            )
        })?;
        let outcome = artifacts
            .put(&bundle.id, &bundle.bytes)
            .await
            .with_context(|| format!("cannot store the artifact of `{name}`"))?;
        let size = bundle.bytes.len() as u64;
        record
            .record_artifact(&Artifact {
                id: bundle.id.to_string(),
                stack: name.clone(),
                commit: commit.commit_hash().to_owned(),
                created_at: UnixMillis::now(),
                size,
                manifest: serde_json::to_string(&bundle.manifest)?,
            })
            .await
            .context("cannot record the artifact")?;
        built.insert(
            name.clone(),
            Built {
                id: bundle.id,
                size,
                new: outcome == PutOutcome::Stored,
            },
        );
    }
    Ok(built)
}

/// Reads `id` from the store, verifies its hash and extracts it into
/// `<data>/extracted/<hex>/`; returns that folder. A tampered artifact is refused here,
/// before any engine command runs. Within one process each artifact is extracted once:
/// paths that run side by side (verification from zero and from latest) share the folder
/// rather than replacing it under each other.
pub async fn fetch(
    data_dir: &Path,
    artifacts: &slipway_artifact::Store,
    stack: &str,
    id: &str,
) -> Result<PathBuf> {
    static FETCHED: std::sync::OnceLock<
        std::sync::Mutex<HashMap<PathBuf, Arc<tokio::sync::OnceCell<PathBuf>>>>,
    > = std::sync::OnceLock::new();
    let key = data_dir.join("extracted").join(id);
    let cell = {
        let mut fetched = FETCHED
            .get_or_init(Default::default)
            .lock()
            .map_err(|_| anyhow::anyhow!("internal error: the artifact cache is poisoned"))?;
        Arc::clone(fetched.entry(key).or_default())
    };
    cell.get_or_try_init(|| fetch_once(data_dir, artifacts, stack, id))
        .await
        .cloned()
}

async fn fetch_once(
    data_dir: &Path,
    artifacts: &slipway_artifact::Store,
    stack: &str,
    id: &str,
) -> Result<PathBuf> {
    let refused = |what: String| {
        anyhow::anyhow!(
            "artifact {id} of stack `{stack}` is refused: {what}\n  help: nothing was applied; rebuild it with `slipway build` or check who changed the artifact store at {}",
            artifacts.location()
        )
    };
    let parsed: ArtifactId = id.parse().map_err(|e| refused(format!("{e}")))?;
    let bytes = artifacts
        .get(&parsed)
        .await
        .map_err(|e| refused(format!("{e}")))?;
    let dest = data_dir.join("extracted").join(parsed.hex());
    // Always a fresh extraction of verified bytes: the folder is never trusted on its own.
    let staging =
        data_dir
            .join("extracted")
            .join(format!("{}.{}", parsed.hex(), std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let extracted = extract(&bytes, &parsed, &staging, &ExtractLimits::default());
    if let Err(error) = extracted {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(refused(format!("{error}")));
    }
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::rename(&staging, &dest)
        .with_context(|| format!("cannot move the extracted artifact to {}", dest.display()))?;
    Ok(dest)
}
