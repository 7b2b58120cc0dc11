//! What the API answers and what it is asked, as types: each derives its JSON and its schema
//! in the OpenAPI document (docs/openapi.json) from one definition, so the two cannot part.
//!
//! The record's rows (`slipway_store`) are not answered as they are: each view here says
//! which of their fields a client sees, and leaves out what it must not (paths on the
//! server, process ids, token hashes). Doc comments are the document's descriptions.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use slipway_store as store;
use utoipa::{IntoParams, ToSchema};

/// A point in time: RFC 3339 in UTC with millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, format = DateTime, example = "2024-05-01T12:00:00.000Z")]
pub struct Timestamp(store::UnixMillis);

impl From<store::UnixMillis> for Timestamp {
    fn from(at: store::UnixMillis) -> Self {
        Self(at)
    }
}

fn at(time: Option<store::UnixMillis>) -> Option<Timestamp> {
    time.map(Timestamp)
}

/// Mirrors one of the record's value enums with its schema; the match in each `From` stops
/// the build when the record gains a value the API does not know.
macro_rules! mirror_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($variant),+
        }

        impl From<store::$name> for $name {
            fn from(value: store::$name) -> Self {
                match value {
                    $(store::$name::$variant => Self::$variant),+
                }
            }
        }

        impl From<$name> for store::$name {
            fn from(value: $name) -> Self {
                match value {
                    $($name::$variant => Self::$variant),+
                }
            }
        }
    };
}

mirror_enum! {
    /// Where a run is: `running`; `succeeded`; `failed`; `interrupted` (the process driving
    /// it died before it finished); `rejected` (a person rejected it at a stage awaiting
    /// approval: it ended without delivering).
    RunStatus { Running, Succeeded, Failed, Interrupted, Rejected }
}

mirror_enum! {
    /// Where a stage run is: `pending`, `running`, `awaiting_approval` (waiting for a person
    /// to approve its saved plans), `succeeded`, `failed`, `skipped`.
    StageRunStatus { Pending, Running, AwaitingApproval, Succeeded, Failed, Skipped }
}

mirror_enum! {
    /// Where a stack run is: `pending`; `applying` (Terraform may be changing the instance);
    /// `succeeded`; `failed`; `skipped`; `interrupted` (its process died while applying: the
    /// instance's state may be half-changed).
    StackRunStatus { Pending, Applying, Succeeded, Failed, Skipped, Interrupted }
}

mirror_enum! {
    /// What a job does: `run` starts a run for a commit; `resume` resumes an approved run;
    /// `drift` checks a stage for drift and `drill` drills a stage, on a schedule;
    /// `pull_request` plans a pull request's changed stacks and comments on it; `step` applies
    /// one stack of a run's stage, for the worker delivering that stage (`stack` names it).
    JobKind { Run, Resume, Drift, Drill, PullRequest, Step }
}

mirror_enum! {
    /// Where a job stands: `queued` (waiting its turn); `running`; `done` (worked on to the
    /// end: `outcome` says how the run stands); `failed` (could not be worked on: `outcome`
    /// says why); `superseded` (a newer run job for the same branch replaced it before it
    /// started: `superseded_by`); `interrupted` (the server stopped while working on it;
    /// never re-run by itself).
    JobStatus { Queued, Running, Done, Failed, Superseded, Interrupted }
}

mirror_enum! {
    /// What a token may do; each role may do what the ones before it may. `viewer` reads
    /// everything but secrets; `deployer` also queues runs; `approver` also approves and
    /// rejects; `admin` also manages tokens. A token bound to a stage has its role there
    /// only, and is a viewer elsewhere.
    Role { Viewer, Deployer, Approver, Admin }
}

mirror_enum! {
    /// What an audit entry records. `refused`: someone asked for something their role or
    /// the stage's rules do not allow (`details` says what and why).
    AuditAction {
        Apply,
        Destroy,
        Approve,
        Reject,
        Promote,
        Rollback,
        Unlock,
        Interrupted,
        Drill,
        Recover,
        StateMigrate,
        QueueRun,
        TokenCreate,
        TokenRevoke,
        UserAdd,
        UserRemove,
        Refused,
    }
}

