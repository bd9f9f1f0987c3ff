//! The artifact store behind MLflow's artifact proxy (`/api/2.0/mlflow-artifacts/...`).
//!
//! `ArtifactStore` maps checked `ArtifactPath`s onto an `object_store` backend: S3 (or MinIO)
//! or a local directory, chosen from MLflow's `--artifacts-destination` text. Uploads are
//! streamed and hashed on the way through, and never become visible half-written. Multipart
//! uploads keep their state in the store itself (see `multipart`), so any server replica can
//! finish an upload another one started. HTTP concerns (routes, status codes, content types)
//! live with the handlers, not here.

mod multipart;
mod path;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, BoxStream, Stream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

pub use path::ArtifactPath;
use path::MULTIPART_PREFIX;

/// Uploads up to this size are sent as one PUT; larger ones become multipart uploads with
/// parts of this size (S3 wants at least 5 MiB per part).
const UPLOAD_PART_BYTES: usize = 10 * 1024 * 1024;

/// Parts in flight per upload; with `UPLOAD_PART_BYTES` this bounds an upload's memory.
const UPLOAD_PARTS_IN_FLIGHT: usize = 4;

/// Files hashed at once by `digest_tree`.
const DIGEST_FILES_IN_FLIGHT: usize = 4;

/// What can go wrong; every variant except `Storage` is the caller's fault (a 4xx).
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("invalid artifact path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("no such artifact: {path:?}")]
    NotFound { path: String },
    #[error("artifact {path:?} is larger than the limit of {limit} bytes")]
    TooLarge { path: String, limit: u64 },
    #[error("invalid multipart upload {upload_id:?} for {path:?}: {reason}")]
    InvalidUpload {
        path: String,
        upload_id: String,
        reason: String,
    },
    #[error("the upload body for {path:?} could not be read: {source}")]
    BodyRead {
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("invalid artifact destination: {0}")]
    Config(String),
    /// The message carries the backend's own, for logs; callers hide it from clients.
    #[error("artifact storage failed: {0}")]
    Storage(#[from] object_store::Error),
}

/// Size and SHA-256 of a stored file, computed while its bytes streamed past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
}

/// One line of a directory listing, in MLflow's `FileInfo` shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactEntry {
    /// Relative to the listed directory: a single segment.
    pub path: String,
    pub is_dir: bool,
    /// `None` for directories, as MLflow omits `file_size` for them.
    pub file_size: Option<u64>,
}

/// A file being downloaded: its size, known up front, and its bytes as they arrive.
pub struct ArtifactDownload {
    pub size: u64,
    pub stream: BoxStream<'static, Result<Bytes, ArtifactError>>,
}

impl fmt::Debug for ArtifactDownload {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ArtifactDownload")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Artifact storage for the proxy. Cheap to clone; every clone shares the backend, and all
/// methods may be called concurrently from any task.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    object_store: Arc<dyn ObjectStore>,
    /// Prepended to every key; empty for a local directory or a bare bucket.
    root_prefix: ObjectPath,
    /// The destination as a URI, for logs.
    destination: String,
    /// The canonical root directory when the backend is the local filesystem, so that
    /// directories left empty by an aborted upload can be removed.
    local_root: Option<PathBuf>,
}

impl ArtifactStore {
    /// Opens MLflow's `--artifacts-destination`: `s3://bucket[/prefix]`, `file:///abs/dir`,
    /// or a plain path (relative or absolute), created if missing.
    ///
    /// S3 settings come only from `env`, named as MinIO users set them for MLflow:
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
    /// `AWS_DEFAULT_REGION` or `AWS_REGION` (default `us-east-1`), `MLFLOW_S3_ENDPOINT_URL` or
    /// `AWS_ENDPOINT_URL` (plain http is allowed when the endpoint says `http://`), and
    /// `MLFLOW_S3_IGNORE_TLS`. Called once at startup; it does blocking filesystem calls.
    pub fn from_destination(
        destination: &str,
        env: &HashMap<String, String>,
    ) -> Result<ArtifactStore, ArtifactError> {
        let destination = destination.trim();
        if destination.is_empty() {
            return Err(ArtifactError::Config(
                "the artifact destination is empty".to_owned(),
            ));
        }
        if let Some(bucket_and_prefix) = strip_prefix_ignore_case(destination, "s3://") {
            return open_s3(bucket_and_prefix, env);
        }
        if strip_prefix_ignore_case(destination, "file:").is_some() {
            let url = url::Url::parse(destination).map_err(|error| {
                ArtifactError::Config(format!("cannot parse {destination:?}: {error}"))
            })?;
            let directory = url.to_file_path().map_err(|()| {
                ArtifactError::Config(format!("{destination:?} is not an absolute local file URI"))
            })?;
            return open_local(directory);
        }
        if destination.contains("://") {
            return Err(ArtifactError::Config(format!(
                "{destination:?} uses an unsupported scheme; use s3://, file:// or a local path"
            )));
        }
        open_local(PathBuf::from(destination))
    }

