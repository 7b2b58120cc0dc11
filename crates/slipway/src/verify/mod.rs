//! Verification and recovery: ephemeral instances (`instance`), what an instance holds
//! (`inventory`), stack checks run after apply (`checks`), and the commands built on them
//! (`slipway drill`, `drills`, `gc`, `drift`, `recover`, in `commands/`).

pub mod checks;
pub mod drift;
pub mod instance;
pub mod inventory;
pub mod paths;
pub mod released;
