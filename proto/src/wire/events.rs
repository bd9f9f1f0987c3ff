//! `GET /api/okla/v1/events`: the registry's outbox as a feed, for serving nodes that poll
//! instead of consuming RabbitMQ. A client passes the `next_after` of one page as `after` of
//! the next; delivery is at least once, so consumers dedupe by `event_id`.

use serde::{Deserialize, Serialize};

/// One page of the feed, in `sequence` order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsPage {
    #[serde(default)]
    pub events: Vec<FeedEvent>,
    pub next_after: i64,
}

/// One event of the feed. `event` is the `ModelEvent` body as `{"<oneof field>": {...}}`, with
/// the .proto's snake_case field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedEvent {
    pub sequence: i64,
    pub event_id: String,
    pub model_name: String,
    pub model_sequence: i64,
    pub routing_key: String,
    pub occurred_at_ms: i64,
    pub actor: String,
    #[serde(default)]
    pub published_at_ms: Option<i64>,
    pub event: serde_json::Value,
}
