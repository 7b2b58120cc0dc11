//! The story of the server's queue and API tokens, told against every backend.

use slipway_store::{
    EngineProcess, JobKind, JobStatus, Labels, NewJob, NewRun, NewToken, NewWorker, Role,
    ServiceRecord as _, Store as _, UnixMillis, open,
};

use crate::story::Outcome;

fn run_job(git_ref: &str, commit: &str) -> NewJob {
    NewJob {
        kind: JobKind::Run,
        repository: "acme/platform".to_owned(),
        git_ref: git_ref.to_owned(),
        commit: commit.to_owned(),
        stage: None,
        run_id: None,
        stack: None,
        delivery_id: None,
        requested_by: "ada".to_owned(),
        labels: Labels::default(),
    }
}

fn labels(text: &str) -> Labels {
    Labels::parse(text).expect("labels")
}

/// Jobs are taken oldest first, once each; a newer run job of a branch supersedes the
/// queued ones before it (never another branch's, never a resume); a job whose process is
/// gone is marked interrupted, a live one is left alone.
pub async fn job_queue(url: &str) -> Outcome {
    let store = open(url).await?;
    let me = EngineProcess::here(std::process::id());
    assert_eq!(
        store.claim_job(&me, &Labels::default()).await?,
        None,
        "an empty queue"
    );

    let run = store
        .create_run(&NewRun {
            commit: "c0".to_owned(),
            trigger: "push".to_owned(),
            actor: "ada".to_owned(),
        })
        .await?;
    let resume = store
        .enqueue_job(&NewJob {
            kind: JobKind::Resume,
            run_id: Some(run.id),
            ..run_job("refs/heads/main", "c0")
        })
        .await?;
    let first = store.enqueue_job(&run_job("refs/heads/main", "c1")).await?;
    let other_branch = store
        .enqueue_job(&run_job("refs/heads/release", "r1"))
        .await?;
    let second = store.enqueue_job(&run_job("refs/heads/main", "c2")).await?;
    let again = store.enqueue_job(&run_job("refs/heads/main", "c2")).await?;
    assert_eq!(again.id, second.id, "a commit is asked for once");
    let first = store.job(first.id).await?.ok_or("the first job is kept")?;
    assert_eq!(first.status, JobStatus::Superseded);
    assert_eq!(first.superseded_by, Some(second.id));
    for untouched in [resume.id, other_branch.id, second.id] {
        let job = store.job(untouched).await?.ok_or("kept")?;
        assert_eq!(job.status, JobStatus::Queued, "{job:?}");
    }

    // Oldest first, each once.
    let claimed = store
        .claim_job(&me, &Labels::default())
        .await?
        .ok_or("a queued job")?;
    assert_eq!(
        (claimed.id, claimed.status),
        (resume.id, JobStatus::Running)
    );
    assert_eq!(claimed.worker.as_ref(), Some(&me));
    let next = store
        .claim_job(&me, &Labels::default())
        .await?
        .ok_or("a queued job")?;
    assert_eq!(next.id, other_branch.id);
    store.job_started_run(next.id, run.id).await?;
    let done = store
        .finish_job(next.id, JobStatus::Done, "delivered")
        .await?;
    assert_eq!(
        (done.status, done.run_id, done.outcome.as_deref()),
        (JobStatus::Done, Some(run.id), Some("delivered"))
    );

    // Two claimants racing for the last job: one gets it.
    let none = Labels::default();
    let (a, b) = tokio::join!(store.claim_job(&me, &none), store.claim_job(&me, &none));
    let winners: Vec<_> = [a?, b?].into_iter().flatten().collect();
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(winners[0].id, second.id);

    // The resume job's process is alive (this one): left running. A job claimed by a process
    // that has exited is interrupted, once.
    let gone = EngineProcess {
        pid: crate::story::exited_pid()?,
        process_started: None,
        host: me.host.clone(),
    };
    let orphan = store.enqueue_job(&run_job("refs/heads/main", "c3")).await?;
    let claimed = store
        .claim_job(&gone, &Labels::default())
        .await?
        .ok_or("the orphan's job")?;
    assert_eq!(claimed.id, orphan.id);
    let abandoned = store.interrupt_abandoned_jobs().await?;
    assert_eq!(
        abandoned.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![orphan.id]
    );
    assert_eq!(abandoned[0].status, JobStatus::Interrupted);
    assert!(store.interrupt_abandoned_jobs().await?.is_empty());
    let still = store.job(resume.id).await?.ok_or("kept")?;
    assert_eq!(still.status, JobStatus::Running);
    let listed = store.jobs(100).await?;
    assert_eq!(
        listed.first().map(|j| j.id),
        Some(orphan.id),
        "newest first"
    );

    // A worker on another host cannot be looked at: its heartbeat says whether it still
    // works on its job. Within the lease it does; once the lease ran out (here a record
    // opened with no lease at all), the job is interrupted, the worker's next heartbeat is
    // refused, and its late finish changes nothing.
    let elsewhere = EngineProcess {
        pid: 4242,
        process_started: None,
        host: "worker-7.example".to_owned(),
    };
    let remote = store.enqueue_job(&run_job("refs/heads/main", "c4")).await?;
    let claimed = store
        .claim_job(&elsewhere, &Labels::default())
        .await?
        .ok_or("the remote job")?;
    assert_eq!(claimed.id, remote.id);
    assert!(
        claimed.heartbeat_at.is_some(),
        "a claim is a first heartbeat"
    );
    assert!(
        store.interrupt_abandoned_jobs().await?.is_empty(),
        "within the lease"
    );
    assert!(store.heartbeat_job(remote.id, &elsewhere).await?);
    assert!(
        !store.heartbeat_job(remote.id, &me).await?,
        "only the holder renews a job"
    );
    let no_lease = slipway_store::open_with_lease(url, std::time::Duration::ZERO).await?;
    let expired = no_lease.interrupt_abandoned_jobs().await?;
    let expired: Vec<_> = expired.iter().filter(|j| j.id == remote.id).collect();
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert_eq!(expired[0].status, JobStatus::Interrupted);
    let why = expired[0].outcome.as_deref().unwrap_or_default();
    assert!(
        why.contains("worker-7.example") && why.contains("no heartbeat"),
        "{why}"
    );
    assert!(!store.heartbeat_job(remote.id, &elsewhere).await?);
    let late = store
        .finish_job(remote.id, JobStatus::Done, "delivered after all")
        .await?;
    assert_eq!(late.status, JobStatus::Interrupted, "{late:?}");
    assert_eq!(
        store.job(resume.id).await?.ok_or("kept")?.status,
        JobStatus::Running,
        "a live process on this host keeps its job whatever the lease"
    );

    // Two processes queueing the same commit at once (two servers polling it) get one job.
    for round in 0..5 {
        let job = run_job("refs/heads/race", &format!("raced-{round}"));
        let (a, b) = tokio::join!(store.enqueue_job(&job), store.enqueue_job(&job));
        assert_eq!(a?.id, b?.id, "round {round}");
    }
    Ok(())
}

