//! Command-line arguments. Parsing only; each command's behaviour lives in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod scaffold;
pub use scaffold::*;

/// Continuous Delivery for infrastructure code.
///
/// slipway reads stacks (Terraform/OpenTofu root modules with a `stack.hcl`) and the stages
/// in `slipway.hcl`, and plans, applies and destroys them stage by stage, in dependency
/// order, with the real terraform or tofu binary.
#[derive(Debug, Parser)]
#[command(
    name = "slipway",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Start in a folder holding slipway.hcl (or below it):\n  slipway stacks                 what is here, in dependency order\n  slipway plan --stage dev       what would change\n  slipway apply --stage dev      make it so\n\nDocumentation: docs/ in the repository."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Project folder (holding slipway.hcl); default: the nearest one at or above the current folder.
    #[arg(
        short = 'C',
        long = "project-dir",
        global = true,
        value_name = "DIR",
        env = "SLIPWAY_PROJECT_DIR"
    )]
    pub project_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List stacks in dependency order with team, capability, path and dependencies.
    Stacks(StacksArgs),
    /// Print the stack dependency graph (Mermaid or Graphviz DOT).
    Graph(GraphArgs),
    /// List the stacks a range of commits affects, and why; dependents, renamed and deleted stacks.
    Changed(ChangedArgs),
    /// Plan stacks of a stage and print the blast radius report. Exits 0 when nothing would change, 2 when changes are pending, 1 on failure.
    Plan(crate::commands::plan::PlanArgs),
    /// The blast radius report for a plan JSON file made elsewhere; `--stage S` checks it against S's policy. Exits 1 when the policy blocks it.
    Analyze(crate::commands::analyze::AnalyzeArgs),
    /// Apply stacks of a stage in dependency order, independent stacks in parallel.
    Apply(ApplyArgs),
    /// Release a Terraform state lock held by a process that is gone (recorded in the audit log).
    ///
    /// slipway never releases a lock on its own: when a lock stops a run, it names the lock's
    /// id, holder and age, and this command releases it on an operator's word.
    Unlock(UnlockArgs),
    /// Work on state itself: `slipway state migrate` moves local state to the configured backend.
    State(StateArgs),
    /// Destroy stacks of a stage, dependents first. `--stack X` also destroys what depends on X (unless --only).
    Destroy(DestroyArgs),
    /// Bundle each stack's code at a commit into an immutable artifact, stored and recorded.
    Build(crate::commands::deliver::BuildArgs),
    /// Apply the artifacts of the current commit (built when missing) to a stage; records releases.
    Deploy(crate::commands::deliver::DeployArgs),
    /// Apply to one stage exactly the artifacts released in another: same ids, verified.
    Promote(crate::commands::deliver::PromoteArgs),
    /// Apply the previous (or a named) released artifact of one stack to a stage.
    Rollback(crate::commands::deliver::RollbackArgs),
    /// The release matrix: which artifact each stage runs of each stack, from which commit, since when.
    Status(crate::commands::status::StatusArgs),
    /// Runs and releases over time, newest first.
    History(crate::commands::status::HistoryArgs),
    /// The whole pipeline for the current commit: changed stacks, their artifacts, every stage in order.
    ///
    /// A failure stops the pipeline at that stage. A stage with `approval = true` stops the run
    /// with saved plans awaiting `slipway approve RUN --stage S`, then `slipway resume RUN`.
    Run(crate::commands::pipeline::RunArgs),
    /// Approve the saved plans of a stage awaiting approval (recorded with who, why and the plans' hashes).
    Approve(crate::commands::pipeline::ApproveArgs),
    /// Continue an approved run: apply exactly the approved plans, then the stages after it.
    Resume(crate::commands::pipeline::ResumeArgs),
    /// End a run awaiting approval without applying it.
    Reject(crate::commands::pipeline::RejectArgs),
    /// Record an apply that died half-way as interrupted (audited) and free the lock it left.
    ResolveInterrupted(crate::commands::pipeline::ResolveArgs),
    /// Write a walking skeleton (slipway.hcl, a first stack, .gitignore, CI files), or `--adopt` existing root modules.
    Init(InitArgs),
    /// Add to the project: `slipway new stack NAME [--depends-on X]...`.
    New(NewArgs),
    /// Advise how to slice stacks: team, change frequency, permissions, capability, coupling, blast radius.
    Advise(AdviseArgs),
    /// Rebuild every stack of a stage from its released artifacts into a fresh ephemeral instance, timed; compare, check, tear down.
    Drill(crate::commands::drill::DrillArgs),
    /// Drills on record with their recovery times and results, newest first.
    Drills(crate::commands::drill::DrillsArgs),
    /// Destroy ephemeral instances left on record by runs and drills that did not finish their teardown.
    Gc(crate::commands::gc::GcArgs),
    /// Whether each stack's real infrastructure still matches its state (refresh-only plan). Exits 0 in sync, 2 on drift, 1 on failure.
    Drift(crate::commands::drift::DriftArgs),
    /// Bring a stage back after its cloud resources were lost: re-apply its released artifacts on its state, then run the checks.
    Recover(crate::commands::recover::RecoverArgs),
}

#[derive(Debug, Args)]
pub struct StacksArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// Mermaid flowchart (renders in GitHub and GitLab Markdown).
    Mermaid,
    /// Graphviz DOT.
    Dot,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
    pub format: GraphFormat,
}

#[derive(Debug, Clone, Args)]
pub struct StageArgs {
    /// The stage to work on (as named in slipway.hcl).
    #[arg(long, short = 's', value_name = "STAGE")]
    pub stage: String,
    /// Only these stacks (repeatable), plus the stacks they depend on unless --only is given.
    #[arg(long = "stack", value_name = "STACK")]
    pub stacks: Vec<String>,
    /// With --stack: do not pull in dependencies; their outputs are read from their current state.
    #[arg(long, requires = "stacks")]
    pub only: bool,
    /// How many stacks may run at once (default: `parallelism` in slipway.hcl, else 4).
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub parallelism: Option<u16>,
    /// Stream the engine's own output (prefixed with the stack) instead of progress lines.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Longest one engine step may run before it is interrupted, e.g. "20m" (default: `step_timeout` in slipway.hcl, else 1h).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub step_timeout: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub stage: StageArgs,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub stage: StageArgs,
    /// Confirm the destroy; without it slipway refuses.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// The stage of the locked instance.
    #[arg(long, short = 's', value_name = "STAGE")]
    pub stage: String,
    /// The stack whose state is locked.
    #[arg(long, value_name = "STACK")]
    pub stack: String,
    /// The lock's id, as the error that reported it printed it.
    #[arg(value_name = "LOCK_ID")]
    pub lock_id: String,
}

#[derive(Debug, Args)]
pub struct StateArgs {
    #[command(subcommand)]
    pub command: StateCommand,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Copy every stage's local state into the backend configured in slipway.hcl and verify it.
    ///
    /// For each stack instance with a local state file, slipway initialises the new backend,
    /// refuses to overwrite a different remote state, pushes the local state, and compares
    /// resource counts before and after. Local files stay where they are, as a backup.
    Migrate(MigrateArgs),
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Only these stages (repeatable); default: every stage.
    #[arg(long = "stage", value_name = "STAGE")]
    pub stages: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ChangedArgs {
    /// Compare from this commit (default: the commit last released to the first stage; with none, every stack counts as changed).
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,
    /// Compare up to this commit.
    #[arg(long, value_name = "REF", default_value = "HEAD")]
    pub head: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}
