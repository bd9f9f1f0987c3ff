//! MLflow's artifact proxy (`/api/2.0/mlflow-artifacts/...`): upload, download, list, delete and
//! multipart uploads, streamed between the HTTP body and the artifact store.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::empty;
use super::extract::{Fields, MlflowQuery, lenient_opt_i64};
use crate::artifacts::ArtifactPath;
use crate::domain::model_registry::VersionFile;
use crate::error::{Error, Result};
use crate::state::AppState;

const API_PREFIX: &str = "/api/2.0/mlflow-artifacts";

/// The UI links a run's artifacts through the proxy too.
pub use okla_proto::mlflow::proxied_path;

/// Hashes every file of a model version from the artifact store, for the version's file list.
pub(super) async fn digest_files(state: &AppState, path: &str) -> Result<Vec<VersionFile>> {
    let path = ArtifactPath::parse(path)?;
    let digests = state.artifacts.digest_tree(&path).await?;
    Ok(digests
        .into_iter()
        .map(|(relative_path, digest)| VersionFile {
            path: relative_path,
            size: digest.size as i64,
            sha256: digest.sha256,
        })
        .collect())
}

pub(super) async fn upload(
    State(state): State<AppState>,
    Path(path): Path<String>,
    body: Body,
) -> Result<Response> {
    let path = ArtifactPath::parse(&path)?;
    let digest = state
        .artifacts
        .put(
            &path,
            body.into_data_stream(),
            state.limits.max_artifact_bytes,
        )
        .await?;
    tracing::debug!(path = %path.as_str(), size = digest.size, sha256 = %digest.sha256, "artifact stored");
    Ok(Json(json!({})).into_response())
}

pub(super) async fn download(
    State(state): State<AppState>,
    Path(path): Path<String>,
) -> Result<Response> {
    let path = ArtifactPath::parse(&path)?;
    let download = state.artifacts.get(&path).await?;
    // Sent as an attachment typed so that no browser renders it as a page on our origin: an
    // uploaded `.html` or `.svg` would otherwise run script here (stored XSS).
    let file_name = path.as_str().rsplit('/').next().unwrap_or(path.as_str());
    let headers = super::security::artifact_download_headers(file_name, download.size);
    Ok((headers, Body::from_stream(download.stream)).into_response())
}

#[derive(Deserialize)]
pub(super) struct ListRequest {
    path: Option<String>,
}

#[derive(Serialize)]
struct FileInfoWire {
    path: String,
    is_dir: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_size: Option<u64>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    MlflowQuery(request): MlflowQuery<ListRequest>,
) -> Result<Json<Value>> {
    let dir = match request.path.as_deref().filter(|path| !path.is_empty()) {
        Some(path) => ArtifactPath::parse(path)?,
        None => ArtifactPath::root(),
    };
    let entries = state.artifacts.list(&dir).await?;
    if entries.is_empty() {
        return Ok(empty());
    }
    let files: Vec<FileInfoWire> = entries
        .into_iter()
        .map(|entry| FileInfoWire {
            path: entry.path,
            is_dir: entry.is_dir,
            file_size: entry.file_size,
        })
        .collect();
    Ok(Json(json!({ "files": files })))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Path(path): Path<String>,
) -> Result<Json<Value>> {
    let path = ArtifactPath::parse(&path)?;
    state.artifacts.delete(&path).await?;
    Ok(empty())
}

#[derive(Deserialize)]
pub(super) struct CreateUpload {
    /// The client's local file path; only its file name is used, as in MLflow.
    path: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    num_parts: Option<i64>,
}

/// The file an upload writes: the directory from the URL plus the client file's name.
fn upload_target(directory: &str, local_file: Option<&str>) -> Result<ArtifactPath> {
    let local_file = super::required(local_file.map(str::to_owned), "path")?;
    let file_name = local_file.rsplit(['/', '\\']).next().unwrap_or(&local_file);
    ArtifactPath::parse(directory)?
        .join(file_name)
        .map_err(Error::from)
}

