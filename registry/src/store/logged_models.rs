//! Queries for MLflow 3 logged models: their params, tags and metrics.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use super::search::{ParsedSearch, Scope, SearchRequest};
use super::search_sql::SqlValue;
use super::sql::metric_from_row;
use super::sql::{get_i64, get_opt_text, get_text, values_rows};
use super::transaction::{KeyRef, upsert_key_values};
use super::{Page, Store};
use crate::domain::search::Entity;
use crate::domain::tracking::{LoggedModel, Metric, sortable_value};
use crate::domain::{KeyValue, LifecycleStage, now_millis};
use crate::error::{Error, Result};

pub struct NewLoggedModel {
    pub experiment_id: i64,
    pub name: String,
    pub source_run_id: Option<String>,
    pub model_type: Option<String>,
    pub params: Vec<KeyValue>,
    pub tags: Vec<KeyValue>,
}

pub struct SearchLoggedModels<'a> {
    pub experiment_ids: &'a [i64],
    pub filter: &'a str,
    pub max_results: Option<i64>,
    pub order_by: &'a [String],
    pub page_token: Option<&'a str>,
}

const LOGGED_MODEL_COLUMNS: &str = "logged_models.model_id, logged_models.experiment_id, logged_models.name, \
    logged_models.artifact_location, logged_models.creation_timestamp, logged_models.last_updated_timestamp, \
    logged_models.status, logged_models.model_type, logged_models.source_run_id";

