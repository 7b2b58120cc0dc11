//! The behavioural story of the record, written once and told against every backend.
//! Each scenario gets the URL of a fresh, empty record.

use std::collections::BTreeSet;
use std::time::Duration;

use slipway_store::{
    AnyStore, Artifact, AuditAction, LockOwner, NewApproval, NewAuditEntry, NewRelease, NewRun,
    NewStackRun, RunStatus, StackRunOutcome, StackRunStatus, StageRunStatus, StaleReason, Store,
    StoreError, UnixMillis, open,
};

use crate::{ChildHolder, raw_execute};

pub type Outcome = Result<(), Box<dyn std::error::Error>>;

/// Every scenario, by name, for the per-backend tests to run.
pub const SCENARIOS: &[&str] = &[
    "migrations_apply_twice",
    "run_lifecycle",
    "release_history",
    "audit_log_is_append_only",
    "lock_exclusivity",
    "killed_process",
    "ephemeral_instances",
    "previews",
    "drills_and_drift",
    "approvals_and_rejections",
    "fencing",
    "run_events",
    "webhook_deliveries",
    "job_queue",
    "labelled_jobs_and_workers",
    "step_jobs",
    "api_tokens",
    "schedule_marks",
    "pull_requests",
    "delivery_history",
    "users_and_sessions",
];

pub async fn scenario(name: &str, url: &str) -> Outcome {
    match name {
        "migrations_apply_twice" => migrations_apply_twice(url).await,
        "run_lifecycle" => run_lifecycle(url).await,
        "release_history" => release_history(url).await,
        "audit_log_is_append_only" => audit_log_is_append_only(url).await,
        "lock_exclusivity" => lock_exclusivity(url).await,
        "killed_process" => killed_process(url).await,
        "ephemeral_instances" => crate::verification::ephemeral_instances(url).await,
        "previews" => crate::verification::previews(url).await,
        "drills_and_drift" => crate::verification::drills_and_drift(url).await,
        "approvals_and_rejections" => approvals_and_rejections(url).await,
        "fencing" => fencing(url).await,
        "run_events" => run_events(url).await,
        "webhook_deliveries" => webhook_deliveries(url).await,
        "job_queue" => crate::service::job_queue(url).await,
        "labelled_jobs_and_workers" => crate::service::labelled_jobs_and_workers(url).await,
        "step_jobs" => crate::service::step_jobs(url).await,
        "api_tokens" => crate::service::api_tokens(url).await,
        "schedule_marks" => crate::service::schedule_marks(url).await,
        "pull_requests" => crate::service::pull_requests(url).await,
        "delivery_history" => delivery_history(url).await,
        "users_and_sessions" => crate::users::users_and_sessions(url).await,
        other => Err(format!("no scenario {other}").into()),
    }
}

pub(crate) fn new_run(commit: &str) -> NewRun {
    NewRun {
        commit: commit.to_owned(),
        trigger: "push".to_owned(),
        actor: "ada".to_owned(),
    }
}

fn new_stack_run(run_id: i64, stage: &str, stack: &str) -> NewStackRun {
    NewStackRun {
        run_id,
        stage: stage.to_owned(),
        instance: stage.to_owned(),
        stack: stack.to_owned(),
        artifact_id: None,
    }
}

fn artifact(id: &str, stack: &str, commit: &str) -> Artifact {
    Artifact {
        id: id.to_owned(),
        stack: stack.to_owned(),
        commit: commit.to_owned(),
        created_at: UnixMillis(1_700_000_000_000),
        size: 4096,
        manifest: r#"{"files":[]}"#.to_owned(),
    }
}

async fn migrations_apply_twice(url: &str) -> Outcome {
    let first = open(url).await?;
    let run = first.create_run(&new_run("c0ffee")).await?;
    first.close().await;
    // Opening again runs the migrator again: nothing to apply, nothing lost.
    let second = open(url).await?;
    let again = second.run(run.id).await?;
    assert_eq!(again, Some(run));
    let third = open(url).await?;
    assert_eq!(third.recent_runs(10).await?.len(), 1);
    Ok(())
}

