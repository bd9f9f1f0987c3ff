//! The outbox relay: publishes unpublished outbox rows to RabbitMQ in `sequence` order, with
//! publisher confirms, and marks a row published only once the broker has acknowledged it.
//!
//! One task per registry process, started by `app::serve` when `--amqp-url` is set. The broker
//! being away never blocks the registry: changes keep committing to the outbox, and the relay
//! reconnects with capped, jittered exponential backoff and then drains the backlog in order.

use std::time::Duration;

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use okla_proto::events::topology::{
    CONTENT_TYPE, DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE, DEPLOYED_BINDINGS, DEPLOYED_QUEUE,
    EXCHANGE, MESSAGE_TYPE, TRAINED_BINDINGS, TRAINED_QUEUE,
};
use okla_runtime::{Backoff, Reconnect};
use tokio_util::sync::CancellationToken;

use crate::store::Store;
use crate::store::outbox::OutboxEvent;

/// Reconnects from 100 ms, doubling up to 10 s, jittered so that registry processes do not all
/// reconnect at once when the broker returns. A connect or a confirm that takes longer than
/// `BROKER_TIMEOUT` means the broker or the network is stuck; the relay reconnects rather than
/// wait on a half-open TCP connection.
const RECONNECT: Reconnect = Reconnect {
    peer: "RabbitMQ",
    meanwhile: "events wait in the outbox",
    backoff: Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(10),
    },
    connect_timeout: BROKER_TIMEOUT,
};
/// The safety net under the commit notifications (a missed wake-up, another registry process
/// writing to the same database).
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Events published before their confirms are awaited: enough to keep the broker busy, small
/// enough that a lost connection republishes little.
const PUBLISH_WINDOW: u32 = 100;
/// See [`RECONNECT`].
const BROKER_TIMEOUT: Duration = Duration::from_secs(30);
/// After a database error the relay keeps its connection and tries again this much later.
const DATABASE_RETRY: Duration = Duration::from_secs(1);

/// Publishes the outbox until `shutdown` fires. Never returns an error: every failure is
/// logged and retried, since the registry must keep serving whatever the broker does.
pub async fn run_relay(store: Store, amqp_url: String, shutdown: CancellationToken) {
    let (store, shutdown) = (&store, &shutdown);
    RECONNECT
        .run(
            shutdown,
            || connect(&amqp_url),
            |(connection, channel): (Connection, Channel)| async move {
                tracing::info!("events relay connected to RabbitMQ");
                let failure = publish_until_failure(store, &channel, shutdown).await;
                // A close on a dead connection may never be answered.
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    connection.close(200, ShortString::from("okla-registry relay stopping")),
                )
                .await;
                failure
            },
        )
        .await;
}

/// Connects, declares the topology (idempotent, so every reconnect repeats it) and puts the
/// channel in confirm mode.
async fn connect(amqp_url: &str) -> lapin::Result<(Connection, Channel)> {
    let connection = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let durable_exchange = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    let durable_queue = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .exchange_declare(
            EXCHANGE.into(),
            ExchangeKind::Topic,
            durable_exchange,
            FieldTable::default(),
        )
        .await?;
    channel
        .exchange_declare(
            DEAD_LETTER_EXCHANGE.into(),
            ExchangeKind::Fanout,
            durable_exchange,
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            DEAD_LETTER_QUEUE.into(),
            durable_queue,
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            DEAD_LETTER_QUEUE.into(),
            DEAD_LETTER_EXCHANGE.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut dead_lettered = FieldTable::default();
    dead_lettered.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(DEAD_LETTER_EXCHANGE.into()),
    );
    for (queue, bindings) in [
        (TRAINED_QUEUE, TRAINED_BINDINGS),
        (DEPLOYED_QUEUE, DEPLOYED_BINDINGS),
    ] {
        channel
            .queue_declare(queue.into(), durable_queue, dead_lettered.clone())
            .await?;
        for binding in bindings {
            channel
                .queue_bind(
                    queue.into(),
                    EXCHANGE.into(),
                    (*binding).into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
    }
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok((connection, channel))
}

/// Publishes backlog and new events until the broker fails (returned) or `shutdown` fires
/// (`None`). Database errors do not end it: the connection stays and the read is retried.
async fn publish_until_failure(
    store: &Store,
    channel: &Channel,
    shutdown: &CancellationToken,
) -> Option<String> {
    let events_written = store.events_written();
    loop {
        if shutdown.is_cancelled() {
            return None;
        }
        // Registered before reading, so a commit between the read and the wait still wakes us.
        let woken = events_written.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let batch = match store.unpublished_events(PUBLISH_WINDOW).await {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(%error, "events relay cannot read the outbox");
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(DATABASE_RETRY) => {}
                }
                continue;
            }
        };
        if batch.is_empty() {
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = &mut woken => {}
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
            }
            continue;
        }
        let (confirmed, failure) = publish_window(channel, &batch).await;
        if !confirmed.is_empty() {
            // Until this commits the events count as unpublished; a crash here republishes
            // them, which at-least-once delivery allows (consumers dedupe by event_id).
            while let Err(error) = store.mark_events_published(&confirmed).await {
                tracing::warn!(%error, "events relay cannot mark events published");
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(DATABASE_RETRY) => {}
                }
            }
            tracing::debug!(count = confirmed.len(), "events published");
        }
        if let Some(failure) = failure {
            return Some(failure);
        }
    }
}

/// Publishes `batch` in order, then awaits the confirms in order. Returns the sequences of the
/// acknowledged prefix, and why it stopped short if it did: an event after a refused one is not
/// marked, so a retry republishes it after the refused one and per-model order holds.
async fn publish_window(channel: &Channel, batch: &[OutboxEvent]) -> (Vec<i64>, Option<String>) {
    let mut pending = Vec::with_capacity(batch.len());
    let mut failure = None;
    for event in batch {
        match channel
            .basic_publish(
                EXCHANGE.into(),
                event.routing_key.as_str().into(),
                BasicPublishOptions::default(),
                &event.payload,
                properties(event),
            )
            .await
        {
            Ok(confirm) => pending.push((event.sequence, confirm)),
            Err(error) => {
                failure = Some(format!("publish failed: {error}"));
                break;
            }
        }
    }
    let mut confirmed = Vec::with_capacity(pending.len());
    for (sequence, confirm) in pending {
        match tokio::time::timeout(BROKER_TIMEOUT, confirm).await {
            Ok(Ok(confirmation)) if confirmation.is_ack() => confirmed.push(sequence),
            Ok(Ok(_)) => {
                failure = Some(format!("the broker refused event {sequence} (nack)"));
                break;
            }
            Ok(Err(error)) => {
                failure = Some(format!("confirm of event {sequence} failed: {error}"));
                break;
            }
            Err(_) => {
                failure = Some(format!(
                    "no confirm for event {sequence} within {BROKER_TIMEOUT:?}"
                ));
                break;
            }
        }
    }
    (confirmed, failure)
}

fn properties(event: &OutboxEvent) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        "model".into(),
        AMQPValue::LongString(event.model_name.as_str().into()),
    );
    headers.insert(
        "model_sequence".into(),
        AMQPValue::LongLongInt(event.model_sequence),
    );
    BasicProperties::default()
        // 2 = persistent: a durable queue keeps the message across a broker restart.
        .with_delivery_mode(2)
        .with_content_type(CONTENT_TYPE.into())
        .with_type(MESSAGE_TYPE.into())
        .with_message_id(event.event_id.as_str().into())
        .with_timestamp(u64::try_from(event.created_at / 1000).unwrap_or_default())
        .with_headers(headers)
}
