//! Multipart uploads for MLflow's `mpu/create|complete|abort`, with state kept in the store.
//!
//! Parts are PUT through our own server, possibly to different replicas, so nothing lives in
//! memory between calls. Everything sits under the reserved `.okla-mpu/<upload_id>/` prefix,
//! which `ArtifactPath::parse` refuses and listings hide:
//! - `target` holds the artifact path the upload was created for;
//! - `part-NNNNN` holds the bytes of part NNNNN, and `part-NNNNN.sha256` its etag (the
//!   SHA-256 in lowercase hex), written once the bytes are stored.
//!
//! `complete` streams the parts in part-number order into the final object and hashes them
//! again on the way, so a part replaced after its etag was checked is still caught. Uploads
//! that are never completed or aborted expire (`expire_uploads`, run by `crate::housekeeping`).

use std::collections::HashMap;

use bytes::Bytes;
use futures::stream::{self, Stream, StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};

use super::{ArtifactError, ArtifactPath, ArtifactStore, FileDigest, storage_error};

/// S3's limits, which MLflow's client follows when it numbers parts.
const FIRST_PART_NUMBER: u32 = 1;
const LAST_PART_NUMBER: u32 = 10_000;

/// Etags read at once when `complete` checks the part list.
const ETAG_READS_IN_FLIGHT: usize = 8;

impl ArtifactStore {
    /// Starts a multipart upload of the file at `path` and returns its id (a uuid).
    pub async fn create_multipart(&self, path: &ArtifactPath) -> Result<String, ArtifactError> {
        self.file_location(path)?;
        let upload_id = uuid::Uuid::new_v4().hyphenated().to_string();
        let target = self.upload_object(&upload_id, "target")?;
        self.object_store
            .put(&target, PutPayload::from(path.as_str().to_owned()))
            .await?;
        tracing::debug!(path = %path, upload_id = %upload_id, "multipart upload created");
        Ok(upload_id)
    }