async fn approvals_and_rejections(url: &str) -> Outcome {
    let store = open(url).await?;
    let run = store.create_run(&new_run("a1b2c3")).await?;
    let other = store.create_run(&new_run("d4e5f6")).await?;
    assert!(store.approvals(run.id).await?.is_empty());
    let plans: std::collections::BTreeMap<String, String> =
        [("queue".to_owned(), "9f86d081".to_owned())].into();
    let approved = store
        .record_approval(&NewApproval {
            run_id: run.id,
            stage: "prod".to_owned(),
            actor: "grace".to_owned(),
            reason: "reviewed the plan".to_owned(),
            plans: plans.clone(),
        })
        .await?;
    assert_eq!(
        (
            approved.run_id,
            approved.stage.as_str(),
            approved.actor.as_str(),
            approved.reason.as_str(),
        ),
        (run.id, "prod", "grace", "reviewed the plan")
    );
    assert_eq!(approved.plans, plans);
    assert_eq!(store.approvals(run.id).await?, vec![approved]);
    assert!(store.approvals(other.id).await?.is_empty());

    // A rejected run ends as `rejected`, which the schema accepts; made-up statuses it
    // does not.
    let rejected = store.finish_run(run.id, RunStatus::Rejected).await?;
    assert_eq!(rejected.status, RunStatus::Rejected);
    assert_eq!(
        store.run(run.id).await?.map(|r| r.status),
        Some(RunStatus::Rejected)
    );
    let bogus = crate::raw_execute(
        url,
        &format!("UPDATE runs SET status = 'bogus' WHERE id = {}", other.id),
    )
    .await;
    assert!(bogus.is_err(), "{bogus:?}");
    // The rebuilt table still hands out fresh ids after the ones it held.
    let third = store.create_run(&new_run("0a0b0c")).await?;
    assert!(third.id > other.id, "{} after {}", third.id, other.id);
    Ok(())
}