mirror_enum! {
    /// How a drill ended, or that it has not.
    DrillStatus { Running, Succeeded, Failed }
}

/// Every unsuccessful answer: what went wrong, in words meant for the person asking. A
/// failure of the server's own says only that much here; its log has the cause.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: String,
}

/// The project as the server's working copy last held it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Project {
    pub name: String,
    /// The branch whose pushes are delivered through the stages.
    pub branch: String,
    /// In delivery order.
    pub stages: Vec<Stage>,
    pub stacks: Vec<Stack>,
}

/// A stage of the pipeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct Stage {
    pub name: String,
    /// Whether its plans wait for a person's approval.
    pub approval: bool,
    /// Whether that person must be someone other than the author of the commit and whoever
    /// started the run.
    pub four_eyes: bool,
    /// The labels a worker must carry to run its work (`{"tier": "prod"}`; empty: any
    /// worker).
    pub worker_labels: std::collections::BTreeMap<String, String>,
}

/// A stack: a root module delivered through the stages.
#[derive(Debug, Serialize, ToSchema)]
pub struct Stack {
    pub name: String,
    /// Its folder in the repository.
    pub dir: String,
    #[schema(required = true)]
    pub team: Option<String>,
    /// The stacks whose outputs it reads.
    pub depends_on: Vec<String>,
}

/// Which artifact of each stack each stage runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct Releases {
    /// The project's stages, in delivery order (empty while no project is loaded).
    pub stages: Vec<String>,
    /// The stacks released anywhere, by name.
    pub stacks: Vec<StackReleases>,
}

/// One stack's current release in each stage it was released to.
#[derive(Debug, Serialize, ToSchema)]
pub struct StackReleases {
    pub stack: String,
    /// Whether the stages run different artifacts of it.
    pub stages_differ: bool,
    /// By stage name.
    pub releases: BTreeMap<String, Release>,
}

impl StackReleases {
    pub fn new(stack: String, releases: BTreeMap<String, Release>) -> Self {
        let artifacts: BTreeSet<&str> = releases.values().map(|r| r.artifact.as_str()).collect();
        Self {
            stack,
            stages_differ: artifacts.len() > 1,
            releases,
        }
    }
}

/// The artifact a stage runs of a stack, since when and by whom.
#[derive(Debug, Serialize, ToSchema)]
pub struct Release {
    /// The artifact's content address (SHA-256 of the bundle, hex).
    pub artifact: String,
    pub commit: String,
    pub released_at: Timestamp,
    pub released_by: String,
    /// The run that released it; null for a release made by hand (a rollback, say).
    #[schema(required = true)]
    pub run: Option<i64>,
}

impl From<store::Release> for Release {
    fn from(r: store::Release) -> Self {
        Self {
            artifact: r.artifact_id,
            commit: r.commit,
            released_at: r.released_at.into(),
            released_by: r.released_by,
            run: r.run_id,
        }
    }
}

/// One pass of the pipeline for one commit.
#[derive(Debug, Serialize, ToSchema)]
pub struct Run {
    pub id: i64,
    pub commit: String,
    /// What started it: `push`, `manual`, `schedule`, `webhook`...
    pub trigger: String,
    /// Who started it.
    pub actor: String,
    pub status: RunStatus,
    pub started_at: Timestamp,
    #[schema(required = true)]
    pub finished_at: Option<Timestamp>,
}

impl From<store::Run> for Run {
    fn from(r: store::Run) -> Self {
        Self {
            id: r.id,
            commit: r.commit,
            trigger: r.trigger,
            actor: r.actor,
            status: r.status.into(),
            started_at: r.started_at.into(),
            finished_at: at(r.finished_at),
        }
    }
}

/// A run with its stage runs, their stack runs, and its approvals.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunDetail {
    pub run: Run,
    /// In the order they started.
    pub stages: Vec<StageRun>,
    pub approvals: Vec<Approval>,
}

/// One stage within a run.
#[derive(Debug, Serialize, ToSchema)]
pub struct StageRun {
    pub stage: String,
    pub status: StageRunStatus,
    pub started_at: Timestamp,
    #[schema(required = true)]
    pub finished_at: Option<Timestamp>,
    pub stacks: Vec<StackRun>,
}

