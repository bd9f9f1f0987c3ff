//! MLflow tracking endpoints: experiments, runs, params, metrics, tags, inputs and outputs.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Fields, lenient_f64, lenient_i64, lenient_opt_i64};
use super::wire::{ExperimentWire, KeyValueWire, Listing, MetricWire, RunInfoWire, RunWire};
use super::{empty, required};
use crate::auth::Caller;
use crate::domain::auth::ResourceType;
use crate::domain::tracking::{self, DatasetInput, Metric, RunStatus};
use crate::domain::{KeyValue, LifecycleStage, ViewType, now_millis};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::tracking::{Batch, NewRun, RunUpdate, SearchExperiments, SearchRuns};

fn parse_experiment_id(text: &str) -> Result<i64> {
    tracking::parse_experiment_id(text).map_err(Error::invalid)
}

fn validated_tags(tags: Vec<KeyValueWire>) -> Result<Vec<KeyValue>> {
    let tags: Vec<KeyValue> = tags.into_iter().map(KeyValue::from).collect();
    for tag in &tags {
        tracking::validate_tag(tag).map_err(Error::invalid)?;
    }
    Ok(tags)
}

/// The client sends both `run_id` and the legacy `run_uuid`; other clients may send either.
#[derive(Deserialize)]
pub(super) struct RunRef {
    run_id: Option<String>,
    run_uuid: Option<String>,
}

impl RunRef {
    fn resolve(self) -> Result<String> {
        let run_id = required(
            self.run_id.or(self.run_uuid).filter(|id| !id.is_empty()),
            "run_id",
        )?;
        tracking::validate_run_id(&run_id).map_err(Error::invalid)?;
        Ok(run_id)
    }
}

// ----- experiments -----

#[derive(Deserialize)]
pub(super) struct CreateExperiment {
    name: Option<String>,
    artifact_location: Option<String>,
    #[serde(default)]
    tags: Vec<KeyValueWire>,
}

pub(super) async fn create_experiment(
    State(state): State<AppState>,
    caller: Caller,
    Fields(request): Fields<CreateExperiment>,
) -> Result<Json<Value>> {
    let name = required(request.name, "name")?;
    tracking::validate_experiment_name(&name).map_err(Error::invalid)?;
    let tags = validated_tags(request.tags)?;
    let experiment_id = state
        .store
        .create_owned_experiment(
            &name,
            request
                .artifact_location
                .as_deref()
                .filter(|location| !location.is_empty()),
            &tags,
            caller.0.user_id(),
        )
        .await?;
    caller.forget_own_grants(&state.auth);
    Ok(Json(json!({ "experiment_id": experiment_id.to_string() })))
}

#[derive(Deserialize)]
pub(super) struct ExperimentRef {
    experiment_id: Option<String>,
}

pub(super) async fn get_experiment(
    State(state): State<AppState>,
    Fields(request): Fields<ExperimentRef>,
) -> Result<Json<Value>> {
    let experiment_id = parse_experiment_id(&required(request.experiment_id, "experiment_id")?)?;
    let experiment = state.store.get_experiment(experiment_id).await?;
    Ok(Json(
        json!({ "experiment": ExperimentWire::from(&experiment) }),
    ))
}

#[derive(Deserialize)]
pub(super) struct ExperimentByName {
    experiment_name: Option<String>,
}

pub(super) async fn get_experiment_by_name(
    State(state): State<AppState>,
    Fields(request): Fields<ExperimentByName>,
) -> Result<Json<Value>> {
    let name = required(request.experiment_name, "experiment_name")?;
    let experiment = state.store.get_experiment_by_name(&name).await?;
    Ok(Json(
        json!({ "experiment": ExperimentWire::from(&experiment) }),
    ))
}

#[derive(Deserialize, Default)]
pub(super) struct SearchExperimentsRequest {
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    max_results: Option<i64>,
    filter: Option<String>,
    #[serde(default)]
    order_by: Vec<String>,
    view_type: Option<String>,
    page_token: Option<String>,
}

