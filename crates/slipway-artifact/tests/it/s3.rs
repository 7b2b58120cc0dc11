//! The S3 store against the sandbox's S3 (moto on loopback): the same contract as the
//! local store, plus the layout below the prefix.

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use slipway_artifact::{ArtifactId, ArtifactStore, PutOutcome, S3Options, Store, open_store};
use slipway_sandbox::{Moto, Sandbox};

use crate::store::contract;

const BUCKET: &str = "slipway-artifacts";

async fn moto() -> Moto {
    tokio::task::spawn_blocking(|| Sandbox::from_env().and_then(|s| s.start_moto()))
        .await
        .expect("sandbox task")
        .expect("the sandbox's moto starts")
}

/// object_store cannot create buckets; S3's CreateBucket is a plain PUT on the bucket.
fn create_bucket(endpoint: &str) {
    ureq::put(&format!("{endpoint}/{BUCKET}"))
        .call()
        .expect("bucket created");
}

fn options(endpoint: &str) -> S3Options {
    S3Options {
        endpoint: Some(endpoint.to_owned()),
        region: Some("us-east-1".to_owned()),
        allow_http: true,
        access_key_id: Some("test".to_owned()),
        secret_access_key: Some("test".to_owned()),
    }
}

/// A client of the same bucket that bypasses the artifact store.
fn raw_client(endpoint: &str) -> AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name(BUCKET)
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .expect("raw client")
}

fn key(id: &ArtifactId) -> String {
    let hex = id.hex();
    format!("slipway/sha256/{}/{}.tar.zst", &hex[..2], &hex[2..])
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_store_keeps_the_contract() {
    let moto = moto().await;
    let endpoint = moto.endpoint();
    create_bucket(&endpoint);
    let store = open_store(&format!("s3://{BUCKET}/slipway"), &options(&endpoint)).expect("opens");
    assert!(matches!(store, Store::S3(_)));
    assert_eq!(store.location(), format!("s3://{BUCKET}/slipway"));

    let raw = raw_client(&endpoint);
    contract(&store, async |id: &ArtifactId, bytes: &[u8]| {
        // Behind the store's back, as someone with write access to the bucket could.
        raw.put(&ObjectPath::from(key(id)), PutPayload::from(bytes.to_vec()))
            .await
            .expect("tampered object written");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_store_writes_below_the_prefix() {
    let moto = moto().await;
    let endpoint = moto.endpoint();
    create_bucket(&endpoint);
    let store = open_store(&format!("s3://{BUCKET}/slipway/"), &options(&endpoint)).expect("opens");
    let bytes = b"a bundle".to_vec();
    let id = ArtifactId::of(&bytes);
    assert_eq!(
        store.put(&id, &bytes).await.expect("put"),
        PutOutcome::Stored
    );
    let stored = raw_client(&endpoint)
        .get(&ObjectPath::from(key(&id)))
        .await
        .expect("object below the prefix")
        .bytes()
        .await
        .expect("body");
    assert_eq!(stored.as_ref(), bytes.as_slice());
}
