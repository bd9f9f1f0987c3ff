//! MLflow 3 logged-model endpoints, which `log_model` and `register_model` call.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Fields, lenient_opt_i64};
use super::wire::{KeyValueWire, Listing, LoggedModelWire};
use super::{empty, required};
use crate::auth::Caller;
use crate::domain::KeyValue;
use crate::domain::tracking::{self, LOGGED_MODEL_STATUSES};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::logged_models::{NewLoggedModel, SearchLoggedModels};

fn key_values(
    pairs: Vec<KeyValueWire>,
    validate: fn(&KeyValue) -> Result<(), String>,
) -> Result<Vec<KeyValue>> {
    let pairs: Vec<KeyValue> = pairs.into_iter().map(KeyValue::from).collect();
    for pair in &pairs {
        validate(pair).map_err(Error::invalid)?;
    }
    Ok(pairs)
}

fn model_id(text: &str) -> Result<&str> {
    let well_formed =
        text.len() <= 64 && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if well_formed {
        Ok(text)
    } else {
        Err(Error::invalid(format!("Invalid logged model ID: '{text}'")))
    }
}

#[derive(Deserialize)]
pub(super) struct CreateLoggedModel {
    experiment_id: Option<String>,
    name: Option<String>,
    source_run_id: Option<String>,
    model_type: Option<String>,
    #[serde(default)]
    params: Vec<KeyValueWire>,
    #[serde(default)]
    tags: Vec<KeyValueWire>,
}

pub(super) async fn create(
    State(state): State<AppState>,
    Fields(request): Fields<CreateLoggedModel>,
) -> Result<Json<Value>> {
    let experiment_id =
        tracking::parse_experiment_id(&required(request.experiment_id, "experiment_id")?)
            .map_err(Error::invalid)?;
    let name = request
        .name
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "model".to_owned());
    let source_run_id = request.source_run_id.filter(|id| !id.is_empty());
    if let Some(run_id) = &source_run_id {
        tracking::validate_run_id(run_id).map_err(Error::invalid)?;
        state.store.get_run_info(run_id).await?;
    }
    let model = state
        .store
        .create_logged_model(NewLoggedModel {
            experiment_id,
            name,
            source_run_id,
            model_type: request
                .model_type
                .filter(|model_type| !model_type.is_empty()),
            params: key_values(request.params, tracking::validate_param)?,
            tags: key_values(request.tags, tracking::validate_tag)?,
        })
        .await?;
    Ok(Json(json!({ "model": LoggedModelWire::from(&model) })))
}

pub(super) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let model = state.store.get_logged_model(model_id(&id)?).await?;
    Ok(Json(json!({ "model": LoggedModelWire::from(&model) })))
}

#[derive(Deserialize)]
pub(super) struct FinalizeLoggedModel {
    status: Option<String>,
}

pub(super) async fn finalize(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Fields(request): Fields<FinalizeLoggedModel>,
) -> Result<Json<Value>> {
    let status = required(request.status, "status")?;
    if !LOGGED_MODEL_STATUSES.contains(&status.as_str()) {
        return Err(Error::invalid(format!(
            "Invalid logged model status '{status}'. Must be one of {}",
            LOGGED_MODEL_STATUSES.join(", ")
        )));
    }
    let model = state
        .store
        .set_logged_model_status(model_id(&id)?, &status)
        .await?;
    Ok(Json(json!({ "model": LoggedModelWire::from(&model) })))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    state.store.delete_logged_model(model_id(&id)?).await?;
    Ok(empty())
}

#[derive(Deserialize)]
pub(super) struct SetTags {
    #[serde(default)]
    tags: Vec<KeyValueWire>,
}

pub(super) async fn set_tags(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Fields(request): Fields<SetTags>,
) -> Result<Json<Value>> {
    let tags = key_values(request.tags, tracking::validate_tag)?;
    state
        .store
        .set_logged_model_tags(model_id(&id)?, &tags)
        .await?;
    Ok(empty())
}

pub(super) async fn delete_tag(
    State(state): State<AppState>,
    Path((id, key)): Path<(String, String)>,
) -> Result<Json<Value>> {
    state
        .store
        .delete_logged_model_tag(model_id(&id)?, &key)
        .await?;
    Ok(empty())
}

#[derive(Deserialize)]
pub(super) struct LogParams {
    #[serde(default)]
    params: Vec<KeyValueWire>,
}

pub(super) async fn log_params(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Fields(request): Fields<LogParams>,
) -> Result<Json<Value>> {
    let params = key_values(request.params, tracking::validate_param)?;
    state
        .store
        .log_logged_model_params(model_id(&id)?, &params)
        .await?;
    Ok(empty())
}

#[derive(Deserialize)]
pub(super) struct SearchLoggedModelsRequest {
    #[serde(default)]
    experiment_ids: Vec<String>,
    filter: Option<String>,
    #[serde(default)]
    order_by: Vec<OrderBy>,
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    max_results: Option<i64>,
    page_token: Option<String>,
}

/// Logged-model search takes structured order-by clauses rather than strings.
#[derive(Deserialize)]
struct OrderBy {
    field_name: String,
    #[serde(default = "ascending_default")]
    ascending: bool,
}

fn ascending_default() -> bool {
    true
}

pub(super) async fn search(
    State(state): State<AppState>,
    caller: Caller,
    Fields(request): Fields<SearchLoggedModelsRequest>,
) -> Result<Json<Listing<LoggedModelWire>>> {
    let requested = request
        .experiment_ids
        .iter()
        .map(|id| tracking::parse_experiment_id(id).map_err(Error::invalid))
        .collect::<Result<Vec<_>>>()?;
    let experiment_ids = caller
        .readable_experiments(&state.auth, requested.clone())
        .await?;
    if experiment_ids.is_empty() && !requested.is_empty() {
        return Ok(Json(Listing::of("models", crate::store::Page::default())));
    }
    let order_by: Vec<String> = request
        .order_by
        .iter()
        .map(|clause| {
            format!(
                "{} {}",
                clause.field_name,
                if clause.ascending { "ASC" } else { "DESC" }
            )
        })
        .collect();
    let page = state
        .store
        .search_logged_models(SearchLoggedModels {
            experiment_ids: &experiment_ids,
            filter: request.filter.as_deref().unwrap_or(""),
            max_results: request.max_results,
            order_by: &order_by,
            page_token: request.page_token.as_deref(),
        })
        .await?;
    Ok(Json(Listing::of("models", page)))
}
