//! Retention in the database: published events, forgotten serving nodes and old audit entries
//! are deleted once older than the configured ages (see `crate::housekeeping`).

use super::Store;
use crate::error::Result;

impl Store {
    /// Deletes outbox events created before `before_ms` (milliseconds since the epoch) that
    /// RabbitMQ confirmed; with `unpublished_too` (no broker to publish to), every one that
    /// old. Returns how many went.
    pub async fn prune_events(&self, before_ms: i64, unpublished_too: bool) -> Result<u64> {
        let sql = if unpublished_too {
            "DELETE FROM outbox_events WHERE created_at < $1"
        } else {
            "DELETE FROM outbox_events WHERE created_at < $1 AND published_at IS NOT NULL"
        };
        let deleted = sqlx::query(sql)
            .bind(before_ms)
            .execute(&self.writer)
            .await?;
        Ok(deleted.rows_affected())
    }

    /// Forgets serving nodes whose latest report came before `before_ms`.
    pub async fn prune_nodes(&self, before_ms: i64) -> Result<u64> {
        let deleted = sqlx::query("DELETE FROM serving_nodes WHERE reported_at < $1")
            .bind(before_ms)
            .execute(&self.writer)
            .await?;
        Ok(deleted.rows_affected())
    }

    /// Deletes audit entries recorded before `before_ms`.
    pub async fn prune_audit(&self, before_ms: i64) -> Result<u64> {
        let deleted = sqlx::query("DELETE FROM audit_log WHERE time < $1")
            .bind(before_ms)
            .execute(&self.writer)
            .await?;
        Ok(deleted.rows_affected())
    }
}