pub(super) async fn search_experiments(
    State(state): State<AppState>,
    caller: Caller,
    Fields(request): Fields<SearchExperimentsRequest>,
) -> Result<Json<Listing<ExperimentWire>>> {
    let view_type = ViewType::parse(request.view_type.as_deref()).map_err(Error::invalid)?;
    let mut page = state
        .store
        .search_experiments(SearchExperiments {
            filter: request.filter.as_deref().unwrap_or(""),
            view_type,
            max_results: request.max_results,
            order_by: &request.order_by,
            page_token: request.page_token.as_deref(),
        })
        .await?;
    page.items = caller
        .readable(
            &state.auth,
            ResourceType::Experiment,
            page.items,
            |experiment| experiment.experiment_id.to_string(),
        )
        .await?;
    Ok(Json(Listing::<ExperimentWire>::of("experiments", page)))
}

#[derive(Deserialize)]
pub(super) struct UpdateExperiment {
    experiment_id: Option<String>,
    new_name: Option<String>,
}

pub(super) async fn update_experiment(
    State(state): State<AppState>,
    Fields(request): Fields<UpdateExperiment>,
) -> Result<Json<Value>> {
    let experiment_id = parse_experiment_id(&required(request.experiment_id, "experiment_id")?)?;
    if let Some(new_name) = request.new_name {
        tracking::validate_experiment_name(&new_name).map_err(Error::invalid)?;
        state
            .store
            .rename_experiment(experiment_id, &new_name)
            .await?;
    }
    Ok(empty())
}

pub(super) async fn delete_experiment(
    State(state): State<AppState>,
    Fields(request): Fields<ExperimentRef>,
) -> Result<Json<Value>> {
    let experiment_id = parse_experiment_id(&required(request.experiment_id, "experiment_id")?)?;
    state
        .store
        .set_experiment_lifecycle(experiment_id, LifecycleStage::Deleted)
        .await?;
    Ok(empty())
}

pub(super) async fn restore_experiment(
    State(state): State<AppState>,
    Fields(request): Fields<ExperimentRef>,
) -> Result<Json<Value>> {
    let experiment_id = parse_experiment_id(&required(request.experiment_id, "experiment_id")?)?;
    state
        .store
        .set_experiment_lifecycle(experiment_id, LifecycleStage::Active)
        .await?;
    Ok(empty())
}

#[derive(Deserialize)]
pub(super) struct ExperimentTag {
    experiment_id: Option<String>,
    key: Option<String>,
    #[serde(default)]
    value: String,
}

pub(super) async fn set_experiment_tag(
    State(state): State<AppState>,
    Fields(request): Fields<ExperimentTag>,
) -> Result<Json<Value>> {
    let experiment_id = parse_experiment_id(&required(request.experiment_id, "experiment_id")?)?;
    let tag = KeyValue {
        key: required(request.key, "key")?,
        value: request.value,
    };
    tracking::validate_tag(&tag).map_err(Error::invalid)?;
    state.store.set_experiment_tag(experiment_id, &tag).await?;
    Ok(empty())
}

pub(super) async fn delete_experiment_tag(
    State(state): State<AppState>,
    Fields(request): Fields<ExperimentTag>,
) -> Result<Json<Value>> {
    let experiment_id = parse_experiment_id(&required(request.experiment_id, "experiment_id")?)?;
    let key = required(request.key, "key")?;
    state
        .store
        .delete_experiment_tag(experiment_id, &key)
        .await?;
    Ok(empty())
}

// ----- runs -----

#[derive(Deserialize)]
pub(super) struct CreateRun {
    experiment_id: Option<String>,
    user_id: Option<String>,
    run_name: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    start_time: Option<i64>,
    #[serde(default)]
    tags: Vec<KeyValueWire>,
}

pub(super) async fn create_run(
    State(state): State<AppState>,
    Fields(request): Fields<CreateRun>,
) -> Result<Json<Value>> {
    let experiment_id = parse_experiment_id(request.experiment_id.as_deref().unwrap_or("0"))?;
    let tags = validated_tags(request.tags)?;
    let user_id = request
        .user_id
        .or_else(|| {
            tags.iter()
                .find(|tag| tag.key == "mlflow.user")
                .map(|tag| tag.value.clone())
        })
        .unwrap_or_default();
    let run = state
        .store
        .create_run(NewRun {
            experiment_id,
            user_id,
            run_name: request.run_name,
            start_time: request.start_time.unwrap_or_else(now_millis),
            tags,
        })
        .await?;
    Ok(Json(json!({ "run": RunWire::from(&run) })))
}

