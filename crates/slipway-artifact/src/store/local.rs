//! The local artifact store: a folder, `<root>/sha256/ab/cdef….tar.zst`. Writes go to a
//! temporary file in the same folder and are moved into place without replacing anything,
//! so a reader never sees half an artifact and two writers cannot overwrite each other.

use std::io::Write;
use std::path::PathBuf;

use super::{ArtifactStore, PutOutcome, object_key};
use crate::error::{ArtifactError, Result};
use crate::id::ArtifactId;

/// Artifacts in a local folder (by default `<data dir>/artifacts`).
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store rooted at `root`; the folder is created on first write.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Where artifact `id` lives on disk.
    pub fn path_of(&self, id: &ArtifactId) -> PathBuf {
        self.root.join(object_key(id))
    }

    fn put_blocking(&self, id: &ArtifactId, bytes: &[u8]) -> Result<PutOutcome> {
        id.verify(bytes)?;
        let path = self.path_of(id);
        let io_err = |path: &PathBuf| {
            let path = path.clone();
            move |source| ArtifactError::StoreIo { path, source }
        };
        if path.exists() {
            return self.compare_existing(id, bytes);
        }
        let dir = path
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| self.root.clone());
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut temp = tempfile::NamedTempFile::new_in(&dir).map_err(io_err(&dir))?;
        temp.write_all(bytes).map_err(io_err(&dir))?;
        temp.as_file().sync_all().map_err(io_err(&dir))?;
        match temp.persist_noclobber(&path) {
            Ok(_) => Ok(PutOutcome::Stored),
            // Another writer got there first: fine if it wrote the same bytes.
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                self.compare_existing(id, bytes)
            }
            Err(e) => Err(ArtifactError::StoreIo {
                path,
                source: e.error,
            }),
        }
    }

    fn compare_existing(&self, id: &ArtifactId, bytes: &[u8]) -> Result<PutOutcome> {
        let path = self.path_of(id);
        let existing = std::fs::read(&path).map_err(|source| ArtifactError::StoreIo {
            path: path.clone(),
            source,
        })?;
        if existing == bytes {
            Ok(PutOutcome::AlreadyPresent)
        } else {
            Err(ArtifactError::Conflict {
                id: id.clone(),
                store: self.location(),
            })
        }
    }

    fn get_blocking(&self, id: &ArtifactId) -> Result<Vec<u8>> {
        let path = self.path_of(id);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ArtifactError::NotFound {
                    id: id.clone(),
                    store: self.location(),
                });
            }
            Err(source) => return Err(ArtifactError::StoreIo { path, source }),
        };
        id.verify(&bytes)?;
        Ok(bytes)
    }
}

impl LocalStore {
    /// See [`super::Store::put_file`]: written to a temporary file, then moved into place.
    pub(crate) async fn put_file(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let (path, bytes) = (self.root.join(key), bytes.to_vec());
        blocking(move || {
            let io_err = |source| ArtifactError::StoreIo {
                path: path.clone(),
                source,
            };
            let dir = path.parent().map(PathBuf::from).unwrap_or_default();
            std::fs::create_dir_all(&dir).map_err(io_err)?;
            let mut temp = tempfile::NamedTempFile::new_in(&dir).map_err(io_err)?;
            temp.write_all(&bytes).map_err(io_err)?;
            temp.as_file().sync_all().map_err(io_err)?;
            temp.persist(&path).map_err(|e| io_err(e.error))?;
            Ok(())
        })
        .await
    }

    /// See [`super::Store::get_file`].
    pub(crate) async fn get_file(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let path = self.root.join(key);
        blocking(move || match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ArtifactError::StoreIo { path, source }),
        })
        .await
    }
}

impl ArtifactStore for LocalStore {
    async fn put(&self, id: &ArtifactId, bytes: &[u8]) -> Result<PutOutcome> {
        let (store, id, bytes) = (self.clone(), id.clone(), bytes.to_vec());
        blocking(move || store.put_blocking(&id, &bytes)).await
    }

    async fn get(&self, id: &ArtifactId) -> Result<Vec<u8>> {
        let (store, id) = (self.clone(), id.clone());
        blocking(move || store.get_blocking(&id)).await
    }

    async fn exists(&self, id: &ArtifactId) -> Result<bool> {
        let path = self.path_of(id);
        blocking(move || {
            path.try_exists()
                .map_err(|source| ArtifactError::StoreIo { path, source })
        })
        .await
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ArtifactError::StoreIo {
            path: PathBuf::new(),
            source: std::io::Error::other(e.to_string()),
        })?
}
