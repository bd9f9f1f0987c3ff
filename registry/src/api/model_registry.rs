//! MLflow model-registry endpoints: registered models, versions, stages, aliases and tags.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Actor, Fields, lenient_opt_i64};
use super::wire::{KeyValueWire, Listing, ModelVersionWire, RegisteredModelWire};
use super::{empty, required};
use crate::auth::Caller;
use crate::domain::KeyValue;
use crate::domain::auth::ResourceType;
use crate::domain::model_registry::{self, Stage, VersionSource};
use crate::domain::sources::{self, SourceOwners};
use crate::domain::tracking;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::model_registry::{Change, NewModelVersion, SearchModels};

fn model_name(name: Option<String>) -> Result<String> {
    let name = required(name, "name")?;
    model_registry::validate_model_name(&name).map_err(Error::invalid)?;
    Ok(name)
}

/// Versions arrive as strings ("1") from the mlflow client, and as numbers from some others.
fn version_number(version: Option<Value>) -> Result<i64> {
    let text = match required(version, "version")? {
        Value::String(text) => text,
        Value::Number(number) => number.to_string(),
        other => {
            return Err(Error::invalid(format!(
                "Invalid value {other} for parameter 'version' supplied"
            )));
        }
    };
    model_registry::parse_version(&text).map_err(Error::invalid)
}

fn validated_tags(tags: Vec<KeyValueWire>) -> Result<Vec<KeyValue>> {
    let tags: Vec<KeyValue> = tags.into_iter().map(KeyValue::from).collect();
    for tag in &tags {
        tracking::validate_tag(tag).map_err(Error::invalid)?;
    }
    Ok(tags)
}

fn change<'a>(actor: &'a Actor, comment: Option<&'a str>) -> Change<'a> {
    Change {
        actor: &actor.0,
        comment,
    }
}

// ----- registered models -----

#[derive(Deserialize)]
pub(super) struct CreateModel {
    name: Option<String>,
    #[serde(default)]
    tags: Vec<KeyValueWire>,
    description: Option<String>,
}

pub(super) async fn create_registered_model(
    State(state): State<AppState>,
    caller: Caller,
    Fields(request): Fields<CreateModel>,
) -> Result<Json<Value>> {
    let name = model_name(request.name)?;
    let tags = validated_tags(request.tags)?;
    let model = state
        .store
        .create_owned_registered_model(
            &name,
            request.description.as_deref(),
            &tags,
            caller.0.user_id(),
        )
        .await?;
    caller.forget_own_grants(&state.auth);
    Ok(Json(
        json!({ "registered_model": RegisteredModelWire::from(&model) }),
    ))
}

#[derive(Deserialize)]
pub(super) struct ModelRef {
    name: Option<String>,
    comment: Option<String>,
}

pub(super) async fn get_registered_model(
    State(state): State<AppState>,
    Fields(request): Fields<ModelRef>,
) -> Result<Json<Value>> {
    let model = state
        .store
        .get_registered_model(&model_name(request.name)?)
        .await?;
    Ok(Json(
        json!({ "registered_model": RegisteredModelWire::from(&model) }),
    ))
}

#[derive(Deserialize)]
pub(super) struct RenameModel {
    name: Option<String>,
    new_name: Option<String>,
}

pub(super) async fn rename_registered_model(
    State(state): State<AppState>,
    actor: Actor,
    Fields(request): Fields<RenameModel>,
) -> Result<Json<Value>> {
    let name = model_name(request.name)?;
    let new_name = required(request.new_name, "new_name")?;
    model_registry::validate_model_name(&new_name).map_err(Error::invalid)?;
    let model = state
        .store
        .rename_registered_model(&name, &new_name, &change(&actor, None))
        .await?;
    // The model's grants moved to the new name.
    state.auth.forget_all_grants();
    Ok(Json(
        json!({ "registered_model": RegisteredModelWire::from(&model) }),
    ))
}

#[derive(Deserialize)]
pub(super) struct UpdateModel {
    name: Option<String>,
    description: Option<String>,
}

pub(super) async fn update_registered_model(
    State(state): State<AppState>,
    Fields(request): Fields<UpdateModel>,
) -> Result<Json<Value>> {
    let name = model_name(request.name)?;
    let model = state
        .store
        .update_registered_model(&name, request.description.as_deref())
        .await?;
    Ok(Json(
        json!({ "registered_model": RegisteredModelWire::from(&model) }),
    ))
}