impl StageRun {
    pub fn new(stage: store::StageRun, stacks: Vec<StackRun>) -> Self {
        Self {
            stage: stage.stage,
            status: stage.status.into(),
            started_at: stage.started_at.into(),
            finished_at: at(stage.finished_at),
            stacks,
        }
    }
}

/// One stack in one instance within a run.
#[derive(Debug, Serialize, ToSchema)]
pub struct StackRun {
    /// Names the stack run in `/runs/{run}/stack-runs/{stack_run}/log`.
    pub id: i64,
    pub stack: String,
    /// The instance it changes: the stage's name, or an ephemeral instance's.
    pub instance: String,
    /// The artifact it applies, when the run works from artifacts.
    #[schema(required = true)]
    pub artifact: Option<String>,
    pub status: StackRunStatus,
    /// When the apply started.
    #[schema(required = true)]
    pub started_at: Option<Timestamp>,
    #[schema(required = true)]
    pub finished_at: Option<Timestamp>,
    /// The plan's summary as the runner keeps it, without where the plan file lies: the
    /// engine's counts (`counts`), the SHA-256 an approval names (`sha256`), the changes
    /// (`changes`), or why it could not be planned (`blocked`). Null when there is none.
    #[schema(value_type = Option<Object>, required = true)]
    pub plan: Value,
    /// Why it failed, in the engine's words, when it failed and the engine said.
    #[schema(required = true)]
    pub failure_reason: Option<String>,
    /// Whether its log can be read.
    pub has_log: bool,
    /// Set when its apply died half-way (the process that was applying it is gone; the
    /// status says `interrupted`): the command a person runs, after checking the instance's
    /// state, to free its lock. slipway never retries such an instance on its own.
    #[schema(required = true)]
    pub resolve: Option<String>,
}

/// The keys of a plan summary a client does not get here: where the plan lies on the server,
/// and the blast radius report (served on its own: `GET .../stages/{stage}/report`).
const PLAN_LOCATION_KEYS: &[&str] = &["plan_file", "plan_key", "path", "key", "report"];

impl StackRun {
    /// A stack run the record still calls `applying` whose process is gone
    /// ([`store::Store::interrupted_stack_runs`]).
    pub fn interrupted(r: &store::StackRun) -> Self {
        Self {
            status: StackRunStatus::Interrupted,
            resolve: Some(format!(
                "slipway resolve-interrupted {} --note \"what you checked\"",
                r.id
            )),
            ..Self::from(r)
        }
    }
}

impl From<&store::StackRun> for StackRun {
    fn from(r: &store::StackRun) -> Self {
        let plan: Value = r
            .plan_summary
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or(Value::Null);
        Self {
            id: r.id,
            stack: r.stack.clone(),
            instance: r.instance.clone(),
            artifact: r.artifact_id.clone(),
            status: r.status.into(),
            started_at: at(r.started_at),
            finished_at: at(r.finished_at),
            plan: plan_view(plan),
            failure_reason: r.failure_reason.clone(),
            has_log: r.log_path.is_some(),
            resolve: None,
        }
    }
}

/// What a client sees of a saved plan's summary: the counts, the hash an approval names,
/// the blast radius; never where the plan file lies on the server.
fn plan_view(plan: Value) -> Value {
    match plan {
        Value::Object(mut fields) => {
            fields.retain(|k, _| !PLAN_LOCATION_KEYS.contains(&k.as_str()));
            Value::Object(fields)
        }
        other => other,
    }
}

/// A person's approval of the saved plans of one stage of one run.
#[derive(Debug, Serialize, ToSchema)]
pub struct Approval {
    pub id: i64,
    pub run_id: i64,
    pub stage: String,
    /// Who approved.
    pub actor: String,
    pub reason: String,
    /// The SHA-256 of each saved plan approved, by stack.
    pub plans: BTreeMap<String, String>,
    pub approved_at: Timestamp,
}