/// Step jobs name their run, stage and stack. The worker delivering a run takes that run's
/// queued steps (oldest first, whatever labels they ask for: it carries the stage's), never
/// another run's steps or other jobs; any worker carrying a step's labels takes it from the
/// queue as any job.
pub async fn step_jobs(url: &str) -> Outcome {
    let store = open(url).await?;
    let me = EngineProcess::here(std::process::id());
    let mine = store.create_run(&crate::story::new_run("s1")).await?;
    let other = store.create_run(&crate::story::new_run("s2")).await?;
    let step = |run: i64, stack: &str, tier: &str| NewJob {
        kind: JobKind::Step,
        stage: Some("prod".to_owned()),
        run_id: Some(run),
        stack: Some(stack.to_owned()),
        labels: labels(tier),
        ..run_job("refs/heads/main", "s1")
    };
    let network = store
        .enqueue_job(&step(mine.id, "network", "tier=prod"))
        .await?;
    let elsewhere = store.enqueue_job(&step(other.id, "queue", "")).await?;
    let data = store
        .enqueue_job(&step(mine.id, "data", "tier=prod"))
        .await?;
    assert_eq!(
        (network.kind, network.stack.as_deref(), network.run_id),
        (JobKind::Step, Some("network"), Some(mine.id))
    );
    let first = store.claim_step_of(&me, mine.id).await?.ok_or("a step")?;
    assert_eq!(first.id, network.id, "oldest first, labels or not");
    assert_eq!(first.status, JobStatus::Running);
    let second = store.claim_step_of(&me, mine.id).await?.ok_or("a step")?;
    assert_eq!(second.id, data.id);
    assert_eq!(
        store.claim_step_of(&me, mine.id).await?,
        None,
        "another run's step is not the delivering worker's"
    );
    let taken = store.claim_job(&me, &Labels::default()).await?;
    assert_eq!(
        taken.map(|j| (j.id, j.stack)),
        Some((elsewhere.id, Some("queue".to_owned()))),
        "any worker takes a step it carries the labels of"
    );
    // A step nobody took can be withdrawn; one taken cannot.
    let late = store.enqueue_job(&step(mine.id, "app", "")).await?;
    assert!(store.withdraw_job(late.id, "withdrawn").await?);
    let withdrawn = store.job(late.id).await?.ok_or("kept")?;
    assert_eq!(
        (withdrawn.status, withdrawn.outcome.as_deref()),
        (JobStatus::Failed, Some("withdrawn"))
    );
    assert!(!store.withdraw_job(first.id, "withdrawn").await?);
    assert_eq!(store.claim_step_of(&me, mine.id).await?, None);
    Ok(())
}

