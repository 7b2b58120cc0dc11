//! The code a stage runs: each stack's artifact as released to the stage, fetched from the
//! artifact store and verified. Recovery, drift checks and verification from latest read a
//! stage through it, so what they apply or compare is what the stage was given, not
//! whatever the working tree holds today.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use slipway_store::{AnyStore, Store as _};

use crate::executor::CodeSource;
use crate::pipeline::artifacts;
use crate::project::Workspace;

/// What a stage was given.
#[derive(Debug, Default)]
pub struct Released {
    /// Stack -> the artifact id released to the stage.
    pub artifacts: BTreeMap<String, String>,
    /// Stack -> the root of its extracted artifact.
    pub roots: BTreeMap<String, std::path::PathBuf>,
    /// Stacks with no release in the stage.
    pub unreleased: BTreeSet<String>,
}

impl Released {
    /// Released stacks from their artifacts, the rest from the working tree.
    pub fn code(&self) -> CodeSource {
        if self.roots.is_empty() {
            CodeSource::WorkingTree
        } else {
            CodeSource::Artifacts(self.roots.clone())
        }
    }
}

/// Fetches and extracts the artifact released to `stage` of every stack in `stacks`. A
/// missing or tampered artifact is an error naming the stack; a stack with no release is
/// listed in `unreleased`.
pub async fn fetch(
    workspace: &Workspace,
    store: &AnyStore,
    stage: &str,
    stacks: &BTreeSet<String>,
) -> Result<Released> {
    let mut released = Released::default();
    let mut to_fetch = BTreeMap::new();
    for stack in stacks {
        match store
            .current_release(stage, stack)
            .await
            .with_context(|| format!("cannot read the release of `{stack}` in {stage}"))?
        {
            Some(release) => {
                to_fetch.insert(stack.clone(), release.artifact_id);
            }
            None => {
                released.unreleased.insert(stack.clone());
            }
        }
    }
    if to_fetch.is_empty() {
        return Ok(released);
    }
    let data_dir = workspace.ensure_data_dir()?;
    let artifact_store = artifacts::open(workspace)?;
    for (stack, id) in to_fetch {
        let root = artifacts::fetch(&data_dir, &artifact_store, &stack, &id).await?;
        released.roots.insert(stack.clone(), root);
        released.artifacts.insert(stack, id);
    }
    Ok(released)
}
