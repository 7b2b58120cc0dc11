//! The record's domain types: plain values with no database types in them, so callers
//! never learn which backend holds the record.

use serde::Serialize;

use crate::liveness::{EngineProcess, Fence, LockOwner};
use crate::time::UnixMillis;

/// Defines a status enum stored as lower-case text, with its parser and `Display`.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text stored in the record.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::model::UnknownValue;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($text => Ok($name::$variant),)+
                    other => Err($crate::model::UnknownValue {
                        kind: stringify!($name),
                        value: other.to_owned(),
                    }),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use text_enum;

/// Text from the record that names no known value (a newer slipway wrote it, or it was
/// edited by hand).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct UnknownValue {
    /// The type that was being read.
    pub kind: &'static str,
    /// The text found.
    pub value: String,
}

text_enum! {
    /// Where a run is.
    RunStatus {
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        /// The process driving the run died before it finished.
        Interrupted => "interrupted",
        /// A person rejected it at a stage awaiting approval: it ended without delivering.
        Rejected => "rejected",
    }
}

text_enum! {
    /// Where a stage run is.
    StageRunStatus {
        Pending => "pending",
        Running => "running",
        /// Waiting for a person to approve the plan (stages with `approval = true`).
        AwaitingApproval => "awaiting_approval",
        Succeeded => "succeeded",
        Failed => "failed",
        Skipped => "skipped",
    }
}

text_enum! {
    /// Where a stack run is.
    StackRunStatus {
        Pending => "pending",
        /// The record said "applying" before Terraform started changing the instance.
        Applying => "applying",
        Succeeded => "succeeded",
        Failed => "failed",
        Skipped => "skipped",
        /// Its process died while applying: the instance's state may be half-changed.
        Interrupted => "interrupted",
    }
}

impl StackRunStatus {
    /// A status a stack run can end in through [`crate::Store::finish_stack_run`].
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Skipped)
    }
}

text_enum! {
    /// What an audit entry records.
    AuditAction {
        Apply => "apply",
        Destroy => "destroy",
        Approve => "approve",
        Reject => "reject",
        Promote => "promote",
        Rollback => "rollback",
        /// A stale instance lock was taken over.
        Unlock => "unlock",
        /// A stack run found applying with its process gone was marked interrupted.
        Interrupted => "interrupted",
        Drill => "drill",
        /// A stage's released artifacts were re-applied after its resources were lost.
        Recover => "recover",
        /// Local state was copied into a remote backend.
        StateMigrate => "state-migrate",
        /// A run was queued on the server (by an API request).
        QueueRun => "queue-run",
        /// An API token was made.
        TokenCreate => "token-create",
        /// An API token was revoked.
        TokenRevoke => "token-revoke",
        /// A person was given a sign-in to the web pages (`details`: name and role).
        UserAdd => "user-add",
        /// A person's sign-in was removed, and their sessions ended (`details`: name).
        UserRemove => "user-remove",
        /// Someone asked the server for something their role or the stage's rules do not
        /// allow; `details` says what and why.
        Refused => "refused",
    }
}

/// A run about to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRun {
    /// The commit the run delivers.
    pub commit: String,
    /// What started it: `push`, `manual`, `schedule`, `webhook`...
    pub trigger: String,
    /// Who started it.
    pub actor: String,
}

/// An approval of a run's stage about to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApproval {
    pub run_id: i64,
    pub stage: String,
    pub actor: String,
    pub reason: String,
    /// The SHA-256 of each saved plan approved, by stack.
    pub plans: std::collections::BTreeMap<String, String>,
}

/// A person's approval of the saved plans of one stage of one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    pub id: i64,
    pub run_id: i64,
    pub stage: String,
    pub actor: String,
    pub reason: String,
    pub plans: std::collections::BTreeMap<String, String>,
    pub approved_at: UnixMillis,
}

text_enum! {
    /// What the server made of a webhook delivery.
    DeliveryStatus {
        /// Waiting to be run.
        Queued => "queued",
        /// Kept, with the reason, and nothing more (a fork, a repository not allowed...).
        Ignored => "ignored",
    }
}

/// A webhook delivery about to be kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// `github:<X-GitHub-Delivery>` or `gitlab:<X-Gitlab-Event-UUID>`.
    pub id: String,
    pub provider: String,
    /// `push`, `pull_request`, `pull_request_closed` (closed or merged: its preview goes)
    /// or `other`.
    pub kind: String,
    /// `owner/name` (GitHub) or `group/project` (GitLab).
    pub repository: String,
    pub git_ref: String,
    pub commit: String,
    pub pull_number: Option<i64>,
    pub status: DeliveryStatus,
    pub reason: Option<String>,
    /// Who pushed (the forge's user name): the job a queued push starts is theirs.
    pub actor: String,
    /// The branch a pull request asks to be merged into (its name, without `refs/heads/`).
    pub base_ref: Option<String>,
}

/// A webhook delivery as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub id: String,
    pub provider: String,
    pub kind: String,
    pub repository: String,
    pub git_ref: String,
    pub commit: String,
    pub pull_number: Option<i64>,
    pub received_at: UnixMillis,
    pub status: DeliveryStatus,
    pub reason: Option<String>,
    /// The branch a pull request asks to be merged into.
    pub base_ref: Option<String>,
}

/// What keeping a delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intake {
    Kept(Delivery),
    /// The same delivery (its id), or the same commit of the same repository and kind, is
    /// queued already: `of` is the delivery kept before.
    Duplicate {
        of: String,
    },
}