    /// The destination as a URI (`s3://bucket/prefix` or `file:///abs/dir`), for logs.
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// Streams `body` into the file at `path`, replacing any previous file there.
    ///
    /// Nothing is visible at `path` until the whole body has arrived: on `TooLarge`, on a
    /// body error, on a storage error, or when this future is dropped, the upload is aborted.
    pub async fn put<E>(
        &self,
        path: &ArtifactPath,
        body: impl Stream<Item = Result<Bytes, E>> + Send,
        max_bytes: u64,
    ) -> Result<FileDigest, ArtifactError>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let location = self.file_location(path)?;
        self.write_stream(location, path.as_str(), body, max_bytes)
            .await
    }

    /// Opens the file at `path` for streaming; `NotFound` when there is no file there.
    pub async fn get(&self, path: &ArtifactPath) -> Result<ArtifactDownload, ArtifactError> {
        let location = self.file_location(path)?;
        let found = self
            .object_store
            .get(&location)
            .await
            .map_err(|error| storage_error(error, path.as_str()))?;
        let size = found.meta.size;
        let display_path = path.as_str().to_owned();
        let stream = found
            .into_stream()
            .map_err(move |error| storage_error(error, &display_path))
            .boxed();
        Ok(ArtifactDownload { size, stream })
    }

    /// Lists the direct children of `dir`, sorted by path, with paths relative to `dir`.
    ///
    /// As in MLflow, a missing directory and a file path both give an empty list: the client
    /// relies on that to tell files from directories.
    pub async fn list(&self, dir: &ArtifactPath) -> Result<Vec<ArtifactEntry>, ArtifactError> {
        let prefix = self.object_path(dir)?;
        let listing = match self
            .object_store
            .list_with_delimiter(non_root(&prefix))
            .await
        {
            Ok(listing) => listing,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(error) if self.is_local_dead_end(dir).await => {
                // A path running through a file is no directory, so MLflow answers it with an
                // empty list too; only the local backend reports it as an error.
                tracing::debug!(path = %dir, %error, "listing a path below a file");
                return Ok(Vec::new());
            }
            Err(error) => return Err(ArtifactError::Storage(error)),
        };

        let mut entries = Vec::new();
        for common_prefix in &listing.common_prefixes {
            let Some(name) = relative_name(common_prefix, &prefix) else {
                continue;
            };
            if dir.is_root() && name == MULTIPART_PREFIX {
                continue;
            }
            entries.push(ArtifactEntry {
                path: name,
                is_dir: true,
                file_size: None,
            });
        }
        for object in &listing.objects {
            let Some(name) = relative_name(&object.location, &prefix) else {
                continue;
            };
            entries.push(ArtifactEntry {
                path: name,
                is_dir: false,
                file_size: Some(object.size),
            });
        }
        entries.sort_by(|left, right| left.path.cmp(&right.path));
        Ok(entries)
    }

    /// Deletes the file at `path`, or everything below it when it is a directory.
    ///
    /// Deleting what does not exist succeeds, as in MLflow. The root cannot be deleted.
    pub async fn delete(&self, path: &ArtifactPath) -> Result<(), ArtifactError> {
        if path.is_root() {
            return Err(ArtifactError::InvalidPath {
                path: String::new(),
                reason: "refusing to delete the whole artifact root".to_owned(),
            });
        }
        let location = self.object_path(path)?;

        // `head` first because LocalFileSystem fails to delete a directory as if it were a file.
        match self.object_store.head(&location).await {
            Ok(_) => match self.object_store.delete(&location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(ArtifactError::Storage(error)),
            },
            Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => return Err(ArtifactError::Storage(error)),
        }
        self.delete_below(&location).await?;

        if let Some(local_root) = &self.local_root {
            // Empty directories are invisible to object_store, so it cannot delete them.
            let directory = local_root.join(location.as_ref());
            let local_root = local_root.clone();
            tokio::task::spawn_blocking(move || {
                if directory.is_dir()
                    && let Err(error) = std::fs::remove_dir_all(&directory)
                {
                    tracing::warn!(directory = %directory.display(), %error, "cannot remove artifact directory");
                }
                if let Some(parent) = directory.parent() {
                    remove_empty_parents(&local_root, parent);
                }
            })
            .await
            .map_err(|error| ArtifactError::Storage(background_task_failed(error)))?;
        }
        Ok(())
    }

    /// Hashes every file below `dir`, recursively, by streaming; sorted by relative path.
    ///
    /// When `dir` is itself a file, the answer is that one file under its own name. A missing
    /// `dir` gives an empty list, as `list` does.
    pub async fn digest_tree(
        &self,
        dir: &ArtifactPath,
    ) -> Result<Vec<(String, FileDigest)>, ArtifactError> {
        let prefix = self.object_path(dir)?;
        let objects: Vec<_> = self
            .object_store
            .list(non_root(&prefix))
            .try_collect()
            .await
            .map_err(|error| storage_error(error, dir.as_str()))?;

        let mut files = Vec::new();
        for object in objects {
            let Some(name) = relative_name(&object.location, &prefix) else {
                continue;
            };
            let hidden = dir.is_root()
                && (name == MULTIPART_PREFIX || name.starts_with(&format!("{MULTIPART_PREFIX}/")));
            if !hidden {
                files.push((name, object.location));
            }
        }
        if files.is_empty()
            && let Some(file_name) = dir.file_name()
        {
            match self.object_store.head(&prefix).await {
                Ok(_) => files.push((file_name.to_owned(), prefix.clone())),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(ArtifactError::Storage(error)),
            }
        }

        let mut digests: Vec<(String, FileDigest)> = stream::iter(files)
            .map(|(name, location)| async move {
                let digest = self.hash_object(&location, &name).await?;
                Ok::<_, ArtifactError>((name, digest))
            })
            .buffered(DIGEST_FILES_IN_FLIGHT)
            .try_collect()
            .await?;
        digests.sort_by(|left, right| left.0.cmp(&right.0));
        Ok(digests)
    }

    /// The backend key for `path`, which may be the root.
    fn object_path(&self, path: &ArtifactPath) -> Result<ObjectPath, ArtifactError> {
        let joined = match (self.root_prefix.as_ref(), path.as_str()) {
            (prefix, "") => prefix.to_owned(),
            ("", relative) => relative.to_owned(),
            (prefix, relative) => format!("{prefix}/{relative}"),
        };
        ObjectPath::parse(&joined).map_err(|error| ArtifactError::InvalidPath {
            path: path.as_str().to_owned(),
            reason: format!("the storage backend refuses it: {error}"),
        })
    }

    /// The backend key for a file at `path`, refusing the root.
    fn file_location(&self, path: &ArtifactPath) -> Result<ObjectPath, ArtifactError> {
        if path.is_root() {
            return Err(ArtifactError::InvalidPath {
                path: String::new(),
                reason: "the artifact root is a directory, not a file".to_owned(),
            });
        }
        self.object_path(path)
    }

    /// The backend key of an object this module keeps for itself (multipart state); with an
    /// empty `relative`, the prefix they all share.
    fn internal_path(&self, relative: &str) -> Result<ObjectPath, ArtifactError> {
        let joined = match self.root_prefix.as_ref() {
            "" => format!("{MULTIPART_PREFIX}/{relative}"),
            prefix => format!("{prefix}/{MULTIPART_PREFIX}/{relative}"),
        };
        ObjectPath::parse(joined.trim_end_matches('/'))
            .map_err(|error| ArtifactError::Storage(error.into()))
    }

    /// True when the local backend could not list `dir` because `dir` is no directory.
    async fn is_local_dead_end(&self, dir: &ArtifactPath) -> bool {
        match &self.local_root {
            Some(local_root) => !tokio::fs::metadata(local_root.join(dir.as_str()))
                .await
                .is_ok_and(|metadata| metadata.is_dir()),
            None => false,
        }
    }

    /// Streams `body` into `location`, hashing and counting; aborts on any failure.
    async fn write_stream<E>(
        &self,
        location: ObjectPath,
        display_path: &str,
        body: impl Stream<Item = Result<Bytes, E>> + Send,
        max_bytes: u64,
    ) -> Result<FileDigest, ArtifactError>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut upload = self.start_upload(location);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut body = std::pin::pin!(body);

        let streamed: Result<(), ArtifactError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|error| ArtifactError::BodyRead {
                    path: display_path.to_owned(),
                    source: error.into(),
                })?;
                size = size.saturating_add(chunk.len() as u64);
                if size > max_bytes {
                    return Err(ArtifactError::TooLarge {
                        path: display_path.to_owned(),
                        limit: max_bytes,
                    });
                }
                hasher.update(&chunk);
                upload.put(chunk).await?;
            }
            Ok(())
        }
        .await;

        match streamed {
            Ok(()) => {
                upload.finish().await?;
                Ok(FileDigest {
                    size,
                    sha256: hex::encode(hasher.finalize()),
                })
            }
            Err(error) => {
                upload.abort().await;
                Err(error)
            }
        }
    }

    fn start_upload(&self, location: ObjectPath) -> GuardedUpload {
        let empty_directory_cleanup =
            self.local_root
                .as_ref()
                .map(|local_root| EmptyDirectoryCleanup {
                    local_root: local_root.clone(),
                    file: local_root.join(location.as_ref()),
                });
        let writer =
            BufWriter::with_capacity(Arc::clone(&self.object_store), location, UPLOAD_PART_BYTES)
                .with_max_concurrency(UPLOAD_PARTS_IN_FLIGHT);
        GuardedUpload {
            writer: Some(writer),
            empty_directory_cleanup,
        }
    }

    /// Deletes every object below `location` (not `location` itself).
    async fn delete_below(&self, location: &ObjectPath) -> Result<(), ArtifactError> {
        let below = self
            .object_store
            .list(non_root(location))
            .map_ok(|object| object.location)
            .boxed();
        let mut deleted = self.object_store.delete_stream(below);
        while let Some(outcome) = deleted.next().await {
            match outcome {
                // Someone else deleted it first, which is what we wanted anyway.
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(ArtifactError::Storage(error)),
            }
        }
        Ok(())
    }

    /// Streams one object through SHA-256 without holding it in memory.
    async fn hash_object(
        &self,
        location: &ObjectPath,
        display_path: &str,
    ) -> Result<FileDigest, ArtifactError> {
        let found = self
            .object_store
            .get(location)
            .await
            .map_err(|error| storage_error(error, display_path))?;
        let mut stream = found.into_stream();
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|error| storage_error(error, display_path))?;
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok(FileDigest {
            size,
            sha256: hex::encode(hasher.finalize()),
        })
    }
}

