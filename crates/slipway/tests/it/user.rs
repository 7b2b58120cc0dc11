//! `slipway user`: the people who sign in to the web pages of `slipway serve`. Passwords come
//! from stdin or a terminal, never from an argument, and only their hash is kept.

use slipway_store::UserRecord as _;

use slipway_store::AuditAction;

use crate::common::{audit_log, fixture, run, slipway, with_record};

const PASSWORD: &str = "a long enough passphrase";

#[test]
fn users_are_added_with_a_hashed_password_listed_and_removed() {
    let project = fixture("chain");
    let dir = project.path();

    let mut add = slipway(dir, &[]);
    add.args([
        "user",
        "add",
        "ada",
        "--role",
        "approver",
        "--password-stdin",
    ])
    .write_stdin(format!("{PASSWORD}\n"));
    let added = run(add);
    assert_eq!(added.code, 0, "{}", added.stderr);
    assert!(
        added.stderr.contains("user ada (approver) added"),
        "{}",
        added.stderr
    );
    assert!(!added.stderr.contains(PASSWORD) && !added.stdout.contains(PASSWORD));

    let hash = with_record(dir, |store| async move {
        store.user("ada").await.unwrap().unwrap().password_hash
    });
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(slipway_server::web::verify_password(PASSWORD, &hash));
    assert!(!slipway_server::web::verify_password(
        "another password",
        &hash
    ));

    let mut again = slipway(dir, &[]);
    again
        .args(["user", "add", "ada", "--role", "admin", "--password-stdin"])
        .write_stdin(format!("{PASSWORD}\n"));
    let again = run(again);
    assert_eq!(again.code, 1);
    assert!(
        again.stderr.contains("there is a user ada already"),
        "{}",
        again.stderr
    );

    let mut short = slipway(dir, &[]);
    short
        .args(["user", "add", "bob", "--role", "viewer", "--password-stdin"])
        .write_stdin("short\n");
    let short = run(short);
    assert_eq!(short.code, 1);
    assert!(short.stderr.contains("shorter than 12"), "{}", short.stderr);

    // Without a terminal to ask on, and without --password-stdin, nothing is read.
    let mut no_terminal = slipway(dir, &[]);
    no_terminal
        .args(["user", "add", "bob", "--role", "viewer"])
        .write_stdin(format!("{PASSWORD}\n"));
    let no_terminal = run(no_terminal);
    assert_eq!(no_terminal.code, 1);
    assert!(
        no_terminal.stderr.contains("--password-stdin"),
        "{}",
        no_terminal.stderr
    );

    let mut list = slipway(dir, &[]);
    list.args(["user", "list"]);
    let listed = run(list);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(
        listed.stdout.contains("ada") && listed.stdout.contains("approver"),
        "{}",
        listed.stdout
    );
    assert!(!listed.stdout.contains("bob"), "{}", listed.stdout);
    assert!(!listed.stdout.contains("argon2"), "{}", listed.stdout);

    let mut remove = slipway(dir, &[]);
    remove.args(["user", "remove", "ada"]);
    let removed = run(remove);
    assert_eq!(removed.code, 0, "{}", removed.stderr);
    let mut remove = slipway(dir, &[]);
    remove.args(["user", "remove", "ada"]);
    let gone = run(remove);
    assert_eq!(gone.code, 1);
    assert!(
        gone.stderr.contains("there is no user ada"),
        "{}",
        gone.stderr
    );

    // Who gave and took away each sign-in is kept; refused attempts changed nothing.
    let kept: Vec<(AuditAction, String, serde_json::Value)> = audit_log(dir)
        .into_iter()
        .map(|entry| (entry.action, entry.actor, entry.details))
        .collect();
    let me = kept
        .first()
        .map(|(_, actor, _)| actor.clone())
        .unwrap_or_default();
    assert!(!me.is_empty(), "{kept:?}");
    assert_eq!(
        kept,
        [
            (
                AuditAction::UserAdd,
                me.clone(),
                serde_json::json!({ "user": "ada", "role": "approver" })
            ),
            (
                AuditAction::UserRemove,
                me,
                serde_json::json!({ "user": "ada" })
            ),
        ]
    );
}
