//! Opening the run record: the settings' store URL (`SLIPWAY_STORE_URL`), else
//! `store { url }` in slipway.hcl, else an SQLite file in the data folder.

use anyhow::{Context, Result};
use slipway_store::{AnyStore, AuditAction, NewAuditEntry, Store};

use crate::project::Workspace;

/// The store URL this project uses.
pub fn url(workspace: &Workspace) -> Result<String> {
    if let Some(url) = &workspace.settings.store_url {
        return Ok(url.clone());
    }
    if let Some(url) = &workspace.project.store_url {
        return Ok(url.clone());
    }
    let data_dir = workspace.ensure_data_dir()?;
    Ok(slipway_store::default_url(&data_dir))
}

/// Opens (and migrates) the project's record.
pub async fn open(workspace: &Workspace) -> Result<AnyStore> {
    let url = url(workspace)?;
    slipway_store::open(&url)
        .await
        .context("cannot open the run record")
}

/// Appends one entry to the append-only audit log.
pub async fn audit(
    workspace: &Workspace,
    store: &AnyStore,
    action: AuditAction,
    stage: &str,
    stack: &str,
    run_id: Option<i64>,
    details: serde_json::Value,
) -> Result<()> {
    store
        .append_audit(&NewAuditEntry {
            actor: workspace.settings.actor.clone(),
            action,
            stage: Some(stage.to_owned()),
            stack: Some(stack.to_owned()),
            run_id,
            details,
        })
        .await
        .context("cannot write the audit log")?;
    Ok(())
}
