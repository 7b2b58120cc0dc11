//! Arguments of the commands that shape a project rather than deliver it: `init`, `new`
//! and `advise`. Parsing only; behaviour lives in `commands/`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// Which cloud the walking skeleton's first stack uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Cloud {
    /// Amazon Web Services (provider `hashicorp/aws`): a VPC.
    Aws,
    /// Google Cloud (provider `hashicorp/google`): a VPC network.
    Gcp,
    /// No provider: a stack with an output only.
    None,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The cloud of the first stack.
    #[arg(long, value_enum, default_value_t = Cloud::Aws, conflicts_with = "adopt")]
    pub cloud: Cloud,
    /// Adopt existing Terraform: write a stack.hcl for every root module found, with
    /// dependencies inferred from `terraform_remote_state`.
    #[arg(long)]
    pub adopt: bool,
    /// Replace files that already exist.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    #[command(subcommand)]
    pub command: NewCommand,
}

#[derive(Debug, Subcommand)]
pub enum NewCommand {
    /// Add a stack (stack.hcl and main.tf) beside the project's other stacks.
    Stack(NewStackArgs),
}

#[derive(Debug, Args)]
pub struct NewStackArgs {
    /// The stack's name (letters, digits, `-`, `_`).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// A stack this one consumes outputs of (repeatable).
    #[arg(long = "depends-on", value_name = "STACK")]
    pub depends_on: Vec<String>,
    /// Folder for the stack, relative to the project (default: beside the other stacks).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The team that owns it.
    #[arg(long)]
    pub team: Option<String>,
    /// The technical capability it belongs to.
    #[arg(long)]
    pub capability: Option<String>,
    /// Replace files that already exist.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AdviseFormat {
    /// A report for the terminal.
    Terminal,
    /// A Markdown report (for a pull request or a wiki page).
    Markdown,
    /// JSON (schema in docs/advisor.md).
    Json,
}

#[derive(Debug, Args)]
pub struct AdviseArgs {
    /// Read commits since this date (YYYY-MM-DD) or this long ago (e.g. "90d"); default: `history` in the advisor block, else 180 days.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = AdviseFormat::Terminal)]
    pub format: AdviseFormat,
    /// Also draw the stacks as an SVG picture into FILE.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Show every stack's measurements, not only those with recommendations.
    #[arg(long)]
    pub all: bool,
}
