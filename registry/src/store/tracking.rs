//! Queries for experiments, runs, params, metrics, tags and run inputs/outputs.

use std::collections::{BTreeMap, HashMap};

use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Transaction};

use super::chunks::{self, Point};
use super::search::{ParsedSearch, Scope, SearchRequest, text_values};
use super::search_sql::SqlValue;
use super::sql::{
    AnyQuery, get_i64, get_opt_i64, get_opt_text, get_text, is_unique_violation, metric_from_row,
    placeholders, values_rows, values_rows_from,
};
use super::transaction::{KeyRef, upsert_key_values};
use super::{Backend, Page, Paging, Store};
use crate::domain::search::{Entity, PageLimits};
use crate::domain::tracking::{
    DatasetInput, Experiment, Metric, RUN_NAME_TAG, Run, RunInfo, RunStatus, sortable_value,
};
use crate::domain::{KeyValue, LifecycleStage, ViewType, now_millis};
use crate::error::{Error, Result};

/// What `runs/create` asks for.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub experiment_id: i64,
    pub user_id: String,
    pub run_name: Option<String>,
    pub start_time: i64,
    pub tags: Vec<KeyValue>,
}

/// Fields `runs/update` may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct RunUpdate {
    pub status: Option<RunStatus>,
    pub end_time: Option<i64>,
    pub run_name: Option<String>,
}

/// Metrics, params and tags of one `log-batch` call, already validated.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub metrics: Vec<Metric>,
    pub params: Vec<KeyValue>,
    pub tags: Vec<KeyValue>,
    /// Metrics that name a logged model are also recorded on that model.
    pub model_metrics: Vec<(String, Metric)>,
}

pub struct SearchRuns<'a> {
    pub experiment_ids: &'a [i64],
    pub filter: &'a str,
    pub view_type: ViewType,
    pub max_results: Option<i64>,
    pub order_by: &'a [String],
    pub page_token: Option<&'a str>,
}

pub struct SearchExperiments<'a> {
    pub filter: &'a str,
    pub view_type: ViewType,
    pub max_results: Option<i64>,
    pub order_by: &'a [String],
    pub page_token: Option<&'a str>,
}

const EXPERIMENT_COLUMNS: &str = "experiments.experiment_id, experiments.name, experiments.artifact_location, \
    experiments.lifecycle_stage, experiments.creation_time, experiments.last_update_time";
const RUN_COLUMNS: &str = "runs.run_uuid, runs.experiment_id, runs.name, runs.user_id, runs.status, runs.start_time, \
    runs.end_time, runs.artifact_uri, runs.lifecycle_stage";

impl Store {
    // ----- experiments -----