/// MLflow's proxy hands out one URL per part; ours point back at this server, which keeps the
/// parts in the artifact store until `complete` assembles them.
pub(super) async fn create_multipart(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(directory): Path<String>,
    Fields(request): Fields<CreateUpload>,
) -> Result<Json<Value>> {
    let target = upload_target(&directory, request.path.as_deref())?;
    let num_parts = request.num_parts.unwrap_or(1);
    if !(1..=10_000).contains(&num_parts) {
        return Err(Error::invalid(format!(
            "Invalid value {num_parts} for parameter 'num_parts': must be between 1 and 10000"
        )));
    }
    let upload_id = state.artifacts.create_multipart(&target).await?;
    // Part URLs must reach this server as the client sees it, also behind a TLS-terminating proxy.
    let header_text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    // The host was checked against --allowed-hosts before this handler ran; the scheme can
    // only be one of the two.
    let scheme = match header_text("x-forwarded-proto") {
        Some(proto) if proto.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    let host = header_text("x-forwarded-host")
        .and_then(|hosts| hosts.split(',').next())
        .map(str::trim)
        .or_else(|| header_text(header::HOST.as_str()))
        .unwrap_or("localhost");
    let encoded_path =
        percent_encoding::utf8_percent_encode(target.as_str(), PATH_SEGMENT).to_string();
    let credentials: Vec<Value> = (1..=num_parts)
        .map(|part_number| {
            json!({
                "url": format!("{scheme}://{host}{API_PREFIX}/mpu/part/{encoded_path}?upload_id={upload_id}&part_number={part_number}"),
                "part_number": part_number,
                "headers": {},
            })
        })
        .collect();
    Ok(Json(
        json!({ "upload_id": upload_id, "credentials": credentials }),
    ))
}

/// Characters escaped in a path placed in a URL; `/` stays so the path reads naturally.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

#[derive(Deserialize)]
pub(super) struct PartQuery {
    upload_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    part_number: Option<i64>,
}

pub(super) async fn upload_part(
    State(state): State<AppState>,
    Path(path): Path<String>,
    MlflowQuery(query): MlflowQuery<PartQuery>,
    body: Body,
) -> Result<Response> {
    let path = ArtifactPath::parse(&path)?;
    let upload_id = super::required(query.upload_id, "upload_id")?;
    let part_number = super::required(query.part_number, "part_number")?;
    let part_number = u32::try_from(part_number).map_err(|_| {
        Error::invalid(format!(
            "Invalid value {part_number} for parameter 'part_number'"
        ))
    })?;
    let body_stream = body.into_data_stream().map_err(axum::Error::into_inner);
    let etag = state
        .artifacts
        .put_part(
            &path,
            &upload_id,
            part_number,
            body_stream,
            state.limits.max_artifact_bytes,
        )
        .await?;
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        headers.insert(header::ETAG, value);
    }
    Ok((headers, Json(json!({}))).into_response())
}

#[derive(Deserialize)]
struct PartWire {
    #[serde(deserialize_with = "super::extract::lenient_i64")]
    part_number: i64,
    etag: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct CompleteUpload {
    path: Option<String>,
    upload_id: Option<String>,
    #[serde(default)]
    parts: Vec<PartWire>,
}

pub(super) async fn complete_multipart(
    State(state): State<AppState>,
    Path(directory): Path<String>,
    Fields(request): Fields<CompleteUpload>,
) -> Result<Json<Value>> {
    let target = upload_target(&directory, request.path.as_deref())?;
    let upload_id = super::required(request.upload_id, "upload_id")?;
    let parts = request
        .parts
        .into_iter()
        .map(|part| {
            let number = u32::try_from(part.part_number)
                .map_err(|_| Error::invalid(format!("Invalid part number {}", part.part_number)))?;
            Ok((number, part.etag.unwrap_or_default()))
        })
        .collect::<Result<Vec<_>>>()?;
    state
        .artifacts
        .complete_multipart(&target, &upload_id, &parts, state.limits.max_artifact_bytes)
        .await?;
    Ok(empty())
}

#[derive(Deserialize)]
pub(super) struct AbortUpload {
    path: Option<String>,
    upload_id: Option<String>,
}

pub(super) async fn abort_multipart(
    State(state): State<AppState>,
    Path(directory): Path<String>,
    Fields(request): Fields<AbortUpload>,
) -> Result<Json<Value>> {
    let target = upload_target(&directory, request.path.as_deref())?;
    let upload_id = super::required(request.upload_id, "upload_id")?;
    state.artifacts.abort_multipart(&target, &upload_id).await?;
    Ok(empty())
}
