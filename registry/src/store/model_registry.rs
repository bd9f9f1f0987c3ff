//! Queries for registered models, model versions, aliases, artifact digests and the model history.

use std::collections::{BTreeSet, HashMap};

use okla_proto::events as proto;
use proto::model_event::Body;
use sqlx::any::AnyRow;

use super::outbox::write_events;
use super::search::{ParsedSearch, Scope, SearchRequest};
use super::sql::{get_i64, get_opt_i64, get_opt_text, get_text, is_unique_violation};
pub use super::transaction::Change;
use super::transaction::{
    KeyRef, append_history, model_not_found, touch_model, upsert_key_values, version_not_found,
};
use super::{Page, Store};
use crate::domain::model_registry::{
    HistoryEntry, HistoryKind, ModelVersion, RegisteredModel, Stage, VersionFile,
};
use crate::domain::search::Entity;
use crate::domain::{KeyValue, now_millis};
use crate::error::{Error, Result};

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

const VERSION_COLUMNS: &str = "model_versions.name, model_versions.version, model_versions.creation_timestamp, \
    model_versions.last_updated_timestamp, model_versions.description, model_versions.user_id, \
    model_versions.current_stage, model_versions.source, model_versions.run_id, model_versions.run_link, \
    model_versions.status, model_versions.status_message, model_versions.storage_location, model_versions.model_id";

const MODEL_COLUMNS: &str = "registered_models.name, registered_models.creation_timestamp, \
    registered_models.last_updated_timestamp, registered_models.description";

