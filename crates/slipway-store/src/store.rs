//! The [`Store`] interface: everything slipway reads from and writes to its run record.
//! Backends implement it; the rest of the workspace sees only this trait and the domain
//! types, so a new backend never touches the core.

use std::future::Future;

use crate::error::Result;
use crate::liveness::{EngineProcess, HeldLock, InstanceLock, LockOwner};
use crate::model::{
    Approval, Artifact, AuditEntry, Delivery, DeliveryHistory, Intake, NewApproval, NewAuditEntry,
    NewDelivery, NewRelease, NewRun, NewStackRun, Release, Run, RunEvent, RunStatus, StackRun,
    StackRunOutcome, StageRun, StageRunStatus,
};
use crate::time::UnixMillis;

/// The run record.
///
/// Writes that change more than one row, or that read before they write, happen in one
/// transaction. Entries the store makes on its own behalf ([`Store::break_stale_lock`],
/// [`Store::resolve_interrupted`]) append their audit entry in the same transaction; for
/// everything else (apply, destroy, approve, promote...) the caller appends the entry.
pub trait Store: Send + Sync {
    // --- runs --------------------------------------------------------------------------

    /// Starts a run (status `running`).
    fn create_run(&self, new: &NewRun) -> impl Future<Output = Result<Run>> + Send;
    /// Ends a run with `status`.
    fn finish_run(
        &self,
        run_id: i64,
        status: RunStatus,
    ) -> impl Future<Output = Result<Run>> + Send;
    fn run(&self, run_id: i64) -> impl Future<Output = Result<Option<Run>>> + Send;
    /// The latest runs, newest first.
    fn recent_runs(&self, limit: u32) -> impl Future<Output = Result<Vec<Run>>> + Send;

    // --- stage runs --------------------------------------------------------------------

    /// Starts stage `stage` of run `run_id` (status `running`).
    fn start_stage_run(
        &self,
        run_id: i64,
        stage: &str,
    ) -> impl Future<Output = Result<StageRun>> + Send;
    /// Moves a stage run to `status`; `finished_at` is set unless the status is
    /// `pending`, `running` or `awaiting_approval`.
    fn set_stage_run_status(
        &self,
        stage_run_id: i64,
        status: StageRunStatus,
    ) -> impl Future<Output = Result<StageRun>> + Send;
    /// A run's stage runs in the order they started.
    fn stage_runs(&self, run_id: i64) -> impl Future<Output = Result<Vec<StageRun>>> + Send;

    // --- stack runs --------------------------------------------------------------------

    /// Adds a stack run (status `pending`).
    fn add_stack_run(&self, new: &NewStackRun) -> impl Future<Output = Result<StackRun>> + Send;
    /// Keeps the plan summary (JSON text) of a stack run that has not finished.
    fn record_plan(
        &self,
        stack_run_id: i64,
        plan_summary: &str,
    ) -> impl Future<Output = Result<StackRun>> + Send;
    /// Durably says "applying" (from `pending`) before Terraform may change the instance,
    /// with the process doing it (the owner of `lock`), so that its death is noticed on the
    /// next start. Refused with [`crate::StoreError::LockLost`] unless `lock` is still the
    /// current grant of the stack instance (its fencing token).
    fn mark_applying(
        &self,
        stack_run_id: i64,
        lock: &InstanceLock,
    ) -> impl Future<Output = Result<StackRun>> + Send;
    /// Records the engine process applying an `applying` stack run.
    fn record_engine_process(
        &self,
        stack_run_id: i64,
        engine: &EngineProcess,
    ) -> impl Future<Output = Result<StackRun>> + Send;
    /// Ends a `pending` or `applying` stack run.
    fn finish_stack_run(
        &self,
        stack_run_id: i64,
        outcome: &StackRunOutcome,
    ) -> impl Future<Output = Result<StackRun>> + Send;
    fn stack_run(&self, stack_run_id: i64)
    -> impl Future<Output = Result<Option<StackRun>>> + Send;
    /// A run's stack runs in the order they were added.
    fn stack_runs(&self, run_id: i64) -> impl Future<Output = Result<Vec<StackRun>>> + Send;
    /// Stack runs still `applying` whose process is gone: applies that died half-way.
    fn interrupted_stack_runs(&self) -> impl Future<Output = Result<Vec<StackRun>>> + Send;
    /// Marks one of [`Store::interrupted_stack_runs`] `interrupted`, with a note and an
    /// `interrupted` audit entry by `actor`. Refused while its process lives.
    fn resolve_interrupted(
        &self,
        stack_run_id: i64,
        actor: &str,
        note: &str,
    ) -> impl Future<Output = Result<StackRun>> + Send;

    // --- artifacts and releases --------------------------------------------------------

