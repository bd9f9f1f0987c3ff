//! Registered models: create, read (with tags, aliases and latest versions), rename, update,
//! delete, tags, search, and the model's history.

use std::collections::{BTreeSet, HashMap};

use okla_proto::events as proto;
use proto::model_event::Body;

use super::{
    Change, MODEL_COLUMNS, SearchModels, VERSION_COLUMNS, model_from_row, version_from_row,
};
use crate::domain::auth::ResourceType;
use crate::domain::model_registry::{HistoryEntry, ModelVersion, RegisteredModel};
use crate::domain::search::Entity;
use crate::domain::{KeyValue, now_millis};
use crate::error::{Error, Result};
use crate::store::auth::{delete_model_grants, grant_creator, rename_model_grants};
use crate::store::deployments::{refuse_going_dark, serving_now};
use crate::store::outbox::write_events;
use crate::store::search::{ParsedSearch, SearchRequest};
use crate::store::sql::{get_i64, get_opt_i64, get_opt_text, get_text, is_unique_violation};
use crate::store::transaction::{
    KeyRef, append_history, model_not_found, touch_model, upsert_key_values,
};
use crate::store::{Page, Store};

impl Store {
    pub async fn create_registered_model(
        &self,
        name: &str,
        description: Option<&str>,
        tags: &[KeyValue],
    ) -> Result<RegisteredModel> {
        self.create_owned_registered_model(name, description, tags, None)
            .await
    }

    /// Creates a registered model; `owner` (a user id) gets MANAGE on it in the same transaction.
    pub async fn create_owned_registered_model(
        &self,
        name: &str,
        description: Option<&str>,
        tags: &[KeyValue],
        owner: Option<i64>,
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
        if let Some(owner) = owner {
            grant_creator(&mut transaction, owner, ResourceType::RegisteredModel, name).await?;
        }
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
        let before = serving_now(&mut transaction, name).await?;
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
        rename_model_grants(&mut transaction, name, new_name).await?;
        refuse_going_dark(
            &mut transaction,
            name,
            before,
            &format!("Renaming it to '{new_name}'"),
        )
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
        let before = serving_now(&mut transaction, name).await?;
        let deleted = sqlx::query("DELETE FROM registered_models WHERE name = $1")
            .bind(name)
            .execute(&mut *transaction)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(model_not_found(name));
        }
        refuse_going_dark(&mut transaction, name, before, "Deleting it").await?;
        delete_model_grants(&mut transaction, name).await?;
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
    pub(super) async fn complete_models(
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
    pub(super) async fn complete_versions(
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

    pub(super) async fn tags_by_name(
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

    pub(super) async fn aliases_by_name(
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
