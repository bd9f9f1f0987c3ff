//! The few okla-registry REST calls the registry source needs: which models and versions to
//! serve (MLflow's registered-model routes), where a version's artifacts are and what they hash
//! to (okla's `/files`), and streaming one artifact file to disk through the artifact proxy
//! while hashing it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// Registered models per search page; MLflow's server caps `max_results` at 1000.
const SEARCH_PAGE_SIZE: &str = "500";
/// A metadata call that takes longer than this is treated as a failed poll.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("registry request to {url} failed: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("registry answered {status} to {url}: {body}")]
    Status {
        url: String,
        status: StatusCode,
        body: String,
    },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid registry URL '{0}': {1}")]
    BadUrl(String, String),
}

/// A registered model as the registry lists it: enough to pick the version to serve.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RegisteredModel {
    pub name: String,
    /// The latest version of each stage.
    #[serde(default)]
    pub latest_versions: Vec<StagedVersion>,
    #[serde(default)]
    pub aliases: Vec<Alias>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StagedVersion {
    pub version: String,
    #[serde(default)]
    pub current_stage: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Alias {
    pub alias: String,
    pub version: String,
}

/// A model's effective deployment as `GET /api/okla/v1/deployments/{model}` answers it.
#[derive(Debug, Clone, Deserialize)]
pub struct Deployment {
    /// `explicit`, `champion`, `production` or `none`.
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub revision: i64,
    #[serde(default)]
    pub routes: Vec<DeploymentRoute>,
    #[serde(default)]
    pub sticky: Option<DeploymentSticky>,
    #[serde(default)]
    pub shadow: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeploymentRoute {
    pub version: i64,
    pub weight: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeploymentSticky {
    pub routing_key_header: String,
}

/// What the deployments endpoint said about one model.
#[derive(Debug)]
pub enum DeploymentAnswer {
    Found(Deployment),
    /// The registry does not know the model.
    NoModel,
    /// The registry predates deployments: the route itself does not exist.
    Unsupported,
}

/// One artifact file of a model version, as recorded when the version was created.
#[derive(Debug, Clone, Deserialize)]
pub struct VersionFile {
    /// Relative to the version's artifact location.
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone)]
pub struct RegistryClient {
    base: Url,
    http: reqwest::Client,
}

impl RegistryClient {
    pub fn new(url: &str) -> Result<RegistryClient, ClientError> {
        let base =
            Url::parse(url).map_err(|err| ClientError::BadUrl(url.to_owned(), err.to_string()))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(ClientError::BadUrl(
                url.to_owned(),
                "expected http:// or https://".to_owned(),
            ));
        }
        // No overall timeout: a large model may take minutes; a stalled one trips the read timeout.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|err| ClientError::BadUrl(url.to_owned(), err.to_string()))?;
        Ok(RegistryClient { base, http })
    }

    /// `base` + the given path segments, each percent-encoded as needed.
    fn url<'a>(&self, segments: impl IntoIterator<Item = &'a str>) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Sends a GET with the call timeout; returns the URL as shown in errors and the response.
    async fn get(
        &self,
        url: Url,
        query: &[(&str, &str)],
    ) -> Result<(String, reqwest::Response), ClientError> {
        let shown = url.to_string();
        match self
            .http
            .get(url)
            .query(query)
            .timeout(CALL_TIMEOUT)
            .send()
            .await
        {
            Ok(response) => Ok((shown, response)),
            Err(source) => Err(ClientError::Http { url: shown, source }),
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: Url,
        query: &[(&str, &str)],
    ) -> Result<Option<T>, ClientError> {
        let (shown, response) = self.get(url, query).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = check_status(&shown, response).await?;
        response
            .json()
            .await
            .map(Some)
            .map_err(|source| ClientError::Http { url: shown, source })
    }

    /// Every registered model, all pages.
    pub async fn search_models(&self) -> Result<Vec<RegisteredModel>, ClientError> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            registered_models: Vec<RegisteredModel>,
            next_page_token: Option<String>,
        }
        let url = self.url(["api", "2.0", "mlflow", "registered-models", "search"]);
        let mut models = Vec::new();
        let mut token = String::new();
        loop {
            let mut query = vec![("max_results", SEARCH_PAGE_SIZE)];
            if !token.is_empty() {
                query.push(("page_token", token.as_str()));
            }
            let page: Option<Page> = self.get_json(url.clone(), &query).await?;
            let Some(page) = page else {
                return Err(ClientError::Status {
                    url: url.to_string(),
                    status: StatusCode::NOT_FOUND,
                    body: "not an MLflow model registry".to_owned(),
                });
            };
            models.extend(page.registered_models);
            match page.next_page_token.filter(|next| !next.is_empty()) {
                Some(next) => token = next,
                None => return Ok(models),
            }
        }
    }

    /// One registered model; `None` if the registry does not have it.
    pub async fn get_model(&self, name: &str) -> Result<Option<RegisteredModel>, ClientError> {
        #[derive(Deserialize)]
        struct Answer {
            registered_model: RegisteredModel,
        }
        let url = self.url(["api", "2.0", "mlflow", "registered-models", "get"]);
        let answer: Option<Answer> = self.get_json(url, &[("name", name)]).await?;
        Ok(answer.map(|answer| answer.registered_model))
    }

    /// The model's effective deployment (okla-native). A 404 with the registry's JSON error
    /// body means the model is unknown; any other 404 comes from a registry without the route.
    pub async fn get_deployment(&self, name: &str) -> Result<DeploymentAnswer, ClientError> {
        #[derive(Deserialize)]
        struct Answer {
            deployment: Deployment,
        }
        #[derive(Deserialize)]
        struct ErrorBody {
            error_code: String,
        }
        let url = self.url(["api", "okla", "v1", "deployments", name]);
        let (shown, response) = self.get(url, &[]).await?;
        let http_error = |source| ClientError::Http {
            url: shown.clone(),
            source,
        };
        if response.status() == StatusCode::NOT_FOUND {
            let body = response.bytes().await.map_err(http_error)?;
            return Ok(match serde_json::from_slice::<ErrorBody>(&body) {
                Ok(error) if error.error_code == "RESOURCE_DOES_NOT_EXIST" => {
                    DeploymentAnswer::NoModel
                }
                _ => DeploymentAnswer::Unsupported,
            });
        }
        let response = check_status(&shown, response).await?;
        let answer: Answer = response.json().await.map_err(http_error)?;
        Ok(DeploymentAnswer::Found(answer.deployment))
    }

    /// Sends this node's state (`PUT /api/okla/v1/nodes/{node_id}`).
    pub async fn put_node_report(
        &self,
        node_id: &str,
        report: &impl serde::Serialize,
    ) -> Result<(), ClientError> {
        let url = self.url(["api", "okla", "v1", "nodes", node_id]);
        let shown = url.to_string();
        let response = self
            .http
            .put(url)
            .json(report)
            .timeout(CALL_TIMEOUT)
            .send()
            .await
            .map_err(|source| ClientError::Http {
                url: shown.clone(),
                source,
            })?;
        check_status(&shown, response).await?;
        Ok(())
    }

    /// Where a version's artifacts are stored, e.g. `mlflow-artifacts:/1/models/m-…/artifacts`.
    pub async fn download_uri(&self, name: &str, version: u64) -> Result<String, ClientError> {
        #[derive(Deserialize)]
        struct Answer {
            artifact_uri: String,
        }
        let url = self.url(["api", "2.0", "mlflow", "model-versions", "get-download-uri"]);
        let shown = url.to_string();
        let version = version.to_string();
        let answer: Option<Answer> = self
            .get_json(url, &[("name", name), ("version", &version)])
            .await?;
        answer
            .map(|answer| answer.artifact_uri)
            .ok_or_else(|| ClientError::Status {
                url: shown,
                status: StatusCode::NOT_FOUND,
                body: format!("model '{name}' version {version} not found"),
            })
    }

    /// Every artifact file of a version with its size and sha256 (okla-native).
    pub async fn version_files(
        &self,
        name: &str,
        version: u64,
    ) -> Result<Vec<VersionFile>, ClientError> {
        #[derive(Deserialize)]
        struct Answer {
            files: Vec<VersionFile>,
        }
        let version = version.to_string();
        let url = self.url([
            "api", "okla", "v1", "models", name, "versions", &version, "files",
        ]);
        let shown = url.to_string();
        let answer: Option<Answer> = self.get_json(url, &[]).await?;
        answer
            .map(|answer| answer.files)
            .ok_or_else(|| ClientError::Status {
                url: shown,
                status: StatusCode::NOT_FOUND,
                body: format!("model '{name}' version {version} not found"),
            })
    }

    /// The artifact proxy's URL for `file` (relative, `/`-separated) under `artifact_path`.
    pub fn artifact_url(&self, artifact_path: &str, file: &str) -> Url {
        let segments = ["api", "2.0", "mlflow-artifacts", "artifacts"]
            .into_iter()
            .chain(artifact_path.split('/').filter(|part| !part.is_empty()))
            .chain(file.split('/'));
        self.url(segments)
    }

    /// Streams `url` into a new file at `dest` (never buffered whole); returns its size and
    /// lowercase hex sha256.
    pub async fn download(&self, url: Url, dest: &Path) -> Result<(u64, String), ClientError> {
        let shown = url.to_string();
        let http_error = |source| ClientError::Http {
            url: shown.clone(),
            source,
        };
        let io_error = |source| ClientError::Io {
            path: dest.to_owned(),
            source,
        };
        let response = self.http.get(url).send().await.map_err(http_error)?;
        let response = check_status(&shown, response).await?;
        let mut file = tokio::fs::File::create(dest).await.map_err(io_error)?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(http_error)?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(io_error)?;
        }
        // On disk before the version directory is renamed into place, so a crash cannot leave
        // a verified-looking version with missing bytes.
        file.sync_all().await.map_err(io_error)?;
        Ok((size, hex::encode(hasher.finalize())))
    }
}

async fn check_status(
    url: &str,
    response: reqwest::Response,
) -> Result<reqwest::Response, ClientError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let mut body = response.text().await.unwrap_or_default();
    body.truncate(body.floor_char_boundary(500));
    Err(ClientError::Status {
        url: url.to_owned(),
        status,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_each_segment() {
        let client = RegistryClient::new("http://registry:5000/prefix/").unwrap();
        assert_eq!(
            client
                .artifact_url("1/models/m-1/artifacts", "sub dir/model.onnx")
                .as_str(),
            "http://registry:5000/prefix/api/2.0/mlflow-artifacts/artifacts/1/models/m-1/artifacts/sub%20dir/model.onnx"
        );
        assert_eq!(
            client
                .url([
                    "api", "okla", "v1", "models", "a/b", "versions", "2", "files"
                ])
                .as_str(),
            "http://registry:5000/prefix/api/okla/v1/models/a%2Fb/versions/2/files"
        );
        assert!(RegistryClient::new("registry:5000").is_err());
        assert!(RegistryClient::new("ftp://registry").is_err());
    }
}