impl Store {
    pub async fn create_registered_model(
        &self,
        name: &str,
        description: Option<&str>,
        tags: &[KeyValue],
    ) -> Result<RegisteredModel> {
        let now = now_millis();
        let mut transaction = self.writer.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO registered_models (name, creation_timestamp, last_updated_timestamp, description) VALUES ($1, $2, $2, $3)",
        )
        .bind(name)
        .bind(now)
        .bind(description)
        .execute(&mut *transaction)
        .await;
        match inserted {
            Ok(_) => {}
            Err(error) if is_unique_violation(&error) => {
                return Err(Error::AlreadyExists(format!(
                    "Registered Model (name={name}) already exists."
                )));
            }
            Err(error) => return Err(error.into()),
        }
        upsert_key_values(
            &mut transaction,
            "registered_model_tags",
            "name",
            &KeyRef::Text(name),
            tags,
        )
        .await?;
        transaction.commit().await?;
        self.get_registered_model(name).await
    }

    pub async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MODEL_COLUMNS} FROM registered_models WHERE name = $1"
        )))
        .bind(name)
        .fetch_optional(&self.reader)
        .await?
        .ok_or_else(|| model_not_found(name))?;
        let mut models = self.complete_models(vec![model_from_row(&row)?]).await?;
        Ok(models.remove(0))
    }

    pub async fn rename_registered_model(
        &self,
        name: &str,
        new_name: &str,
        change: &Change<'_>,
    ) -> Result<RegisteredModel> {
        let mut transaction = self.writer.begin().await?;
        let renamed = sqlx::query(
            "UPDATE registered_models SET name = $1, last_updated_timestamp = $2 WHERE name = $3",
        )
        .bind(new_name)
        .bind(now_millis())
        .bind(name)
        .execute(&mut *transaction)
        .await;
        match renamed {
            Ok(result) if result.rows_affected() == 0 => return Err(model_not_found(name)),
            Ok(_) => {}
            Err(error) if is_unique_violation(&error) => {
                return Err(Error::AlreadyExists(format!(
                    "Registered Model (name={new_name}) already exists."
                )));
            }
            Err(error) => return Err(error.into()),
        }
        // History follows the model under its new name; the rename itself is recorded too.
        sqlx::query("UPDATE model_history SET name = $1 WHERE name = $2")
            .bind(new_name)
            .bind(name)
            .execute(&mut *transaction)
            .await?;
        append_history(
            &mut transaction,
            new_name,
            None,
            "rename",
            Some(name),
            Some(new_name),
            change,
        )
        .await?;
        // The event ends the old name's stream; what follows continues the new name's.
        let renamed = Body::ModelRenamed(proto::ModelRenamed {
            new_name: new_name.to_owned(),
        });
        write_events(
            &mut transaction,
            self.backend,
            name,
            change.actor,
            vec![renamed],
        )
        .await?;
        transaction.commit().await?;
        self.events_committed();
        self.get_registered_model(new_name).await
    }

    pub async fn update_registered_model(
        &self,
        name: &str,
        description: Option<&str>,
    ) -> Result<RegisteredModel> {
        let updated = sqlx::query("UPDATE registered_models SET description = $1, last_updated_timestamp = $2 WHERE name = $3")
            .bind(description)
            .bind(now_millis())
            .bind(name)
            .execute(&self.writer)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(model_not_found(name));
        }
        self.get_registered_model(name).await
    }

    pub async fn delete_registered_model(&self, name: &str, change: &Change<'_>) -> Result<()> {
        let mut transaction = self.writer.begin().await?;
        let deleted = sqlx::query("DELETE FROM registered_models WHERE name = $1")
            .bind(name)
            .execute(&mut *transaction)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(model_not_found(name));
        }
        append_history(&mut transaction, name, None, "delete", None, None, change).await?;
        let deleted = Body::ModelDeleted(proto::ModelDeleted {});
        write_events(
            &mut transaction,
            self.backend,
            name,
            change.actor,
            vec![deleted],
        )
        .await?;
        transaction.commit().await?;
        self.events_committed();
        Ok(())
    }

    pub async fn set_registered_model_tag(&self, name: &str, tag: &KeyValue) -> Result<()> {
        let mut transaction = self.writer.begin().await?;
        touch_model(&mut transaction, name).await?;
        upsert_key_values(
            &mut transaction,
            "registered_model_tags",
            "name",
            &KeyRef::Text(name),
            std::slice::from_ref(tag),
        )
        .await?;
        transaction.commit().await?;
        Ok(())
    }

    pub async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        self.get_registered_model(name).await?;
        sqlx::query("DELETE FROM registered_model_tags WHERE name = $1 AND key = $2")
            .bind(name)
            .bind(key)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn search_registered_models(
        &self,
        request: SearchModels<'_>,
    ) -> Result<Page<RegisteredModel>> {
        let search = ParsedSearch::parse(SearchRequest {
            entity: Entity::RegisteredModels,
            filter: request.filter,
            order_by: request.order_by,
            max_results: request.max_results,
            page_token: request.page_token,
        })?;
        let page = self
            .search(
                search,
                &format!("SELECT {MODEL_COLUMNS} FROM registered_models"),
                &[],
                model_from_row,
            )
            .await?;
        let items = self.complete_models(page.items).await?;
        Ok(Page {
            items,
            next_page_token: page.next_page_token,
        })
    }

    /// Fills tags, aliases and the latest version per stage of each model.
    async fn complete_models(
        &self,
        mut models: Vec<RegisteredModel>,
    ) -> Result<Vec<RegisteredModel>> {
        let names: Vec<String> = models.iter().map(|model| model.name.clone()).collect();
        let mut tags = self.tags_by_name("registered_model_tags", &names).await?;
        let mut aliases = self.aliases_by_name(&names).await?;
        let mut latest: HashMap<String, Vec<ModelVersion>> = HashMap::new();
        if !names.is_empty() {
            let sql = format!(
                "SELECT {VERSION_COLUMNS} FROM model_versions WHERE {} AND model_versions.deleted = 0 \
                 AND model_versions.version = (SELECT MAX(newer.version) FROM model_versions newer \
                     WHERE newer.name = model_versions.name AND newer.current_stage = model_versions.current_stage AND newer.deleted = 0) \
                 ORDER BY model_versions.name, model_versions.version",
                self.in_id_list("model_versions.name", 1)
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(self.id_list(&names))
                .fetch_all(&self.reader)
                .await?;
            let versions = rows
                .iter()
                .map(version_from_row)
                .collect::<Result<Vec<_>>>()?;
            for version in self.complete_versions(versions).await? {
                latest
                    .entry(version.name.clone())
                    .or_default()
                    .push(version);
            }
        }
        for model in &mut models {
            model.tags = tags.remove(&model.name).unwrap_or_default();
            model.aliases = aliases
                .remove(&model.name)
                .unwrap_or_default()
                .into_iter()
                .collect();
            model.latest_versions = latest.remove(&model.name).unwrap_or_default();
        }
        Ok(models)
    }

    /// Fills tags and aliases of each version.
    async fn complete_versions(
        &self,
        mut versions: Vec<ModelVersion>,
    ) -> Result<Vec<ModelVersion>> {
        let names: Vec<String> = versions
            .iter()
            .map(|version| version.name.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut tags: HashMap<(String, i64), Vec<KeyValue>> = HashMap::new();
        if !names.is_empty() {
            let sql = format!(
                "SELECT name, version, key, value FROM model_version_tags WHERE {} ORDER BY key",
                self.in_id_list("name", 1)
            );
            let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(self.id_list(&names));
            for row in query.fetch_all(&self.reader).await? {
                tags.entry((get_text(&row, "name")?, get_i64(&row, "version")?))
                    .or_default()
                    .push(KeyValue {
                        key: get_text(&row, "key")?,
                        value: get_text(&row, "value")?,
                    });
            }
        }
        let aliases = self.aliases_by_name(&names).await?;
        for version in &mut versions {
            version.tags = tags
                .remove(&(version.name.clone(), version.version))
                .unwrap_or_default();
            version.aliases = aliases
                .get(&version.name)
                .map(|pairs| {
                    pairs
                        .iter()
                        .filter(|(_, number)| *number == version.version)
                        .map(|(alias, _)| alias.clone())
                        .collect()
                })
                .unwrap_or_default();
        }
        Ok(versions)
    }

    async fn tags_by_name(
        &self,
        table: &str,
        names: &[String],
    ) -> Result<HashMap<String, Vec<KeyValue>>> {
        let mut tags: HashMap<String, Vec<KeyValue>> = HashMap::new();
        if names.is_empty() {
            return Ok(tags);
        }
        let sql = format!(
            "SELECT name, key, value FROM {table} WHERE {} ORDER BY key",
            self.in_id_list("name", 1)
        );
        let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(self.id_list(names));
        for row in query.fetch_all(&self.reader).await? {
            tags.entry(get_text(&row, "name")?)
                .or_default()
                .push(KeyValue {
                    key: get_text(&row, "key")?,
                    value: get_text(&row, "value")?,
                });
        }
        Ok(tags)
    }

    async fn aliases_by_name(
        &self,
        names: &[String],
    ) -> Result<HashMap<String, Vec<(String, i64)>>> {
        let mut aliases: HashMap<String, Vec<(String, i64)>> = HashMap::new();
        if names.is_empty() {
            return Ok(aliases);
        }
        let sql = format!(
            "SELECT name, alias, version FROM registered_model_aliases WHERE {} ORDER BY alias",
            self.in_id_list("name", 1)
        );
        let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(self.id_list(names));
        for row in query.fetch_all(&self.reader).await? {
            aliases
                .entry(get_text(&row, "name")?)
                .or_default()
                .push((get_text(&row, "alias")?, get_i64(&row, "version")?));
        }
        Ok(aliases)
    }

    // ----- versions -----

    pub async fn create_model_version(&self, new_version: NewModelVersion) -> Result<ModelVersion> {
        let now = now_millis();
        let mut transaction = self.writer.begin().await?;
        // Updating the model row first serialises concurrent creations of the same model on
        // PostgreSQL (row lock) and SQLite (single writer), so version numbers never collide.
        touch_model(&mut transaction, &new_version.name).await?;
        let row = sqlx::query(
            "SELECT COALESCE(MAX(version), 0) AS latest FROM model_versions WHERE name = $1",
        )
        .bind(new_version.name.as_str())
        .fetch_one(&mut *transaction)
        .await?;
        let version = get_i64(&row, "latest")? + 1;
        sqlx::query(
            "INSERT INTO model_versions (name, version, creation_timestamp, last_updated_timestamp, description, user_id, \
             current_stage, source, run_id, run_link, status, status_message, storage_location, model_id, deleted) \
             VALUES ($1, $2, $3, $3, $4, $5, 'None', $6, $7, $8, 'READY', NULL, $9, $10, 0)",
        )
        .bind(new_version.name.as_str())
        .bind(version)
        .bind(now)
        .bind(new_version.description.as_deref())
        .bind(new_version.user_id.as_deref())
        .bind(new_version.source.as_str())
        .bind(new_version.run_id.as_deref())
        .bind(new_version.run_link.as_deref())
        .bind(new_version.storage_location.as_deref())
        .bind(new_version.model_id.as_deref())
        .execute(&mut *transaction)
        .await?;
        for tag in &new_version.tags {
            sqlx::query(
                "INSERT INTO model_version_tags (name, version, key, value) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value",
            )
            .bind(new_version.name.as_str())
            .bind(version)
            .bind(tag.key.as_str())
            .bind(tag.value.as_str())
            .execute(&mut *transaction)
            .await?;
        }
        for file in &new_version.files {
            sqlx::query("INSERT INTO model_version_files (name, version, path, size, sha256) VALUES ($1, $2, $3, $4, $5)")
                .bind(new_version.name.as_str())
                .bind(version)
                .bind(file.path.as_str())
                .bind(file.size)
                .bind(file.sha256.as_str())
                .execute(&mut *transaction)
                .await?;
        }
        let created = Body::VersionCreated(proto::VersionCreated {
            version,
            source: new_version.source.clone(),
            run_id: new_version.run_id.clone().unwrap_or_default(),
            storage_location: new_version.storage_location.clone().unwrap_or_default(),
            model_id: new_version.model_id.clone().unwrap_or_default(),
        });
        write_events(
            &mut transaction,
            self.backend,
            &new_version.name,
            &new_version.actor,
            vec![created],
        )
        .await?;
        transaction.commit().await?;
        self.events_committed();
        self.get_model_version(&new_version.name, version).await
    }

    pub async fn get_model_version(&self, name: &str, version: i64) -> Result<ModelVersion> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM model_versions WHERE name = $1 AND version = $2 AND deleted = 0"
        )))
        .bind(name)
        .bind(version)
        .fetch_optional(&self.reader)
        .await?
        .ok_or_else(|| version_not_found(name, version))?;
        let mut versions = self
            .complete_versions(vec![version_from_row(&row)?])
            .await?;
        Ok(versions.remove(0))
    }

    pub async fn update_model_version(
        &self,
        name: &str,
        version: i64,
        description: Option<&str>,
    ) -> Result<ModelVersion> {
        let updated = sqlx::query(
            "UPDATE model_versions SET description = $1, last_updated_timestamp = $2 WHERE name = $3 AND version = $4 AND deleted = 0",
        )
        .bind(description)
        .bind(now_millis())
        .bind(name)
        .bind(version)
        .execute(&self.writer)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(version_not_found(name, version));
        }
        self.get_model_version(name, version).await
    }

    /// Moves a version to `stage`; with `archive_existing`, the other versions in that stage go
    /// to Archived. Every change lands in the history in the same transaction.
    pub async fn transition_stage(
        &self,
        name: &str,
        version: i64,
        stage: Stage,
        archive_existing: bool,
        change: &Change<'_>,
    ) -> Result<ModelVersion> {
        if archive_existing && !stage.allows_archiving_existing() {
            return Err(Error::invalid(format!(
                "Model version transition cannot archive existing model versions because '{}' is not an Active stage. Valid stages are Staging and Production.",
                stage.as_str()
            )));
        }
        let now = now_millis();
        let mut transaction = self.writer.begin().await?;
        touch_model(&mut transaction, name).await?;
        let row = sqlx::query("SELECT current_stage FROM model_versions WHERE name = $1 AND version = $2 AND deleted = 0")
            .bind(name)
            .bind(version)
            .fetch_optional(&mut *transaction)
            .await?
            .ok_or_else(|| version_not_found(name, version))?;
        let previous_stage = get_text(&row, "current_stage")?;
        let comment = change.comment.unwrap_or_default();
        let mut events = Vec::new();
        if archive_existing {
            let others = sqlx::query(
                "SELECT version FROM model_versions WHERE name = $1 AND current_stage = $2 AND version <> $3 AND deleted = 0",
            )
            .bind(name)
            .bind(stage.as_str())
            .bind(version)
            .fetch_all(&mut *transaction)
            .await?;
            for other in others {
                let other_version = get_i64(&other, "version")?;
                sqlx::query(
                    "UPDATE model_versions SET current_stage = 'Archived', last_updated_timestamp = $1 WHERE name = $2 AND version = $3",
                )
                .bind(now)
                .bind(name)
                .bind(other_version)
                .execute(&mut *transaction)
                .await?;
                append_history(
                    &mut transaction,
                    name,
                    Some(other_version),
                    HistoryKind::Stage.as_str(),
                    Some(stage.as_str()),
                    Some("Archived"),
                    change,
                )
                .await?;
                events.push(Body::StageTransitioned(proto::StageTransitioned {
                    version: other_version,
                    from_stage: stage.as_str().to_owned(),
                    to_stage: "Archived".to_owned(),
                    comment: comment.to_owned(),
                }));
            }
        }
        sqlx::query("UPDATE model_versions SET current_stage = $1, last_updated_timestamp = $2 WHERE name = $3 AND version = $4")
            .bind(stage.as_str())
            .bind(now)
            .bind(name)
            .bind(version)
            .execute(&mut *transaction)
            .await?;
        append_history(
            &mut transaction,
            name,
            Some(version),
            HistoryKind::Stage.as_str(),
            Some(&previous_stage),
            Some(stage.as_str()),
            change,
        )
        .await?;
        // A transition to the stage a version is already in changes nothing the fleet serves.
        if previous_stage != stage.as_str() {
            events.push(Body::StageTransitioned(proto::StageTransitioned {
                version,
                from_stage: previous_stage,
                to_stage: stage.as_str().to_owned(),
                comment: comment.to_owned(),
            }));
        }
        write_events(&mut transaction, self.backend, name, change.actor, events).await?;
        transaction.commit().await?;
        self.events_committed();
        self.get_model_version(name, version).await
    }

    /// Soft-deletes a version: the row stays so its number is never reused; its aliases go.
    pub async fn delete_model_version(
        &self,
        name: &str,
        version: i64,
        change: &Change<'_>,
    ) -> Result<()> {
        let mut transaction = self.writer.begin().await?;
        // The model row first, as a deployment change takes it: otherwise a deployment could
        // start routing to this version between the check below and this commit.
        match touch_model(&mut transaction, name).await {
            Err(Error::NotFound(_)) => return Err(version_not_found(name, version)),
            other => other?,
        }
        let deleted = sqlx::query(
            "UPDATE model_versions SET deleted = 1, current_stage = 'Deleted_Internal', last_updated_timestamp = $1 \
             WHERE name = $2 AND version = $3 AND deleted = 0",
        )
        .bind(now_millis())
        .bind(name)
        .bind(version)
        .execute(&mut *transaction)
        .await?;
        if deleted.rows_affected() == 0 {
            return Err(version_not_found(name, version));
        }
        // Refused rather than silently rewriting the deployment: traffic moves only when someone
        // decides where it goes.
        super::deployments::refuse_if_deployed(&mut transaction, name, version).await?;
        let aliases = sqlx::query(
            "SELECT alias FROM registered_model_aliases WHERE name = $1 AND version = $2",
        )
        .bind(name)
        .bind(version)
        .fetch_all(&mut *transaction)
        .await?;
        let mut events = Vec::new();
        for alias in aliases {
            let alias = get_text(&alias, "alias")?;
            let from = format!("{alias}={version}");
            append_history(
                &mut transaction,
                name,
                Some(version),
                HistoryKind::Alias.as_str(),
                Some(&from),
                None,
                change,
            )
            .await?;
            // Serving follows aliases, so the ones that vanish with the version are announced.
            events.push(Body::AliasDeleted(proto::AliasDeleted { alias, version }));
        }
        sqlx::query("DELETE FROM registered_model_aliases WHERE name = $1 AND version = $2")
            .bind(name)
            .bind(version)
            .execute(&mut *transaction)
            .await?;
        append_history(
            &mut transaction,
            name,
            Some(version),
            "delete_version",
            None,
            None,
            change,
        )
        .await?;
        events.push(Body::VersionDeleted(proto::VersionDeleted { version }));
        write_events(&mut transaction, self.backend, name, change.actor, events).await?;
        transaction.commit().await?;
        self.events_committed();
        Ok(())
    }

    pub async fn set_model_version_tag(
        &self,
        name: &str,
        version: i64,
        tag: &KeyValue,
    ) -> Result<()> {
        self.get_model_version(name, version).await?;
        sqlx::query(
            "INSERT INTO model_version_tags (name, version, key, value) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(version)
        .bind(tag.key.as_str())
        .bind(tag.value.as_str())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub async fn delete_model_version_tag(
        &self,
        name: &str,
        version: i64,
        key: &str,
    ) -> Result<()> {
        self.get_model_version(name, version).await?;
        sqlx::query("DELETE FROM model_version_tags WHERE name = $1 AND version = $2 AND key = $3")
            .bind(name)
            .bind(version)
            .bind(key)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn search_model_versions(
        &self,
        request: SearchModels<'_>,
    ) -> Result<Page<ModelVersion>> {
        let search = ParsedSearch::parse(SearchRequest {
            entity: Entity::ModelVersions,
            filter: request.filter,
            order_by: request.order_by,
            max_results: request.max_results,
            page_token: request.page_token,
        })?;
        let page = self
            .search(
                search,
                &format!("SELECT {VERSION_COLUMNS} FROM model_versions"),
                &[Scope::Sql("model_versions.deleted = 0")],
                version_from_row,
            )
            .await?;
        let items = self.complete_versions(page.items).await?;
        Ok(Page {
            items,
            next_page_token: page.next_page_token,
        })
    }

    /// The highest version in each requested stage (every stage when `stages` is empty).
    pub async fn get_latest_versions(
        &self,
        name: &str,
        stages: &[Stage],
    ) -> Result<Vec<ModelVersion>> {
        let model = self.get_registered_model(name).await?;
        Ok(model
            .latest_versions
            .into_iter()
            .filter(|version| {
                stages.is_empty()
                    || stages
                        .iter()
                        .any(|stage| stage.as_str() == version.current_stage)
            })
            .collect())
    }

    // ----- aliases -----

    pub async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: i64,
        change: &Change<'_>,
    ) -> Result<()> {
        let mut transaction = self.writer.begin().await?;
        touch_model(&mut transaction, name).await?;
        let exists = sqlx::query(
            "SELECT version FROM model_versions WHERE name = $1 AND version = $2 AND deleted = 0",
        )
        .bind(name)
        .bind(version)
        .fetch_optional(&mut *transaction)
        .await?;
        if exists.is_none() {
            return Err(version_not_found(name, version));
        }
        let previous = sqlx::query(
            "SELECT version FROM registered_model_aliases WHERE name = $1 AND alias = $2",
        )
        .bind(name)
        .bind(alias)
        .fetch_optional(&mut *transaction)
        .await?
        .map(|row| get_i64(&row, "version"))
        .transpose()?;
        sqlx::query(
            "INSERT INTO registered_model_aliases (name, alias, version) VALUES ($1, $2, $3) \
             ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version",
        )
        .bind(name)
        .bind(alias)
        .bind(version)
        .execute(&mut *transaction)
        .await?;
        if previous != Some(version) {
            let from = previous.map(|previous| format!("{alias}={previous}"));
            let to = format!("{alias}={version}");
            append_history(
                &mut transaction,
                name,
                Some(version),
                HistoryKind::Alias.as_str(),
                from.as_deref(),
                Some(&to),
                change,
            )
            .await?;
            let set = Body::AliasSet(proto::AliasSet {
                alias: alias.to_owned(),
                version,
                previous_version: previous,
            });
            write_events(
                &mut transaction,
                self.backend,
                name,
                change.actor,
                vec![set],
            )
            .await?;
        }
        transaction.commit().await?;
        self.events_committed();
        Ok(())
    }

    pub async fn delete_alias(&self, name: &str, alias: &str, change: &Change<'_>) -> Result<()> {
        let mut transaction = self.writer.begin().await?;
        touch_model(&mut transaction, name).await?;
        let previous = sqlx::query(
            "SELECT version FROM registered_model_aliases WHERE name = $1 AND alias = $2",
        )
        .bind(name)
        .bind(alias)
        .fetch_optional(&mut *transaction)
        .await?
        .map(|row| get_i64(&row, "version"))
        .transpose()?;
        if let Some(previous) = previous {
            sqlx::query("DELETE FROM registered_model_aliases WHERE name = $1 AND alias = $2")
                .bind(name)
                .bind(alias)
                .execute(&mut *transaction)
                .await?;
            let from = format!("{alias}={previous}");
            append_history(
                &mut transaction,
                name,
                Some(previous),
                HistoryKind::Alias.as_str(),
                Some(&from),
                None,
                change,
            )
            .await?;
            let deleted = Body::AliasDeleted(proto::AliasDeleted {
                alias: alias.to_owned(),
                version: previous,
            });
            write_events(
                &mut transaction,
                self.backend,
                name,
                change.actor,
                vec![deleted],
            )
            .await?;
        }
        transaction.commit().await?;
        self.events_committed();
        Ok(())
    }

    pub async fn get_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        self.get_registered_model(name).await?;
        let row = sqlx::query(
            "SELECT version FROM registered_model_aliases WHERE name = $1 AND alias = $2",
        )
        .bind(name)
        .bind(alias)
        .fetch_optional(&self.reader)
        .await?
        // MLflow answers an unknown alias with 400 INVALID_PARAMETER_VALUE, and clients expect it.
        .ok_or_else(|| Error::invalid(format!("Registered model alias {alias} not found.")))?;
        self.get_model_version(name, get_i64(&row, "version")?)
            .await
    }

    // ----- okla-native -----

    pub async fn version_files(&self, name: &str, version: i64) -> Result<Vec<VersionFile>> {
        self.get_model_version(name, version).await?;
        let rows = sqlx::query(
            "SELECT path, size, sha256 FROM model_version_files WHERE name = $1 AND version = $2",
        )
        .bind(name)
        .bind(version)
        .fetch_all(&self.reader)
        .await?;
        let mut files = rows
            .iter()
            .map(|row| {
                Ok(VersionFile {
                    path: get_text(row, "path")?,
                    size: get_i64(row, "size")?,
                    sha256: get_text(row, "sha256")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // Byte order on every backend, whatever the database's collation.
        files.sort_by(|left, right| left.path.cmp(&right.path));
        Ok(files)
    }

    /// The model's history, oldest first. Kept after the model is deleted.
    pub async fn model_history(&self, name: &str) -> Result<Vec<HistoryEntry>> {
        let rows = sqlx::query(
            "SELECT id, name, version, kind, from_value, to_value, actor, time, comment FROM model_history WHERE name = $1 ORDER BY id",
        )
        .bind(name)
        .fetch_all(&self.reader)
        .await?;
        if rows.is_empty() {
            self.get_registered_model(name).await?;
        }
        rows.iter()
            .map(|row| {
                Ok(HistoryEntry {
                    id: get_i64(row, "id")?,
                    name: get_text(row, "name")?,
                    version: get_opt_i64(row, "version")?,
                    kind: get_text(row, "kind")?,
                    from_value: get_opt_text(row, "from_value")?,
                    to_value: get_opt_text(row, "to_value")?,
                    actor: get_text(row, "actor")?,
                    time: get_i64(row, "time")?,
                    comment: get_opt_text(row, "comment")?,
                })
            })
            .collect()
    }
}

fn model_from_row(row: &AnyRow) -> Result<RegisteredModel> {
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

fn version_from_row(row: &AnyRow) -> Result<ModelVersion> {
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