pub(super) async fn get_run(
    State(state): State<AppState>,
    Fields(request): Fields<RunRef>,
) -> Result<Json<Value>> {
    let run = state.store.get_run(&request.resolve()?).await?;
    Ok(Json(json!({ "run": RunWire::from(&run) })))
}

#[derive(Deserialize)]
pub(super) struct UpdateRun {
    run_id: Option<String>,
    run_uuid: Option<String>,
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    end_time: Option<i64>,
    run_name: Option<String>,
}

pub(super) async fn update_run(
    State(state): State<AppState>,
    Fields(request): Fields<UpdateRun>,
) -> Result<Json<Value>> {
    let run_id = RunRef {
        run_id: request.run_id,
        run_uuid: request.run_uuid,
    }
    .resolve()?;
    let status = request
        .status
        .as_deref()
        .map(RunStatus::parse)
        .transpose()
        .map_err(Error::invalid)?;
    if let Some(name) = &request.run_name {
        tracking::validate_tag(&KeyValue {
            key: tracking::RUN_NAME_TAG.to_owned(),
            value: name.clone(),
        })
        .map_err(Error::invalid)?;
    }
    let info = state
        .store
        .update_run(
            &run_id,
            RunUpdate {
                status,
                end_time: request.end_time,
                run_name: request.run_name.filter(|name| !name.is_empty()),
            },
        )
        .await?;
    Ok(Json(json!({ "run_info": RunInfoWire::from(&info) })))
}

pub(super) async fn delete_run(
    State(state): State<AppState>,
    Fields(request): Fields<RunRef>,
) -> Result<Json<Value>> {
    state
        .store
        .set_run_lifecycle(&request.resolve()?, LifecycleStage::Deleted)
        .await?;
    Ok(empty())
}

pub(super) async fn restore_run(
    State(state): State<AppState>,
    Fields(request): Fields<RunRef>,
) -> Result<Json<Value>> {
    state
        .store
        .set_run_lifecycle(&request.resolve()?, LifecycleStage::Active)
        .await?;
    Ok(empty())
}

#[derive(Deserialize)]
pub(super) struct KeyValueRequest {
    run_id: Option<String>,
    run_uuid: Option<String>,
    key: Option<String>,
    value: Option<serde_json::Value>,
}

impl KeyValueRequest {
    /// MLflow stores param and tag values as strings; a number sent by another client is kept as text.
    fn into_parts(self) -> Result<(String, KeyValue)> {
        let run_id = RunRef {
            run_id: self.run_id,
            run_uuid: self.run_uuid,
        }
        .resolve()?;
        let key = required(self.key, "key")?;
        let value = match required(self.value, "value")? {
            serde_json::Value::String(text) => text,
            serde_json::Value::Null => {
                return Err(Error::invalid(
                    "Missing value for required parameter 'value'",
                ));
            }
            other => other.to_string(),
        };
        Ok((run_id, KeyValue { key, value }))
    }
}

pub(super) async fn log_param(
    State(state): State<AppState>,
    Fields(request): Fields<KeyValueRequest>,
) -> Result<Json<Value>> {
    let (run_id, param) = request.into_parts()?;
    tracking::validate_param(&param).map_err(Error::invalid)?;
    state
        .store
        .log_batch(
            &run_id,
            Batch {
                params: vec![param],
                ..Batch::default()
            },
        )
        .await?;
    Ok(empty())
}

pub(super) async fn set_tag(
    State(state): State<AppState>,
    Fields(request): Fields<KeyValueRequest>,
) -> Result<Json<Value>> {
    let (run_id, tag) = request.into_parts()?;
    tracking::validate_tag(&tag).map_err(Error::invalid)?;
    state
        .store
        .log_batch(
            &run_id,
            Batch {
                tags: vec![tag],
                ..Batch::default()
            },
        )
        .await?;
    Ok(empty())
}

#[derive(Deserialize)]
pub(super) struct DeleteTag {
    run_id: Option<String>,
    run_uuid: Option<String>,
    key: Option<String>,
}

