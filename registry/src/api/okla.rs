//! okla-native endpoints (`/api/okla/v1/...`): what MLflow does not keep, such as the sha256 of
//! every file of a model version and the append-only stage/alias history of a model.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::wire::{ModelVersionWire, history_entry, version_file};
use crate::domain::model_registry;
use crate::error::{Error, Result};
use crate::state::AppState;

pub(super) async fn version_files(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let version = model_registry::parse_version(&version).map_err(Error::invalid)?;
    let model_version = state.store.get_model_version(&name, version).await?;
    let files = state.store.version_files(&name, version).await?;
    let files: Vec<okla_proto::wire::VersionFile> = files.iter().map(version_file).collect();
    Ok(Json(
        json!({ "model_version": ModelVersionWire::from(&model_version), "files": files }),
    ))
}

pub(super) async fn model_history(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    let entries = state.store.model_history(&name).await?;
    let history = okla_proto::wire::ModelHistory {
        name,
        history: entries.iter().map(history_entry).collect(),
    };
    Ok(Json(json!(history)))
}
