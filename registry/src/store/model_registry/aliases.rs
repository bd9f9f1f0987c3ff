//! Model aliases: set, move, delete and resolve, each recorded in the model history.

use okla_proto::events as proto;
use proto::model_event::Body;

use super::Change;
use crate::domain::deployments::CHAMPION_ALIAS;
use crate::domain::model_registry::{HistoryKind, ModelVersion};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::deployments::{clear_undeployed, refuse_going_dark, serving_now};
use crate::store::outbox::write_events;
use crate::store::sql::get_i64;
use crate::store::transaction::{append_history, touch_model, version_not_found};

impl Store {
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
        if alias == CHAMPION_ALIAS {
            clear_undeployed(&mut transaction, name).await?;
        }
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
        // Only the champion alias decides what the fleet serves.
        let before = if alias == CHAMPION_ALIAS {
            serving_now(&mut transaction, name).await?
        } else {
            None
        };
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
            refuse_going_dark(
                &mut transaction,
                name,
                before,
                &format!("Deleting alias '{alias}'"),
            )
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
}