impl From<store::Approval> for Approval {
    fn from(a: store::Approval) -> Self {
        Self {
            id: a.id,
            run_id: a.run_id,
            stage: a.stage,
            actor: a.actor,
            reason: a.reason,
            plans: a.plans,
            approved_at: a.approved_at.into(),
        }
    }
}

/// One event of a run, as recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunEvent {
    pub run_id: i64,
    /// The event's place in its run: 1, 2, 3...; the id of its server-sent event.
    pub seq: i64,
    pub at: Timestamp,
    /// The event as `slipway run --json` prints it (docs/events.md gives the shapes); its
    /// `event` field names the kind.
    #[schema(value_type = Object)]
    pub event: Value,
}

impl From<store::RunEvent> for RunEvent {
    fn from(e: store::RunEvent) -> Self {
        Self {
            run_id: e.run_id,
            seq: e.seq,
            at: e.at.into(),
            event: e.event,
        }
    }
}

/// A person's decision on a stage awaiting approval.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Decision {
    /// The stage awaiting approval.
    pub stage: String,
    /// Why: kept in the audit log; must not be blank.
    pub reason: String,
}

/// A stage's saved plans approved; the run resumes from the job named.
#[derive(Debug, Serialize, ToSchema)]
pub struct Approved {
    pub run: i64,
    pub stage: String,
    /// How many saved plans were approved (their hashes are in the run's approvals).
    pub plans: usize,
    pub approved_by: String,
    /// The job that resumes the run.
    pub job: i64,
}

/// A run ended at its stage awaiting approval.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rejected {
    pub run: i64,
    pub stage: String,
    pub rejected_by: String,
}

/// A run to queue.
#[derive(Debug, Deserialize, ToSchema)]
pub struct QueueRun {
    /// The commit to deliver: its hash (hex digits, at least 7), on the delivered branch.
    pub commit: String,
}

/// A job: a run to start, an approved run to resume, a scheduled drift check or drill of a
/// stage, a pull request to plan, or one stack of a run's stage to apply; jobs are taken
/// oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Job {
    pub id: i64,
    pub kind: JobKind,
    /// `owner/name` as the forge names it, or the project's name for jobs from the API.
    pub repository: String,
    /// The branch (`refs/heads/main`); run jobs of one branch supersede each other.
    pub git_ref: String,
    pub commit: String,
    /// The stage a drift check, drill or step is of.
    #[schema(required = true)]
    pub stage: Option<String>,
    /// The run it resumes, the run it started once it did, or the run a step is part of.
    #[schema(required = true)]
    pub run_id: Option<i64>,
    /// The stack a step applies.
    #[schema(required = true)]
    pub stack: Option<String>,
    /// The webhook delivery it came from.
    #[schema(required = true)]
    pub delivery_id: Option<String>,
    pub requested_by: String,
    pub queued_at: Timestamp,
    pub status: JobStatus,
    #[schema(required = true)]
    pub started_at: Option<Timestamp>,
    #[schema(required = true)]
    pub finished_at: Option<Timestamp>,
    /// The newer job that replaced it.
    #[schema(required = true)]
    pub superseded_by: Option<i64>,
    /// How it ended, in words.
    #[schema(required = true)]
    pub outcome: Option<String>,
    /// When the process working on it (a server or a `slipway worker`) last said it still
    /// does; a job on another host silent past the record's lease is marked interrupted.
    #[schema(required = true)]
    pub heartbeat_at: Option<Timestamp>,
    /// The labels a worker must carry to take it (`{"tier": "prod"}`; empty: any worker).
    pub labels: std::collections::BTreeMap<String, String>,
    /// In the queue's answer, for a queued job: what it waits behind (`next`, `queued behind
    /// job 4`, `queued behind run 7 (job 3)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub waiting: Option<String>,
}

impl From<store::Job> for Job {
    fn from(j: store::Job) -> Self {
        Self {
            id: j.id,
            kind: j.kind.into(),
            repository: j.repository,
            git_ref: j.git_ref,
            commit: j.commit,
            stage: j.stage,
            run_id: j.run_id,
            stack: j.stack,
            delivery_id: j.delivery_id,
            requested_by: j.requested_by,
            queued_at: j.queued_at.into(),
            status: j.status.into(),
            started_at: at(j.started_at),
            finished_at: at(j.finished_at),
            superseded_by: j.superseded_by,
            outcome: j.outcome,
            heartbeat_at: at(j.heartbeat_at),
            labels: j.labels.0,
            waiting: None,
        }
    }
}

