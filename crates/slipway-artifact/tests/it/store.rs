//! The store contract, run against every backend: write-once puts, verified gets.

use slipway_artifact::{
    ArtifactError, ArtifactId, ArtifactStore, LocalStore, PutOutcome, S3Options, Store, open_store,
};

/// The behaviour every store must show. `tamper` replaces the stored bytes of an id
/// behind the store's back.
pub async fn contract<S: ArtifactStore>(store: &S, tamper: impl AsyncFnOnce(&ArtifactId, &[u8])) {
    let bytes = b"bundle bytes".to_vec();
    let id = ArtifactId::of(&bytes);

    assert!(!store.exists(&id).await.expect("exists"));
    let missing = store.get(&id).await.expect_err("not stored yet");
    assert!(
        matches!(missing, ArtifactError::NotFound { .. }),
        "{missing}"
    );

    assert_eq!(
        store.put(&id, &bytes).await.expect("put"),
        PutOutcome::Stored
    );
    assert!(store.exists(&id).await.expect("exists"));
    assert_eq!(store.get(&id).await.expect("get"), bytes);
    assert_eq!(
        store.put(&id, &bytes).await.expect("same bytes again"),
        PutOutcome::AlreadyPresent
    );

    let wrong = store
        .put(&id, b"other bytes")
        .await
        .expect_err("bytes of another id");
    assert!(matches!(wrong, ArtifactError::Tampered { .. }), "{wrong}");

    tamper(&id, b"evil bytes").await;
    let tampered = store.get(&id).await.expect_err("tampered");
    assert!(
        matches!(&tampered, ArtifactError::Tampered { id: t, actual } if *t == id && *actual == ArtifactId::of(b"evil bytes")),
        "{tampered}"
    );
    let conflict = store.put(&id, &bytes).await.expect_err("write-once");
    assert!(
        matches!(conflict, ArtifactError::Conflict { .. }),
        "{conflict}"
    );
}

#[tokio::test]
async fn local_store_keeps_the_contract() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = LocalStore::new(dir.path().join("artifacts"));
    let files = store.clone();
    contract(&store, async |id: &ArtifactId, bytes: &[u8]| {
        std::fs::write(files.path_of(id), bytes).expect("tamper");
    })
    .await;
}

#[tokio::test]
async fn local_store_lays_artifacts_out_by_hash() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("file://{}", dir.path().display());
    let store = open_store(&url, &S3Options::default()).expect("opens");
    let bytes = b"layout".to_vec();
    let id = ArtifactId::of(&bytes);
    store.put(&id, &bytes).await.expect("put");
    let hex = id.hex();
    let expected = dir
        .path()
        .join("sha256")
        .join(&hex[..2])
        .join(format!("{}.tar.zst", &hex[2..]));
    assert_eq!(std::fs::read(expected).expect("stored at its path"), bytes);
    assert!(matches!(store, Store::Local(_)));
    // No temporary file is left beside it.
    let siblings = std::fs::read_dir(dir.path().join("sha256").join(&hex[..2]))
        .expect("dir")
        .count();
    assert_eq!(siblings, 1);
}

#[test]
fn store_urls_are_checked() {
    let err = open_store("gs://bucket", &S3Options::default()).expect_err("unsupported");
    insta::assert_snapshot!(err.to_string(), @"cannot use `gs://bucket` as an artifact store: only s3:// and file:// URLs (or a plain path) are supported");
}
