//! Model registry events on RabbitMQ: the names of the topology, the routing key of each event
//! body, and the relay that publishes the outbox (`relay.rs`).
//!
//! Delivery is at least once: a crash between the broker's confirm and the `published_at`
//! update republishes the event with the same `event_id` (also the AMQP `message_id`), so
//! consumers dedupe by it. Without `--amqp-url` nothing connects; the outbox is still written
//! and `GET /api/okla/v1/events` serves it.

mod relay;

use okla_proto::events::model_event::Body;

pub use relay::run_relay;

/// The durable topic exchange every event is published to.
pub const EXCHANGE: &str = "okla.ml.models.exchange";
/// Where the queues below dead-letter rejected or expired messages (fanout).
pub const DEAD_LETTER_EXCHANGE: &str = "okla.ml.models.dlx";
/// Holds what the queues dead-lettered, for an operator to inspect or replay.
pub const DEAD_LETTER_QUEUE: &str = "okla.ml.models.dlq";
/// New model versions: what product services and evaluation jobs pick up.
pub const TRAINED_QUEUE: &str = "okla.ml.models.trained";
/// Stage, alias, deletion and deployment changes: what the serving fleet converges on.
pub const DEPLOYED_QUEUE: &str = "okla.ml.models.deployed";
/// The binding keys of `TRAINED_QUEUE`.
pub const TRAINED_BINDINGS: &[&str] = &["model.version.created"];
/// The binding keys of `DEPLOYED_QUEUE`: whatever changes which versions the fleet may serve
/// (a deleted version or model must stop serving). `deployment.*` carries the deployments'
/// changes; `model.deployed` and `model.load_failed` say what the serving nodes report they
/// serve (written by the registry from the nodes' reports).
pub const DEPLOYED_BINDINGS: &[&str] = &[
    "model.version.transitioned",
    "model.version.deleted",
    "model.alias.*",
    "model.renamed",
    "model.deleted",
    "deployment.*",
    "model.deployed",
    "model.load_failed",
];
/// AMQP `content_type` of every event.
pub const CONTENT_TYPE: &str = "application/x-protobuf";
/// AMQP `type` of every event: the protobuf message name, versioned by its package.
pub const MESSAGE_TYPE: &str = "okla.events.v1.ModelEvent";

/// The routing key an event body is published under.
pub fn routing_key(body: &Body) -> &'static str {
    match body {
        Body::VersionCreated(_) => "model.version.created",
        Body::StageTransitioned(_) => "model.version.transitioned",
        Body::AliasSet(_) => "model.alias.set",
        Body::AliasDeleted(_) => "model.alias.deleted",
        Body::VersionDeleted(_) => "model.version.deleted",
        Body::ModelRenamed(_) => "model.renamed",
        Body::ModelDeleted(_) => "model.deleted",
        Body::DeploymentUpdated(_) => "deployment.updated",
        Body::DeploymentDeleted(_) => "deployment.deleted",
        Body::DeploymentRolledBack(_) => "deployment.rolled_back",
        Body::ModelDeployed(_) => "model.deployed",
        Body::ModelLoadFailed(_) => "model.load_failed",
    }
}
