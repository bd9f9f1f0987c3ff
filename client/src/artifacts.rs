//! Artifacts through the registry's artifact proxy (`/api/2.0/mlflow-artifacts/artifacts/...`),
//! streamed both ways (a file is never held in memory whole) and hashed with sha256 on the way.
//!
//! A run's `artifact_uri` is `mlflow-artifacts:/<experiment>/<run>/artifacts`; the proxy serves
//! `mlflow-artifacts:/<path>` at `<registry>/api/2.0/mlflow-artifacts/artifacts/<path>`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use reqwest::{Body, Method};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;
use url::Url;

use crate::error::{Error, Result};
use crate::http::{Client, Idempotency};
use crate::tracking::Run;

/// Files of a directory uploaded at once by [`Client::upload_dir`].
const UPLOAD_CONCURRENCY: usize = 4;

/// Told the size of each chunk of an upload as it is read to be sent: for a progress bar. A
/// retried file's bytes are told again. Called from the upload tasks, several at once.
pub type UploadProgress = Arc<dyn Fn(u64) + Send + Sync>;

/// A file sent to or received from the artifact store: where, how big, and its sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferredFile {
    /// For an upload, the path under the run's artifact root (`model/weights.onnx`); for a
    /// download, the local path written.
    pub path: String,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
}

impl Client {
    /// Streams `local_path` to `artifact_path` (`/`-separated, relative to the run's artifact
    /// root) and returns its size and sha256 as sent. Retried on transport errors and 5xx,
    /// reading the file again: a PUT of the same bytes is idempotent.
    pub async fn upload_file(
        &self,
        run: &Run,
        local_path: &Path,
        artifact_path: &str,
    ) -> Result<TransferredFile> {
        self.upload_file_reporting(run, local_path, artifact_path, None)
            .await
    }

    async fn upload_file_reporting(
        &self,
        run: &Run,
        local_path: &Path,
        artifact_path: &str,
        progress: Option<&UploadProgress>,
    ) -> Result<TransferredFile> {
        let relative = relative_artifact_path(artifact_path)?;
        let url = self.artifact_url(run.artifact_uri(), &relative)?;
        self.retrying(Idempotency::Idempotent, || {
            self.put_file(url.clone(), local_path, &relative, progress.cloned())
        })
        .await
    }

    async fn put_file(
        &self,
        url: Url,
        local_path: &Path,
        relative: &str,
        progress: Option<UploadProgress>,
    ) -> Result<TransferredFile> {
        let file = tokio::fs::File::open(local_path)
            .await
            .map_err(|source| Error::io(local_path, source))?;
        let digest = Arc::new(Mutex::new((Sha256::new(), 0u64)));
        let hashing = Arc::clone(&digest);
        let stream = ReaderStream::new(file).inspect_ok(move |chunk| {
            if let Ok(mut state) = hashing.lock() {
                state.0.update(chunk);
                state.1 += chunk.len() as u64;
            }
            if let Some(progress) = &progress {
                progress(chunk.len() as u64);
            }
        });
        let content_type = mime_type(relative);
        let request = self
            .transfer_request(Method::PUT, url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(Body::wrap_stream(stream));
        self.send(request).await?;
        let (hasher, size) = digest
            .lock()
            .map(|state| state.clone())
            .map_err(|_| Error::Invalid("sha256 state poisoned".to_owned()))?;
        Ok(TransferredFile {
            path: relative.to_owned(),
            size,
            sha256: hex::encode(hasher.finalize()),
        })
    }

    /// Uploads every file under `local_dir` (recursively; symbolic links followed) to
    /// `artifact_path/<relative path>`, a few at a time. Returns the files sorted by path; the
    /// first failure stops the upload (files already sent stay in the store).
    pub async fn upload_dir(
        &self,
        run: &Run,
        local_dir: &Path,
        artifact_path: &str,
    ) -> Result<Vec<TransferredFile>> {
        self.upload_dir_reporting(run, local_dir, artifact_path, None)
            .await
    }

    /// [`Client::upload_dir`], telling `progress` about every chunk sent.
    pub async fn upload_dir_reporting(
        &self,
        run: &Run,
        local_dir: &Path,
        artifact_path: &str,
        progress: Option<UploadProgress>,
    ) -> Result<Vec<TransferredFile>> {
        let prefix = if artifact_path.trim_matches('/').is_empty() {
            String::new()
        } else {
            format!("{}/", relative_artifact_path(artifact_path)?)
        };
        let files = list_files(local_dir).await?;
        let mut uploaded: Vec<TransferredFile> = futures::stream::iter(files)
            .map(|(local, relative)| {
                let destination = format!("{prefix}{relative}");
                let progress = progress.as_ref();
                async move {
                    self.upload_file_reporting(run, &local, &destination, progress)
                        .await
                }
            })
            .buffer_unordered(UPLOAD_CONCURRENCY)
            .try_collect()
            .await?;
        uploaded.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(uploaded)
    }

    /// Streams an artifact into `dest` and returns its size and sha256. `source` is an
    /// `mlflow-artifacts:/...` URI, an `http(s)://` URL, or a path relative to the artifact
    /// proxy's root (`1/<run>/artifacts/model/weights.onnx`). The bytes land in
    /// `<dest>.partial` and are renamed to `dest` once complete, so `dest` never holds half a
    /// file. Parent directories are created. Retried like any GET.
    pub async fn download_file(&self, source: &str, dest: &Path) -> Result<TransferredFile> {
        let url = if source.starts_with("http://") || source.starts_with("https://") {
            Url::parse(source)
                .map_err(|err| Error::Invalid(format!("invalid artifact URL '{source}': {err}")))?
        } else if source.starts_with("mlflow-artifacts:") {
            self.artifact_url(source, "")?
        } else {
            self.artifact_url("mlflow-artifacts:/", source)?
        };
        self.download_url(url, dest).await
    }

    async fn download_url(&self, url: Url, dest: &Path) -> Result<TransferredFile> {
        if let Some(parent) = dest
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|source| Error::io(parent, source))?;
        }
        let partial = partial_path(dest);
        let (size, sha256) = self
            .retrying(Idempotency::Idempotent, || {
                self.get_to_file(url.clone(), &partial)
            })
            .await?;
        tokio::fs::rename(&partial, dest)
            .await
            .map_err(|source| Error::io(dest, source))?;
        Ok(TransferredFile {
            path: dest.display().to_string(),
            size,
            sha256,
        })
    }

    /// Streams the file `path` (relative, `/`-separated) under the artifact location
    /// `artifact_uri` (`mlflow-artifacts:/...`) into `dest`, hashing it on the way: the bytes
    /// land in `<dest>.partial`, are synced to disk and renamed to `dest` once complete, so
    /// `dest` never holds half a file; a failed download leaves no `.partial` behind. Parent
    /// directories are created. Retried like any GET.
    pub async fn download_artifact(
        &self,
        artifact_uri: &str,
        path: &str,
        dest: &Path,
    ) -> Result<TransferredFile> {
        let url = self.artifact_url(artifact_uri, path)?;
        let downloaded = self.download_url(url, dest).await;
        if downloaded.is_err() {
            let _ = tokio::fs::remove_file(partial_path(dest)).await;
        }
        downloaded
    }

    async fn get_to_file(&self, url: Url, path: &Path) -> Result<(u64, String)> {
        let (shown, response) = self.send(self.transfer_request(Method::GET, url)).await?;
        let io_error = |source| Error::io(path, source);
        let mut file = tokio::fs::File::create(path).await.map_err(io_error)?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|source| Error::transport(shown.clone(), source))?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(io_error)?;
        }
        file.sync_all().await.map_err(io_error)?;
        Ok((size, hex::encode(hasher.finalize())))
    }

    /// The proxy URL of `relative` under the artifact location `artifact_uri`.
    pub(crate) fn artifact_url(&self, artifact_uri: &str, relative: &str) -> Result<Url> {
        let root = okla_proto::mlflow::proxied_path(artifact_uri).ok_or_else(|| {
            Error::Invalid(format!(
                "artifact location '{artifact_uri}' is not served by the registry's artifact proxy (expected mlflow-artifacts:/...)"
            ))
        })?;
        let segments = ["api", "2.0", "mlflow-artifacts", "artifacts"]
            .into_iter()
            .chain(root.split('/'))
            .chain(relative.split('/'))
            .filter(|segment| !segment.is_empty());
        Ok(self.url(segments))
    }
}