/// A process that takes jobs: a `slipway worker`, or a server that runs them itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct Worker {
    pub id: i64,
    /// The host it runs on, as it names itself in the record.
    pub host: String,
    /// The labels it carries (`{"tier": "prod"}`; empty: none).
    pub labels: std::collections::BTreeMap<String, String>,
    /// Jobs it runs at once.
    pub max_jobs: u32,
    /// The slipway version it runs.
    pub version: String,
    pub started_at: Timestamp,
    /// When it last said it still runs.
    pub heartbeat_at: Timestamp,
    /// `working`, `idle`, `draining` (finishing its jobs, taking no more), `stopped` (said so
    /// on the way out) or `gone` (vanished without saying so: see `gone`).
    pub state: String,
    /// Why it counts as gone: its process ended, or it was silent past the record's lease.
    #[schema(required = true)]
    pub gone: Option<String>,
    #[schema(required = true)]
    pub stopped_at: Option<Timestamp>,
    /// The jobs it runs now.
    pub jobs: Vec<i64>,
}

impl From<store::Worker> for Worker {
    fn from(w: store::Worker) -> Self {
        Self {
            id: w.id,
            state: w.state().to_owned(),
            host: w.process.host,
            labels: w.labels.0,
            max_jobs: w.max_jobs,
            version: w.version,
            started_at: w.started_at.into(),
            heartbeat_at: w.heartbeat_at.into(),
            gone: w.gone,
            stopped_at: at(w.stopped_at),
            jobs: w.running_jobs,
        }
    }
}

/// How many entries to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Limit {
    /// At most this many (default 50 runs, 100 jobs; never more than 1000).
    pub limit: Option<u32>,
}

/// Where to continue a run's events.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct After {
    /// Only the events after this one (its `seq`); a `Last-Event-ID` header wins over it.
    pub after: Option<i64>,
}

/// Which audit entries to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only the entries after this one (its `seq`).
    pub after: Option<i64>,
    /// At most this many (default 500, never more than 10000).
    pub limit: Option<u32>,
}

/// One line of the append-only audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Increases with every entry; may skip numbers.
    pub seq: i64,
    pub at: Timestamp,
    /// Who acted or asked.
    pub actor: String,
    pub action: AuditAction,
    #[schema(required = true)]
    pub stage: Option<String>,
    #[schema(required = true)]
    pub stack: Option<String>,
    #[schema(required = true)]
    pub run_id: Option<i64>,
    /// What the action concerned; its fields depend on the action.
    #[schema(value_type = Object)]
    pub details: Value,
}

impl From<store::AuditEntry> for AuditEntry {
    fn from(e: store::AuditEntry) -> Self {
        Self {
            seq: e.seq,
            at: e.at.into(),
            actor: e.actor,
            action: e.action.into(),
            stage: e.stage,
            stack: e.stack,
            run_id: e.run_id,
            details: e.details,
        }
    }
}

/// A drill: a timed rebuild of a stage into an ephemeral instance.
#[derive(Debug, Serialize, ToSchema)]
pub struct Drill {
    pub id: i64,
    pub stage: String,
    /// The ephemeral instance it rebuilt into.
    pub instance: String,
    pub status: DrillStatus,
    pub started_at: Timestamp,
    #[schema(required = true)]
    pub finished_at: Option<Timestamp>,
    /// The recovery time in milliseconds: from the start of the drill until every stack was
    /// rebuilt.
    #[schema(required = true)]
    pub total_ms: Option<u64>,
    /// Per-stack times, the comparison with the stage, checks and errors.
    #[schema(value_type = Object)]
    pub details: Value,
}

impl From<store::Drill> for Drill {
    fn from(d: store::Drill) -> Self {
        Self {
            id: d.id,
            stage: d.stage,
            instance: d.instance,
            status: d.status.into(),
            started_at: d.started_at.into(),
            finished_at: at(d.finished_at),
            total_ms: d.total_ms,
            details: d.details,
        }
    }
}