/// A job asking for labels is taken only by a worker carrying each of them, oldest first
/// among those it may take; a worker without labels takes the rest. Workers register, say
/// they drain, stop; one whose process vanished (or, on another host, whose heartbeat is
/// older than the lease) shows as gone; each lists the jobs it runs.
pub async fn labelled_jobs_and_workers(url: &str) -> Outcome {
    let store = open(url).await?;
    let prod = labels("tier=prod,region=eu");
    let me = EngineProcess::here(std::process::id());
    let for_prod = store
        .enqueue_job(&NewJob {
            kind: JobKind::Drift,
            stage: Some("prod".to_owned()),
            labels: labels("tier=prod"),
            ..run_job("schedule/nightly", "")
        })
        .await?;
    assert_eq!(for_prod.labels, labels("tier=prod"));
    let for_anyone = store
        .enqueue_job(&run_job("refs/heads/labelled", "l1"))
        .await?;
    let for_gpu = store
        .enqueue_job(&NewJob {
            kind: JobKind::Drill,
            stage: Some("prod".to_owned()),
            labels: labels("tier=prod,gpu=yes"),
            ..run_job("schedule/drill", "")
        })
        .await?;

    let plain = store.claim_job(&me, &Labels::default()).await?;
    assert_eq!(
        plain.map(|j| j.id),
        Some(for_anyone.id),
        "an unlabelled worker passes over the labelled job"
    );
    assert_eq!(
        store.claim_job(&me, &Labels::default()).await?,
        None,
        "nothing left for an unlabelled worker"
    );
    assert_eq!(store.claim_job(&me, &labels("tier=dev")).await?, None);
    let labelled = store.claim_job(&me, &prod).await?.ok_or("the prod job")?;
    assert_eq!(labelled.id, for_prod.id);
    assert_eq!(
        store.claim_job(&me, &prod).await?,
        None,
        "a job asking for a label the worker lacks waits"
    );
    assert_eq!(
        store.job(for_gpu.id).await?.ok_or("kept")?.status,
        JobStatus::Queued
    );

    let before = UnixMillis::now();
    let worker = store
        .register_worker(&NewWorker {
            process: me.clone(),
            labels: prod.clone(),
            max_jobs: 2,
            version: "1.2.3".to_owned(),
        })
        .await?;
    assert_eq!(
        (worker.state(), worker.max_jobs, &worker.labels),
        ("working", 2, &prod),
        "{worker:?}"
    );
    let listed = store.workers(before).await?;
    let mine = listed
        .iter()
        .find(|w| w.id == worker.id)
        .ok_or("the worker is listed")?;
    for job in [for_anyone.id, for_prod.id] {
        assert!(mine.running_jobs.contains(&job), "{mine:?}");
    }
    assert!(store.worker_heartbeat(worker.id, true).await?);
    let draining = store.workers(before).await?;
    let draining = draining
        .iter()
        .find(|w| w.id == worker.id)
        .ok_or("listed")?;
    assert_eq!(draining.state(), "draining");

    let vanished = store
        .register_worker(&NewWorker {
            process: EngineProcess {
                pid: crate::story::exited_pid()?,
                process_started: None,
                host: me.host.clone(),
            },
            labels: Labels::default(),
            max_jobs: 1,
            version: "1.2.3".to_owned(),
        })
        .await?;
    assert_eq!(vanished.state(), "gone");
    let remote = store
        .register_worker(&NewWorker {
            process: EngineProcess {
                pid: 4242,
                process_started: None,
                host: "worker-9.example".to_owned(),
            },
            labels: Labels::default(),
            max_jobs: 1,
            version: "1.2.3".to_owned(),
        })
        .await?;
    assert_eq!(remote.state(), "idle", "within the lease");
    let no_lease = slipway_store::open_with_lease(url, std::time::Duration::ZERO).await?;
    let judged = no_lease.workers(before).await?;
    let judged = judged.iter().find(|w| w.id == remote.id).ok_or("listed")?;
    assert_eq!(judged.state(), "gone");
    assert!(
        judged
            .gone
            .as_deref()
            .unwrap_or_default()
            .contains("no heartbeat"),
        "{judged:?}"
    );

    store.worker_stopped(worker.id).await?;
    assert!(
        !store.worker_heartbeat(worker.id, false).await?,
        "a stopped worker's heartbeat is refused"
    );
    let stopped = store.workers(before).await?;
    let stopped = stopped.iter().find(|w| w.id == worker.id).ok_or("listed")?;
    assert_eq!(stopped.state(), "stopped");
    assert!(stopped.running_jobs.is_empty());
    assert!(
        store
            .workers(UnixMillis(UnixMillis::now().0 + 1000))
            .await?
            .iter()
            .all(|w| w.id != worker.id),
        "a worker stopped before `since` is left out"
    );
    for job in [for_anyone.id, for_prod.id] {
        store.finish_job(job, JobStatus::Done, "done").await?;
    }
    Ok(())
}

