//! The audit log: an append-only record of every change slipway makes on an operator's
//! behalf. Until the run record's store holds it, it is a JSON-lines file in the data folder.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// Who is acting: `SLIPWAY_ACTOR`, else the login name, else "unknown".
pub fn actor() -> String {
    ["SLIPWAY_ACTOR", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Appends one entry to `<data>/audit.jsonl`.
pub fn record(
    data_dir: &Path,
    action: &str,
    stage: &str,
    stack: &str,
    details: serde_json::Value,
) -> Result<()> {
    let entry = serde_json::json!({
        "at": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        "actor": actor(),
        "action": action,
        "stage": stage,
        "stack": stack,
        "details": details,
    });
    let path = data_dir.join("audit.jsonl");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open the audit log {}", path.display()))?;
    writeln!(file, "{entry}").context("cannot write the audit log")?;
    file.sync_all().context("cannot write the audit log")?;
    Ok(())
}