/// One event of a run, as recorded (docs/events.md gives the shapes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunEvent {
    pub run_id: i64,
    /// The event's place in its run: 1, 2, 3...
    pub seq: i64,
    pub at: UnixMillis,
    pub event: serde_json::Value,
}

/// One pass of the pipeline for one commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    pub id: i64,
    pub commit: String,
    pub trigger: String,
    pub actor: String,
    pub status: RunStatus,
    pub started_at: UnixMillis,
    pub finished_at: Option<UnixMillis>,
}

/// One stage within a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageRun {
    pub id: i64,
    pub run_id: i64,
    pub stage: String,
    pub status: StageRunStatus,
    pub started_at: UnixMillis,
    pub finished_at: Option<UnixMillis>,
}

/// A stack run about to be planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStackRun {
    pub run_id: i64,
    pub stage: String,
    /// The instance it changes: the stage name for long-lived stages, or an ephemeral name.
    pub instance: String,
    pub stack: String,
    /// The artifact it applies, when the run works from artifacts.
    pub artifact_id: Option<String>,
}

/// One stack in one instance within a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackRun {
    pub id: i64,
    pub run_id: i64,
    pub stage: String,
    pub instance: String,
    pub stack: String,
    pub artifact_id: Option<String>,
    pub status: StackRunStatus,
    pub created_at: UnixMillis,
    /// When the apply started ([`crate::Store::mark_applying`]).
    pub started_at: Option<UnixMillis>,
    pub finished_at: Option<UnixMillis>,
    /// The plan's summary (blast radius and action counts) as JSON text.
    pub plan_summary: Option<String>,
    /// Where the Terraform log of this stack run is kept.
    pub log_path: Option<String>,
    /// The process that said "applying"; kept so a later start can tell it died.
    pub owner: Option<LockOwner>,
    /// The engine process that applies it, once started.
    pub engine: Option<EngineProcess>,
    /// Why it ended as it did, when someone said (e.g. when resolving an interruption).
    pub note: Option<String>,
    /// Why it failed, in the engine's words, when it failed and the engine said.
    pub failure_reason: Option<String>,
}

/// How a stack run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackRunOutcome {
    /// [`StackRunStatus::Succeeded`], [`StackRunStatus::Failed`] or [`StackRunStatus::Skipped`].
    pub status: StackRunStatus,
    /// Kept as it is when `None`.
    pub plan_summary: Option<String>,
    /// Kept as it is when `None`.
    pub log_path: Option<String>,
    /// Why a failed stack run failed (the engine's reason, else slipway's error).
    pub failure_reason: Option<String>,
}

/// An immutable bundle of one stack's code at a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Artifact {
    /// The content address (SHA-256 of the bundle, hex).
    pub id: String,
    pub stack: String,
    pub commit: String,
    pub created_at: UnixMillis,
    /// Bundle size in bytes.
    pub size: u64,
    /// The bundle's manifest as JSON text.
    pub manifest: String,
}

/// A release about to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRelease {
    pub stage: String,
    pub stack: String,
    pub artifact_id: String,
    pub commit: String,
    pub released_by: String,
    /// The run that released it; `None` for a release made by hand (a rollback, say).
    pub run_id: Option<i64>,
    /// The instance lock the release is recorded under: refused when that lock was taken
    /// over since. `None` only where no lock guards the release.
    pub fence: Option<Fence>,
}

/// The record that stage `stage` runs artifact `artifact_id` of stack `stack` since
/// `released_at`. Releases are a history: the latest per (stage, stack) is current.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Release {
    pub id: i64,
    pub stage: String,
    pub stack: String,
    pub artifact_id: String,
    pub commit: String,
    pub released_at: UnixMillis,
    pub released_by: String,
    pub run_id: Option<i64>,
}

/// What the record says happened since a time: what the delivery metrics (DORA) are made
/// of. Each list is oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryHistory {
    /// The runs of [`Self::stage_runs`].
    pub runs: Vec<Run>,
    /// Stage runs started since.
    pub stage_runs: Vec<StageRun>,
    /// Releases made since.
    pub releases: Vec<Release>,
    /// Rollbacks and recoveries since, from the audit log.
    pub restorations: Vec<AuditEntry>,
}

/// An audit entry about to be appended.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    pub actor: String,
    pub action: AuditAction,
    pub stage: Option<String>,
    pub stack: Option<String>,
    pub run_id: Option<i64>,
    pub details: serde_json::Value,
}

/// One line of the append-only audit log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Increases with every entry; may skip numbers (PostgreSQL sequences do).
    pub seq: i64,
    pub at: UnixMillis,
    pub actor: String,
    pub action: AuditAction,
    pub stage: Option<String>,
    pub stack: Option<String>,
    pub run_id: Option<i64>,
    pub details: serde_json::Value,
}

impl Serialize for UnixMillis {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_text() {
        for status in StackRunStatus::ALL {
            assert_eq!(status.as_str().parse::<StackRunStatus>(), Ok(*status));
        }
        for action in AuditAction::ALL {
            assert_eq!(action.as_str().parse::<AuditAction>(), Ok(*action));
        }
        for status in StageRunStatus::ALL {
            assert_eq!(status.as_str().parse::<StageRunStatus>(), Ok(*status));
        }
    }

    #[test]
    fn unknown_text_is_an_error_not_a_panic() {
        let error = "paused".parse::<RunStatus>().unwrap_err();
        assert_eq!(error.to_string(), "unknown RunStatus `paused`");
    }
}