pub(super) async fn delete_registered_model(
    State(state): State<AppState>,
    actor: Actor,
    Fields(request): Fields<ModelRef>,
) -> Result<Json<Value>> {
    let name = model_name(request.name)?;
    state
        .store
        .delete_registered_model(&name, &change(&actor, request.comment.as_deref()))
        .await?;
    state.auth.forget_all_grants();
    Ok(empty())
}

#[derive(Deserialize, Default)]
pub(super) struct SearchRequest {
    filter: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<String>,
    page_token: Option<String>,
}

impl SearchRequest {
    fn as_search(&self) -> SearchModels<'_> {
        SearchModels {
            filter: self.filter.as_deref().unwrap_or(""),
            max_results: self.max_results,
            order_by: &self.order_by,
            page_token: self.page_token.as_deref(),
        }
    }
}

pub(super) async fn search_registered_models(
    State(state): State<AppState>,
    caller: Caller,
    Fields(request): Fields<SearchRequest>,
) -> Result<Json<Listing<RegisteredModelWire>>> {
    let mut page = state
        .store
        .search_registered_models(request.as_search())
        .await?;
    page.items = caller
        .readable(
            &state.auth,
            ResourceType::RegisteredModel,
            page.items,
            |model| model.name.clone(),
        )
        .await?;
    Ok(Json(Listing::of("registered_models", page)))
}

#[derive(Deserialize)]
pub(super) struct ModelTag {
    name: Option<String>,
    key: Option<String>,
    #[serde(default)]
    value: String,
}

pub(super) async fn set_registered_model_tag(
    State(state): State<AppState>,
    Fields(request): Fields<ModelTag>,
) -> Result<Json<Value>> {
    let name = model_name(request.name)?;
    let tag = KeyValue {
        key: required(request.key, "key")?,
        value: request.value,
    };
    tracking::validate_tag(&tag).map_err(Error::invalid)?;
    state.store.set_registered_model_tag(&name, &tag).await?;
    Ok(empty())
}

pub(super) async fn delete_registered_model_tag(
    State(state): State<AppState>,
    Fields(request): Fields<ModelTag>,
) -> Result<Json<Value>> {
    let name = model_name(request.name)?;
    state
        .store
        .delete_registered_model_tag(&name, &required(request.key, "key")?)
        .await?;
    Ok(empty())
}

#[derive(Deserialize)]
pub(super) struct LatestVersions {
    name: Option<String>,
    #[serde(default)]
    stages: Vec<String>,
}

pub(super) async fn get_latest_versions(
    State(state): State<AppState>,
    Fields(request): Fields<LatestVersions>,
) -> Result<Json<Value>> {
    let name = model_name(request.name)?;
    let stages = request
        .stages
        .iter()
        .map(|stage| Stage::parse(stage))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::invalid)?;
    let versions = state.store.get_latest_versions(&name, &stages).await?;
    let versions: Vec<ModelVersionWire> = versions.iter().map(ModelVersionWire::from).collect();
    Ok(Json(json!({ "model_versions": versions })))
}

// ----- aliases -----

#[derive(Deserialize)]
pub(super) struct AliasRequest {
    name: Option<String>,
    alias: Option<String>,
    version: Option<Value>,
    comment: Option<String>,
}

pub(super) async fn set_alias(
    State(state): State<AppState>,
    actor: Actor,
    Fields(request): Fields<AliasRequest>,
) -> Result<Json<Value>> {
    let name = model_name(request.name)?;
    let alias = required(request.alias, "alias")?;
    model_registry::validate_alias(&alias).map_err(Error::invalid)?;
    let version = version_number(request.version)?;
    state
        .store
        .set_alias(
            &name,
            &alias,
            version,
            &change(&actor, request.comment.as_deref()),
        )
        .await?;
    Ok(empty())
}

pub(super) async fn delete_alias(
    State(state): State<AppState>,
    actor: Actor,
    Fields(request): Fields<AliasRequest>,
) -> Result<Json<Value>> {
    let name = model_name(request.name)?;
    let alias = required(request.alias, "alias")?;
    state
        .store
        .delete_alias(&name, &alias, &change(&actor, request.comment.as_deref()))
        .await?;
    Ok(empty())
}

