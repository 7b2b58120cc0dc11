//! The advisor's inputs (stacks, commits, owners, settings) and its findings (measurements
//! per stack, co-change coupling, recommendations with evidence). The findings serialise to
//! the JSON schema documented in docs/advisor.md.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::code::ResourceBlock;
use crate::codeowners::CodeOwners;
use crate::domains::TypeMap;

/// One stack as the advisor sees it.
#[derive(Debug, Clone, Default)]
pub struct StackInput {
    pub name: String,
    /// Folder relative to the repository's top, `/` separators.
    pub dir: String,
    /// `team` from its `stack.hcl`.
    pub team: Option<String>,
    /// Names of the stacks it depends on.
    pub dependencies: Vec<String>,
    /// Its resource blocks, including those of the local modules it calls.
    pub resources: Vec<ResourceBlock>,
    /// Provider configurations: name and alias.
    pub providers: Vec<(String, Option<String>)>,
    /// Files of the stack folder and of the local modules it calls (repository paths).
    pub files: Vec<String>,
    /// What a stage's state (or a saved plan) says exists, when one was read; the
    /// declarations are counted otherwise.
    pub observed: Option<Observed>,
}

/// Resource instances by type, read from a stage's state (`existing`) or a plan of it
/// (`planned`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// [`Basis::Existing`] or [`Basis::Planned`].
    pub basis: Basis,
    pub stage: String,
    /// Resource type -> managed instances.
    pub counts: BTreeMap<String, usize>,
}

/// The kind of evidence a number or a recommendation rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Resources that exist: a stage's state.
    Existing,
    /// Resources a plan of a stage would have.
    Planned,
    /// Resource blocks in the code, instances counted from literal and default
    /// `count`/`for_each` values; and the dependencies declared in `stack.hcl`.
    Declared,
    /// Commits of the history window.
    History,
    /// CODEOWNERS.
    Ownership,
}

impl Basis {
    pub fn label(self) -> &'static str {
        match self {
            Basis::Existing => "existing",
            Basis::Planned => "planned",
            Basis::Declared => "declared",
            Basis::History => "history",
            Basis::Ownership => "ownership",
        }
    }
}

/// One commit in the history window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub id: String,
    /// Author email.
    pub author: String,
    /// Author time, seconds since the Unix epoch.
    pub time: i64,
    /// Files it touched (repository paths).
    pub files: Vec<String>,
}

/// Thresholds and maps; every default is documented in docs/advisor.md.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Author email to team.
    pub teams: BTreeMap<String, String>,
    pub types: TypeMap,
    /// A second team counts when it made at least this share of a stack's commits ...
    pub team_share: f64,
    /// ... and at least this many of them.
    pub team_min_commits: usize,
    /// A file is hot at this many commits per month or more ...
    pub hot_per_month: f64,
    /// ... when another file of the stack declaring resources changes at most 1/`hot_ratio`
    /// as often.
    pub hot_ratio: f64,
    /// Domains that should not share one set of credentials with any other domain.
    pub privileged_domains: Vec<String>,
    /// A capability counts towards "spans capabilities" with at least this many resources.
    pub capability_min_resources: usize,
    /// Two stacks are coupled when at least this share of the commits touching either
    /// touch both ...
    pub coupling: f64,
    /// ... and at least this many commits touch both.
    pub coupling_min_commits: usize,
    /// Commits touching more stacks than this (bulk edits) are left out of coupling.
    pub coupling_max_stacks: usize,
    /// Blast radius: resources (declared or deployed) at or above this are flagged ...
    pub max_resources: usize,
    /// ... and so are stacks with this many dependents (direct and transitive) or more.
    pub max_dependents: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            teams: BTreeMap::new(),
            types: TypeMap::default(),
            team_share: 0.2,
            team_min_commits: 3,
            hot_per_month: 2.0,
            hot_ratio: 4.0,
            privileged_domains: vec!["identity".into(), "encryption".into()],
            capability_min_resources: 3,
            coupling: 0.8,
            coupling_min_commits: 5,
            coupling_max_stacks: 20,
            max_resources: 50,
            max_dependents: 10,
        }
    }
}

/// Everything the advisor reads.
#[derive(Debug, Clone)]
pub struct Input {
    pub stacks: Vec<StackInput>,
    /// Commits in the window, any order.
    pub commits: Vec<Commit>,
    pub codeowners: CodeOwners,
    /// The project folder relative to the repository's top (`""` or ending in `/`):
    /// CODEOWNERS patterns are relative to the top, stack paths to the project.
    pub codeowners_prefix: String,
    /// The window's length in days (for rates).
    pub window_days: f64,
    pub settings: Settings,
}

