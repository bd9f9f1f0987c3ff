//! The audit log's rows (`audit_log`): written in batches by `crate::audit`, read back by admins.

use super::Store;
use super::sql::{get_i64, get_text, values_rows};
use crate::domain::auth::AuditEntry;
use crate::error::Result;

impl Store {
    /// Inserts entries in one statement.
    pub async fn insert_audit_entries(&self, entries: &[AuditEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO audit_log (time, actor, method, path, status, outcome) VALUES {}",
            values_rows(entries.len(), 6)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for entry in entries {
            query = query
                .bind(entry.time)
                .bind(&entry.actor)
                .bind(&entry.method)
                .bind(&entry.path)
                .bind(i64::from(entry.status))
                .bind(entry.outcome());
        }
        query.execute(&self.writer).await?;
        Ok(())
    }

    /// Up to `limit` entries with an id above `after`, oldest first, with their ids.
    pub async fn audit_entries(&self, after: i64, limit: i64) -> Result<Vec<(i64, AuditEntry)>> {
        sqlx::query(
            "SELECT id, time, actor, method, path, status FROM audit_log \
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|row| {
            Ok((
                get_i64(row, "id")?,
                AuditEntry {
                    time: get_i64(row, "time")?,
                    actor: get_text(row, "actor")?,
                    method: get_text(row, "method")?,
                    path: get_text(row, "path")?,
                    status: u16::try_from(get_i64(row, "status")?).unwrap_or(0),
                },
            ))
        })
        .collect()
    }
}
