//! Runs: create, read (whole runs, their params, tags and latest metrics at once), update,
//! delete and restore, search, tags, and the models and datasets they log.

use std::collections::HashMap;

use sqlx::any::AnyRow;

use super::{NewRun, RUN_COLUMNS, RunUpdate, SearchRuns, require_active};
use crate::domain::search::Entity;
use crate::domain::tracking::{DatasetInput, RUN_NAME_TAG, Run, RunInfo, RunStatus};
use crate::domain::{KeyValue, LifecycleStage, now_millis};
use crate::error::{Error, Result};
use crate::store::search::{ParsedSearch, Scope, SearchRequest, text_values};
use crate::store::search_sql::SqlValue;
use crate::store::sql::{get_i64, get_opt_i64, get_opt_text, get_text, metric_from_row};
use crate::store::transaction::{KeyRef, upsert_key_values};
use crate::store::{Page, Store};

impl Store {
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

pub(super) fn run_info_from_row(row: &AnyRow) -> Result<RunInfo> {
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
pub(super) fn generate_run_name(run_id: &str) -> String {
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