/// The seed's slicing criteria; every recommendation rests on one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    Team,
    ChangeFrequency,
    PermissionBoundary,
    Capability,
    Coupling,
    BlastRadius,
}

impl Criterion {
    pub fn label(self) -> &'static str {
        match self {
            Criterion::Team => "team",
            Criterion::ChangeFrequency => "change frequency",
            Criterion::PermissionBoundary => "permission boundary",
            Criterion::Capability => "capability",
            Criterion::Coupling => "co-change coupling",
            Criterion::BlastRadius => "blast radius",
        }
    }
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Split,
    Merge,
    Reduce,
}

/// One recommendation with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    pub criterion: Criterion,
    pub action: Action,
    /// The stack it is about (two for a merge).
    pub stacks: Vec<String>,
    /// One sentence.
    pub summary: String,
    /// The numbers behind it, one line each.
    pub evidence: Vec<String>,
    /// The kind of evidence it rests on.
    pub basis: Basis,
    /// The stage whose state (or plan) it read, for `existing` and `planned`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

/// A team's part in a stack's commits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TeamShare {
    pub team: String,
    pub commits: usize,
    pub share: f64,
}

/// A file's change rate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileRate {
    pub path: String,
    pub commits: usize,
    pub per_month: f64,
    /// Addresses of the resource blocks it declares.
    pub resources: Vec<String>,
}

/// Measurements of one stack.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StackReport {
    pub name: String,
    pub dir: String,
    pub team: Option<String>,
    /// Resource blocks reached (once per module call), local modules included.
    pub resources_declared: usize,
    /// Managed resource instances in the state read, when one was.
    pub resources_deployed: Option<usize>,
    /// The resources the recommendations count: instances that exist (or are planned) in
    /// `resources_stage`, else instances counted from the declarations.
    pub resources: usize,
    /// Where `resources` comes from: `existing`, `planned` or `declared`.
    pub resources_basis: Basis,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources_stage: Option<String>,
    /// Resource type -> instances (from the same source as `resources`).
    pub resources_by_type: BTreeMap<String, usize>,
    /// Declared blocks whose `count`/`for_each` evaluates to zero: never created.
    pub blocks_not_created: usize,
    /// Declared blocks whose `count`/`for_each` is not known before apply (counted as one).
    pub blocks_unknown: usize,
    pub dependencies: Vec<String>,
    pub dependents_direct: usize,
    pub dependents_transitive: usize,
    pub commits: usize,
    pub commits_per_month: f64,
    /// Teams of the commit authors (authors not in the team map count as `unmapped`).
    pub teams: Vec<TeamShare>,
    /// CODEOWNERS owners of its files.
    pub code_owners: Vec<String>,
    /// Files with their rates, most frequently changed first.
    pub files: Vec<FileRate>,
    /// Permission domain to resource count.
    pub domains: BTreeMap<String, usize>,
    /// Capability to resource count.
    pub capabilities: BTreeMap<String, usize>,
    /// Provider configurations, `aws` or `aws.audit`.
    pub providers: Vec<String>,
}

/// How often two stacks change together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coupling {
    pub stacks: [String; 2],
    /// Commits touching both through their own files (commits that also change a module
    /// both call are left out: the shared module explains them).
    pub both: usize,
    /// Commits touching both that also change a module both call.
    pub through_shared_modules: usize,
    /// Commits touching either.
    pub either: usize,
    /// `both / either`.
    pub ratio: f64,
    /// Whether it passes the coupling thresholds.
    pub strong: bool,
}

/// The advisor's findings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub window_days: f64,
    pub commits: usize,
    pub stacks: Vec<StackReport>,
    /// Pairs of stacks changed together in two commits or more, strongest first.
    pub couplings: Vec<Coupling>,
    pub recommendations: Vec<Recommendation>,
}

impl Report {
    /// The recommendations about `stack`.
    pub fn recommendations_for<'a>(
        &'a self,
        stack: &'a str,
    ) -> impl Iterator<Item = &'a Recommendation> + 'a {
        self.recommendations
            .iter()
            .filter(move |r| r.stacks.iter().any(|s| s == stack))
    }
}