    /// Records an artifact; `false` when one with that id was already recorded (artifacts
    /// are content-addressed, so it is the same one).
    fn record_artifact(&self, artifact: &Artifact) -> impl Future<Output = Result<bool>> + Send;
    fn artifact(&self, id: &str) -> impl Future<Output = Result<Option<Artifact>>> + Send;
    /// Records that a stage now runs an artifact (the artifact must be recorded first).
    /// With a [`NewRelease::fence`], refused with [`crate::StoreError::LockLost`] when that
    /// lock was taken over since.
    fn record_release(&self, new: &NewRelease) -> impl Future<Output = Result<Release>> + Send;
    /// The release a stage runs of a stack now.
    fn current_release(
        &self,
        stage: &str,
        stack: &str,
    ) -> impl Future<Output = Result<Option<Release>>> + Send;
    /// The release before the current one (what a rollback goes back to).
    fn previous_release(
        &self,
        stage: &str,
        stack: &str,
    ) -> impl Future<Output = Result<Option<Release>>> + Send;
    /// Releases of a stack in a stage, newest first.
    fn release_history(
        &self,
        stage: &str,
        stack: &str,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Release>>> + Send;
    /// The current release of every (stage, stack), ordered by stage then stack name.
    fn current_releases(&self) -> impl Future<Output = Result<Vec<Release>>> + Send;

    // --- audit log ---------------------------------------------------------------------

    /// Appends to the audit log. There is no way to change or remove an entry.
    fn append_audit(
        &self,
        entry: &NewAuditEntry,
    ) -> impl Future<Output = Result<AuditEntry>> + Send;
    /// Entries with `seq` greater than `after_seq` (all when `None`), oldest first.
    fn audit_log(
        &self,
        after_seq: Option<i64>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<AuditEntry>>> + Send;

    /// What happened since `since`: stage runs started since and their runs, releases and
    /// the rollbacks and recoveries audited since, each oldest first.
    fn delivery_history(
        &self,
        since: UnixMillis,
    ) -> impl Future<Output = Result<DeliveryHistory>> + Send;

    // --- approvals ---------------------------------------------------------------------

    /// Records a person's approval of a run's stage, with the hashes of the plans approved.
    fn record_approval(&self, new: &NewApproval) -> impl Future<Output = Result<Approval>> + Send;
    /// The approvals of a run, oldest first.
    fn approvals(&self, run_id: i64) -> impl Future<Output = Result<Vec<Approval>>> + Send;
    /// Appends events to run `run_id`'s, numbered after those it has.
    fn append_run_events(
        &self,
        run_id: i64,
        events: &[serde_json::Value],
    ) -> impl Future<Output = Result<()>> + Send;
    /// Run `run_id`'s events numbered after `after_seq` (0: from the start), in order, at
    /// most `limit`.
    fn run_events(
        &self,
        run_id: i64,
        after_seq: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<RunEvent>>> + Send;

    // --- webhook deliveries ------------------------------------------------------------

    /// Keeps a webhook delivery, unless it was kept before: by its id, or (queued) by its
    /// repository, kind and commit. A queued push queues its run job in the same
    /// transaction ([`crate::ServiceRecord`]).
    fn record_delivery(&self, new: &NewDelivery) -> impl Future<Output = Result<Intake>> + Send;
    /// The latest deliveries, newest first.
    fn deliveries(&self, limit: u32) -> impl Future<Output = Result<Vec<Delivery>>> + Send;

    // --- instance locks ----------------------------------------------------------------

    /// Takes the lock on (`stack`, `instance`) for `owner`. Taking a lock the same owner
    /// (run, pid and host) already holds succeeds. Otherwise
    /// [`crate::StoreError::InstanceLocked`] says who holds it, for how long, and whether
    /// the holder is gone (stale).
    fn acquire_instance_lock(
        &self,
        stack: &str,
        instance: &str,
        owner: &LockOwner,
    ) -> impl Future<Output = Result<InstanceLock>> + Send;
    /// Says the owner is still alive; `false` if it no longer holds the lock.
    fn heartbeat_instance_lock(
        &self,
        stack: &str,
        instance: &str,
        owner: &LockOwner,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Gives the lock back; `false` if the owner did not hold it.
    fn release_instance_lock(
        &self,
        stack: &str,
        instance: &str,
        owner: &LockOwner,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Takes over a lock whose holder is gone, and appends an `unlock` audit entry by
    /// `actor` naming the previous owner and the lock's age. `seen` is the holder the
    /// caller decided to take over from; if the lock changed since, nothing happens.
    fn break_stale_lock(
        &self,
        seen: &HeldLock,
        new_owner: &LockOwner,
        actor: &str,
    ) -> impl Future<Output = Result<InstanceLock>> + Send;
    /// Every lock held now, with its age and staleness.
    fn instance_locks(&self) -> impl Future<Output = Result<Vec<HeldLock>>> + Send;
}
