//! Command-line arguments. Parsing only; each command's behaviour lives in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands::{
    advise, analyze, bootstrap, changed, deliver, dora, drift, drill, gc, graph, init, new_stack,
    pipeline, plan, recover, serve, stacks, stage, state, status, token, unlock, user, worker,
};

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
    Stacks(stacks::StacksArgs),
    /// Print the stack dependency graph (Mermaid or Graphviz DOT).
    Graph(graph::GraphArgs),
    /// List the stacks a range of commits affects, and why; dependents, renamed and deleted stacks.
    Changed(changed::ChangedArgs),
    /// Plan stacks of a stage and print the blast radius report. Exits 0 when nothing would change, 2 when changes are pending, 1 on failure.
    Plan(plan::PlanArgs),
    /// The blast radius report for a plan JSON file made elsewhere; `--stage S` checks it against S's policy. Exits 1 when the policy blocks it.
    Analyze(analyze::AnalyzeArgs),
    /// Apply stacks of a stage in dependency order, independent stacks in parallel.
    Apply(stage::ApplyArgs),
    /// Release a Terraform state lock held by a process that is gone (recorded in the audit log).
    ///
    /// slipway never releases a lock on its own: when a lock stops a run, it names the lock's
    /// id, holder and age, and this command releases it on an operator's word.
    Unlock(unlock::UnlockArgs),
    /// Create what remote state and artifacts need (state bucket with versioning, lock table, artifact bucket), once; says what it made.
    Bootstrap(bootstrap::BootstrapArgs),
    /// Work on state itself: `slipway state migrate` moves local state to the configured backend.
    State(state::StateArgs),
    /// Destroy stacks of a stage, dependents first. `--stack X` also destroys what depends on X (unless --only).
    Destroy(stage::DestroyArgs),
    /// Bundle each stack's code at a commit into an immutable artifact, stored and recorded.
    Build(deliver::BuildArgs),
    /// Apply the artifacts of the current commit (built when missing) to a stage; records releases.
    Deploy(deliver::DeployArgs),
    /// Apply to one stage exactly the artifacts released in another: same ids, verified.
    Promote(deliver::PromoteArgs),
    /// Apply the previous (or a named) released artifact of one stack to a stage.
    Rollback(deliver::RollbackArgs),
    /// The release matrix: which artifact each stage runs of each stack, from which commit, since when.
    Status(status::StatusArgs),
    /// Runs and releases over time, newest first.
    History(status::HistoryArgs),
    /// Run the delivery service: webhooks from GitHub and GitLab start runs from a durable
    /// queue; a JSON API with tokens and roles, live run events, metrics (docs/server.md).
    Serve(serve::ServeArgs),
    /// Run the jobs `slipway serve --workers` queues, from the record the servers share
    /// (docs/scale-out.md): one at a time per working copy; SIGTERM drains.
    Worker(worker::WorkerArgs),
    /// Make, list and revoke the API tokens of `slipway serve`.
    Token(token::TokenArgs),
    /// Add, list and remove the people who sign in to the web pages of `slipway serve`.
    User(user::UserArgs),
    /// The events recorded for a run, as JSON lines: what `--json` streamed while it ran (and
    /// resumed), for a run that ran elsewhere (a CI job, the server).
    Events(pipeline::EventsArgs),
    /// The whole pipeline for the current commit: changed stacks, their artifacts, every stage in order.
    ///
    /// A failure stops the pipeline at that stage. A stage with `approval = true` stops the run
    /// with saved plans awaiting `slipway approve RUN --stage S`, then `slipway resume RUN`.
    Run(pipeline::RunArgs),
    /// Approve the saved plans of a stage awaiting approval (recorded with who, why and the plans' hashes).
    Approve(pipeline::ApproveArgs),
    /// Continue an approved run: apply exactly the approved plans, then the stages after it.
    Resume(pipeline::ResumeArgs),
    /// End a run awaiting approval without applying it.
    Reject(pipeline::RejectArgs),
    /// Record an apply that died half-way as interrupted (audited) and free the lock it left.
    ResolveInterrupted(pipeline::ResolveArgs),
    /// Write a walking skeleton (slipway.hcl, a first stack, .gitignore, CI files), or `--adopt` existing root modules.
    Init(init::InitArgs),
    /// Add to the project: `slipway new stack NAME [--depends-on X]...`.
    New(new_stack::NewArgs),
    /// Advise how to slice stacks: team, change frequency, permissions, capability, coupling, blast radius.
    Advise(advise::AdviseArgs),
    /// Rebuild every stack of a stage from its released artifacts into a fresh ephemeral instance, timed; compare, check, tear down.
    Drill(drill::DrillArgs),
    /// Drills on record with their recovery times and results, newest first.
    Drills(drill::DrillsArgs),
    /// The four DORA metrics of each stage over a window, from the record: deployment
    /// frequency, lead time for changes, change failure rate, time to restore (docs/dora.md).
    Dora(dora::DoraArgs),
    /// Destroy ephemeral instances left on record by runs and drills that did not finish their teardown.
    Gc(gc::GcArgs),
    /// Whether each stack's real infrastructure still matches its state (refresh-only plan). Exits 0 in sync, 2 on drift, 1 on failure.
    Drift(drift::DriftArgs),
    /// Bring a stage back after its cloud resources were lost: re-apply its released artifacts on its state, then run the checks.
    Recover(recover::RecoverArgs),
}

impl Command {
    /// Whether the invocation streams its events as JSON lines instead of showing progress.
    pub fn streams_json(&self) -> bool {
        match self {
            Command::Plan(args) => args.stage.events.json,
            Command::Apply(args) => args.stage.events.json,
            Command::Destroy(args) => args.stage.events.json,
            Command::Deploy(args) => args.events.json,
            Command::Promote(args) => args.events.json,
            Command::Run(args) => args.events.json,
            Command::Resume(args) => args.events.json,
            Command::Drill(args) => args.json,
            Command::Recover(args) => args.json,
            _ => false,
        }
    }
}
