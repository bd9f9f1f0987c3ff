//! Model registry events on RabbitMQ: the relay that publishes the outbox (`relay.rs`) on the
//! topology `okla_proto::events::topology` names.
//!
//! Delivery is at least once: a crash between the broker's confirm and the `published_at`
//! update republishes the event with the same `event_id` (also the AMQP `message_id`), so
//! consumers dedupe by it. Without `--amqp-url` nothing connects; the outbox is still written
//! and `GET /api/okla/v1/events` serves it.

mod relay;

pub use relay::run_relay;