pub(super) async fn delete_tag(
    State(state): State<AppState>,
    Fields(request): Fields<DeleteTag>,
) -> Result<Json<Value>> {
    let run_id = RunRef {
        run_id: request.run_id,
        run_uuid: request.run_uuid,
    }
    .resolve()?;
    let key = required(request.key, "key")?;
    state.store.delete_run_tag(&run_id, &key).await?;
    Ok(empty())
}

/// One metric: the body of `log-metric`, or an entry of `log-batch` (where MLflow's client may
/// repeat the run id, which the batch's own run id overrides).
#[derive(Deserialize)]
pub(super) struct MetricRequest {
    run_id: Option<String>,
    run_uuid: Option<String>,
    key: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_f64")]
    value: Option<f64>,
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    timestamp: Option<i64>,
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    step: Option<i64>,
    model_id: Option<String>,
}

fn lenient_opt_f64<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapper(#[serde(deserialize_with = "lenient_f64")] f64);
    Ok(Option::<Wrapper>::deserialize(deserializer)?.map(|Wrapper(value)| value))
}

impl MetricRequest {
    fn into_metric(self) -> Result<(Metric, Option<String>)> {
        let metric = Metric {
            key: required(self.key, "key")?,
            value: required(self.value, "value")?,
            timestamp: required(self.timestamp, "timestamp")?,
            step: self.step.unwrap_or(0),
        };
        tracking::validate_metric(&metric).map_err(Error::invalid)?;
        Ok((metric, self.model_id.filter(|id| !id.is_empty())))
    }
}

pub(super) async fn log_metric(
    State(state): State<AppState>,
    Fields(mut request): Fields<MetricRequest>,
) -> Result<Json<Value>> {
    let run_id = RunRef {
        run_id: request.run_id.take(),
        run_uuid: request.run_uuid.take(),
    }
    .resolve()?;
    let (metric, model_id) = request.into_metric()?;
    let model_metrics = model_id
        .map(|model_id| vec![(model_id, metric.clone())])
        .unwrap_or_default();
    state
        .store
        .log_batch(
            &run_id,
            Batch {
                metrics: vec![metric],
                model_metrics,
                ..Batch::default()
            },
        )
        .await?;
    Ok(empty())
}

#[derive(Deserialize)]
pub(super) struct LogBatch {
    run_id: Option<String>,
    run_uuid: Option<String>,
    #[serde(default)]
    metrics: Vec<MetricRequest>,
    #[serde(default)]
    params: Vec<KeyValueWire>,
    #[serde(default)]
    tags: Vec<KeyValueWire>,
}

pub(super) async fn log_batch(
    State(state): State<AppState>,
    Fields(request): Fields<LogBatch>,
) -> Result<Json<Value>> {
    let run_id = RunRef {
        run_id: request.run_id,
        run_uuid: request.run_uuid,
    }
    .resolve()?;
    tracking::validate_batch_sizes(
        request.metrics.len(),
        request.params.len(),
        request.tags.len(),
    )
    .map_err(Error::invalid)?;
    let mut batch = Batch::default();
    for metric in request.metrics {
        let (metric, model_id) = metric.into_metric()?;
        if let Some(model_id) = model_id {
            batch.model_metrics.push((model_id, metric.clone()));
        }
        batch.metrics.push(metric);
    }
    for param in request.params {
        let param = KeyValue::from(param);
        tracking::validate_param(&param).map_err(Error::invalid)?;
        batch.params.push(param);
    }
    batch.tags = validated_tags(request.tags)?;
    state.store.log_batch(&run_id, batch).await?;
    Ok(empty())
}

#[derive(Deserialize)]
pub(super) struct MetricHistory {
    run_id: Option<String>,
    run_uuid: Option<String>,
    metric_key: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    max_results: Option<i64>,
    page_token: Option<String>,
}

pub(super) async fn get_metric_history(
    State(state): State<AppState>,
    Fields(request): Fields<MetricHistory>,
) -> Result<Json<Listing<MetricWire>>> {
    let run_id = RunRef {
        run_id: request.run_id,
        run_uuid: request.run_uuid,
    }
    .resolve()?;
    let key = required(request.metric_key, "metric_key")?;
    let page = state
        .store
        .get_metric_history(
            &run_id,
            &key,
            request.max_results,
            request.page_token.as_deref(),
        )
        .await?;
    Ok(Json(Listing::of("metrics", page)))
}