/// A drift check of a stage.
#[derive(Debug, Serialize, ToSchema)]
pub struct DriftCheck {
    pub id: i64,
    pub stage: String,
    pub checked_at: Timestamp,
    /// How many resources had drifted.
    pub drifted: u64,
    /// The drifted resources and attributes, per stack.
    #[schema(value_type = Object)]
    pub details: Value,
}

impl From<store::DriftCheck> for DriftCheck {
    fn from(d: store::DriftCheck) -> Self {
        Self {
            id: d.id,
            stage: d.stage,
            checked_at: d.checked_at.into(),
            drifted: d.drifted,
            details: d.details,
        }
    }
}

/// An API token as listed: never its secret, which is not kept.
#[derive(Debug, Serialize, ToSchema)]
pub struct Token {
    pub id: i64,
    /// Who it acts as.
    pub actor: String,
    pub role: Role,
    /// The one stage the role applies to; null: every stage.
    #[schema(required = true)]
    pub stage: Option<String>,
    pub created_at: Timestamp,
    pub created_by: String,
    #[schema(required = true)]
    pub revoked_at: Option<Timestamp>,
}

impl From<store::ApiToken> for Token {
    fn from(t: store::ApiToken) -> Self {
        Self {
            id: t.id,
            actor: t.actor,
            role: t.role.into(),
            stage: t.stage,
            created_at: t.created_at.into(),
            created_by: t.created_by,
            revoked_at: at(t.revoked_at),
        }
    }
}

/// A token to make.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// Who it acts as: a person or a machine (`ci`).
    pub actor: String,
    pub role: Role,
    /// The one stage the role applies to; absent: every stage.
    pub stage: Option<String>,
}

/// A token made. This answer is the only place its secret is ever shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// The secret: `slw_` and 64 hex digits, sent as `Authorization: Bearer ...`.
    pub token: String,
    pub id: i64,
    pub actor: String,
    pub role: Role,
    #[schema(required = true)]
    pub stage: Option<String>,
}