/// An upload in progress that is aborted unless `finish` succeeds, even when the future
/// driving it is dropped (a client hanging up mid-body drops the handler's future).
struct GuardedUpload {
    /// `None` once finished or aborted.
    writer: Option<BufWriter>,
    empty_directory_cleanup: Option<EmptyDirectoryCleanup>,
}

/// Where an aborted local upload may have left empty directories behind.
struct EmptyDirectoryCleanup {
    local_root: PathBuf,
    file: PathBuf,
}

impl GuardedUpload {
    async fn put(&mut self, chunk: Bytes) -> Result<(), ArtifactError> {
        match &mut self.writer {
            Some(writer) => writer.put(chunk).await.map_err(ArtifactError::Storage),
            None => Err(ArtifactError::Storage(object_store::Error::Generic {
                store: "artifacts",
                source: "write after the upload ended".into(),
            })),
        }
    }

    /// Completes the upload. Once this starts the writer may no longer be aborted, so a
    /// failure here relies on object_store's own clean-up.
    async fn finish(mut self) -> Result<(), ArtifactError> {
        let Some(mut writer) = self.writer.take() else {
            return Ok(());
        };
        writer.shutdown().await.map_err(|error| {
            let error = match error
                .into_inner()
                .map(|inner| inner.downcast::<object_store::Error>())
            {
                Some(Ok(object_store_error)) => *object_store_error,
                Some(Err(other)) => object_store::Error::Generic {
                    store: "artifacts",
                    source: other,
                },
                None => object_store::Error::Generic {
                    store: "artifacts",
                    source: "the upload could not be completed".into(),
                },
            };
            ArtifactError::Storage(error)
        })
    }