/// A schedule's mark moves once from what a process read: of two servers acting on the same
/// time, one queues the job; the job and the mark go together.
pub async fn schedule_marks(url: &str) -> Outcome {
    let store = open(url).await?;
    assert!(store.schedule_marks().await?.is_empty());
    let drift = NewJob {
        kind: JobKind::Drift,
        stage: Some("prod".to_owned()),
        ..run_job("schedule/nightly", "")
    };
    let first = UnixMillis(1_000);
    assert!(store.mark_schedule("nightly", None, first, None).await?);
    assert!(
        !store.mark_schedule("nightly", None, first, None).await?,
        "marked once"
    );
    assert!(
        store.jobs(10).await?.is_empty(),
        "a baseline queues nothing"
    );
    let due = UnixMillis(2_000);
    let (a, b) = tokio::join!(
        store.mark_schedule("nightly", Some(first), due, Some(&drift)),
        store.mark_schedule("nightly", Some(first), due, Some(&drift)),
    );
    assert_eq!([a?, b?].iter().filter(|won| **won).count(), 1);
    let jobs = store.jobs(10).await?;
    assert_eq!(jobs.len(), 1, "one job for one time: {jobs:?}");
    assert_eq!(
        (jobs[0].kind, jobs[0].stage.as_deref()),
        (JobKind::Drift, Some("prod"))
    );
    assert_eq!(
        store.schedule_marks().await?,
        vec![("nightly".to_owned(), due)]
    );
    Ok(())
}

/// Only a token's hash is kept; a revoked token no longer opens anything.
pub async fn api_tokens(url: &str) -> Outcome {
    let store = open(url).await?;
    let made = store
        .create_token(&NewToken {
            actor: "bob".to_owned(),
            role: Role::Approver,
            stage: Some("prod".to_owned()),
            token_hash: "ab".repeat(32),
            created_by: "ada".to_owned(),
        })
        .await?;
    assert_eq!(made.role, Role::Approver);
    let found = store
        .token_by_hash(&"ab".repeat(32))
        .await?
        .ok_or("the token opens")?;
    assert_eq!(
        (found.id, found.actor.as_str(), found.stage.as_deref()),
        (made.id, "bob", Some("prod"))
    );
    assert_eq!(store.token_by_hash(&"cd".repeat(32)).await?, None);
    assert!(
        serde_json::to_string(&found)?.contains("bob")
            && !serde_json::to_string(&found)?.contains(&"ab".repeat(32)),
        "the hash is never serialised"
    );
    assert!(store.revoke_token(made.id).await?);
    assert!(!store.revoke_token(made.id).await?, "revoked once");
    assert_eq!(store.token_by_hash(&"ab".repeat(32)).await?, None);
    assert_eq!(
        store.tokens().await?.len(),
        1,
        "revoked tokens stay on record"
    );
    assert!(Role::Admin.covers(Role::Approver));
    assert!(!Role::Deployer.covers(Role::Approver));
    Ok(())
}