impl Store {
    pub async fn create_logged_model(&self, new_model: NewLoggedModel) -> Result<LoggedModel> {
        let experiment = self.get_experiment(new_model.experiment_id).await?;
        if experiment.lifecycle_stage != LifecycleStage::Active {
            return Err(Error::invalid(format!(
                "The experiment {} must be in the 'active' state. Current state is deleted.",
                new_model.experiment_id
            )));
        }
        let model_id = format!("m-{}", uuid::Uuid::new_v4().simple());
        let artifact_location = format!(
            "{}/models/{model_id}/artifacts",
            experiment.artifact_location.trim_end_matches('/')
        );
        let now = now_millis();
        let mut transaction = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, creation_timestamp, \
             last_updated_timestamp, status, model_type, source_run_id, lifecycle_stage) \
             VALUES ($1, $2, $3, $4, $5, $5, 'LOGGED_MODEL_PENDING', $6, $7, 'active')",
        )
        .bind(model_id.as_str())
        .bind(new_model.experiment_id)
        .bind(new_model.name.as_str())
        .bind(artifact_location.as_str())
        .bind(now)
        .bind(new_model.model_type.as_deref())
        .bind(new_model.source_run_id.as_deref())
        .execute(&mut *transaction)
        .await?;
        let owner = KeyRef::Text(&model_id);
        upsert_key_values(
            &mut transaction,
            "logged_model_params",
            "model_id",
            &owner,
            &new_model.params,
        )
        .await?;
        upsert_key_values(
            &mut transaction,
            "logged_model_tags",
            "model_id",
            &owner,
            &new_model.tags,
        )
        .await?;
        transaction.commit().await?;
        self.get_logged_model(&model_id).await
    }

    pub async fn get_logged_model(&self, model_id: &str) -> Result<LoggedModel> {
        let mut models = self.load_logged_models(&[model_id.to_owned()]).await?;
        models.pop().ok_or_else(|| {
            Error::not_found(format!("Logged model with ID '{model_id}' not found."))
        })
    }

    pub async fn set_logged_model_status(
        &self,
        model_id: &str,
        status: &str,
    ) -> Result<LoggedModel> {
        self.get_logged_model(model_id).await?;
        sqlx::query(
            "UPDATE logged_models SET status = $1, last_updated_timestamp = $2 WHERE model_id = $3",
        )
        .bind(status)
        .bind(now_millis())
        .bind(model_id)
        .execute(&self.writer)
        .await?;
        self.get_logged_model(model_id).await
    }

    pub async fn set_logged_model_tags(&self, model_id: &str, tags: &[KeyValue]) -> Result<()> {
        self.get_logged_model(model_id).await?;
        let mut transaction = self.writer.begin().await?;
        upsert_key_values(
            &mut transaction,
            "logged_model_tags",
            "model_id",
            &KeyRef::Text(model_id),
            tags,
        )
        .await?;
        transaction.commit().await?;
        Ok(())
    }

    pub async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()> {
        self.get_logged_model(model_id).await?;
        let deleted = sqlx::query("DELETE FROM logged_model_tags WHERE model_id = $1 AND key = $2")
            .bind(model_id)
            .bind(key)
            .execute(&self.writer)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(Error::not_found(format!(
                "No tag with key '{key}' on logged model '{model_id}'"
            )));
        }
        Ok(())
    }

    pub async fn log_logged_model_params(&self, model_id: &str, params: &[KeyValue]) -> Result<()> {
        self.get_logged_model(model_id).await?;
        let mut transaction = self.writer.begin().await?;
        upsert_key_values(
            &mut transaction,
            "logged_model_params",
            "model_id",
            &KeyRef::Text(model_id),
            params,
        )
        .await?;
        transaction.commit().await?;
        Ok(())
    }

    pub async fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        self.get_logged_model(model_id).await?;
        sqlx::query("UPDATE logged_models SET lifecycle_stage = 'deleted', last_updated_timestamp = $1 WHERE model_id = $2")
            .bind(now_millis())
            .bind(model_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn search_logged_models(
        &self,
        request: SearchLoggedModels<'_>,
    ) -> Result<Page<LoggedModel>> {
        let search = ParsedSearch::parse(SearchRequest {
            entity: Entity::LoggedModels,
            filter: request.filter,
            order_by: request.order_by,
            max_results: request.max_results,
            page_token: request.page_token,
        })?;
        if request.experiment_ids.is_empty() {
            return Err(Error::invalid(
                "Missing value for required parameter 'experiment_ids'",
            ));
        }
        let experiment_ids = request
            .experiment_ids
            .iter()
            .map(|id| SqlValue::Int(*id))
            .collect();
        let page = self
            .search(
                search,
                "SELECT logged_models.model_id FROM logged_models",
                &[
                    Scope::AnyOf("logged_models.experiment_id", experiment_ids),
                    Scope::Sql("logged_models.lifecycle_stage = 'active'"),
                ],
                |row| get_text(row, "model_id"),
            )
            .await?;
        let items = self.load_logged_models(&page.items).await?;
        Ok(Page {
            items,
            next_page_token: page.next_page_token,
        })
    }

    async fn load_logged_models(&self, model_ids: &[String]) -> Result<Vec<LoggedModel>> {
        let mut by_id: HashMap<String, LoggedModel> = HashMap::new();
        if !model_ids.is_empty() {
            let in_list = self.in_id_list("model_id", 1);
            let ids = self.id_list(model_ids);
            let bind_ids = |sql: String| sqlx::query(sqlx::AssertSqlSafe(sql)).bind(ids.clone());
            for row in bind_ids(format!(
                "SELECT {LOGGED_MODEL_COLUMNS} FROM logged_models WHERE {in_list}"
            ))
            .fetch_all(&self.reader)
            .await?
            {
                let model = logged_model_from_row(&row)?;
                by_id.insert(model.model_id.clone(), model);
            }
            for (table, is_params) in [("logged_model_params", true), ("logged_model_tags", false)]
            {
                for row in bind_ids(format!(
                    "SELECT model_id, key, value FROM {table} WHERE {in_list} ORDER BY key"
                ))
                .fetch_all(&self.reader)
                .await?
                {
                    if let Some(model) = by_id.get_mut(&get_text(&row, "model_id")?) {
                        let pair = KeyValue {
                            key: get_text(&row, "key")?,
                            value: get_text(&row, "value")?,
                        };
                        if is_params {
                            model.params.push(pair)
                        } else {
                            model.tags.push(pair)
                        }
                    }
                }
            }
            for row in bind_ids(format!(
                "SELECT model_id, key, value, timestamp, step, run_uuid, is_nan FROM logged_model_metrics \
                 WHERE {in_list} ORDER BY key, step, timestamp"
            ))
            .fetch_all(&self.reader)
            .await?
            {
                if let Some(model) = by_id.get_mut(&get_text(&row, "model_id")?) {
                    model.metrics.push((metric_from_row(&row)?, get_text(&row, "run_uuid")?));
                }
            }
        }
        Ok(model_ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }
}

/// Records metrics that a `log-batch` attributed to logged models, inside the batch's transaction.
pub(super) async fn insert_model_metrics(
    transaction: &mut Transaction<'_, Any>,
    run_id: &str,
    metrics: &[(String, Metric)],
) -> Result<()> {
    if metrics.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO logged_model_metrics (model_id, key, value, timestamp, step, run_uuid, is_nan) VALUES {} \
         ON CONFLICT DO NOTHING",
        values_rows(metrics.len(), 7)
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (model_id, metric) in metrics {
        query = query
            .bind(model_id.as_str())
            .bind(metric.key.as_str())
            .bind(sortable_value(metric.value))
            .bind(metric.timestamp)
            .bind(metric.step)
            .bind(run_id)
            .bind(i64::from(metric.value.is_nan()));
    }
    match query.execute(&mut **transaction).await {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(error)) if error.is_foreign_key_violation() => Err(
            Error::not_found("a metric names a logged model that does not exist"),
        ),
        Err(error) => Err(error.into()),
    }
}

fn logged_model_from_row(row: &AnyRow) -> Result<LoggedModel> {
    Ok(LoggedModel {
        model_id: get_text(row, "model_id")?,
        experiment_id: get_i64(row, "experiment_id")?,
        name: get_text(row, "name")?,
        artifact_location: get_text(row, "artifact_location")?,
        creation_timestamp: get_i64(row, "creation_timestamp")?,
        last_updated_timestamp: get_i64(row, "last_updated_timestamp")?,
        status: get_text(row, "status")?,
        model_type: get_opt_text(row, "model_type")?,
        source_run_id: get_opt_text(row, "source_run_id")?,
        tags: Vec::new(),
        params: Vec::new(),
        metrics: Vec::new(),
    })
}