    /// Aborts the upload and removes what it left; failures are logged, not returned, as the
    /// caller is already reporting the error that made it abort.
    async fn abort(mut self) {
        if let Some(writer) = self.writer.take() {
            abort_writer(writer, self.empty_directory_cleanup.take()).await;
        }
    }
}

impl Drop for GuardedUpload {
    fn drop(&mut self) {
        let Some(writer) = self.writer.take() else {
            return;
        };
        let cleanup = self.empty_directory_cleanup.take();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(abort_writer(writer, cleanup));
            }
            Err(_) => {
                tracing::warn!("artifact upload dropped outside a runtime; it cannot be aborted")
            }
        }
    }
}

async fn abort_writer(mut writer: BufWriter, cleanup: Option<EmptyDirectoryCleanup>) {
    if let Err(error) = writer.abort().await {
        tracing::warn!(%error, "cannot abort artifact upload");
    }
    if let Some(cleanup) = cleanup {
        let removed = tokio::task::spawn_blocking(move || {
            if let Some(parent) = cleanup.file.parent() {
                remove_empty_parents(&cleanup.local_root, parent);
            }
        })
        .await;
        if let Err(error) = removed {
            tracing::warn!(%error, "cannot remove directories left by an aborted upload");
        }
    }
}

/// Removes `directory` and its ancestors while they are empty, stopping at `local_root`.
fn remove_empty_parents(local_root: &std::path::Path, directory: &std::path::Path) {
    let mut current = Some(directory);
    while let Some(candidate) = current {
        if candidate == local_root || !candidate.starts_with(local_root) {
            break;
        }
        // `remove_dir` refuses non-empty directories, so concurrent uploads keep theirs.
        if std::fs::remove_dir(candidate).is_err() {
            break;
        }
        current = candidate.parent();
    }
}

