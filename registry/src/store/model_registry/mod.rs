//! Queries for registered models, model versions, aliases, artifact digests and the model
//! history: the request types and row readers here, the queries by entity in `models.rs`,
//! `versions.rs` and `aliases.rs`.

mod aliases;
mod models;
mod versions;

use sqlx::any::AnyRow;

use super::sql::{get_i64, get_opt_text, get_text};
pub use super::transaction::Change;
use crate::domain::KeyValue;
use crate::domain::model_registry::{ModelVersion, RegisteredModel, VersionFile};
use crate::error::Result;

/// What `model-versions/create` records; `files` were hashed from the artifact store beforehand.
#[derive(Debug, Clone, Default)]
pub struct NewModelVersion {
    pub name: String,
    pub source: String,
    pub run_id: Option<String>,
    pub run_link: Option<String>,
    pub description: Option<String>,
    pub user_id: Option<String>,
    pub model_id: Option<String>,
    pub storage_location: Option<String>,
    pub tags: Vec<KeyValue>,
    pub files: Vec<VersionFile>,
    /// Who registered the version, for its `model.version.created` event.
    pub actor: String,
}

pub struct SearchModels<'a> {
    pub filter: &'a str,
    pub max_results: Option<i64>,
    pub order_by: &'a [String],
    pub page_token: Option<&'a str>,
}

pub(super) const VERSION_COLUMNS: &str = "model_versions.name, model_versions.version, model_versions.creation_timestamp, \
    model_versions.last_updated_timestamp, model_versions.description, model_versions.user_id, \
    model_versions.current_stage, model_versions.source, model_versions.run_id, model_versions.run_link, \
    model_versions.status, model_versions.status_message, model_versions.storage_location, model_versions.model_id";

pub(super) const MODEL_COLUMNS: &str = "registered_models.name, registered_models.creation_timestamp, \
    registered_models.last_updated_timestamp, registered_models.description";

pub(super) fn model_from_row(row: &AnyRow) -> Result<RegisteredModel> {
    Ok(RegisteredModel {
        name: get_text(row, "name")?,
        creation_timestamp: get_i64(row, "creation_timestamp")?,
        last_updated_timestamp: get_i64(row, "last_updated_timestamp")?,
        description: get_opt_text(row, "description")?,
        tags: Vec::new(),
        aliases: Vec::new(),
        latest_versions: Vec::new(),
    })
}

pub(super) fn version_from_row(row: &AnyRow) -> Result<ModelVersion> {
    Ok(ModelVersion {
        name: get_text(row, "name")?,
        version: get_i64(row, "version")?,
        creation_timestamp: get_i64(row, "creation_timestamp")?,
        last_updated_timestamp: get_i64(row, "last_updated_timestamp")?,
        description: get_opt_text(row, "description")?,
        user_id: get_opt_text(row, "user_id")?,
        current_stage: get_text(row, "current_stage")?,
        source: get_text(row, "source")?,
        run_id: get_opt_text(row, "run_id")?,
        run_link: get_opt_text(row, "run_link")?,
        status: get_text(row, "status")?,
        status_message: get_opt_text(row, "status_message")?,
        storage_location: get_opt_text(row, "storage_location")?,
        model_id: get_opt_text(row, "model_id")?,
        tags: Vec::new(),
        aliases: Vec::new(),
    })
}