async fn run_lifecycle(url: &str) -> Outcome {
    let store = open(url).await?;
    let run = store.create_run(&new_run("abc123")).await?;
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(
        (
            run.commit.as_str(),
            run.trigger.as_str(),
            run.actor.as_str()
        ),
        ("abc123", "push", "ada")
    );
    assert_eq!(run.finished_at, None);

    let dev = store.start_stage_run(run.id, "dev").await?;
    assert_eq!(dev.status, StageRunStatus::Running);
    store
        .record_artifact(&artifact("sha256-net", "network", "abc123"))
        .await?;
    let mut network = new_stack_run(run.id, "dev", "network");
    network.artifact_id = Some("sha256-net".to_owned());
    let network = store.add_stack_run(&network).await?;
    let cluster = store
        .add_stack_run(&new_stack_run(run.id, "dev", "cluster"))
        .await?;
    assert_eq!(network.status, StackRunStatus::Pending);
    assert_eq!(network.artifact_id.as_deref(), Some("sha256-net"));

    let planned = store
        .record_plan(network.id, r#"{"add":3,"destroy":0}"#)
        .await?;
    assert_eq!(
        planned.plan_summary.as_deref(),
        Some(r#"{"add":3,"destroy":0}"#)
    );

    let me = LockOwner::current(run.id);
    let lock = store.acquire_instance_lock("network", "dev", &me).await?;
    let applying = store.mark_applying(network.id, &lock).await?;
    assert_eq!(applying.status, StackRunStatus::Applying);
    assert!(applying.started_at.is_some());
    assert_eq!(
        applying.owner.as_ref().map(|o| o.pid),
        Some(std::process::id())
    );
    // Applying twice is refused: the record says who started first.
    let twice = store.mark_applying(network.id, &lock).await.unwrap_err();
    assert!(
        matches!(twice, StoreError::InvalidTransition { .. }),
        "{twice}"
    );
    // This process lives, so its apply is not interrupted.
    assert!(store.interrupted_stack_runs().await?.is_empty());

    let done = store
        .finish_stack_run(
            network.id,
            &StackRunOutcome {
                status: StackRunStatus::Succeeded,
                plan_summary: None,
                log_path: Some("logs/1/dev/network.log".to_owned()),
                failure_reason: None,
            },
        )
        .await?;
    assert_eq!(done.status, StackRunStatus::Succeeded);
    assert_eq!(
        done.plan_summary.as_deref(),
        Some(r#"{"add":3,"destroy":0}"#),
        "kept when None"
    );
    assert_eq!(done.log_path.as_deref(), Some("logs/1/dev/network.log"));
    assert!(done.finished_at >= done.started_at);
    let again = store
        .finish_stack_run(
            network.id,
            &StackRunOutcome {
                status: StackRunStatus::Failed,
                plan_summary: None,
                log_path: None,
                failure_reason: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        again.to_string(),
        format!(
            "stack run {} cannot go from succeeded to failed",
            network.id
        )
    );
    let not_final = store
        .finish_stack_run(
            cluster.id,
            &StackRunOutcome {
                status: StackRunStatus::Applying,
                plan_summary: None,
                log_path: None,
                failure_reason: None,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(not_final, StoreError::InvalidTransition { .. }),
        "{not_final}"
    );
    store
        .finish_stack_run(
            cluster.id,
            &StackRunOutcome {
                status: StackRunStatus::Skipped,
                plan_summary: None,
                log_path: None,
                failure_reason: None,
            },
        )
        .await?;

    // A failure keeps the engine's reason beside the status.
    let queue = store
        .add_stack_run(&new_stack_run(run.id, "dev", "queue"))
        .await?;
    let failed = store
        .finish_stack_run(
            queue.id,
            &StackRunOutcome {
                status: StackRunStatus::Failed,
                plan_summary: None,
                log_path: None,
                failure_reason: Some("error loading state: AccessDenied".to_owned()),
            },
        )
        .await?;
    assert_eq!(
        failed.failure_reason.as_deref(),
        Some("error loading state: AccessDenied")
    );

    let statuses: Vec<_> = store
        .stack_runs(run.id)
        .await?
        .iter()
        .map(|s| (s.stack.clone(), s.status, s.failure_reason.clone()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("network".to_owned(), StackRunStatus::Succeeded, None),
            ("cluster".to_owned(), StackRunStatus::Skipped, None),
            (
                "queue".to_owned(),
                StackRunStatus::Failed,
                Some("error loading state: AccessDenied".to_owned())
            )
        ]
    );

    let dev = store
        .set_stage_run_status(dev.id, StageRunStatus::Succeeded)
        .await?;
    assert!(dev.finished_at.is_some());
    let prod = store.start_stage_run(run.id, "prod").await?;
    let waiting = store
        .set_stage_run_status(prod.id, StageRunStatus::AwaitingApproval)
        .await?;
    assert_eq!(waiting.finished_at, None);
    store
        .set_stage_run_status(prod.id, StageRunStatus::Succeeded)
        .await?;
    let stages: Vec<_> = store
        .stage_runs(run.id)
        .await?
        .into_iter()
        .map(|s| (s.stage, s.status))
        .collect();
    assert_eq!(
        stages,
        [
            ("dev".to_owned(), StageRunStatus::Succeeded),
            ("prod".to_owned(), StageRunStatus::Succeeded)
        ]
    );

    let finished = store.finish_run(run.id, RunStatus::Succeeded).await?;
    assert_eq!(finished.status, RunStatus::Succeeded);
    assert!(finished.finished_at.is_some());
    assert!(matches!(
        store.finish_run(run.id, RunStatus::Failed).await,
        Err(StoreError::InvalidTransition { .. })
    ));
    assert!(matches!(
        store.finish_run(999_999, RunStatus::Failed).await,
        Err(StoreError::NotFound { .. })
    ));

    let later = store.create_run(&new_run("def456")).await?;
    let recent: Vec<_> = store
        .recent_runs(10)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(recent, [later.id, run.id], "newest first");
    assert_eq!(store.recent_runs(1).await?.len(), 1);
    Ok(())
}

/// What the delivery metrics read: the stage runs since a time with their runs, releases,
/// and only the rollbacks and recoveries of the audit log.
async fn delivery_history(url: &str) -> Outcome {
    let store = open(url).await?;
    let before = UnixMillis(UnixMillis::now().0 - 1);
    let run = store.create_run(&new_run("c1")).await?;
    let stage_run = store.start_stage_run(run.id, "prod").await?;
    store
        .set_stage_run_status(stage_run.id, StageRunStatus::Failed)
        .await?;
    store.record_artifact(&artifact("a1", "app", "c1")).await?;
    store
        .record_release(&NewRelease {
            stage: "prod".to_owned(),
            stack: "app".to_owned(),
            artifact_id: "a1".to_owned(),
            commit: "c1".to_owned(),
            released_by: "ada".to_owned(),
            run_id: Some(run.id),
            fence: None,
        })
        .await?;
    for action in [
        AuditAction::Approve,
        AuditAction::Rollback,
        AuditAction::Recover,
    ] {
        store
            .append_audit(&NewAuditEntry {
                actor: "ada".to_owned(),
                action,
                stage: Some("prod".to_owned()),
                stack: None,
                run_id: None,
                details: serde_json::json!({}),
            })
            .await?;
    }
    let history = store.delivery_history(before).await?;
    assert_eq!(
        history.runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        [run.id]
    );
    assert_eq!(history.stage_runs.len(), 1);
    assert_eq!(history.stage_runs[0].status, StageRunStatus::Failed);
    assert_eq!(history.releases.len(), 1);
    assert_eq!(history.releases[0].commit, "c1");
    let actions: Vec<AuditAction> = history.restorations.iter().map(|e| e.action).collect();
    assert_eq!(actions, [AuditAction::Rollback, AuditAction::Recover]);
    let later = store
        .delivery_history(UnixMillis(UnixMillis::now().0 + 60_000))
        .await?;
    assert_eq!(later, slipway_store::DeliveryHistory::default());
    Ok(())
}

async fn release_history(url: &str) -> Outcome {
    let store = open(url).await?;
    let stages = ["dev", "test", "prod"];
    let stacks = ["network", "cluster"];
    let run = store.create_run(&new_run("c1")).await?;
    // Three commits flow through: every stage gets c1 then c2; only dev and test get c3.
    for commit in ["c1", "c2", "c3"] {
        for stack in stacks {
            let id = format!("{stack}-{commit}");
            assert!(store.record_artifact(&artifact(&id, stack, commit)).await?);
            assert!(
                !store.record_artifact(&artifact(&id, stack, commit)).await?,
                "content-addressed: recorded once"
            );
            for stage in stages {
                if commit == "c3" && stage == "prod" {
                    continue;
                }
                store
                    .record_release(&NewRelease {
                        stage: stage.to_owned(),
                        stack: stack.to_owned(),
                        artifact_id: id.clone(),
                        commit: commit.to_owned(),
                        released_by: "ada".to_owned(),
                        run_id: Some(run.id),
                        fence: None,
                    })
                    .await?;
            }
        }
    }
    for stage in stages {
        for stack in stacks {
            let current = store
                .current_release(stage, stack)
                .await?
                .ok_or("no current release")?;
            let previous = store
                .previous_release(stage, stack)
                .await?
                .ok_or("no previous release")?;
            let (want_current, want_previous) = if stage == "prod" {
                ("c2", "c1")
            } else {
                ("c3", "c2")
            };
            assert_eq!(
                (current.commit.as_str(), previous.commit.as_str()),
                (want_current, want_previous),
                "{stage}/{stack}"
            );
            assert_eq!(current.artifact_id, format!("{stack}-{want_current}"));
            assert_eq!(current.run_id, Some(run.id));
        }
    }
    let history: Vec<_> = store
        .release_history("dev", "network", 10)
        .await?
        .into_iter()
        .map(|r| r.commit)
        .collect();
    assert_eq!(history, ["c3", "c2", "c1"]);
    assert_eq!(store.release_history("dev", "network", 2).await?.len(), 2);

    // A rollback is a new release of the previous artifact, made by hand.
    let previous = store
        .previous_release("prod", "network")
        .await?
        .ok_or("no previous")?;
    store
        .record_release(&NewRelease {
            stage: "prod".to_owned(),
            stack: "network".to_owned(),
            artifact_id: previous.artifact_id.clone(),
            commit: previous.commit.clone(),
            released_by: "grace".to_owned(),
            run_id: None,
            fence: None,
        })
        .await?;
    let rolled_back = store
        .current_release("prod", "network")
        .await?
        .ok_or("no current")?;
    assert_eq!(
        (
            rolled_back.commit.as_str(),
            rolled_back.released_by.as_str(),
            rolled_back.run_id
        ),
        ("c1", "grace", None)
    );
    assert_eq!(
        store
            .previous_release("prod", "network")
            .await?
            .map(|r| r.commit),
        Some("c2".to_owned())
    );

    let matrix: Vec<_> = store
        .current_releases()
        .await?
        .into_iter()
        .map(|r| format!("{}/{}={}", r.stage, r.stack, r.commit))
        .collect();
    assert_eq!(
        matrix,
        [
            "dev/cluster=c3",
            "dev/network=c3",
            "prod/cluster=c2",
            "prod/network=c1",
            "test/cluster=c3",
            "test/network=c3",
        ]
    );
    assert_eq!(store.current_release("staging", "network").await?, None);
    assert_eq!(store.previous_release("dev", "nothing").await?, None);
    assert_eq!(
        store
            .artifact("network-c2")
            .await?
            .map(|a| (a.stack, a.size)),
        Some(("network".to_owned(), 4096))
    );
    // A release must name a recorded artifact.
    let unknown = store
        .record_release(&NewRelease {
            stage: "dev".to_owned(),
            stack: "network".to_owned(),
            artifact_id: "never-built".to_owned(),
            commit: "c9".to_owned(),
            released_by: "ada".to_owned(),
            run_id: None,
            fence: None,
        })
        .await;
    assert!(
        matches!(unknown, Err(StoreError::Database { .. })),
        "{unknown:?}"
    );
    Ok(())
}

async fn audit_log_is_append_only(url: &str) -> Outcome {
    let store = open(url).await?;
    let mut appended = Vec::new();
    for (action, actor) in [
        (AuditAction::Apply, "ci"),
        (AuditAction::Approve, "ada"),
        (AuditAction::Promote, "ada"),
    ] {
        appended.push(
            store
                .append_audit(&NewAuditEntry {
                    actor: actor.to_owned(),
                    action,
                    stage: Some("prod".to_owned()),
                    stack: Some("network".to_owned()),
                    run_id: None,
                    details: serde_json::json!({ "plan": "sha256-plan", "destroy": 0 }),
                })
                .await?,
        );
    }
    let all = store.audit_log(None, 100).await?;
    assert_eq!(all, appended);
    assert!(all.windows(2).all(|pair| pair[0].seq < pair[1].seq));
    assert_eq!(all[1].details["plan"], "sha256-plan");
    let after_first = store.audit_log(Some(all[0].seq), 100).await?;
    assert_eq!(
        after_first.iter().map(|e| e.action).collect::<Vec<_>>(),
        [AuditAction::Approve, AuditAction::Promote]
    );
    assert_eq!(store.audit_log(None, 1).await?.len(), 1);

    // Not even raw SQL can change or remove an entry.
    let update = raw_execute(url, "UPDATE audit_log SET actor = 'mallory'").await;
    let delete = raw_execute(url, "DELETE FROM audit_log").await;
    for (what, result) in [("UPDATE", update), ("DELETE", delete)] {
        let error = result
            .err()
            .ok_or(format!("{what} of the audit log succeeded"))?;
        assert!(
            error.contains("audit_log is append-only"),
            "{what}: {error}"
        );
    }
    assert_eq!(store.audit_log(None, 100).await?, appended);
    Ok(())
}

async fn lock_exclusivity(url: &str) -> Outcome {
    // Eight contenders, each with its own connection pool, race for one instance.
    let mut stores = Vec::new();
    for _ in 0..8 {
        stores.push(open(url).await?);
    }
    let mut contenders = tokio::task::JoinSet::new();
    for (i, store) in stores.iter().enumerate() {
        let store = store.clone();
        let owner = LockOwner::current(100 + i as i64);
        contenders.spawn(async move {
            let result = store.acquire_instance_lock("network", "prod", &owner).await;
            (owner, result)
        });
    }
    let results = contenders.join_all().await;
    let winners: Vec<_> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(o, _)| o.clone())
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one contender takes the lock: {results:?}"
    );
    let winner = &winners[0];
    for (_, result) in &results {
        if let Err(error) = result {
            let StoreError::InstanceLocked(held) = error else {
                return Err(format!("unexpected error {error}").into());
            };
            assert_eq!(held.lock.owner.run_id, winner.run_id);
            assert_eq!(held.stale, None, "the winner (this process) is alive");
        }
    }

    let store = &stores[0];
    let other = LockOwner::current(999);
    // The holder takes it again; another instance of the same stack is a different lock.
    assert!(
        store
            .acquire_instance_lock("network", "prod", winner)
            .await
            .is_ok()
    );
    assert!(
        store
            .acquire_instance_lock("network", "dev", &other)
            .await
            .is_ok()
    );
    assert!(
        store
            .heartbeat_instance_lock("network", "prod", winner)
            .await?
    );
    assert!(
        !store
            .heartbeat_instance_lock("network", "prod", &other)
            .await?
    );
    assert!(
        !store
            .release_instance_lock("network", "prod", &other)
            .await?
    );

    let held = match store.acquire_instance_lock("network", "prod", &other).await {
        Err(StoreError::InstanceLocked(held)) => held,
        unexpected => return Err(format!("expected the lock to be held: {unexpected:?}").into()),
    };
    let refused = store
        .break_stale_lock(&held, &other, "ada")
        .await
        .unwrap_err();
    assert!(matches!(refused, StoreError::LockNotStale(_)), "{refused}");

    let locks: BTreeSet<_> = store
        .instance_locks()
        .await?
        .into_iter()
        .map(|h| (h.lock.stack, h.lock.instance))
        .collect();
    assert_eq!(
        locks,
        BTreeSet::from([
            ("network".to_owned(), "dev".to_owned()),
            ("network".to_owned(), "prod".to_owned())
        ])
    );

    assert!(
        store
            .release_instance_lock("network", "prod", winner)
            .await?
    );
    assert!(
        store
            .acquire_instance_lock("network", "prod", &other)
            .await
            .is_ok()
    );
    Ok(())
}

async fn killed_process(url: &str) -> Outcome {
    let store = open(url).await?;
    let run = store.create_run(&new_run("dead0")).await?;
    let stack_run = store
        .add_stack_run(&new_stack_run(run.id, "prod", "network"))
        .await?;
    let me = LockOwner::current(run.id + 1);

    let child = ChildHolder::spawn(url, run.id, stack_run.id, "network", "prod")?;
    // While the child lives its lock is held, not stale, and its apply is not interrupted.
    let held = expect_locked(&store, &me).await?;
    assert_eq!(held.lock.owner.pid, child.pid());
    assert_eq!(held.stale, None);
    assert!(store.interrupted_stack_runs().await?.is_empty());
    assert!(matches!(
        store
            .resolve_interrupted(stack_run.id, "ada", "too early")
            .await,
        Err(StoreError::StillApplying { .. })
    ));

    let engine = store
        .stack_run(stack_run.id)
        .await?
        .and_then(|s| s.engine)
        .ok_or("the child recorded its engine")?;
    let child_pid = child.kill()?;
    // slipway is gone but its engine still applies: neither interrupted nor stale.
    let held = expect_locked(&store, &me).await?;
    assert_eq!(held.stale, None, "the engine {} still runs", engine.pid);
    assert!(store.interrupted_stack_runs().await?.is_empty());
    let refused = store
        .resolve_interrupted(stack_run.id, "ada", "too early")
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains(&format!("engine pid {} on", engine.pid)),
        "{refused}"
    );
    kill_and_wait_gone(engine.pid)?;
    let held = expect_locked(&store, &me).await?;
    assert_eq!(
        held.lock.owner.pid, child_pid,
        "the stale lock names its owner"
    );
    assert_eq!(held.lock.owner.run_id, run.id);
    assert_eq!(held.stale, Some(StaleReason::ProcessGone));
    assert!(held.age < Duration::from_secs(600), "age {:?}", held.age);
    let message = StoreError::InstanceLocked(Box::new(held.clone())).to_string();
    assert!(
        message.contains(&format!("pid {child_pid}"))
            && message.ends_with("the lock is stale: its process is no longer running"),
        "{message}"
    );

    let interrupted = store.interrupted_stack_runs().await?;
    assert_eq!(
        interrupted.iter().map(|s| s.id).collect::<Vec<_>>(),
        [stack_run.id]
    );
    assert_eq!(
        interrupted[0].owner.as_ref().map(|o| o.pid),
        Some(child_pid)
    );
    let resolved = store
        .resolve_interrupted(stack_run.id, "ada", "runner was killed")
        .await?;
    assert_eq!(resolved.status, StackRunStatus::Interrupted);
    assert_eq!(resolved.note.as_deref(), Some("runner was killed"));
    assert!(store.interrupted_stack_runs().await?.is_empty());

    let taken = store.break_stale_lock(&held, &me, "ada").await?;
    assert_eq!(taken.owner.run_id, me.run_id);
    assert!(
        matches!(
            store.break_stale_lock(&held, &me, "ada").await,
            Err(StoreError::LockChanged { .. })
        ),
        "a lock is taken over once"
    );
    assert!(
        store
            .acquire_instance_lock("network", "prod", &me)
            .await
            .is_ok()
    );

    let audit = store.audit_log(None, 100).await?;
    let actions: Vec<_> = audit.iter().map(|e| e.action).collect();
    assert_eq!(actions, [AuditAction::Interrupted, AuditAction::Unlock]);
    let unlock = &audit[1];
    assert_eq!(unlock.details["previous_owner"]["pid"], child_pid);
    assert_eq!(unlock.details["reason"], "process_gone");
    assert_eq!(unlock.details["instance"], "prod");
    Ok(())
}

/// A lock taken over from a holder judged gone is a new grant: the old holder, should it
/// wake up, can neither say "applying" nor record a release under its old grant.
async fn fencing(url: &str) -> Outcome {
    let store = open(url).await?;
    let run = store.create_run(&new_run("fence1")).await?;
    store
        .record_artifact(&artifact("sha256-net", "network", "fence1"))
        .await?;
    let paused = store
        .add_stack_run(&new_stack_run(run.id, "prod", "network"))
        .await?;
    // The old holder: a process that has exited, so its lock is judged stale.
    let mut gone = LockOwner::current(run.id);
    gone.pid = exited_pid()?;
    gone.process_started = None;
    let old = store
        .acquire_instance_lock("network", "prod", &gone)
        .await?;

    let next = store.create_run(&new_run("fence2")).await?;
    let taker = LockOwner::current(next.id);
    let held = expect_locked(&store, &taker).await?;
    assert_eq!(held.stale, Some(StaleReason::ProcessGone));
    let new = store.break_stale_lock(&held, &taker, "ada").await?;
    assert!(new.fence > old.fence, "{} > {}", new.fence, old.fence);

    let refused = store.mark_applying(paused.id, &old).await.unwrap_err();
    assert!(matches!(refused, StoreError::LockLost { .. }), "{refused}");
    insta::assert_snapshot!(refused.to_string(), @"the lock on stack `network` in instance `prod` was taken over since this run took it; nothing was written");
    assert_eq!(
        store.stack_run(paused.id).await?.map(|s| s.status),
        Some(StackRunStatus::Pending),
        "nothing was marked"
    );
    let release = |run_id: i64, fence| NewRelease {
        stage: "prod".to_owned(),
        stack: "network".to_owned(),
        artifact_id: "sha256-net".to_owned(),
        commit: "fence1".to_owned(),
        released_by: "ada".to_owned(),
        run_id: Some(run_id),
        fence: Some(fence),
    };
    let refused = store
        .record_release(&release(run.id, old.fence()))
        .await
        .unwrap_err();
    assert!(matches!(refused, StoreError::LockLost { .. }), "{refused}");
    assert_eq!(store.current_release("prod", "network").await?, None);

    // The new holder's writes pass its fence.
    let current = store
        .add_stack_run(&new_stack_run(next.id, "prod", "network"))
        .await?;
    store.mark_applying(current.id, &new).await?;
    let released = store.record_release(&release(next.id, new.fence())).await?;
    assert_eq!(released.run_id, Some(next.id));

    // Numbers only grow, also once the lock row is gone.
    assert!(
        store
            .release_instance_lock("network", "prod", &new.owner)
            .await?
    );
    let again = store
        .acquire_instance_lock("network", "prod", &taker)
        .await?;
    assert!(again.fence > new.fence, "{} > {}", again.fence, new.fence);
    Ok(())
}

/// Kills `pid` with SIGKILL and waits until the process table shows it gone (or a zombie
/// nobody has reaped yet, which has stopped all the same).
fn kill_and_wait_gone(pid: u32) -> Result<(), Box<dyn std::error::Error>> {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()?;
    assert!(status.success(), "kill {pid}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while slipway_store::probe_process(pid) != slipway_store::ProcessState::Gone {
        if std::time::Instant::now() > deadline {
            return Err(format!("process {pid} still runs 30 s after SIGKILL").into());
        }
        std::thread::yield_now();
    }
    Ok(())
}

/// A run's events are kept in order, numbered across appends (a resume appends to what the
/// run began), and read back from any point.
async fn run_events(url: &str) -> Outcome {
    let store = open(url).await?;
    let run = store.create_run(&new_run("events1")).await?;
    let other = store.create_run(&new_run("events2")).await?;
    let event = |n: u32| serde_json::json!({"event": "note", "n": n});
    store
        .append_run_events(run.id, &[event(1), event(2)])
        .await?;
    store.append_run_events(other.id, &[event(99)]).await?;
    store.append_run_events(run.id, &[]).await?;
    store.append_run_events(run.id, &[event(3)]).await?;
    let all = store.run_events(run.id, 0, 100).await?;
    assert_eq!(
        all.iter()
            .map(|e| (e.seq, e.event["n"].as_u64()))
            .collect::<Vec<_>>(),
        [(1, Some(1)), (2, Some(2)), (3, Some(3))]
    );
    assert!(all.iter().all(|e| e.run_id == run.id));
    let late = store.run_events(run.id, 1, 1).await?;
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].seq, 2);
    assert_eq!(store.run_events(other.id, 0, 100).await?.len(), 1);
    assert!(store.run_events(run.id, 3, 100).await?.is_empty());
    Ok(())
}

