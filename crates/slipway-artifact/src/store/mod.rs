//! Artifact stores: where built bundles are kept, by id, write-once.
//!
//! The trait is async because the S3 backend (`object_store`) is; the local backend runs
//! its file operations on tokio's blocking pool. Callers therefore need a tokio runtime.
//! The backend is chosen once, from a URL, by [`open_store`].

mod local;
mod s3;

use std::future::Future;

pub use local::LocalStore;
pub use s3::{S3Options, S3Store};

use crate::error::{ArtifactError, Result};
use crate::id::ArtifactId;

/// What [`ArtifactStore::put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The artifact was written.
    Stored,
    /// The store already held these exact bytes under this id; nothing was written.
    AlreadyPresent,
}

/// A place that keeps artifacts by id.
///
/// Rules every backend follows (and `tests/it/store.rs` checks for each):
/// - `put` refuses bytes that do not hash to `id` ([`ArtifactError::Tampered`]);
/// - `put` of an id already held is a no-op for the same bytes and
///   [`ArtifactError::Conflict`] for different ones: artifacts are write-once;
/// - `get` verifies the hash of what it read ([`ArtifactError::Tampered`] on mismatch)
///   and fails with [`ArtifactError::NotFound`] for an unknown id.
pub trait ArtifactStore: Send + Sync {
    /// Stores `bytes` under `id`, once.
    fn put(&self, id: &ArtifactId, bytes: &[u8])
    -> impl Future<Output = Result<PutOutcome>> + Send;
    /// Reads and verifies the artifact `id`.
    fn get(&self, id: &ArtifactId) -> impl Future<Output = Result<Vec<u8>>> + Send;
    /// True when the store holds `id` (without reading or verifying it).
    fn exists(&self, id: &ArtifactId) -> impl Future<Output = Result<bool>> + Send;
    /// Where the store is, for messages (no credentials).
    fn location(&self) -> String;
}

/// The store the project is configured with: one of the backends.
#[derive(Debug)]
pub enum Store {
    Local(LocalStore),
    S3(S3Store),
}

/// Opens the store named by `url`:
/// - `s3://bucket` or `s3://bucket/prefix`: an S3 bucket (see [`S3Options`]);
/// - `file:///abs/path` or a plain path: a local folder.
pub fn open_store(url: &str, s3: &S3Options) -> Result<Store> {
    let invalid = |reason: &str| ArtifactError::InvalidStoreUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid("the bucket name is missing"));
        }
        return S3Store::new(bucket, prefix.trim_matches('/'), s3).map(Store::S3);
    }
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(invalid("a file:// URL needs an absolute path"));
        }
        return Ok(Store::Local(LocalStore::new(path)));
    }
    if url.contains("://") {
        return Err(invalid(
            "only s3:// and file:// URLs (or a plain path) are supported",
        ));
    }
    if url.is_empty() {
        return Err(invalid("it is empty"));
    }
    Ok(Store::Local(LocalStore::new(url)))
}

impl ArtifactStore for Store {
    async fn put(&self, id: &ArtifactId, bytes: &[u8]) -> Result<PutOutcome> {
        match self {
            Store::Local(s) => s.put(id, bytes).await,
            Store::S3(s) => s.put(id, bytes).await,
        }
    }

    async fn get(&self, id: &ArtifactId) -> Result<Vec<u8>> {
        match self {
            Store::Local(s) => s.get(id).await,
            Store::S3(s) => s.get(id).await,
        }
    }

    async fn exists(&self, id: &ArtifactId) -> Result<bool> {
        match self {
            Store::Local(s) => s.exists(id).await,
            Store::S3(s) => s.exists(id).await,
        }
    }

    fn location(&self) -> String {
        match self {
            Store::Local(s) => s.location(),
            Store::S3(s) => s.location(),
        }
    }
}

impl Store {
    /// Keeps `bytes` under `key` (a relative path such as `plans/run-7/prod/app.tfplan`),
    /// beside the artifacts, replacing what was there. For files a later process on another
    /// machine must find by name, such as plans saved for approval; unlike artifacts they
    /// are not content-addressed, so the caller checks their hash.
    pub async fn put_file(&self, key: &str, bytes: &[u8]) -> Result<()> {
        check_file_key(key)?;
        match self {
            Store::Local(s) => s.put_file(key, bytes).await,
            Store::S3(s) => s.put_file(key, bytes).await,
        }
    }

    /// The bytes kept under `key` by [`Store::put_file`], or `None` when there are none.
    pub async fn get_file(&self, key: &str) -> Result<Option<Vec<u8>>> {
        check_file_key(key)?;
        match self {
            Store::Local(s) => s.get_file(key).await,
            Store::S3(s) => s.get_file(key).await,
        }
    }
}

/// A file key is a relative path of plain names: no `..`, no empty or absolute parts.
fn check_file_key(key: &str) -> Result<()> {
    if key.is_empty()
        || key
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == ".." || part.contains('\\'))
    {
        return Err(ArtifactError::InvalidStoreUrl {
            url: key.to_owned(),
            reason: "a file key is a relative path of plain names".to_owned(),
        });
    }
    Ok(())
}

/// The object's path below the store's root: `sha256/ab/cdef….tar.zst`.
pub(crate) fn object_key(id: &ArtifactId) -> String {
    let hex = id.hex();
    format!("sha256/{}/{}.tar.zst", &hex[..2], &hex[2..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chooses_the_backend_from_the_url() {
        let s3 = S3Options::default();
        assert!(matches!(
            open_store("s3://bucket/pre/fix", &s3),
            Ok(Store::S3(_))
        ));
        assert!(matches!(
            open_store("file:///data/artifacts", &s3),
            Ok(Store::Local(_))
        ));
        assert!(matches!(
            open_store("data/artifacts", &s3),
            Ok(Store::Local(_))
        ));
        assert!(open_store("s3://", &s3).is_err());
        assert!(open_store("gs://bucket", &s3).is_err());
        assert!(open_store("file://relative", &s3).is_err());
    }

    #[test]
    fn keys_fan_out_by_the_first_two_hex_digits() {
        let id = ArtifactId::of(b"x");
        let key = object_key(&id);
        assert!(key.starts_with(&format!("sha256/{}/", &id.hex()[..2])));
        assert!(key.ends_with(&format!("{}.tar.zst", &id.hex()[2..])));
    }

    #[test]
    fn file_keys_stay_below_the_root() {
        assert!(check_file_key("plans/run-1/prod/app.tfplan").is_ok());
        for bad in ["", "/etc/passwd", "plans/../x", "plans//x", "./x"] {
            assert!(check_file_key(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn local_files_round_trip_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path().to_str().unwrap(), &S3Options::default()).unwrap();
        assert_eq!(store.get_file("plans/a.tfplan").await.unwrap(), None);
        store.put_file("plans/a.tfplan", b"one").await.unwrap();
        store.put_file("plans/a.tfplan", b"two").await.unwrap();
        assert_eq!(
            store.get_file("plans/a.tfplan").await.unwrap(),
            Some(b"two".to_vec())
        );
    }
}