    /// Stores one part (numbered 1 to 10000) and returns its etag, the SHA-256 of its bytes.
    /// Uploading a part number again replaces that part.
    pub async fn put_part<E>(
        &self,
        path: &ArtifactPath,
        upload_id: &str,
        part_number: u32,
        body: impl Stream<Item = Result<Bytes, E>> + Send,
        max_bytes: u64,
    ) -> Result<String, ArtifactError>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let upload_id = self.check_upload(path, upload_id).await?;
        check_part_number(path, &upload_id, part_number)?;
        let part_location = self.upload_object(&upload_id, &part_name(part_number))?;
        let digest = self
            .write_stream(part_location, path.as_str(), body, max_bytes)
            .await?;
        let etag_location = self.upload_object(&upload_id, &etag_name(part_number))?;
        self.object_store
            .put(&etag_location, PutPayload::from(digest.sha256.clone()))
            .await?;
        Ok(digest.sha256)
    }

    /// Assembles the listed parts, in part-number order whatever the list order, into the
    /// file at `path`, then deletes the upload's state.
    ///
    /// Every listed part must exist with the given etag; surrounding quotes and case in the
    /// etags are ignored, as S3 clients quote them. Nothing becomes visible at `path` unless
    /// every part checks out.
    pub async fn complete_multipart(
        &self,
        path: &ArtifactPath,
        upload_id: &str,
        parts: &[(u32, String)],
        max_bytes: u64,
    ) -> Result<FileDigest, ArtifactError> {
        let upload_id = self.check_upload(path, upload_id).await?;
        let bad_upload = |reason: String| invalid_upload(path, &upload_id, reason);
        if parts.is_empty() {
            return Err(bad_upload("no parts are listed".to_owned()));
        }
        let mut ordered_parts: Vec<(u32, String)> = parts
            .iter()
            .map(|(part_number, etag)| (*part_number, normalise_etag(etag)))
            .collect();
        ordered_parts.sort_by_key(|(part_number, _)| *part_number);
        for pair in ordered_parts.windows(2) {
            if pair[0].0 == pair[1].0 {
                return Err(bad_upload(format!("part {} is listed twice", pair[0].0)));
            }
        }
        for (part_number, _) in &ordered_parts {
            check_part_number(path, &upload_id, *part_number)?;
        }

        // Check every etag before writing anything, so that a bad list costs no copying.
        // Owned items: borrowed ones make rustc lose track of this future being `Send`.
        let upload_id_for_checks = upload_id.as_str();
        stream::iter(ordered_parts.clone())
            .map(|(part_number, expected_etag)| async move {
                self.check_part_etag(path, upload_id_for_checks, part_number, &expected_etag)
                    .await
            })
            .buffered(ETAG_READS_IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await?;

        let mut upload = self.start_upload(self.file_location(path)?);
        let mut whole_file_hasher = Sha256::new();
        let mut size: u64 = 0;
        let copied: Result<(), ArtifactError> = async {
            for (part_number, expected_etag) in &ordered_parts {
                let part_location = self.upload_object(&upload_id, &part_name(*part_number))?;
                let found = self.object_store.get(&part_location).await.map_err(|error| {
                    part_storage_error(error, path, &upload_id, *part_number)
                })?;
                let mut part_stream = found.into_stream();
                let mut part_hasher = Sha256::new();
                while let Some(chunk) = part_stream.next().await {
                    let chunk = chunk.map_err(|error| part_storage_error(error, path, &upload_id, *part_number))?;
                    size += chunk.len() as u64;
                    if size > max_bytes {
                        return Err(ArtifactError::TooLarge {
                            path: path.to_string(),
                            limit: max_bytes,
                        });
                    }
                    part_hasher.update(&chunk);
                    whole_file_hasher.update(&chunk);
                    upload.put(chunk).await?;
                }
                let actual_etag = hex::encode(part_hasher.finalize());
                if &actual_etag != expected_etag {
                    return Err(bad_upload(format!(
                        "part {part_number} changed after it was uploaded; its etag is now {actual_etag}"
                    )));
                }
            }
            Ok(())
        }
        .await;
        match copied {
            Ok(()) => upload.finish().await?,
            Err(error) => {
                upload.abort().await;
                return Err(error);
            }
        }

        // The file is in place now, so a failed clean-up only leaves hidden garbage behind.
        if let Err(error) = self.delete_upload_state(&upload_id).await {
            tracing::warn!(path = %path, upload_id = %upload_id, error = ?error, "cannot delete multipart upload state");
        }
        Ok(FileDigest {
            size,
            sha256: hex::encode(whole_file_hasher.finalize()),
        })
    }

    /// Deletes an upload's parts. Aborting an upload that no longer exists succeeds, so a
    /// client may retry; aborting one created for another path does not.
    pub async fn abort_multipart(
        &self,
        path: &ArtifactPath,
        upload_id: &str,
    ) -> Result<(), ArtifactError> {
        self.file_location(path)?;
        let canonical_id = canonical_upload_id(path, upload_id)?;
        match self.recorded_target(&canonical_id).await? {
            Some(recorded_target) => {
                check_recorded_target(path, upload_id, &recorded_target)?;
                self.delete_upload_state(&canonical_id).await
            }
            None => Ok(()),
        }
    }

    /// Checks that `upload_id` is a uuid naming an upload created for `path`; returns the
    /// id in canonical form.
    async fn check_upload(
        &self,
        path: &ArtifactPath,
        upload_id: &str,
    ) -> Result<String, ArtifactError> {
        self.file_location(path)?;
        let canonical_id = canonical_upload_id(path, upload_id)?;
        match self.recorded_target(&canonical_id).await? {
            Some(recorded_target) => check_recorded_target(path, upload_id, &recorded_target)?,
            None => {
                return Err(invalid_upload(
                    path,
                    upload_id,
                    "no such upload; it may have been completed or aborted".to_owned(),
                ));
            }
        }
        Ok(canonical_id)
    }

    /// The artifact path recorded when the upload was created, or `None` for an unknown id.
    async fn recorded_target(&self, canonical_id: &str) -> Result<Option<Bytes>, ArtifactError> {
        let target = self.upload_object(canonical_id, "target")?;
        match self.object_store.get(&target).await {
            Ok(found) => Ok(Some(found.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(ArtifactError::Storage(error)),
        }
    }

    async fn check_part_etag(
        &self,
        path: &ArtifactPath,
        upload_id: &str,
        part_number: u32,
        expected_etag: &str,
    ) -> Result<(), ArtifactError> {
        let etag_location = self.upload_object(upload_id, &etag_name(part_number))?;
        let stored_etag = match self.object_store.get(&etag_location).await {
            Ok(found) => found.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(invalid_upload(
                    path,
                    upload_id,
                    format!("part {part_number} was never uploaded"),
                ));
            }
            Err(error) => return Err(ArtifactError::Storage(error)),
        };
        if stored_etag.as_ref() != expected_etag.as_bytes() {
            return Err(invalid_upload(
                path,
                upload_id,
                format!(
                    "part {part_number} has etag {}, not {expected_etag}",
                    String::from_utf8_lossy(&stored_etag)
                ),
            ));
        }
        Ok(())
    }

    /// Deletes the multipart uploads whose newest object (the record or a part) was written
    /// before `before_ms` (milliseconds since the epoch): uploads a client started and never
    /// completed or aborted. Returns how many went.
    pub async fn expire_uploads(&self, before_ms: i64) -> Result<usize, ArtifactError> {
        let prefix = self.internal_path("")?;
        let mut newest: HashMap<String, i64> = HashMap::new();
        let mut listing = self.object_store.list(Some(&prefix));
        while let Some(object) = listing.next().await {
            let object = match object {
                Ok(object) => object,
                // Gone between the listing and now (completed or aborted meanwhile).
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(error) => return Err(ArtifactError::Storage(error)),
            };
            // `<prefix>/<upload id>/<name>`
            let Some(upload_id) = object
                .location
                .prefix_match(&prefix)
                .and_then(|mut parts| parts.next())
                .map(|part| part.as_ref().to_owned())
            else {
                continue;
            };
            let written = object.last_modified.timestamp_millis();
            let entry = newest.entry(upload_id).or_insert(written);
            *entry = (*entry).max(written);
        }
        let mut expired = 0;
        for (upload_id, written) in newest {
            if written < before_ms && uuid::Uuid::parse_str(&upload_id).is_ok() {
                self.delete_upload_state(&upload_id).await?;
                expired += 1;
            }
        }
        Ok(expired)
    }

    async fn delete_upload_state(&self, upload_id: &str) -> Result<(), ArtifactError> {
        let upload_prefix = self.internal_path(upload_id)?;
        self.delete_below(&upload_prefix).await
    }

    fn upload_object(&self, upload_id: &str, name: &str) -> Result<ObjectPath, ArtifactError> {
        self.internal_path(&format!("{upload_id}/{name}"))
    }
}

/// Parses the id so that it cannot smuggle path segments into the reserved prefix.
fn canonical_upload_id(path: &ArtifactPath, upload_id: &str) -> Result<String, ArtifactError> {
    let parsed = uuid::Uuid::parse_str(upload_id)
        .map_err(|_| invalid_upload(path, upload_id, "the upload id is not a uuid".to_owned()))?;
    Ok(parsed.hyphenated().to_string())
}

fn check_recorded_target(
    path: &ArtifactPath,
    upload_id: &str,
    recorded_target: &Bytes,
) -> Result<(), ArtifactError> {
    if recorded_target.as_ref() == path.as_str().as_bytes() {
        return Ok(());
    }
    Err(invalid_upload(
        path,
        upload_id,
        format!(
            "the upload was created for {:?}",
            String::from_utf8_lossy(recorded_target)
        ),
    ))
}

/// Zero-padded so that a listing of the upload shows parts in order.
fn part_name(part_number: u32) -> String {
    format!("part-{part_number:05}")
}

fn etag_name(part_number: u32) -> String {
    format!("part-{part_number:05}.sha256")
}

fn check_part_number(
    path: &ArtifactPath,
    upload_id: &str,
    part_number: u32,
) -> Result<(), ArtifactError> {
    if (FIRST_PART_NUMBER..=LAST_PART_NUMBER).contains(&part_number) {
        Ok(())
    } else {
        Err(invalid_upload(
            path,
            upload_id,
            format!(
                "part number {part_number} is outside {FIRST_PART_NUMBER} to {LAST_PART_NUMBER}"
            ),
        ))
    }
}

/// S3 clients send etags in double quotes, and hex may come in either case.
fn normalise_etag(etag: &str) -> String {
    etag.trim().trim_matches('"').to_ascii_lowercase()
}

fn invalid_upload(path: &ArtifactPath, upload_id: &str, reason: String) -> ArtifactError {
    ArtifactError::InvalidUpload {
        path: path.as_str().to_owned(),
        upload_id: upload_id.to_owned(),
        reason,
    }
}

/// A part that vanished between the etag check and the copy is the caller's problem too.
fn part_storage_error(
    error: object_store::Error,
    path: &ArtifactPath,
    upload_id: &str,
    part_number: u32,
) -> ArtifactError {
    match storage_error(error, path.as_str()) {
        ArtifactError::NotFound { .. } => invalid_upload(
            path,
            upload_id,
            format!("part {part_number} disappeared during completion"),
        ),
        other => other,
    }
}
