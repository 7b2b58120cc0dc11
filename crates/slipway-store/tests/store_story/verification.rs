//! The story of ephemeral instances, drills and drift checks, told against every backend.

use slipway_store::{DrillStatus, NewInstance, VerificationRecord as _, open};

use crate::story::Outcome;

fn instance(name: &str, purpose: &str) -> NewInstance {
    NewInstance {
        name: name.to_owned(),
        purpose: purpose.to_owned(),
        stage: "prod".to_owned(),
        run_id: None,
    }
}

/// An instance stays on record as live until it is destroyed; a name is never reused.
pub async fn ephemeral_instances(url: &str) -> Outcome {
    let store = open(url).await?;
    assert!(store.live_instances().await?.is_empty());
    let zero = store
        .record_instance(&instance("zero-3f9a", "zero"))
        .await?;
    assert_eq!(zero.owner_pid, std::process::id());
    assert_eq!(zero.destroyed_at, None);
    store
        .record_instance(&instance("drill-77aa", "drill"))
        .await?;
    assert!(
        store
            .record_instance(&instance("zero-3f9a", "zero"))
            .await
            .is_err(),
        "a second instance with the same name is refused"
    );
    let live: Vec<String> = store
        .live_instances()
        .await?
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(live.len(), 2);
    assert!(live.contains(&"zero-3f9a".to_owned()));

    assert!(store.instance_destroyed("zero-3f9a").await?);
    assert!(!store.instance_destroyed("zero-3f9a").await?, "only once");
    assert!(!store.instance_destroyed("never-made").await?);
    let live = store.live_instances().await?;
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].name, "drill-77aa");
    assert_eq!(live[0].purpose, "drill");
    Ok(())
}

/// A pull request's preview keeps its name: renewing it makes the same row live again with
/// a later `created_at` (its time to live restarts), destroyed or not; pull requests are
/// found by number across repositories.
pub async fn previews(url: &str) -> Outcome {
    let store = open(url).await?;
    let first = store.renew_instance(&instance("pr-12", "preview")).await?;
    assert_eq!(first.purpose, "preview");
    assert_eq!(first.destroyed_at, None);
    std::thread::sleep(std::time::Duration::from_millis(5));
    let again = store.renew_instance(&instance("pr-12", "preview")).await?;
    assert!(again.created_at > first.created_at, "the ttl restarts");
    assert_eq!(store.live_instances().await?.len(), 1, "one row, not two");
    assert!(store.instance_destroyed("pr-12").await?);
    assert!(store.live_instances().await?.is_empty());
    let reopened = store.renew_instance(&instance("pr-12", "preview")).await?;
    assert_eq!(reopened.destroyed_at, None, "live again once re-applied");
    assert_eq!(store.live_instances().await?.len(), 1);

    use slipway_store::{PullRequestKey, ServiceRecord as _};
    let key = |repository: &str, number| PullRequestKey {
        provider: "github".to_owned(),
        repository: repository.to_owned(),
        number,
    };
    store
        .save_pull_request_report(&key("acme/a", 12), "c1", "a")
        .await?;
    store
        .save_pull_request_report(&key("acme/b", 13), "c2", "b")
        .await?;
    let numbered = store.pull_requests_numbered(12).await?;
    assert_eq!(numbered.len(), 1);
    assert_eq!(numbered[0].repository, "acme/a");
    assert!(store.pull_requests_numbered(14).await?.is_empty());
    Ok(())
}

/// Drills go from running to one final status, keep their times and details, and list
/// newest first; drift checks likewise.
pub async fn drills_and_drift(url: &str) -> Outcome {
    let store = open(url).await?;
    let first = store.start_drill("prod", "drill-0001").await?;
    assert_eq!(first.status, DrillStatus::Running);
    let details = serde_json::json!({"stacks": {"network": {"ms": 1200}}});
    let done = store
        .finish_drill(first.id, DrillStatus::Succeeded, 4321, &details)
        .await?;
    assert_eq!(done.status, DrillStatus::Succeeded);
    assert_eq!(done.total_ms, Some(4321));
    assert_eq!(done.details, details);
    assert!(done.finished_at.is_some());
    assert!(
        store
            .finish_drill(first.id, DrillStatus::Failed, 1, &details)
            .await
            .is_err(),
        "a finished drill cannot finish again"
    );
    let second = store.start_drill("dev", "drill-0002").await?;
    let all = store.drills(None, 10).await?;
    assert_eq!(
        all.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![second.id, first.id]
    );
    let prod = store.drills(Some("prod"), 10).await?;
    assert_eq!(prod.len(), 1);
    assert_eq!(prod[0].instance, "drill-0001");

    let clean = store
        .record_drift("prod", 0, &serde_json::json!({"stacks": []}))
        .await?;
    let drifted = store
        .record_drift("prod", 2, &serde_json::json!({"stacks": ["queue"]}))
        .await?;
    store.record_drift("dev", 1, &serde_json::json!({})).await?;
    let checks = store.drift_checks(Some("prod"), 10).await?;
    assert_eq!(
        checks.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![drifted.id, clean.id]
    );
    assert_eq!(checks[0].drifted, 2);
    assert_eq!(store.drift_checks(None, 10).await?.len(), 3);
    Ok(())
}
