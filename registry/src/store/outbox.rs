//! The transactional outbox: event rows written inside the transaction of the change they
//! describe, read back in `sequence` order by the relay and by the events feed.
//!
//! **Invariant:** an event row is written in the same transaction as its change (a rolled-back
//! change leaves no event) and is marked published only after the broker confirms it.

use okla_proto::events as proto;
use prost::Message;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use super::sql::{get_i64, get_opt_i64, get_text};
use super::{Backend, Store};
use crate::domain::now_millis;
use crate::error::Result;

/// One row of `outbox_events`; `payload` is a protobuf-encoded `okla.events.v1.ModelEvent`.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    pub sequence: i64,
    pub event_id: String,
    pub model_name: String,
    pub model_sequence: i64,
    pub routing_key: String,
    pub payload: Vec<u8>,
    pub created_at: i64,
    pub published_at: Option<i64>,
}

const EVENT_COLUMNS: &str = "sequence, event_id, model_name, model_sequence, routing_key, payload, created_at, published_at";

impl Store {
    /// Committed events with `sequence > after`, oldest first.
    pub async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<OutboxEvent>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM outbox_events WHERE sequence > $1 ORDER BY sequence LIMIT {limit}"
        )))
        .bind(after)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// The oldest events the broker has not confirmed yet, in `sequence` order.
    pub async fn unpublished_events(&self, limit: u32) -> Result<Vec<OutboxEvent>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM outbox_events WHERE published_at IS NULL ORDER BY sequence LIMIT {limit}"
        )))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Records that the broker confirmed these events. Called only after the confirms arrived.
    pub async fn mark_events_published(&self, sequences: &[i64]) -> Result<()> {
        if sequences.is_empty() {
            return Ok(());
        }
        let now = now_millis();
        let mut transaction = self.writer.begin().await?;
        let sql = format!(
            "UPDATE outbox_events SET published_at = $1 WHERE published_at IS NULL AND {}",
            self.in_number_list("sequence", 2)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(self.number_list(sequences))
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Wakes the relay once a transaction that wrote events has committed.
    pub(super) fn events_committed(&self) {
        self.events_written.notify_one();
    }

    /// Fires after each commit that wrote events; the relay waits on it between polls.
    pub fn events_written(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.events_written.clone()
    }
}

/// Writes one event per body for `model_name`, each with the next number of the name's stream.
///
/// Call it last in the transaction, after every row lock the change needs: on PostgreSQL it
/// takes the outbox lock, and taking it earlier would let a transaction that holds the lock wait
/// on a row held by one that waits on the lock.
pub(super) async fn write_events(
    transaction: &mut Transaction<'_, Any>,
    backend: Backend,
    model_name: &str,
    actor: &str,
    bodies: Vec<proto::model_event::Body>,
) -> Result<()> {
    if bodies.is_empty() {
        return Ok(());
    }
    if backend == Backend::Postgres {
        // BIGSERIAL hands out numbers at insert, not at commit: without this lock sequence 11
        // could commit before 10, and a feed client that already read `after=11` would never
        // see 10. Serialising event writers makes commit order equal sequence order. Readers
        // (ACCESS SHARE) are not blocked. SQLite has a single writer and needs nothing.
        sqlx::query("LOCK TABLE outbox_events IN EXCLUSIVE MODE")
            .execute(&mut **transaction)
            .await?;
    }
    let occurred_at_ms = now_millis();
    for body in bodies {
        // Atomic per name: the row lock (PostgreSQL) or the single writer (SQLite) keeps two
        // transactions from drawing the same number.
        let row = sqlx::query(
            "INSERT INTO model_event_sequences (model_name, last_sequence) VALUES ($1, 1) \
             ON CONFLICT (model_name) DO UPDATE SET last_sequence = model_event_sequences.last_sequence + 1 \
             RETURNING last_sequence",
        )
        .bind(model_name)
        .fetch_one(&mut **transaction)
        .await?;
        let model_sequence = get_i64(&row, "last_sequence")?;
        let routing_key = okla_proto::events::topology::routing_key(&body);
        let event = proto::ModelEvent {
            event_id: uuid::Uuid::new_v4().to_string(),
            model_name: model_name.to_owned(),
            model_sequence,
            occurred_at_ms,
            actor: actor.to_owned(),
            body: Some(body),
        };
        sqlx::query(
            "INSERT INTO outbox_events (event_id, model_name, model_sequence, routing_key, payload, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(event.event_id.as_str())
        .bind(model_name)
        .bind(model_sequence)
        .bind(routing_key)
        .bind(event.encode_to_vec())
        .bind(occurred_at_ms)
        .execute(&mut **transaction)
        .await?;
    }
    Ok(())
}

fn event_from_row(row: &AnyRow) -> Result<OutboxEvent> {
    use sqlx::Row;
    Ok(OutboxEvent {
        sequence: get_i64(row, "sequence")?,
        event_id: get_text(row, "event_id")?,
        model_name: get_text(row, "model_name")?,
        model_sequence: get_i64(row, "model_sequence")?,
        routing_key: get_text(row, "routing_key")?,
        payload: row.try_get::<Vec<u8>, _>("payload")?,
        created_at: get_i64(row, "created_at")?,
        published_at: get_opt_i64(row, "published_at")?,
    })
}