fn open_local(directory: PathBuf) -> Result<ArtifactStore, ArtifactError> {
    std::fs::create_dir_all(&directory).map_err(|error| {
        ArtifactError::Config(format!(
            "cannot create artifact directory {}: {error}",
            directory.display()
        ))
    })?;
    let canonical = std::fs::canonicalize(&directory).map_err(|error| {
        ArtifactError::Config(format!(
            "cannot resolve artifact directory {}: {error}",
            directory.display()
        ))
    })?;
    let local_store = LocalFileSystem::new_with_prefix(&canonical)
        .map_err(|error| {
            ArtifactError::Config(format!("cannot open {}: {error}", canonical.display()))
        })?
        .with_automatic_cleanup(true);
    let destination = url::Url::from_directory_path(&canonical)
        .map(|url| url.to_string())
        .unwrap_or_else(|()| canonical.display().to_string());
    Ok(ArtifactStore {
        object_store: Arc::new(local_store),
        root_prefix: ObjectPath::default(),
        destination,
        local_root: Some(canonical),
    })
}

fn open_s3(
    bucket_and_prefix: &str,
    env: &HashMap<String, String>,
) -> Result<ArtifactStore, ArtifactError> {
    let (bucket, prefix) = bucket_and_prefix
        .split_once('/')
        .unwrap_or((bucket_and_prefix, ""));
    if bucket.is_empty() {
        return Err(ArtifactError::Config(format!(
            "s3://{bucket_and_prefix} names no bucket"
        )));
    }
    let root_prefix = ObjectPath::parse(prefix.trim_matches('/')).map_err(|error| {
        ArtifactError::Config(format!("bad prefix in s3://{bucket_and_prefix}: {error}"))
    })?;

    let setting = |name: &str| {
        env.get(name)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    };
    let region = setting("AWS_DEFAULT_REGION")
        .or_else(|| setting("AWS_REGION"))
        .unwrap_or("us-east-1");
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(region);
    // Client options go first: `with_client_options` replaces what `with_allow_http` sets.
    if parse_flag("MLFLOW_S3_IGNORE_TLS", setting("MLFLOW_S3_IGNORE_TLS"))? {
        builder =
            builder.with_client_options(ClientOptions::new().with_allow_invalid_certificates(true));
    }
    if let Some(endpoint) =
        setting("MLFLOW_S3_ENDPOINT_URL").or_else(|| setting("AWS_ENDPOINT_URL"))
    {
        let endpoint = endpoint.trim_end_matches('/');
        if strip_prefix_ignore_case(endpoint, "http://").is_some() {
            builder = builder.with_allow_http(true);
        }
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(access_key_id) = setting("AWS_ACCESS_KEY_ID") {
        builder = builder.with_access_key_id(access_key_id);
    }
    if let Some(secret_access_key) = setting("AWS_SECRET_ACCESS_KEY") {
        builder = builder.with_secret_access_key(secret_access_key);
    }
    if let Some(session_token) = setting("AWS_SESSION_TOKEN") {
        builder = builder.with_token(session_token);
    }
    let s3_store = builder.build().map_err(|error| {
        ArtifactError::Config(format!(
            "cannot configure s3://{bucket_and_prefix}: {error}"
        ))
    })?;

    let destination = match root_prefix.as_ref() {
        "" => format!("s3://{bucket}"),
        prefix => format!("s3://{bucket}/{prefix}"),
    };
    Ok(ArtifactStore {
        object_store: Arc::new(s3_store),
        root_prefix,
        destination,
        local_root: None,
    })
}

/// Reads a boolean setting the way MLflow does: `true`/`1` or `false`/`0`, any case.
fn parse_flag(name: &str, value: Option<&str>) -> Result<bool, ArtifactError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "0" | "no") => Ok(false),
        Some("true" | "1" | "yes") => Ok(true),
        Some(other) => Err(ArtifactError::Config(format!(
            "{name} must be true or false, not {other:?}"
        ))),
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        text.get(prefix.len()..)
    } else {
        None
    }
}

