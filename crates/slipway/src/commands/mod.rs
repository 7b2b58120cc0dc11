//! One module per subcommand.

pub mod advise;
pub mod analyze;
pub mod approval;
pub mod bootstrap;
pub mod changed;
pub mod ci;
pub mod deliver;
pub mod dora;
pub mod drift;
pub mod drill;
pub mod gc;
pub mod graph;
pub mod init;
pub mod new_stack;
pub mod pipeline;
pub mod plan;
pub mod recover;
pub mod report;
pub mod serve;
pub mod since;
pub mod stacks;
pub mod stage;
pub mod state;
pub mod status;
pub mod token;
pub mod unlock;
pub mod user;
pub mod worker;

/// How a command ended, mapped to the process exit code by `main`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success,
    /// `plan` only: changes are pending (as Terraform's `-detailed-exitcode`).
    ChangesPending,
    Failure,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::ChangesPending => 2,
        }
    }
}

/// Hands a command's report to the `--json` event stream, as its `report` event.
pub fn stream_report(
    workspace: &crate::project::Workspace,
    kind: &str,
    report: &impl serde::Serialize,
) -> anyhow::Result<()> {
    workspace
        .observer
        .observe(&slipway_runner::events::Event::Report {
            kind: kind.to_owned(),
            report: serde_json::to_value(report)?,
        });
    Ok(())
}

/// `--json` on the commands that run stacks.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct EventsArgs {
    /// Stream what happens as JSON, one event per line on stdout (schema: docs/events.md);
    /// human-readable lines still go to stderr.
    #[arg(long)]
    pub json: bool,
}
