//! The event path of the registry source: the registry's model events on RabbitMQ wake the
//! source to poll at once, instead of at its next tick.
//!
//! The node declares the registry's topic exchange (the same arguments as the registry's relay,
//! so whichever starts first creates it), a queue of its own (server-named, exclusive,
//! auto-delete: one per node, gone with the connection) bound to the routing keys that change
//! what the fleet serves, and consumes it without acks: an event only says "poll now", and
//! the poll asks the registry for the whole truth, so a lost event costs at most one poll
//! interval. Events about models the node does not follow are counted and dropped; a burst of
//! events wakes the source once more (see [`crate::registry_source::RegistrySource::run`]).
//!
//! The broker being away never stops the node: polling goes on, and the consumer reconnects
//! with capped, jittered exponential backoff. Every (re)connect wakes the source once, since
//! events may have been missed while no queue existed.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{Connection, ConnectionProperties, Consumer, ExchangeKind};
use okla_proto::events::ModelEvent;
use okla_proto::events::model_event::Body;
use okla_proto::events::topology::{EXCHANGE, NODE_BINDINGS};
use okla_runtime::{Backoff, Reconnect};
use prost::Message;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Reconnects from 100 ms, doubling up to 10 s, jittered so that a fleet does not reconnect in
/// lockstep when the broker returns; a connect that takes longer than 30 s means the broker or
/// the network is stuck.
const RECONNECT: Reconnect = Reconnect {
    peer: "RabbitMQ",
    meanwhile: "following the registry by polling",
    backoff: Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(10),
    },
    connect_timeout: Duration::from_secs(30),
};
const CONSUMER_TAG: &str = "okla-serving";

/// Whether an event concerns a model the node follows (`followed` empty: every model). A rename
/// concerns both names: the old one stops serving, the new one may start.
pub fn concerns_followed_model(event: &ModelEvent, followed: &[String]) -> bool {
    if followed.is_empty() {
        return true;
    }
    let is_followed = |name: &str| followed.iter().any(|model| model == name);
    is_followed(&event.model_name)
        || matches!(&event.body, Some(Body::ModelRenamed(renamed)) if is_followed(&renamed.new_name))
}

/// Consumes the registry's events from `amqp_url` until `shutdown` fires, waking `wake` for
/// every event about a model in `followed` (empty: any model). Never returns an error: the
/// broker's failures are logged and retried, and polling carries on meanwhile.
pub async fn run(
    amqp_url: String,
    followed: Vec<String>,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let (followed, wake, metrics, shutdown) = (&followed, &wake, &metrics, &shutdown);
    RECONNECT
        .run(
            shutdown,
            || connect(&amqp_url),
            |(connection, consumer): (Connection, Consumer)| async move {
                tracing::info!("following the registry's events on RabbitMQ");
                // Whatever changed while no queue was bound is learnt by polling.
                wake.notify_one();
                let failure = consume(consumer, followed, wake, metrics, shutdown).await;
                // A close on a dead connection may never be answered.
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    connection.close(200, ShortString::from("okla-serving stopping")),
                )
                .await;
                failure
            },
        )
        .await;
}

/// Connects, declares the exchange (idempotent: the registry declares it alike) and this
/// node's queue, binds it and starts consuming.
async fn connect(amqp_url: &str) -> lapin::Result<(Connection, Consumer)> {
    let connection = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .exchange_declare(
            EXCHANGE.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    for binding in NODE_BINDINGS {
        channel
            .queue_bind(
                queue.name().clone(),
                EXCHANGE.into(),
                (*binding).into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    let consumer = channel
        .basic_consume(
            queue.name().clone(),
            CONSUMER_TAG.into(),
            BasicConsumeOptions {
                no_ack: true,
                exclusive: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok((connection, consumer))
}

/// Handles deliveries until the connection fails (returned) or `shutdown` fires (`None`).
async fn consume(
    mut consumer: Consumer,
    followed: &[String],
    wake: &Notify,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Option<String> {
    loop {
        let delivery = tokio::select! {
            _ = shutdown.cancelled() => return None,
            delivery = consumer.next() => delivery,
        };
        let delivery = match delivery {
            Some(Ok(delivery)) => delivery,
            Some(Err(error)) => return Some(error.to_string()),
            None => return Some("the broker ended the consumer".to_owned()),
        };
        metrics.registry_events.inc();
        let routing_key = delivery.routing_key.as_str();
        match ModelEvent::decode(delivery.data.as_slice()) {
            Ok(event) if concerns_followed_model(&event, followed) => {
                tracing::debug!(
                    routing_key,
                    model = event.model_name.as_str(),
                    model_sequence = event.model_sequence,
                    "registry event; polling now"
                );
                wake.notify_one();
            }
            Ok(_) => {}
            Err(error) => {
                // The routing key says something the fleet serves changed; a poll finds what.
                tracing::warn!(routing_key, %error, "undecodable registry event; polling now");
                wake.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use okla_proto::events::{AliasSet, ModelRenamed};

    fn event(model: &str, body: Body) -> ModelEvent {
        ModelEvent {
            model_name: model.to_owned(),
            body: Some(body),
            ..ModelEvent::default()
        }
    }

    #[test]
    fn only_followed_models_wake_the_source() {
        let alias = event(
            "pricing",
            Body::AliasSet(AliasSet {
                alias: "champion".to_owned(),
                version: 2,
                previous_version: Some(1),
            }),
        );
        assert!(concerns_followed_model(&alias, &[]));
        assert!(concerns_followed_model(&alias, &["pricing".to_owned()]));
        assert!(!concerns_followed_model(&alias, &["churn".to_owned()]));

        let renamed = event(
            "pricing-old",
            Body::ModelRenamed(ModelRenamed {
                new_name: "pricing".to_owned(),
            }),
        );
        assert!(concerns_followed_model(&renamed, &["pricing".to_owned()]));
        assert!(concerns_followed_model(
            &renamed,
            &["pricing-old".to_owned()]
        ));
        assert!(!concerns_followed_model(&renamed, &["churn".to_owned()]));
    }

    #[test]
    fn amqp_url_only_with_registry() {
        use clap::Parser;

        use crate::config::ServingConfig;

        let parse = |args: &[&str]| {
            ServingConfig::try_parse_from(
                std::iter::once("okla-serving").chain(args.iter().copied()),
            )
        };
        let config = parse(&["--registry", "http://r:5000", "--amqp-url", "amqp://b/v"])
            .expect("--amqp-url with --registry");
        assert_eq!(config.amqp_url.as_deref(), Some("amqp://b/v"));
        assert!(parse(&["--model-repository", "/models", "--amqp-url", "amqp://b/v"]).is_err());
        assert!(parse(&["--amqp-url", "amqp://b/v"]).is_err());
    }

    #[test]
    fn nodes_do_not_bind_what_nodes_publish() {
        assert!(!NODE_BINDINGS.contains(&"model.deployed"));
        assert!(!NODE_BINDINGS.contains(&"model.load_failed"));
        assert!(!NODE_BINDINGS.contains(&"model.version.created"));
    }
}
