//! Model versions: create (numbers never reused), read, update, stage transitions, delete,
//! tags, search, the latest version per stage, and each version's file digests.

use okla_proto::events as proto;
use proto::model_event::Body;

use super::{Change, NewModelVersion, SearchModels, VERSION_COLUMNS, version_from_row};
use crate::domain::model_registry::{HistoryKind, ModelVersion, Stage, VersionFile};
use crate::domain::search::Entity;
use crate::domain::{KeyValue, now_millis};
use crate::error::{Error, Result};
use crate::store::deployments::{clear_undeployed, refuse_going_dark, serving_now};
use crate::store::outbox::write_events;
use crate::store::search::{ParsedSearch, Scope, SearchRequest};
use crate::store::sql::{get_i64, get_text};
use crate::store::transaction::{append_history, touch_model, version_not_found};
use crate::store::{Page, Store};

impl Store {
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
        let before = serving_now(&mut transaction, name).await?;
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
        if stage == Stage::Production {
            clear_undeployed(&mut transaction, name).await?;
        }
        refuse_going_dark(
            &mut transaction,
            name,
            before,
            &format!(
                "Moving version {version} to stage '{}'{}",
                stage.as_str(),
                if archive_existing {
                    " and archiving the others"
                } else {
                    ""
                }
            ),
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
        let before = serving_now(&mut transaction, name).await?;
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
        crate::store::deployments::refuse_if_deployed(&mut transaction, name, version).await?;
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
        refuse_going_dark(
            &mut transaction,
            name,
            before,
            &format!("Deleting version {version}"),
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
}