pub(super) async fn get_version_by_alias(
    State(state): State<AppState>,
    Fields(request): Fields<AliasRequest>,
) -> Result<Json<Value>> {
    let name = model_name(request.name)?;
    let alias = required(request.alias, "alias")?;
    let version = state.store.get_version_by_alias(&name, &alias).await?;
    Ok(Json(
        json!({ "model_version": ModelVersionWire::from(&version) }),
    ))
}

// ----- versions -----

#[derive(Deserialize)]
pub(super) struct CreateVersion {
    name: Option<String>,
    source: Option<String>,
    run_id: Option<String>,
    #[serde(default)]
    tags: Vec<KeyValueWire>,
    run_link: Option<String>,
    description: Option<String>,
    model_id: Option<String>,
}

pub(super) async fn create_model_version(
    State(state): State<AppState>,
    actor: Actor,
    Fields(request): Fields<CreateVersion>,
) -> Result<Json<Value>> {
    let name = model_name(request.name)?;
    let source = required(request.source.filter(|source| !source.is_empty()), "source")?;
    let tags = validated_tags(request.tags)?;
    let model_id = request.model_id.filter(|id| !id.is_empty());
    // The model must exist before any artifact is read, so a typo costs nothing.
    state.store.get_registered_model(&name).await?;
    let mut run_id = request.run_id.filter(|id| !id.is_empty());
    // MLflow fills a version's run from its logged model when the client names only the model.
    if let (None, Some(model_id)) = (&run_id, &model_id) {
        run_id = state.store.get_logged_model(model_id).await?.source_run_id;
    }
    if let Some(run_id) = &run_id {
        tracking::validate_run_id(run_id).map_err(Error::invalid)?;
    }
    let storage_location =
        resolve_source(&state, &source, run_id.as_deref(), model_id.as_deref()).await?;
    let files = match storage_location
        .as_deref()
        .and_then(super::artifacts::proxied_path)
    {
        Some(path) => super::artifacts::digest_files(&state, path).await?,
        None => Vec::new(),
    };
    let version = state
        .store
        .create_model_version(NewModelVersion {
            name,
            source,
            run_id,
            run_link: request.run_link,
            description: request.description,
            user_id: None,
            model_id,
            storage_location,
            tags,
            files,
            actor: actor.0,
        })
        .await?;
    Ok(Json(
        json!({ "model_version": ModelVersionWire::from(&version) }),
    ))
}

/// Checks the source against the run or logged model the request names, as MLflow does, then
/// finds where the version's files live.
async fn resolve_source(
    state: &AppState,
    source: &str,
    run_id: Option<&str>,
    model_id: Option<&str>,
) -> Result<Option<String>> {
    let run_artifact_uri = match run_id {
        Some(run_id) => Some(state.store.get_run_info(run_id).await?.artifact_uri),
        None => None,
    };
    let model_artifact_location = match model_id {
        Some(model_id) => Some(
            state
                .store
                .get_logged_model(model_id)
                .await?
                .artifact_location,
        ),
        None => None,
    };
    sources::validate_source(
        source,
        SourceOwners {
            run_id,
            run_artifact_uri: run_artifact_uri.as_deref(),
            model_id,
            model_artifact_location: model_artifact_location.as_deref(),
        },
    )
    .map_err(Error::invalid)?;
    match VersionSource::parse(source) {
        VersionSource::LoggedModel(_) => Ok(model_artifact_location),
        VersionSource::Run {
            run_id: source_run_id,
            path,
        } => {
            let run = state.store.get_run_info(&source_run_id).await?;
            let base = run.artifact_uri.trim_end_matches('/');
            Ok(Some(if path.is_empty() {
                base.to_owned()
            } else {
                format!("{base}/{path}")
            }))
        }
        VersionSource::Uri(uri) => Ok(Some(uri)),
    }
}

#[derive(Deserialize)]
pub(super) struct VersionRef {
    name: Option<String>,
    version: Option<Value>,
    comment: Option<String>,
}

