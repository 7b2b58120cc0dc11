//! Verification and recovery: ephemeral instances (`instance`), what an instance holds
//! (`inventory`), stack checks run after apply (`checks`), drift checks (`drift`), a stage's
//! released code (`released`), verification of a run's candidate (`paths`) and drills
//! (`drill`); the CLI's commands (`slipway drill`, `drills`, `gc`, `drift`, `recover`) print
//! what they return.
//! The durations they record are whole milliseconds, and they print them as seconds.

use std::time::Duration;

pub mod checks;
pub mod drift;
pub mod drill;
pub mod instance;
pub mod inventory;
pub mod path_result;
pub mod paths;
pub mod recover;
pub mod released;

/// `duration` in whole milliseconds, as the record keeps it.
pub fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Recorded milliseconds as reports print them: seconds, one decimal.
pub fn seconds(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}
