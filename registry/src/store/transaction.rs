//! Writes several stores share inside one transaction: key/value rows of any owner, a model's
//! update time and its history, and the errors for a model or version that is not there.

use std::collections::BTreeMap;

use sqlx::{Any, Transaction};

use super::sql::values_rows;
use crate::domain::{KeyValue, now_millis};
use crate::error::{Error, Result};

/// Who changed a stage or alias, and why; recorded in the model history.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    pub actor: &'a str,
    pub comment: Option<&'a str>,
}

/// The owner column of a key/value table: an integer or a text id.
pub(super) enum KeyRef<'a> {
    Int(i64),
    Text(&'a str),
}

/// Inserts or overwrites key/value rows of one owner in a single statement.
pub(super) async fn upsert_key_values(
    transaction: &mut Transaction<'_, Any>,
    table: &str,
    owner_column: &str,
    owner: &KeyRef<'_>,
    pairs: &[KeyValue],
) -> Result<()> {
    // The last value of a key wins, and a key may appear only once per statement.
    let mut deduplicated: BTreeMap<&str, &str> = BTreeMap::new();
    for pair in pairs {
        deduplicated.insert(pair.key.as_str(), pair.value.as_str());
    }
    if deduplicated.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO {table} ({owner_column}, key, value) VALUES {} \
         ON CONFLICT ({owner_column}, key) DO UPDATE SET value = excluded.value",
        values_rows(deduplicated.len(), 3)
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (key, value) in deduplicated {
        query = match owner {
            KeyRef::Int(id) => query.bind(*id),
            KeyRef::Text(id) => query.bind(*id),
        };
        query = query.bind(key).bind(value);
    }
    query.execute(&mut **transaction).await?;
    Ok(())
}

/// Bumps the model's update time; fails with NotFound when it does not exist.
pub(super) async fn touch_model(transaction: &mut Transaction<'_, Any>, name: &str) -> Result<()> {
    let updated =
        sqlx::query("UPDATE registered_models SET last_updated_timestamp = $1 WHERE name = $2")
            .bind(now_millis())
            .bind(name)
            .execute(&mut **transaction)
            .await?;
    if updated.rows_affected() == 0 {
        return Err(model_not_found(name));
    }
    Ok(())
}

pub(super) async fn append_history(
    transaction: &mut Transaction<'_, Any>,
    name: &str,
    version: Option<i64>,
    kind: &str,
    from_value: Option<&str>,
    to_value: Option<&str>,
    change: &Change<'_>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO model_history (name, version, kind, from_value, to_value, actor, time, comment) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(name)
    .bind(version)
    .bind(kind)
    .bind(from_value)
    .bind(to_value)
    .bind(change.actor)
    .bind(now_millis())
    .bind(change.comment)
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

pub(super) fn model_not_found(name: &str) -> Error {
    Error::not_found(format!("Registered Model with name={name} not found"))
}

pub(super) fn version_not_found(name: &str, version: i64) -> Error {
    Error::not_found(format!(
        "Model Version (name={name}, version={version}) not found"
    ))
}