/// A token revoked.
#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    /// The token's id.
    pub revoked: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each mirrored enum reads and writes the same text as the record's.
    fn same_text<S, V>(all: &[S])
    where
        S: Copy + Serialize + std::fmt::Debug,
        V: From<S> + Serialize + for<'de> Deserialize<'de> + Into<S>,
        S: PartialEq,
    {
        for value in all {
            let ours = serde_json::to_value(V::from(*value)).unwrap();
            assert_eq!(ours, serde_json::to_value(value).unwrap(), "{value:?}");
            let back: V = serde_json::from_value(ours).unwrap();
            assert_eq!(back.into(), *value);
        }
    }

    #[test]
    fn mirrored_values_are_written_as_the_record_writes_them() {
        same_text::<_, RunStatus>(store::RunStatus::ALL);
        same_text::<_, StageRunStatus>(store::StageRunStatus::ALL);
        same_text::<_, StackRunStatus>(store::StackRunStatus::ALL);
        same_text::<_, JobKind>(store::JobKind::ALL);
        same_text::<_, JobStatus>(store::JobStatus::ALL);
        same_text::<_, Role>(store::Role::ALL);
        same_text::<_, AuditAction>(store::AuditAction::ALL);
        for status in [
            store::DrillStatus::Running,
            store::DrillStatus::Succeeded,
            store::DrillStatus::Failed,
        ] {
            assert_eq!(
                serde_json::to_value(DrillStatus::from(status)).unwrap(),
                serde_json::to_value(status).unwrap()
            );
        }
        assert_eq!(
            serde_json::to_value(Timestamp(store::UnixMillis(1_700_000_000_123))).unwrap(),
            "2023-11-14T22:13:20.123Z"
        );
    }

    /// A view that shows a record's row as it is writes what the row writes.
    fn same_json<S: Serialize, V: From<S> + Serialize>(row: S) {
        let expected = serde_json::to_value(&row).unwrap();
        assert_eq!(serde_json::to_value(V::from(row)).unwrap(), expected);
    }

    #[test]
    fn views_of_whole_rows_write_what_the_rows_write() {
        let at = store::UnixMillis(1_700_000_000_123);
        same_json::<_, Run>(store::Run {
            id: 7,
            commit: "6113728".to_owned(),
            trigger: "push".to_owned(),
            actor: "dana".to_owned(),
            status: store::RunStatus::Running,
            started_at: at,
            finished_at: None,
        });
        same_json::<_, Approval>(store::Approval {
            id: 1,
            run_id: 7,
            stage: "prod".to_owned(),
            actor: "erin".to_owned(),
            reason: "fine".to_owned(),
            plans: [("web".to_owned(), "ab".to_owned())].into(),
            approved_at: at,
        });
        same_json::<_, RunEvent>(store::RunEvent {
            run_id: 7,
            seq: 1,
            at,
            event: serde_json::json!({ "event": "run_started" }),
        });
        same_json::<_, AuditEntry>(store::AuditEntry {
            seq: 3,
            at,
            actor: "vic".to_owned(),
            action: store::AuditAction::StateMigrate,
            stage: Some("prod".to_owned()),
            stack: None,
            run_id: Some(7),
            details: serde_json::json!({ "asked": "x" }),
        });
        same_json::<_, Drill>(store::Drill {
            id: 2,
            stage: "prod".to_owned(),
            instance: "drill-3f9a".to_owned(),
            status: store::DrillStatus::Succeeded,
            started_at: at,
            finished_at: Some(at),
            total_ms: Some(1500),
            details: serde_json::json!({}),
        });
        same_json::<_, DriftCheck>(store::DriftCheck {
            id: 4,
            stage: "prod".to_owned(),
            checked_at: at,
            drifted: 0,
            details: serde_json::json!({ "web": [] }),
        });
        same_json::<_, Token>(store::ApiToken {
            id: 5,
            actor: "ci".to_owned(),
            role: store::Role::Deployer,
            stage: Some("test".to_owned()),
            token_hash: "secret-hash".to_owned(),
            created_at: at,
            created_by: "ada".to_owned(),
            revoked_at: None,
        });
    }

    #[test]
    fn a_plan_never_says_where_it_lies_on_the_server() {
        let plan = serde_json::json!({
            "plan_file": "/srv/slipway/.slipway/plans/run-1/prod/web.tfplan",
            "plan_key": "plans/run-1/prod/web.tfplan",
            "sha256": "ab",
            "counts": { "add": 1 },
        });
        assert_eq!(
            plan_view(plan),
            serde_json::json!({ "sha256": "ab", "counts": { "add": 1 } })
        );
        assert_eq!(plan_view(Value::Null), Value::Null);
    }

    #[test]
    fn a_job_never_shows_the_process_working_on_it() {
        let job = store::Job {
            id: 3,
            kind: store::JobKind::Run,
            repository: "acme/platform".to_owned(),
            git_ref: "refs/heads/main".to_owned(),
            commit: "c1".to_owned(),
            stage: None,
            run_id: None,
            stack: None,
            delivery_id: None,
            requested_by: "dee".to_owned(),
            queued_at: store::UnixMillis(0),
            status: store::JobStatus::Running,
            started_at: Some(store::UnixMillis(1)),
            finished_at: None,
            superseded_by: None,
            worker: Some(store::EngineProcess {
                pid: 4242,
                process_started: Some(7),
                host: "build-host".to_owned(),
            }),
            outcome: None,
            heartbeat_at: Some(store::UnixMillis(2)),
            labels: store::Labels::parse("tier=prod").unwrap(),
        };
        let mut expected = serde_json::to_value(&job).unwrap();
        expected.as_object_mut().unwrap().remove("worker");
        let view = serde_json::to_value(Job::from(job)).unwrap();
        assert_eq!(view, expected, "the record's fields but the worker");
        assert!(!view.to_string().contains("4242"));
    }
}

/// Which window the delivery metrics cover.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DoraQuery {
    /// Only this stage (default: every stage with anything on record in the window).
    pub stage: Option<String>,
    /// The window: the last this many days (default 30, at most 3660).
    pub days: Option<u32>,
    /// How many hours after a deployment a failure, rollback or recovery of its stage
    /// counts against it (default 24).
    pub failure_window_hours: Option<u32>,
}