/// A pull request delivery queues a `pull_request` job with it; a newer push to the same
/// branch supersedes the queued one (never a run job); the delivery is found by its id; what
/// is kept of a pull request (its latest report, the comment kept up to date) is one row,
/// updated in place.
pub async fn pull_requests(url: &str) -> Outcome {
    use slipway_store::{DeliveryStatus, Intake, NewDelivery, PullRequestKey};
    let store = open(url).await?;
    let delivery = |id: &str, commit: &str| NewDelivery {
        id: id.to_owned(),
        provider: "github".to_owned(),
        kind: "pull_request".to_owned(),
        repository: "acme/platform".to_owned(),
        git_ref: "feature".to_owned(),
        commit: commit.to_owned(),
        pull_number: Some(12),
        status: DeliveryStatus::Queued,
        reason: None,
        actor: "ada".to_owned(),
        base_ref: Some("release/2".to_owned()),
    };
    let run = store.enqueue_job(&run_job("feature", "p0")).await?;
    let Intake::Kept(_) = store.record_delivery(&delivery("github:p1", "p1")).await? else {
        return Err("the first delivery is kept".into());
    };
    let Intake::Kept(_) = store.record_delivery(&delivery("github:p2", "p2")).await? else {
        return Err("the second delivery is kept".into());
    };
    let jobs = store.jobs(10).await?;
    let pulls: Vec<_> = jobs
        .iter()
        .filter(|j| j.kind == JobKind::PullRequest)
        .collect();
    assert_eq!(pulls.len(), 2, "{jobs:?}");
    let (newer, older) = (pulls[0], pulls[1]);
    assert_eq!(newer.commit, "p2");
    assert_eq!(newer.delivery_id.as_deref(), Some("github:p2"));
    assert_eq!(newer.status, JobStatus::Queued);
    assert_eq!(older.status, JobStatus::Superseded);
    assert_eq!(older.superseded_by, Some(newer.id));
    let run = store.job(run.id).await?.ok_or("the run job is kept")?;
    assert_eq!(
        run.status,
        JobStatus::Queued,
        "a pull request never supersedes a run"
    );

    let kept = store.delivery("github:p2").await?.ok_or("the delivery")?;
    assert_eq!(kept.pull_number, Some(12));
    assert_eq!(kept.provider, "github");
    assert_eq!(kept.base_ref.as_deref(), Some("release/2"));
    assert_eq!(store.delivery("github:nope").await?, None);

    let key = PullRequestKey {
        provider: "github".to_owned(),
        repository: "acme/platform".to_owned(),
        number: 12,
    };
    assert_eq!(store.pull_request(&key).await?, None);
    let first = store.save_pull_request_report(&key, "p1", "# one").await?;
    assert_eq!(first.comment_id, None);
    store.set_pull_request_comment(first.id, "1001").await?;
    let second = store.save_pull_request_report(&key, "p2", "# two").await?;
    assert_eq!(second.id, first.id, "one row per pull request");
    assert_eq!(
        second.comment_id.as_deref(),
        Some("1001"),
        "the comment stays"
    );
    assert_eq!(
        (second.commit.as_str(), second.report.as_str()),
        ("p2", "# two")
    );
    assert_eq!(
        store.pull_request_by_id(first.id).await?,
        Some(second.clone())
    );
    let other = store
        .save_pull_request_report(
            &PullRequestKey {
                number: 13,
                ..key.clone()
            },
            "q1",
            "#",
        )
        .await?;
    assert_ne!(other.id, first.id);
    Ok(())
}
