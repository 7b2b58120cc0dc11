//! The story of the web pages' users and sessions, told against every backend.

use slipway_store::{NewUser, Role, UnixMillis, UserRecord as _, open};

use crate::story::Outcome;

fn new_user(name: &str, role: Role) -> NewUser {
    NewUser {
        name: name.to_owned(),
        role,
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$salt-of-{name}$hash"),
        created_by: "ada".to_owned(),
    }
}

/// A name is taken once; only the hash is kept and never serialised; a session opens until
/// it ends, is ended by logging out, and by removing its user; ended sessions are forgotten.
pub async fn users_and_sessions(url: &str) -> Outcome {
    let store = open(url).await?;
    assert!(store.users().await?.is_empty());
    let bob = store
        .create_user(&new_user("bob", Role::Approver))
        .await?
        .ok_or("bob is kept")?;
    assert_eq!((bob.name.as_str(), bob.role), ("bob", Role::Approver));
    assert!(
        store
            .create_user(&new_user("bob", Role::Admin))
            .await?
            .is_none(),
        "a name is taken once"
    );
    let vic = store
        .create_user(&new_user("vic", Role::Viewer))
        .await?
        .ok_or("vic is kept")?;
    let found = store.user("bob").await?.ok_or("bob is found")?;
    assert_eq!(found, bob);
    assert_eq!(found.role, Role::Approver, "the first role stays");
    assert!(found.password_hash.starts_with("$argon2id$"));
    let shown = serde_json::to_string(&found)? + &format!("{found:?}");
    assert!(
        shown.contains("bob") && !shown.contains("argon2"),
        "the hash is never serialised nor shown: {shown}"
    );
    assert_eq!(store.user("nobody").await?, None);
    let names: Vec<String> = store.users().await?.into_iter().map(|u| u.name).collect();
    assert_eq!(names, ["bob", "vic"]);

    let now = UnixMillis::now();
    let hour = 3_600_000;
    store
        .create_session(&"11".repeat(32), bob.id, UnixMillis(now.0 + hour))
        .await?;
    store
        .create_session(&"22".repeat(32), vic.id, UnixMillis(now.0 + hour))
        .await?;
    let session = store
        .session(&"11".repeat(32), now)
        .await?
        .ok_or("bob's session opens")?;
    assert_eq!(session.user.name, "bob");
    assert_eq!(session.expires_at, UnixMillis(now.0 + hour));
    assert_eq!(store.session(&"33".repeat(32), now).await?, None);
    assert_eq!(
        store
            .session(&"11".repeat(32), UnixMillis(now.0 + hour))
            .await?,
        None,
        "a session ends at its expiry"
    );

    // Logging out ends the session, once.
    assert!(store.end_session(&"11".repeat(32)).await?);
    assert!(!store.end_session(&"11".repeat(32)).await?);
    assert_eq!(store.session(&"11".repeat(32), now).await?, None);

    // An ended session is forgotten when the next one is made.
    store
        .create_session(&"44".repeat(32), bob.id, UnixMillis(now.0 - 1))
        .await?;
    store
        .create_session(&"55".repeat(32), bob.id, UnixMillis(now.0 + hour))
        .await?;
    assert!(
        !store.end_session(&"44".repeat(32)).await?,
        "the ended session was forgotten"
    );

    // Removing a user ends their sessions and no one else's.
    assert!(store.remove_user("bob").await?);
    assert!(!store.remove_user("bob").await?, "removed once");
    assert_eq!(store.session(&"55".repeat(32), now).await?, None);
    assert_eq!(
        store
            .session(&"22".repeat(32), now)
            .await?
            .map(|s| s.user.name),
        Some("vic".to_owned())
    );
    // The name can be taken again.
    let again = store
        .create_user(&new_user("bob", Role::Viewer))
        .await?
        .ok_or("bob again")?;
    assert_ne!(again.id, bob.id);
    Ok(())
}