    pub async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[KeyValue],
    ) -> Result<i64> {
        let now = now_millis();
        let mut transaction = self.writer.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, last_update_time) \
             VALUES ($1, $2, 'active', $3, $3) RETURNING experiment_id",
        )
        .bind(name)
        .bind(artifact_location.unwrap_or(""))
        .bind(now)
        .fetch_one(&mut *transaction)
        .await;
        let experiment_id = match inserted {
            Ok(row) => get_i64(&row, "experiment_id")?,
            Err(error) if is_unique_violation(&error) => {
                return Err(Error::AlreadyExists(format!(
                    "Experiment '{name}' already exists."
                )));
            }
            Err(error) => return Err(error.into()),
        };
        if artifact_location.is_none_or(str::is_empty) {
            sqlx::query("UPDATE experiments SET artifact_location = $1 WHERE experiment_id = $2")
                .bind(format!("mlflow-artifacts:/{experiment_id}"))
                .bind(experiment_id)
                .execute(&mut *transaction)
                .await?;
        }
        upsert_key_values(
            &mut transaction,
            "experiment_tags",
            "experiment_id",
            &KeyRef::Int(experiment_id),
            tags,
        )
        .await?;
        transaction.commit().await?;
        Ok(experiment_id)
    }

    pub async fn get_experiment(&self, experiment_id: i64) -> Result<Experiment> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE experiment_id = $1"
        )))
        .bind(experiment_id)
        .fetch_optional(&self.reader)
        .await?
        .ok_or_else(|| Error::not_found(format!("No Experiment with id={experiment_id} exists")))?;
        let mut experiments = self
            .experiments_with_tags(vec![experiment_from_row(&row)?])
            .await?;
        Ok(experiments.remove(0))
    }

    pub async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE name = $1"
        )))
        .bind(name)
        .fetch_optional(&self.reader)
        .await?
        .ok_or_else(|| Error::not_found(format!("Could not find experiment with name '{name}'")))?;
        let mut experiments = self
            .experiments_with_tags(vec![experiment_from_row(&row)?])
            .await?;
        Ok(experiments.remove(0))
    }

    pub async fn search_experiments(
        &self,
        request: SearchExperiments<'_>,
    ) -> Result<Page<Experiment>> {
        let search = ParsedSearch::parse(SearchRequest {
            entity: Entity::Experiments,
            filter: request.filter,
            order_by: request.order_by,
            max_results: request.max_results,
            page_token: request.page_token,
        })?;
        let stages = text_values(request.view_type.stages());
        let page = self
            .search(
                search,
                &format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments"),
                &[Scope::AnyOf("experiments.lifecycle_stage", stages)],
                experiment_from_row,
            )
            .await?;
        let items = self.experiments_with_tags(page.items).await?;
        Ok(Page {
            items,
            next_page_token: page.next_page_token,
        })
    }

    async fn experiments_with_tags(
        &self,
        mut experiments: Vec<Experiment>,
    ) -> Result<Vec<Experiment>> {
        if experiments.is_empty() {
            return Ok(experiments);
        }
        let ids: Vec<i64> = experiments
            .iter()
            .map(|experiment| experiment.experiment_id)
            .collect();
        let sql = format!(
            "SELECT experiment_id, key, value FROM experiment_tags WHERE {} ORDER BY key",
            self.in_number_list("experiment_id", 1)
        );
        let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(self.number_list(&ids));
        let mut by_experiment: HashMap<i64, Vec<KeyValue>> = HashMap::new();
        for row in query.fetch_all(&self.reader).await? {
            by_experiment
                .entry(get_i64(&row, "experiment_id")?)
                .or_default()
                .push(KeyValue {
                    key: get_text(&row, "key")?,
                    value: get_text(&row, "value")?,
                });
        }
        for experiment in &mut experiments {
            experiment.tags = by_experiment
                .remove(&experiment.experiment_id)
                .unwrap_or_default();
        }
        Ok(experiments)
    }

    pub async fn rename_experiment(&self, experiment_id: i64, new_name: &str) -> Result<()> {
        let experiment = self.get_experiment(experiment_id).await?;
        if experiment.lifecycle_stage != LifecycleStage::Active {
            return Err(Error::invalid(format!(
                "Cannot rename a non-active experiment {experiment_id}. Current state is deleted."
            )));
        }
        let updated = sqlx::query(
            "UPDATE experiments SET name = $1, last_update_time = $2 WHERE experiment_id = $3",
        )
        .bind(new_name)
        .bind(now_millis())
        .bind(experiment_id)
        .execute(&self.writer)
        .await;
        match updated {
            Ok(_) => Ok(()),
            Err(error) if is_unique_violation(&error) => Err(Error::AlreadyExists(format!(
                "Experiment '{new_name}' already exists."
            ))),
            Err(error) => Err(error.into()),
        }
    }

    /// Soft-deletes an experiment and its runs, as MLflow's SQL store does.
    pub async fn set_experiment_lifecycle(
        &self,
        experiment_id: i64,
        stage: LifecycleStage,
    ) -> Result<()> {
        if experiment_id == 0 && stage == LifecycleStage::Deleted {
            return Err(Error::invalid(
                "Cannot delete the default experiment '0'. This is an internally reserved experiment.",
            ));
        }
        let experiment = self.get_experiment(experiment_id).await?;
        if stage == LifecycleStage::Active && experiment.lifecycle_stage == LifecycleStage::Active {
            return Err(Error::invalid(format!(
                "Cannot restore an active experiment. Experiment {experiment_id} is already active."
            )));
        }
        let now = now_millis();
        let mut transaction = self.writer.begin().await?;
        sqlx::query("UPDATE experiments SET lifecycle_stage = $1, last_update_time = $2 WHERE experiment_id = $3")
            .bind(stage.as_str())
            .bind(now)
            .bind(experiment_id)
            .execute(&mut *transaction)
            .await?;
        let deleted_time = (stage == LifecycleStage::Deleted).then_some(now);
        sqlx::query(
            "UPDATE runs SET lifecycle_stage = $1, deleted_time = $2 WHERE experiment_id = $3",
        )
        .bind(stage.as_str())
        .bind(deleted_time)
        .bind(experiment_id)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(())
    }

    pub async fn set_experiment_tag(&self, experiment_id: i64, tag: &KeyValue) -> Result<()> {
        let experiment = self.get_experiment(experiment_id).await?;
        if experiment.lifecycle_stage != LifecycleStage::Active {
            return Err(Error::invalid(format!(
                "The experiment {experiment_id} must be in the 'active' state. Current state is deleted."
            )));
        }
        let mut transaction = self.writer.begin().await?;
        upsert_key_values(
            &mut transaction,
            "experiment_tags",
            "experiment_id",
            &KeyRef::Int(experiment_id),
            std::slice::from_ref(tag),
        )
        .await?;
        transaction.commit().await?;
        Ok(())
    }

    pub async fn delete_experiment_tag(&self, experiment_id: i64, key: &str) -> Result<()> {
        self.get_experiment(experiment_id).await?;
        let deleted =
            sqlx::query("DELETE FROM experiment_tags WHERE experiment_id = $1 AND key = $2")
                .bind(experiment_id)
                .bind(key)
                .execute(&self.writer)
                .await?;
        if deleted.rows_affected() == 0 {
            return Err(Error::not_found(format!(
                "No tag with name: {key} in experiment with id {experiment_id}"
            )));
        }
        Ok(())
    }

    // ----- runs -----

    pub async fn create_run(&self, new_run: NewRun) -> Result<Run> {
        let experiment = self.get_experiment(new_run.experiment_id).await?;
        if experiment.lifecycle_stage != LifecycleStage::Active {
            return Err(Error::invalid(format!(
                "The experiment {} must be in the 'active' state. Current state is deleted.",
                new_run.experiment_id
            )));
        }
        let run_id = uuid::Uuid::new_v4().simple().to_string();
        let tag_name = new_run
            .tags
            .iter()
            .find(|tag| tag.key == RUN_NAME_TAG)
            .map(|tag| tag.value.clone());
        let run_name = match (new_run.run_name.filter(|name| !name.is_empty()), tag_name) {
            (Some(name), Some(tag)) if name != tag => {
                return Err(Error::invalid(format!(
                    "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with different values (run_name='{name}', mlflow.runName='{tag}')."
                )));
            }
            (Some(name), _) | (None, Some(name)) => name,
            (None, None) => generate_run_name(&run_id),
        };
        let artifact_uri = format!(
            "{}/{run_id}/artifacts",
            experiment.artifact_location.trim_end_matches('/')
        );
        let mut tags = new_run.tags;
        if !tags.iter().any(|tag| tag.key == RUN_NAME_TAG) {
            tags.push(KeyValue {
                key: RUN_NAME_TAG.to_owned(),
                value: run_name.clone(),
            });
        }
        let mut transaction = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO runs (run_uuid, experiment_id, name, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage) \
             VALUES ($1, $2, $3, $4, 'RUNNING', $5, NULL, $6, 'active')",
        )
        .bind(run_id.as_str())
        .bind(new_run.experiment_id)
        .bind(run_name.as_str())
        .bind(new_run.user_id.as_str())
        .bind(new_run.start_time)
        .bind(artifact_uri.as_str())
        .execute(&mut *transaction)
        .await?;
        upsert_key_values(
            &mut transaction,
            "tags",
            "run_uuid",
            &KeyRef::Text(&run_id),
            &tags,
        )
        .await?;
        transaction.commit().await?;
        self.get_run(&run_id).await
    }

    pub async fn get_run(&self, run_id: &str) -> Result<Run> {
        let mut runs = self.load_runs(&[run_id.to_owned()]).await?;
        runs.pop()
            .ok_or_else(|| Error::not_found(format!("Run with id={run_id} not found")))
    }

    /// Whole runs in the order of `run_ids`, in one round of queries; the first id not found is
    /// an error.
    pub async fn get_runs(&self, run_ids: &[String]) -> Result<Vec<Run>> {
        let runs = self.load_runs(run_ids).await?;
        if let Some(missing) = run_ids
            .iter()
            .find(|id| !runs.iter().any(|run| &run.info.run_id == *id))
        {
            return Err(Error::not_found(format!("Run with id={missing} not found")));
        }
        Ok(runs)
    }

    pub async fn get_run_info(&self, run_id: &str) -> Result<RunInfo> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE run_uuid = $1"
        )))
        .bind(run_id)
        .fetch_optional(&self.reader)
        .await?
        .ok_or_else(|| Error::not_found(format!("Run with id={run_id} not found")))?;
        run_info_from_row(&row)
    }

    /// Loads whole runs, in the order of `run_ids`, with seven queries whatever their number.
    async fn load_runs(&self, run_ids: &[String]) -> Result<Vec<Run>> {
        let mut runs_by_id: HashMap<String, Run> = HashMap::new();
        let ids = self.id_list(run_ids);
        let fetch = |select_from: &str, column: &str| {
            let sql = format!("{select_from} WHERE {}", self.in_id_list(column, 1));
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(ids.as_str())
                .fetch_all(&self.reader)
        };
        // The reads are independent: each takes its own pooled connection, so a page of a
        // thousand runs waits for the slowest query rather than the sum of all seven.
        let (run_rows, metric_rows, param_rows, tag_rows, dataset_rows, input_rows, output_rows) =
            tokio::try_join!(
                fetch(&format!("SELECT {RUN_COLUMNS} FROM runs"), "run_uuid"),
                fetch(
                    "SELECT run_uuid, key, value, timestamp, step, is_nan FROM latest_metrics",
                    "run_uuid"
                ),
                fetch("SELECT run_uuid, key, value FROM params", "run_uuid"),
                fetch("SELECT run_uuid, key, value FROM tags", "run_uuid"),
                fetch(
                    "SELECT i.run_uuid, i.context, i.tags, d.name, d.digest, d.source_type, d.source, \
                     d.schema, d.profile FROM run_dataset_inputs i JOIN datasets d ON d.dataset_uuid = i.dataset_uuid",
                    "i.run_uuid"
                ),
                fetch(
                    "SELECT run_uuid, model_id FROM run_model_inputs",
                    "run_uuid"
                ),
                fetch(
                    "SELECT run_uuid, model_id, step FROM run_model_outputs",
                    "run_uuid"
                ),
            )?;
        for row in run_rows {
            let info = run_info_from_row(&row)?;
            runs_by_id.insert(
                info.run_id.clone(),
                Run {
                    info,
                    metrics: Vec::new(),
                    params: Vec::new(),
                    tags: Vec::new(),
                    dataset_inputs: Vec::new(),
                    model_inputs: Vec::new(),
                    model_outputs: Vec::new(),
                },
            );
        }
        for row in metric_rows {
            if let Some(run) = runs_by_id.get_mut(&get_text(&row, "run_uuid")?) {
                run.metrics.push(metric_from_row(&row)?);
            }
        }
        for (rows, is_params) in [(param_rows, true), (tag_rows, false)] {
            for row in rows {
                if let Some(run) = runs_by_id.get_mut(&get_text(&row, "run_uuid")?) {
                    let pair = KeyValue {
                        key: get_text(&row, "key")?,
                        value: get_text(&row, "value")?,
                    };
                    if is_params {
                        run.params.push(pair)
                    } else {
                        run.tags.push(pair)
                    }
                }
            }
        }
        for row in dataset_rows {
            if let Some(run) = runs_by_id.get_mut(&get_text(&row, "run_uuid")?) {
                let tags: Vec<(String, String)> =
                    serde_json::from_str(&get_text(&row, "tags")?).unwrap_or_default();
                run.dataset_inputs.push(DatasetInput {
                    name: get_text(&row, "name")?,
                    digest: get_text(&row, "digest")?,
                    source_type: get_text(&row, "source_type")?,
                    source: get_text(&row, "source")?,
                    schema: get_opt_text(&row, "schema")?,
                    profile: get_opt_text(&row, "profile")?,
                    tags: tags
                        .into_iter()
                        .map(|(key, value)| KeyValue { key, value })
                        .collect(),
                });
            }
        }
        for row in input_rows {
            if let Some(run) = runs_by_id.get_mut(&get_text(&row, "run_uuid")?) {
                run.model_inputs.push(get_text(&row, "model_id")?);
            }
        }
        for row in output_rows {
            if let Some(run) = runs_by_id.get_mut(&get_text(&row, "run_uuid")?) {
                run.model_outputs
                    .push((get_text(&row, "model_id")?, get_i64(&row, "step")?));
            }
        }
        // Sorted here rather than in SQL: byte order on both backends, and PostgreSQL is spared
        // a collation-aware sort of every row.
        for run in runs_by_id.values_mut() {
            run.metrics.sort_by(|a, b| a.key.cmp(&b.key));
            run.params.sort_by(|a, b| a.key.cmp(&b.key));
            run.tags.sort_by(|a, b| a.key.cmp(&b.key));
            run.dataset_inputs.sort_by(|a, b| a.name.cmp(&b.name));
        }
        Ok(run_ids
            .iter()
            .filter_map(|id| runs_by_id.remove(id))
            .collect())
    }

    pub async fn update_run(&self, run_id: &str, update: RunUpdate) -> Result<RunInfo> {
        let info = self.get_run_info(run_id).await?;
        require_active(&info)?;
        let mut transaction = self.writer.begin().await?;
        sqlx::query(
            "UPDATE runs SET status = COALESCE($1, status), end_time = COALESCE($2, end_time), name = COALESCE($3, name) \
             WHERE run_uuid = $4",
        )
        .bind(update.status.map(RunStatus::as_str))
        .bind(update.end_time)
        .bind(update.run_name.as_deref())
        .bind(run_id)
        .execute(&mut *transaction)
        .await?;
        if let Some(name) = &update.run_name {
            let tag = KeyValue {
                key: RUN_NAME_TAG.to_owned(),
                value: name.clone(),
            };
            upsert_key_values(
                &mut transaction,
                "tags",
                "run_uuid",
                &KeyRef::Text(run_id),
                &[tag],
            )
            .await?;
        }
        transaction.commit().await?;
        self.get_run_info(run_id).await
    }

    pub async fn set_run_lifecycle(&self, run_id: &str, stage: LifecycleStage) -> Result<()> {
        self.get_run_info(run_id).await?;
        let deleted_time = (stage == LifecycleStage::Deleted).then(now_millis);
        sqlx::query("UPDATE runs SET lifecycle_stage = $1, deleted_time = $2 WHERE run_uuid = $3")
            .bind(stage.as_str())
            .bind(deleted_time)
            .bind(run_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Writes one batch atomically: history chunks (a repeated point is merged when read), latest
    /// values, params and tags, in one transaction, or one statement for metrics only on PostgreSQL.
    pub async fn log_batch(&self, run_id: &str, batch: Batch) -> Result<()> {
        let info = self.get_run_info(run_id).await?;
        require_active(&info)?;
        let metrics_only =
            batch.params.is_empty() && batch.tags.is_empty() && batch.model_metrics.is_empty();
        let series = series_writes(&batch.metrics);
        if metrics_only && self.backend == Backend::Postgres {
            if series.is_empty() {
                return Ok(());
            }
            return insert_metrics_in_one_statement(&self.writer, run_id, &series).await;
        }
        let mut transaction = self.writer.begin().await?;
        check_params_unchanged(&mut transaction, run_id, &batch.params).await?;
        if !batch.params.is_empty() {
            let sql = format!(
                "INSERT INTO params (run_uuid, key, value) VALUES {} ON CONFLICT (run_uuid, key) DO NOTHING",
                values_rows(batch.params.len(), 3)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for param in &batch.params {
                query = query
                    .bind(run_id)
                    .bind(param.key.as_str())
                    .bind(param.value.as_str());
            }
            query.execute(&mut *transaction).await?;
        }
        insert_metrics(&mut transaction, run_id, &series).await?;
        if let Some(name) = batch.tags.iter().rev().find(|tag| tag.key == RUN_NAME_TAG) {
            sqlx::query("UPDATE runs SET name = $1 WHERE run_uuid = $2")
                .bind(name.value.as_str())
                .bind(run_id)
                .execute(&mut *transaction)
                .await?;
        }
        upsert_key_values(
            &mut transaction,
            "tags",
            "run_uuid",
            &KeyRef::Text(run_id),
            &batch.tags,
        )
        .await?;
        super::logged_models::insert_model_metrics(&mut transaction, run_id, &batch.model_metrics)
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    pub async fn delete_run_tag(&self, run_id: &str, key: &str) -> Result<()> {
        let info = self.get_run_info(run_id).await?;
        require_active(&info)?;
        let deleted = sqlx::query("DELETE FROM tags WHERE run_uuid = $1 AND key = $2")
            .bind(run_id)
            .bind(key)
            .execute(&self.writer)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(Error::not_found(format!(
                "No tag with name: {key} in run with id {run_id}"
            )));
        }
        Ok(())
    }

    pub async fn get_metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<Metric>> {
        self.get_run_info(run_id).await?;
        let paging = Paging::new(max_results, PageLimits::METRIC_HISTORY, page_token)?;
        let history = self.metric_history(run_id, key).await?;
        Ok(paging.window(history.into_iter().map(|point| Metric {
            key: key.to_owned(),
            value: point.value,
            timestamp: point.timestamp,
            step: point.step,
        })))
    }

    pub async fn search_runs(&self, request: SearchRuns<'_>) -> Result<Page<Run>> {
        let search = ParsedSearch::parse(SearchRequest {
            entity: Entity::Runs,
            filter: request.filter,
            order_by: request.order_by,
            max_results: request.max_results,
            page_token: request.page_token,
        })?;
        if request.experiment_ids.is_empty() {
            return Ok(Page {
                items: Vec::new(),
                next_page_token: None,
            });
        }
        let experiment_ids = request
            .experiment_ids
            .iter()
            .map(|id| SqlValue::Int(*id))
            .collect();
        let stages = text_values(request.view_type.stages());
        let page = self
            .search(
                search,
                "SELECT runs.run_uuid FROM runs",
                &[
                    Scope::AnyOf("runs.experiment_id", experiment_ids),
                    Scope::AnyOf("runs.lifecycle_stage", stages),
                ],
                |row| get_text(row, "run_uuid"),
            )
            .await?;
        let items = self.load_runs(&page.items).await?;
        Ok(Page {
            items,
            next_page_token: page.next_page_token,
        })
    }

    pub async fn log_outputs(&self, run_id: &str, models: &[(String, i64)]) -> Result<()> {
        let info = self.get_run_info(run_id).await?;
        require_active(&info)?;
        let mut transaction = self.writer.begin().await?;
        for (model_id, step) in models {
            sqlx::query(
                "INSERT INTO run_model_outputs (run_uuid, model_id, step) VALUES ($1, $2, $3) \
                 ON CONFLICT (run_uuid, model_id) DO UPDATE SET step = excluded.step",
            )
            .bind(run_id)
            .bind(model_id.as_str())
            .bind(*step)
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    pub async fn log_inputs(
        &self,
        run_id: &str,
        datasets: &[DatasetInput],
        models: &[String],
    ) -> Result<()> {
        let info = self.get_run_info(run_id).await?;
        require_active(&info)?;
        let mut transaction = self.writer.begin().await?;
        for dataset in datasets {
            sqlx::query(
                "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, source_type, source, schema, profile) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (experiment_id, name, digest) DO NOTHING",
            )
            .bind(uuid::Uuid::new_v4().simple().to_string())
            .bind(info.experiment_id)
            .bind(dataset.name.as_str())
            .bind(dataset.digest.as_str())
            .bind(dataset.source_type.as_str())
            .bind(dataset.source.as_str())
            .bind(dataset.schema.as_deref())
            .bind(dataset.profile.as_deref())
            .execute(&mut *transaction)
            .await?;
            let row = sqlx::query("SELECT dataset_uuid FROM datasets WHERE experiment_id = $1 AND name = $2 AND digest = $3")
                .bind(info.experiment_id)
                .bind(dataset.name.as_str())
                .bind(dataset.digest.as_str())
                .fetch_one(&mut *transaction)
                .await?;
            let context = dataset
                .tags
                .iter()
                .find(|tag| tag.key == "mlflow.data.context")
                .map(|tag| tag.value.clone());
            let tags: Vec<(&str, &str)> = dataset
                .tags
                .iter()
                .map(|tag| (tag.key.as_str(), tag.value.as_str()))
                .collect();
            sqlx::query(
                "INSERT INTO run_dataset_inputs (run_uuid, dataset_uuid, context, tags) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (run_uuid, dataset_uuid) DO UPDATE SET context = excluded.context, tags = excluded.tags",
            )
            .bind(run_id)
            .bind(get_text(&row, "dataset_uuid")?)
            .bind(context)
            .bind(serde_json::to_string(&tags).map_err(|error| Error::Internal(error.into()))?)
            .execute(&mut *transaction)
            .await?;
        }
        for model_id in models {
            sqlx::query("INSERT INTO run_model_inputs (run_uuid, model_id) VALUES ($1, $2) ON CONFLICT (run_uuid, model_id) DO NOTHING")
                .bind(run_id)
                .bind(model_id.as_str())
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        Ok(())
    }
}

fn require_active(info: &RunInfo) -> Result<()> {
    if info.lifecycle_stage != LifecycleStage::Active {
        return Err(Error::invalid(format!(
            "The run {} must be in the 'active' state. Current state is deleted.",
            info.run_id
        )));
    }
    Ok(())
}

/// MLflow refuses to change a logged param; re-logging the same value is fine.
async fn check_params_unchanged(
    transaction: &mut Transaction<'_, Any>,
    run_id: &str,
    params: &[KeyValue],
) -> Result<()> {
    let mut in_batch: BTreeMap<&str, &str> = BTreeMap::new();
    for param in params {
        if let Some(previous) = in_batch.insert(param.key.as_str(), param.value.as_str())
            && previous != param.value
        {
            return Err(Error::invalid(format!(
                "Duplicate parameter keys have been submitted with different values: key '{}' has values '{previous}' and '{}'.",
                param.key, param.value
            )));
        }
    }
    if in_batch.is_empty() {
        return Ok(());
    }
    let keys: Vec<&str> = in_batch.keys().copied().collect();
    let sql = format!(
        "SELECT key, value FROM params WHERE run_uuid = $1 AND key IN ({})",
        placeholders(2, keys.len())
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(run_id);
    for key in &keys {
        query = query.bind(*key);
    }
    for row in query.fetch_all(&mut **transaction).await? {
        let key = get_text(&row, "key")?;
        let existing = get_text(&row, "value")?;
        if let Some(new_value) = in_batch
            .get(key.as_str())
            .filter(|value| **value != existing)
        {
            return Err(Error::invalid(format!(
                "Changing param values is not allowed. Param with key='{key}' was already logged with value='{existing}' for run ID='{run_id}'. Attempted logging new value '{new_value}'."
            )));
        }
    }
    Ok(())
}

/// What one write adds to the history of one key.
struct SeriesWrite<'a> {
    latest: &'a Metric,
    /// The smallest and largest value among the write's points, NaN left out; (+inf, -inf), the
    /// empty range, when there is none. Never NULL: sqlx's `Any` binds a NULL double as a float4,
    /// which then poisons the prepared statement for the doubles bound after it.
    range: (f64, f64),
    points: Vec<Point>,
}

/// A batch's metrics grouped by key.
type SeriesWrites<'a> = BTreeMap<&'a str, SeriesWrite<'a>>;

fn series_writes(metrics: &[Metric]) -> SeriesWrites<'_> {
    let mut by_key = SeriesWrites::new();
    for metric in metrics {
        let point = Point {
            step: metric.step,
            timestamp: metric.timestamp,
            value: metric.value,
        };
        let write = by_key
            .entry(metric.key.as_str())
            .or_insert_with(|| SeriesWrite {
                latest: metric,
                range: (f64::INFINITY, f64::NEG_INFINITY),
                points: Vec::new(),
            });
        if metric.is_newer_than(write.latest) {
            write.latest = metric;
        }
        if !metric.value.is_nan() {
            let (low, high) = write.range;
            write.range = (low.min(metric.value), high.max(metric.value));
        }
        write.points.push(point);
    }
    by_key
}

/// Parameters per row of [`upsert_latest_sql`].
const LATEST_COLUMNS: usize = 8;

/// Upserts the latest_metrics row of each of `keys` keys (parameters `$1..`, bound by
/// [`bind_latest`]) and returns every key's `series_id`.
///
/// Every row is updated, so RETURNING hands back every key's series number, a new key's too; the
/// CASEs keep an older point (by step, timestamp, value) from replacing a newer one as the latest
/// value, and widen the stored range by the write's.
fn upsert_latest_sql(keys: usize) -> String {
    let newer = "(excluded.step > latest_metrics.step \
         OR (excluded.step = latest_metrics.step AND excluded.timestamp > latest_metrics.timestamp) \
         OR (excluded.step = latest_metrics.step AND excluded.timestamp = latest_metrics.timestamp \
             AND excluded.value > latest_metrics.value))";
    let latest_if_newer = |column: &str| {
        format!(
            "{column} = CASE WHEN {newer} THEN excluded.{column} ELSE latest_metrics.{column} END"
        )
    };
    let widen = |column: &str, comparison: &str| {
        format!(
            "{column} = CASE WHEN latest_metrics.{column} IS NULL \
             OR excluded.{column} {comparison} latest_metrics.{column} \
             THEN excluded.{column} ELSE latest_metrics.{column} END"
        )
    };
    format!(
        "INSERT INTO latest_metrics (run_uuid, key, value, timestamp, step, is_nan, min_value, max_value) \
         VALUES {} ON CONFLICT (run_uuid, key) DO UPDATE SET {}, {}, {}, {}, {}, {} \
         RETURNING key, series_id",
        values_rows(keys, LATEST_COLUMNS),
        latest_if_newer("value"),
        latest_if_newer("timestamp"),
        latest_if_newer("step"),
        latest_if_newer("is_nan"),
        widen("min_value", "<"),
        widen("max_value", ">"),
    )
}

fn bind_latest<'q>(
    mut query: AnyQuery<'q>,
    run_id: &'q str,
    by_key: &SeriesWrites<'q>,
) -> AnyQuery<'q> {
    for (key, write) in by_key {
        let latest = write.latest;
        query = query
            .bind(run_id)
            .bind(*key)
            .bind(sortable_value(latest.value))
            .bind(latest.timestamp)
            .bind(latest.step)
            .bind(i64::from(latest.value.is_nan()))
            .bind(write.range.0)
            .bind(write.range.1);
    }
    query
}

/// Writes a batch's points to the history and moves each key's latest value forward.
///
/// The latest_metrics row of each (run, key) comes first: it holds the series number the
/// history chunks are keyed by, and a new key gets its number when the row is inserted.
async fn insert_metrics(
    transaction: &mut Transaction<'_, Any>,
    run_id: &str,
    by_key: &SeriesWrites<'_>,
) -> Result<()> {
    if by_key.is_empty() {
        return Ok(());
    }
    let query = sqlx::query(sqlx::AssertSqlSafe(upsert_latest_sql(by_key.len())));
    let mut series: HashMap<String, i64> = HashMap::with_capacity(by_key.len());
    for row in bind_latest(query, run_id, by_key)
        .fetch_all(&mut **transaction)
        .await?
    {
        series.insert(get_text(&row, "key")?, get_i64(&row, "series_id")?);
    }

    let sql = format!(
        "INSERT INTO metric_chunks (series_id, points) VALUES {}",
        values_rows(by_key.len(), 2)
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (key, write) in by_key {
        let series_id = series.get(*key).copied().ok_or_else(|| {
            Error::Internal(anyhow::anyhow!(
                "no metric series for key '{key}' of run {run_id}"
            ))
        })?;
        query = query
            .bind(series_id)
            .bind(chunks::encode(write.points.iter().copied()));
    }
    query.execute(&mut **transaction).await?;
    Ok(())
}

/// [`insert_metrics`] as one PostgreSQL statement, the upsert in a data-modifying CTE whose
/// series numbers the chunk insert joins on. A single statement is atomic without a
/// transaction, which spares a metrics-only write the BEGIN and COMMIT round trips: most of
/// the server time of a `log-metric` call is spent waiting on round trips, not executing.
async fn insert_metrics_in_one_statement(
    pool: &AnyPool,
    run_id: &str,
    by_key: &SeriesWrites<'_>,
) -> Result<()> {
    let sql = format!(
        "WITH written AS ({}) \
         INSERT INTO metric_chunks (series_id, points) \
         SELECT written.series_id, chunk.points FROM written \
         JOIN (VALUES {}) AS chunk (key, points) ON chunk.key = written.key",
        upsert_latest_sql(by_key.len()),
        values_rows_from(by_key.len() * LATEST_COLUMNS + 1, by_key.len(), 2)
    );
    let mut query = bind_latest(sqlx::query(sqlx::AssertSqlSafe(sql)), run_id, by_key);
    for (key, write) in by_key {
        query = query
            .bind(*key)
            .bind(chunks::encode(write.points.iter().copied()));
    }
    query.execute(pool).await?;
    Ok(())
}

fn experiment_from_row(row: &AnyRow) -> Result<Experiment> {
    Ok(Experiment {
        experiment_id: get_i64(row, "experiment_id")?,
        name: get_text(row, "name")?,
        artifact_location: get_text(row, "artifact_location")?,
        lifecycle_stage: LifecycleStage::parse_stored(&get_text(row, "lifecycle_stage")?),
        creation_time: get_i64(row, "creation_time")?,
        last_update_time: get_i64(row, "last_update_time")?,
        tags: Vec::new(),
    })
}

fn run_info_from_row(row: &AnyRow) -> Result<RunInfo> {
    Ok(RunInfo {
        run_id: get_text(row, "run_uuid")?,
        experiment_id: get_i64(row, "experiment_id")?,
        run_name: get_text(row, "name")?,
        user_id: get_text(row, "user_id")?,
        status: RunStatus::parse(&get_text(row, "status")?).unwrap_or(RunStatus::Running),
        start_time: get_i64(row, "start_time")?,
        end_time: get_opt_i64(row, "end_time")?,
        artifact_uri: get_text(row, "artifact_uri")?,
        lifecycle_stage: LifecycleStage::parse_stored(&get_text(row, "lifecycle_stage")?),
    })
}

/// MLflow names unnamed runs with an adjective-noun-number; ours are derived from the run id so
/// they are stable and need no randomness beyond the id itself.
fn generate_run_name(run_id: &str) -> String {
    const ADJECTIVES: [&str; 16] = [
        "amber", "bold", "brisk", "calm", "clever", "daring", "eager", "fleet", "gentle", "keen",
        "lively", "nimble", "quiet", "rapid", "steady", "vivid",
    ];
    const NOUNS: [&str; 16] = [
        "axle", "brake", "coupe", "diesel", "engine", "fender", "gear", "hatch", "piston",
        "radiator", "sedan", "spoiler", "throttle", "turbo", "valve", "wagon",
    ];
    let bytes = run_id.as_bytes();
    let pick = |index: usize| bytes.get(index).copied().unwrap_or(0) as usize;
    format!(
        "{}-{}-{}",
        ADJECTIVES[pick(0) % 16],
        NOUNS[pick(1) % 16],
        pick(2) % 1000
    )
}
