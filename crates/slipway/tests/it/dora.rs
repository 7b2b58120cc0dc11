//! `slipway dora` on a record written through the store and a repository whose commits were
//! made at known times: the figures are the ones worked out by hand. (The definitions'
//! corner cases are unit-tested in slipway-core's `dora` module on a scripted week.)

use std::path::Path;

use slipway_store::{
    Artifact, AuditAction, NewAuditEntry, NewRelease, NewRun, StageRunStatus, Store as _,
    UnixMillis,
};

use crate::common::{fixture, slipway_run, with_record};

const HOUR: i64 = 3600;

/// Commits the project as it is, made `hours_ago` hours ago; returns the commit.
fn commit_made(dir: &Path, message: &str, hours_ago: i64) -> String {
    let when = format!("{} +0000", UnixMillis::now().0 / 1000 - hours_ago * HOUR);
    let git = |args: &[&str]| {
        let output = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_DATE", &when)
            .env("GIT_COMMITTER_DATE", &when)
            .output()
            .unwrap();
        assert!(output.status.success(), "git {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    git(&["add", "-A"]);
    git(&["commit", "-q", "--allow-empty", "-m", message]);
    git(&["rev-parse", "HEAD"]).trim().to_owned()
}

/// A run of `commit` whose `stage` run ends as `status`, releasing both stacks when it
/// succeeds.
async fn delivery(
    store: &slipway_store::AnyStore,
    commit: &str,
    stage: &str,
    status: StageRunStatus,
) {
    let run = store
        .create_run(&NewRun {
            commit: commit.to_owned(),
            trigger: "push".to_owned(),
            actor: "dana".to_owned(),
        })
        .await
        .unwrap();
    let stage_run = store.start_stage_run(run.id, stage).await.unwrap();
    if status == StageRunStatus::Succeeded {
        for stack in ["base", "app"] {
            let id = format!("{stack}-{commit}");
            store
                .record_artifact(&Artifact {
                    id: id.clone(),
                    stack: stack.to_owned(),
                    commit: commit.to_owned(),
                    created_at: UnixMillis::now(),
                    size: 1,
                    manifest: "{}".to_owned(),
                })
                .await
                .unwrap();
            store
                .record_release(&NewRelease {
                    stage: stage.to_owned(),
                    stack: stack.to_owned(),
                    artifact_id: id,
                    commit: commit.to_owned(),
                    released_by: "dana".to_owned(),
                    run_id: Some(run.id),
                    fence: None,
                })
                .await
                .unwrap();
        }
    }
    store
        .set_stage_run_status(stage_run.id, status)
        .await
        .unwrap();
}

#[test]
fn dora_figures_on_a_known_history_are_the_hand_computed_ones() {
    let project = fixture("crash");
    let dir = project.path();
    let git = |args: &[&str]| {
        assert!(
            std::process::Command::new("git")
                .args(args)
                .current_dir(dir)
                .status()
                .unwrap()
                .success()
        );
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(dir.join(".gitignore"), ".slipway/\n").unwrap();
    // Made 30 and 6 hours ago.
    let first = commit_made(dir, "first", 30);
    let second = commit_made(dir, "second", 6);

    // prod: the first commit delivered, then a failed run, then a rollback (a restoration
    // that counts against the delivery); then the second commit delivered.
    // dev: the second commit delivered once.
    with_record(dir, |store| async move {
        delivery(&store, &first, "prod", StageRunStatus::Succeeded).await;
        delivery(&store, &second, "prod", StageRunStatus::Failed).await;
        store
            .append_audit(&NewAuditEntry {
                actor: "grace".to_owned(),
                action: AuditAction::Rollback,
                stage: Some("prod".to_owned()),
                stack: Some("app".to_owned()),
                run_id: None,
                details: serde_json::json!({}),
            })
            .await
            .unwrap();
        delivery(&store, &second, "prod", StageRunStatus::Succeeded).await;
        delivery(&store, &second, "dev", StageRunStatus::Succeeded).await;
    });

    let out = slipway_run(dir, &[], &["dora", "--json", "--since", "7d"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let stage = |name: &str| {
        report["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stage"] == name)
            .unwrap_or_else(|| panic!("no {name}: {report}"))
            .clone()
    };
    let prod = stage("prod");
    assert_eq!(prod["deployments"], 2, "{prod}");
    // Two deployments over seven days.
    let per_day = prod["deployments_per_day"].as_f64().unwrap();
    assert!((per_day - 2.0 / 7.0).abs() < 1e-3, "{prod}");
    // Lead times: 30 h (first) and 6 h (second), within the seconds this test takes.
    let lead = &prod["lead_time"];
    assert_eq!(lead["count"], 2, "{prod}");
    let within = |ms: &serde_json::Value, hours: i64| {
        let ms = ms.as_i64().unwrap();
        (hours * HOUR * 1000..hours * HOUR * 1000 + 120_000).contains(&ms)
    };
    assert!(within(&lead["max_ms"], 30), "{prod}");
    assert!(
        within(&lead["median_ms"], 18),
        "the median of 30 h and 6 h: {prod}"
    );
    // The first delivery was followed by a failure and a rollback: one of two failed.
    assert_eq!(prod["failed_deployments"], 1, "{prod}");
    assert_eq!(prod["change_failure_rate"], 0.5, "{prod}");
    // The failure was restored by the next delivery.
    assert_eq!(prod["time_to_restore"]["count"], 1, "{prod}");
    assert_eq!(prod["open_incidents"], 0, "{prod}");

    let dev = stage("dev");
    assert_eq!(dev["deployments"], 1, "{dev}");
    assert!(within(&dev["lead_time"]["median_ms"], 6), "{dev}");
    assert_eq!(dev["change_failure_rate"], 0.0, "{dev}");
    assert_eq!(dev["time_to_restore"], serde_json::Value::Null, "{dev}");

    // The table says the same, per stage.
    let table = slipway_run(dir, &[], &["dora", "--stage", "prod"]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    let row = table
        .stdout
        .lines()
        .find(|l| l.starts_with("prod"))
        .unwrap_or_else(|| panic!("{}", table.stdout));
    assert!(row.contains("50% (1/2)"), "{row}");
    assert!(!table.stdout.contains("dev"), "{}", table.stdout);

    // A stage that does not exist is named, with the ones that do.
    let unknown = slipway_run(dir, &[], &["dora", "--stage", "staging"]);
    assert_eq!(unknown.code, 1, "{}", unknown.stderr);
    assert!(unknown.stderr.contains("staging"), "{}", unknown.stderr);
}