/// object_store lists everything for `None`, but lists nothing for an empty S3 prefix.
fn non_root(prefix: &ObjectPath) -> Option<&ObjectPath> {
    if prefix.as_ref().is_empty() {
        None
    } else {
        Some(prefix)
    }
}

/// `location` relative to `prefix`, as raw text; `None` when it is not below `prefix`.
fn relative_name(location: &ObjectPath, prefix: &ObjectPath) -> Option<String> {
    let parts: Vec<_> = location.prefix_match(prefix)?.collect();
    if parts.is_empty() {
        return None;
    }
    let names: Vec<&str> = parts.iter().map(|part| part.as_ref()).collect();
    Some(names.join("/"))
}

/// Turns object_store's `NotFound` into ours, naming the artifact rather than the backend key.
fn storage_error(error: object_store::Error, path: &str) -> ArtifactError {
    match error {
        object_store::Error::NotFound { .. } => ArtifactError::NotFound {
            path: path.to_owned(),
        },
        other => ArtifactError::Storage(other),
    }
}

/// On a local directory a file and a directory cannot share a path; that is the client's
/// mistake (a 4xx), not a storage failure. `crate::error` makes the distinction.
pub(crate) fn is_file_directory_clash(error: &object_store::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(io_error) = current.downcast_ref::<std::io::Error>()
            && matches!(
                io_error.kind(),
                std::io::ErrorKind::NotADirectory | std::io::ErrorKind::IsADirectory
            )
        {
            return true;
        }
        source = current.source();
    }
    false
}

fn background_task_failed(error: tokio::task::JoinError) -> object_store::Error {
    object_store::Error::JoinError { source: error }
}
