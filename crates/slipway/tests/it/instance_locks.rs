//! Manual applies and destroys take the same instance locks as pipeline runs, all or none and
//! up front; reading a dependency's outputs never touches a working copy another process may
//! be using.

use slipway_store::{LockOwner, RunStatus, Store as _};

use crate::common::{fixture, sandbox, slipway_ok_with, slipway_run, with_record};

#[test]
fn an_apply_is_refused_up_front_while_another_run_holds_an_instance_it_would_change() {
    let (_sandbox, moto) = sandbox();
    let project = fixture("chain");
    let dir = project.path();
    // Run 4242 (this test process, so a live holder) is applying `sibling` in dev.
    let holder = LockOwner::current(4242);
    let held = holder.clone();
    with_record(dir, |store| async move {
        store
            .acquire_instance_lock("sibling", "dev", &held)
            .await
            .unwrap();
    });

    let refused = slipway_run(
        dir,
        &moto.env(),
        &["apply", "--stage", "dev", "--stack", "sibling"],
    );
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains(
            "cannot apply `dev`: stack `sibling` in instance `dev` is locked by run 4242"
        ),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("help: wait for run 4242 to finish"),
        "{}",
        refused.stderr
    );
    // All or none: `base`, free to lock, was neither locked nor applied.
    assert!(
        !dir.join(".slipway/state/dev/base/terraform.tfstate")
            .exists()
    );
    let locks = with_record(
        dir,
        |store| async move { store.instance_locks().await.unwrap() },
    );
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert_eq!(locks[0].lock.owner.run_id, 4242);

    // Once the holder is done, the apply runs, is recorded as a run, and leaves no lock.
    let released = holder.clone();
    with_record(dir, |store| async move {
        store
            .release_instance_lock("sibling", "dev", &released)
            .await
            .unwrap();
    });
    slipway_ok_with(
        dir,
        &moto.env(),
        &["apply", "--stage", "dev", "--stack", "sibling"],
    );
    let (locks, runs) = with_record(dir, |store| async move {
        (
            store.instance_locks().await.unwrap(),
            store.recent_runs(10).await.unwrap(),
        )
    });
    assert!(locks.is_empty(), "{locks:?}");
    let applies: Vec<RunStatus> = runs
        .iter()
        .filter(|r| r.trigger == "apply")
        .map(|r| r.status)
        .collect();
    // Newest first: the apply that ran, then the one that was refused.
    assert_eq!(applies, [RunStatus::Succeeded, RunStatus::Failed]);
}

#[test]
fn reading_a_dependencys_outputs_leaves_its_working_copy_alone() {
    let (_sandbox, moto) = sandbox();
    let project = fixture("chain");
    let dir = project.path();
    slipway_ok_with(
        dir,
        &moto.env(),
        &["apply", "--stage", "dev", "--stack", "sibling"],
    );
    // A saved plan waiting in `base`'s working copy for its apply, as a deploy leaves it.
    let waiting = dir.join(".slipway/work/dev/base/tree/stacks/base/slipway.tfplan");
    assert!(waiting.parent().unwrap().is_dir(), "{}", waiting.display());
    std::fs::write(&waiting, b"the plan a deploy is about to apply").unwrap();

    let only = slipway_ok_with(
        dir,
        &moto.env(),
        &["apply", "--stage", "dev", "--stack", "sibling", "--only"],
    );
    assert!(
        only.stderr.contains("reading outputs of base"),
        "{}",
        only.stderr
    );
    assert_eq!(
        std::fs::read(&waiting).unwrap(),
        b"the plan a deploy is about to apply"
    );
}
