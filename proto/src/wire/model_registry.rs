//! What MLflow does not keep about registered models (`/api/okla/v1/models/...`): the size and
//! sha256 of every file of a version, and a model's append-only stage/alias history.

use serde::{Deserialize, Serialize};

use crate::mlflow;

/// One file of a model version as the registry recorded it when the version was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionFile {
    /// Relative to the version's source, `/`-separated.
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// `GET /api/okla/v1/models/{name}/versions/{version}/files`. The model version rides along
/// in MLflow's own shape, which this crate does not define.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionFiles {
    #[serde(default)]
    pub model_version: serde_json::Value,
    #[serde(default)]
    pub files: Vec<VersionFile>,
}

/// One change of a model's stages, aliases or deployment. `version` is a string, as in
/// MLflow's own answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub id: i64,
    pub name: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "mlflow::serialize_opt_version_string",
        deserialize_with = "mlflow::deserialize_opt_version"
    )]
    pub version: Option<u64>,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    pub actor: String,
    pub timestamp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// `GET /api/okla/v1/models/{name}/history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelHistory {
    pub name: String,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}