/// The four DORA metrics of each stage over a window (definitions in docs/dora.md).
#[derive(Debug, Serialize, ToSchema)]
pub struct Dora {
    pub since: Timestamp,
    pub until: Timestamp,
    pub failure_window_ms: i64,
    pub stages: Vec<StageDora>,
}

/// The four metrics of one stage.
#[derive(Debug, Serialize, ToSchema)]
pub struct StageDora {
    pub stage: String,
    /// Deployments in the window (each run's releases in the stage count once).
    pub deployments: u64,
    pub deployments_per_day: f64,
    /// From a commit's time to its first release in the stage.
    #[schema(required = true)]
    pub lead_time: Option<DoraDurations>,
    /// Deployments followed by a failure, rollback or recovery of the stage within the
    /// failure window and before the next deployment.
    pub failed_deployments: u64,
    /// `failed_deployments / deployments`; null without deployments.
    #[schema(required = true)]
    pub change_failure_rate: Option<f64>,
    /// From a failed or interrupted stage run, or drift found, to the stage being good again.
    #[schema(required = true)]
    pub time_to_restore: Option<DoraDurations>,
    /// Incidents not restored by the end of the window.
    pub open_incidents: u64,
}

/// A set of durations in milliseconds.
#[derive(Debug, Serialize, ToSchema)]
pub struct DoraDurations {
    pub count: u64,
    pub median_ms: i64,
    /// The 90th percentile (nearest rank).
    pub p90_ms: i64,
    pub max_ms: i64,
}

impl From<slipway_core::dora::Report> for Dora {
    fn from(report: slipway_core::dora::Report) -> Self {
        let durations = |d: Option<slipway_core::dora::Durations>| {
            d.map(|d| DoraDurations {
                count: d.count,
                median_ms: d.median_ms,
                p90_ms: d.p90_ms,
                max_ms: d.max_ms,
            })
        };
        Self {
            since: store::UnixMillis(report.since).into(),
            until: store::UnixMillis(report.until).into(),
            failure_window_ms: report.failure_window_ms,
            stages: report
                .stages
                .into_iter()
                .map(|s| StageDora {
                    stage: s.stage,
                    deployments: s.deployments,
                    deployments_per_day: s.deployments_per_day,
                    lead_time: durations(s.lead_time),
                    failed_deployments: s.failed_deployments,
                    change_failure_rate: s.change_failure_rate,
                    time_to_restore: durations(s.time_to_restore),
                    open_incidents: s.open_incidents,
                })
                .collect(),
        }
    }
}

/// What the slicing advisor reads.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AdviceQuery {
    /// The history read: the last this many days (default: the `advisor` block's `history`,
    /// else 180; at most 3660).
    pub days: Option<u32>,
    /// The stage whose state says which resources exist (default: the last stage, local state
    /// only; naming a stage with remote state reads it, one engine `init` per stack).
    pub stage: Option<String>,
}

/// The slicing advisor's report on the project as the server's working copy holds it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Advice {
    /// How the input was read, and what could not be.
    pub notices: Vec<AdviceNotice>,
    /// The report, as `slipway advise --format json` writes it (docs/advisor.md).
    #[schema(value_type = Object)]
    pub report: Value,
}

/// Something to know about how the advisor's input was gathered.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdviceNotice {
    /// `warning` (part of the input could not be read) or `note`.
    pub level: String,
    pub text: String,
}

impl From<slipway_runner::advise::Notice> for AdviceNotice {
    fn from(notice: slipway_runner::advise::Notice) -> Self {
        use slipway_runner::advise::Notice;
        let (level, text) = match notice {
            Notice::Warning(text) => ("warning", text),
            Notice::RemoteStateNotRead { stage } => (
                "note",
                format!(
                    "resources counted from declarations: the state of {stage} is remote; \
                     asking for {stage} by name reads what exists (one engine `init` per stack)"
                ),
            ),
        };
        Self {
            level: level.to_owned(),
            text,
        }
    }
}