/// A delivery is kept once: a redelivery (same id) and the same push delivered again under
/// another id are duplicates naming the first; ignored ones are kept with their reason and
/// do not block a later queued one.
async fn webhook_deliveries(url: &str) -> Outcome {
    use slipway_store::{DeliveryStatus, Intake, NewDelivery};
    let store = open(url).await?;
    let push = |id: &str, commit: &str, status: DeliveryStatus| NewDelivery {
        id: id.to_owned(),
        provider: "github".to_owned(),
        kind: "push".to_owned(),
        repository: "acme/platform".to_owned(),
        git_ref: "refs/heads/main".to_owned(),
        commit: commit.to_owned(),
        pull_number: None,
        status,
        reason: (status == DeliveryStatus::Ignored).then(|| "not on the allowlist".to_owned()),
        actor: "octocat".to_owned(),
        base_ref: None,
    };
    let ignored = store
        .record_delivery(&push("github:0", "c1", DeliveryStatus::Ignored))
        .await?;
    assert!(matches!(ignored, Intake::Kept(_)), "{ignored:?}");
    let first = store
        .record_delivery(&push("github:1", "c1", DeliveryStatus::Queued))
        .await?;
    assert!(matches!(first, Intake::Kept(ref d) if d.status == DeliveryStatus::Queued));
    for again in [
        push("github:1", "c1", DeliveryStatus::Queued),
        push("github:2", "c1", DeliveryStatus::Queued),
    ] {
        assert_eq!(
            store.record_delivery(&again).await?,
            Intake::Duplicate {
                of: "github:1".to_owned()
            }
        );
    }
    let next = store
        .record_delivery(&push("github:3", "c2", DeliveryStatus::Queued))
        .await?;
    assert!(matches!(next, Intake::Kept(_)));
    let kept = store.deliveries(10).await?;
    assert_eq!(kept.len(), 3, "{kept:?}");
    let reasons: Vec<Option<&str>> = kept.iter().map(|d| d.reason.as_deref()).collect();
    assert!(reasons.contains(&Some("not on the allowlist")), "{kept:?}");
    // Each queued push queued one run job, in the same transaction; the newer commit's job
    // superseded the older one, which stays on record naming it.
    use slipway_store::{JobKind, JobStatus, ServiceRecord as _};
    let jobs = store.jobs(10).await?;
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert_eq!(
        (jobs[0].kind, jobs[0].status, jobs[0].commit.as_str()),
        (JobKind::Run, JobStatus::Queued, "c2")
    );
    assert_eq!(jobs[0].delivery_id.as_deref(), Some("github:3"));
    assert_eq!(jobs[0].requested_by, "octocat");
    assert_eq!(jobs[1].status, JobStatus::Superseded);
    assert_eq!(jobs[1].superseded_by, Some(jobs[0].id));
    Ok(())
}

/// The pid of a process that has exited and been reaped.
pub fn exited_pid() -> Result<u32, Box<dyn std::error::Error>> {
    let mut child = std::process::Command::new("true").spawn()?;
    let pid = child.id();
    child.wait()?;
    Ok(pid)
}

async fn expect_locked(
    store: &AnyStore,
    me: &LockOwner,
) -> Result<slipway_store::HeldLock, Box<dyn std::error::Error>> {
    match store.acquire_instance_lock("network", "prod", me).await {
        Err(StoreError::InstanceLocked(held)) => Ok(*held),
        other => Err(format!("expected the lock to be held by the child: {other:?}").into()),
    }
}
