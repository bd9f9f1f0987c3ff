//! Experiments: create, read, search, rename, delete and restore, and their tags.

use std::collections::HashMap;

use sqlx::any::AnyRow;

use super::{EXPERIMENT_COLUMNS, SearchExperiments};
use crate::domain::auth::ResourceType;
use crate::domain::search::Entity;
use crate::domain::tracking::Experiment;
use crate::domain::{KeyValue, LifecycleStage, now_millis};
use crate::error::{Error, Result};
use crate::store::auth::grant_creator;
use crate::store::search::{ParsedSearch, Scope, SearchRequest, text_values};
use crate::store::sql::{get_i64, get_text, is_unique_violation};
use crate::store::transaction::{KeyRef, upsert_key_values};
use crate::store::{Page, Store};

impl Store {
    pub async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[KeyValue],
    ) -> Result<i64> {
        self.create_owned_experiment(name, artifact_location, tags, None)
            .await
    }

    /// Creates an experiment; `owner` (a user id) gets MANAGE on it in the same transaction.
    pub async fn create_owned_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[KeyValue],
        owner: Option<i64>,
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
        if let Some(owner) = owner {
            let id = experiment_id.to_string();
            grant_creator(&mut transaction, owner, ResourceType::Experiment, &id).await?;
        }
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
}

pub(super) fn experiment_from_row(row: &AnyRow) -> Result<Experiment> {
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