#[derive(Deserialize)]
pub(super) struct SearchRunsRequest {
    #[serde(default)]
    experiment_ids: Vec<String>,
    filter: Option<String>,
    run_view_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<String>,
    page_token: Option<String>,
}

pub(super) async fn search_runs(
    State(state): State<AppState>,
    caller: Caller,
    Fields(request): Fields<SearchRunsRequest>,
) -> Result<Json<Listing<RunWire>>> {
    let requested = request
        .experiment_ids
        .iter()
        .map(|id| parse_experiment_id(id))
        .collect::<Result<Vec<_>>>()?;
    // Experiments the caller may not read are left out of the search, as MLflow does: a
    // search over only those finds nothing rather than failing.
    let experiment_ids = caller
        .readable_experiments(&state.auth, requested.clone())
        .await?;
    if experiment_ids.is_empty() && !requested.is_empty() {
        return Ok(Json(Listing::of("runs", crate::store::Page::default())));
    }
    let view_type = ViewType::parse(request.run_view_type.as_deref()).map_err(Error::invalid)?;
    let page = state
        .store
        .search_runs(SearchRuns {
            experiment_ids: &experiment_ids,
            filter: request.filter.as_deref().unwrap_or(""),
            view_type,
            max_results: request.max_results,
            order_by: &request.order_by,
            page_token: request.page_token.as_deref(),
        })
        .await?;
    Ok(Json(Listing::of("runs", page)))
}

#[derive(Deserialize)]
struct ModelOutput {
    model_id: String,
    #[serde(default, deserialize_with = "lenient_i64")]
    step: i64,
}

#[derive(Deserialize)]
pub(super) struct LogOutputs {
    run_id: Option<String>,
    run_uuid: Option<String>,
    #[serde(default)]
    models: Vec<ModelOutput>,
}

pub(super) async fn log_outputs(
    State(state): State<AppState>,
    Fields(request): Fields<LogOutputs>,
) -> Result<Json<Value>> {
    let run_id = RunRef {
        run_id: request.run_id,
        run_uuid: request.run_uuid,
    }
    .resolve()?;
    let models: Vec<(String, i64)> = request
        .models
        .into_iter()
        .map(|model| (model.model_id, model.step))
        .collect();
    for (model_id, _) in &models {
        state.store.get_logged_model(model_id).await?;
    }
    state.store.log_outputs(&run_id, &models).await?;
    Ok(empty())
}

#[derive(Deserialize)]
struct DatasetBody {
    name: Option<String>,
    digest: Option<String>,
    source_type: Option<String>,
    source: Option<String>,
    schema: Option<String>,
    profile: Option<String>,
}

#[derive(Deserialize)]
struct DatasetInputBody {
    #[serde(default)]
    tags: Vec<KeyValueWire>,
    dataset: Option<DatasetBody>,
}

#[derive(Deserialize)]
struct ModelInput {
    model_id: String,
}

#[derive(Deserialize)]
pub(super) struct LogInputs {
    run_id: Option<String>,
    run_uuid: Option<String>,
    #[serde(default)]
    datasets: Vec<DatasetInputBody>,
    #[serde(default)]
    models: Vec<ModelInput>,
}

pub(super) async fn log_inputs(
    State(state): State<AppState>,
    Fields(request): Fields<LogInputs>,
) -> Result<Json<Value>> {
    let run_id = RunRef {
        run_id: request.run_id,
        run_uuid: request.run_uuid,
    }
    .resolve()?;
    let mut datasets = Vec::with_capacity(request.datasets.len());
    for input in request.datasets {
        let dataset = required(input.dataset, "dataset")?;
        datasets.push(DatasetInput {
            name: required(dataset.name, "dataset.name")?,
            digest: required(dataset.digest, "dataset.digest")?,
            source_type: dataset.source_type.unwrap_or_default(),
            source: dataset.source.unwrap_or_default(),
            schema: dataset.schema,
            profile: dataset.profile,
            tags: validated_tags(input.tags)?,
        });
    }
    let models: Vec<String> = request
        .models
        .into_iter()
        .map(|model| model.model_id)
        .collect();
    state.store.log_inputs(&run_id, &datasets, &models).await?;
    Ok(empty())
}
