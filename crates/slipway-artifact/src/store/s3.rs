//! The S3 artifact store, through `object_store`. Write-once relies on conditional puts
//! (`If-None-Match: *`, [`PutMode::Create`]); when the object already exists its bytes are
//! compared, so a retried upload of the same artifact succeeds and a different one fails.

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::{ArtifactStore, PutOutcome, object_key};
use crate::error::{ArtifactError, Result};
use crate::id::ArtifactId;

/// Settings for S3 beyond the bucket and prefix in the URL. Anything left `None` comes
/// from the standard `AWS_*` environment variables (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, ...).
#[derive(Clone, Default)]
pub struct S3Options {
    /// A non-AWS endpoint such as `http://127.0.0.1:PORT`; requests are then path-style.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Allow plain `http://` endpoints (the local sandbox).
    pub allow_http: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("allow_http", &self.allow_http)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Artifacts in an S3 bucket, below an optional prefix.
#[derive(Debug)]
pub struct S3Store {
    client: AmazonS3,
    bucket: String,
    prefix: String,
}

impl S3Store {
    /// A store in `bucket` below `prefix` (may be empty).
    pub fn new(bucket: &str, prefix: &str, options: &S3Options) -> Result<Self> {
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(endpoint) = &options.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        if let Some(region) = &options.region {
            builder = builder.with_region(region);
        }
        if options.allow_http {
            builder = builder.with_allow_http(true);
        }
        if let Some(key) = &options.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &options.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let location = describe(bucket, prefix);
        let client = builder
            .build()
            .map_err(|source| ArtifactError::ObjectStore {
                store: location,
                source,
            })?;
        Ok(Self {
            client,
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }

    fn key(&self, id: &ArtifactId) -> ObjectPath {
        let key = object_key(id);
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    fn error(&self, source: object_store::Error) -> ArtifactError {
        ArtifactError::ObjectStore {
            store: self.location(),
            source,
        }
    }

    fn file_path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    /// See [`super::Store::put_file`].
    pub(crate) async fn put_file(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.client
            .put(&self.file_path(key), PutPayload::from(bytes.to_vec()))
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// See [`super::Store::get_file`].
    pub(crate) async fn get_file(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self.client.get(&self.file_path(key)).await {
            Ok(result) => Ok(Some(
                result.bytes().await.map_err(|e| self.error(e))?.to_vec(),
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    async fn read(&self, id: &ArtifactId) -> Result<Vec<u8>> {
        let result = match self.client.get(&self.key(id)).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(ArtifactError::NotFound {
                    id: id.clone(),
                    store: self.location(),
                });
            }
            Err(e) => return Err(self.error(e)),
        };
        let bytes = result.bytes().await.map_err(|e| self.error(e))?;
        Ok(bytes.to_vec())
    }
}

impl ArtifactStore for S3Store {
    async fn put(&self, id: &ArtifactId, bytes: &[u8]) -> Result<PutOutcome> {
        id.verify(bytes)?;
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let payload = PutPayload::from(bytes.to_vec());
        match self.client.put_opts(&self.key(id), payload, options).await {
            Ok(_) => Ok(PutOutcome::Stored),
            Err(object_store::Error::AlreadyExists { .. }) => {
                if self.read(id).await? == bytes {
                    Ok(PutOutcome::AlreadyPresent)
                } else {
                    Err(ArtifactError::Conflict {
                        id: id.clone(),
                        store: self.location(),
                    })
                }
            }
            Err(e) => Err(self.error(e)),
        }
    }

    async fn get(&self, id: &ArtifactId) -> Result<Vec<u8>> {
        let bytes = self.read(id).await?;
        id.verify(&bytes)?;
        Ok(bytes)
    }

    async fn exists(&self, id: &ArtifactId) -> Result<bool> {
        match self.client.head(&self.key(id)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.error(e)),
        }
    }

    fn location(&self) -> String {
        describe(&self.bucket, &self.prefix)
    }
}

fn describe(bucket: &str, prefix: &str) -> String {
    if prefix.is_empty() {
        format!("s3://{bucket}")
    } else {
        format!("s3://{bucket}/{prefix}")
    }
}