pub(super) async fn get_model_version(
    State(state): State<AppState>,
    Fields(request): Fields<VersionRef>,
) -> Result<Json<Value>> {
    let version = state
        .store
        .get_model_version(&model_name(request.name)?, version_number(request.version)?)
        .await?;
    Ok(Json(
        json!({ "model_version": ModelVersionWire::from(&version) }),
    ))
}

#[derive(Deserialize)]
pub(super) struct UpdateVersion {
    name: Option<String>,
    version: Option<Value>,
    description: Option<String>,
}

pub(super) async fn update_model_version(
    State(state): State<AppState>,
    Fields(request): Fields<UpdateVersion>,
) -> Result<Json<Value>> {
    let name = model_name(request.name)?;
    let version = version_number(request.version)?;
    let updated = state
        .store
        .update_model_version(&name, version, request.description.as_deref())
        .await?;
    Ok(Json(
        json!({ "model_version": ModelVersionWire::from(&updated) }),
    ))
}

pub(super) async fn delete_model_version(
    State(state): State<AppState>,
    actor: Actor,
    Fields(request): Fields<VersionRef>,
) -> Result<Json<Value>> {
    let name = model_name(request.name)?;
    let version = version_number(request.version)?;
    state
        .store
        .delete_model_version(&name, version, &change(&actor, request.comment.as_deref()))
        .await?;
    Ok(empty())
}

#[derive(Deserialize)]
pub(super) struct TransitionStage {
    name: Option<String>,
    version: Option<Value>,
    stage: Option<String>,
    #[serde(default)]
    archive_existing_versions: bool,
    comment: Option<String>,
}

pub(super) async fn transition_stage(
    State(state): State<AppState>,
    actor: Actor,
    Fields(request): Fields<TransitionStage>,
) -> Result<Json<Value>> {
    let name = model_name(request.name)?;
    let version = version_number(request.version)?;
    let stage = Stage::parse(&required(request.stage, "stage")?).map_err(Error::invalid)?;
    let updated = state
        .store
        .transition_stage(
            &name,
            version,
            stage,
            request.archive_existing_versions,
            &change(&actor, request.comment.as_deref()),
        )
        .await?;
    Ok(Json(
        json!({ "model_version": ModelVersionWire::from(&updated) }),
    ))
}

pub(super) async fn search_model_versions(
    State(state): State<AppState>,
    caller: Caller,
    Fields(request): Fields<SearchRequest>,
) -> Result<Json<Listing<ModelVersionWire>>> {
    let mut page = state
        .store
        .search_model_versions(request.as_search())
        .await?;
    page.items = caller
        .readable(
            &state.auth,
            ResourceType::RegisteredModel,
            page.items,
            |version| version.name.clone(),
        )
        .await?;
    Ok(Json(Listing::of("model_versions", page)))
}

#[derive(Deserialize)]
pub(super) struct VersionTag {
    name: Option<String>,
    version: Option<Value>,
    key: Option<String>,
    #[serde(default)]
    value: String,
}

pub(super) async fn set_model_version_tag(
    State(state): State<AppState>,
    Fields(request): Fields<VersionTag>,
) -> Result<Json<Value>> {
    let name = model_name(request.name)?;
    let version = version_number(request.version)?;
    let tag = KeyValue {
        key: required(request.key, "key")?,
        value: request.value,
    };
    tracking::validate_tag(&tag).map_err(Error::invalid)?;
    state
        .store
        .set_model_version_tag(&name, version, &tag)
        .await?;
    Ok(empty())
}

pub(super) async fn delete_model_version_tag(
    State(state): State<AppState>,
    Fields(request): Fields<VersionTag>,
) -> Result<Json<Value>> {
    let name = model_name(request.name)?;
    let version = version_number(request.version)?;
    state
        .store
        .delete_model_version_tag(&name, version, &required(request.key, "key")?)
        .await?;
    Ok(empty())
}

pub(super) async fn get_download_uri(
    State(state): State<AppState>,
    Fields(request): Fields<VersionRef>,
) -> Result<Json<Value>> {
    let version = state
        .store
        .get_model_version(&model_name(request.name)?, version_number(request.version)?)
        .await?;
    let uri = version
        .storage_location
        .clone()
        .unwrap_or_else(|| version.source.clone());
    Ok(Json(json!({ "artifact_uri": uri })))
}