/// `artifact_path` without leading or trailing `/`, refused when it is empty or climbs out
/// with `..`.
fn relative_artifact_path(artifact_path: &str) -> Result<String> {
    let trimmed = artifact_path.trim_matches('/');
    let invalid = trimmed.is_empty()
        || trimmed
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..");
    if invalid {
        return Err(Error::Invalid(format!(
            "invalid artifact path '{artifact_path}': expected a relative path like model/weights.onnx"
        )));
    }
    Ok(trimmed.to_owned())
}

/// Every regular file under `dir` with its `/`-separated path relative to `dir`, sorted.
async fn list_files(dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut files = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((directory, prefix)) = pending.pop() {
        let mut entries = tokio::fs::read_dir(&directory)
            .await
            .map_err(|source| Error::io(&directory, source))?;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|source| Error::io(&directory, source))?
        {
            let path = entry.path();
            let name = entry.file_name().into_string().map_err(|name| {
                Error::Invalid(format!(
                    "file name {name:?} in {} is not UTF-8",
                    directory.display()
                ))
            })?;
            let relative = format!("{prefix}{name}");
            // Follows symbolic links, as a user copying the directory would.
            let metadata = tokio::fs::metadata(&path)
                .await
                .map_err(|source| Error::io(&path, source))?;
            if metadata.is_dir() {
                pending.push((path, format!("{relative}/")));
            } else if metadata.is_file() {
                files.push((path, relative));
            }
        }
    }
    files.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(files)
}

fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// The Content-Type the mlflow client would send for a file of this name.
fn mime_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, extension)| extension) {
        Some("txt" | "md" | "yaml" | "yml" | "toml" | "py" | "cfg") => "text/plain",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_urls() {
        let client = Client::new("http://registry:5000").unwrap();
        assert_eq!(
            client
                .artifact_url("mlflow-artifacts:/1/abc/artifacts", "model/a b.onnx")
                .unwrap()
                .as_str(),
            "http://registry:5000/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/model/a%20b.onnx"
        );
        assert_eq!(
            client
                .artifact_url("mlflow-artifacts://elsewhere:5000/2/x/artifacts", "f")
                .unwrap()
                .as_str(),
            "http://registry:5000/api/2.0/mlflow-artifacts/artifacts/2/x/artifacts/f"
        );
        assert!(matches!(
            client.artifact_url("s3://bucket/1/abc/artifacts", "f"),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn artifact_paths_stay_inside_the_run() {
        assert_eq!(relative_artifact_path("/model/x/").unwrap(), "model/x");
        for bad in ["", "/", "model/../../x", "a//b", "./a"] {
            assert!(relative_artifact_path(bad).is_err(), "{bad}");
        }
    }
}
