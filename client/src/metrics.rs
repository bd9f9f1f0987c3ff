//! Metrics batched in the background: [`MetricLogger::log`] queues a point on a bounded channel,
//! and one task per run sends the queue as `runs/log-batch` calls.
//!
//! The task sends a batch when [`MAX_METRICS_PER_BATCH`] points are queued (MLflow's limit per
//! call), every [`FLUSH_INTERVAL`] otherwise, on [`MetricLogger::flush`], and a last time once
//! every clone of the logger (and the [`crate::Run`]s holding one) is dropped. A batch is one
//! POST, never retried; a failed batch is not sent again, and its error is returned by the next
//! `flush` (a failure after the last flush can only be logged, at `warn`).

use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::http::Client;
use crate::wire::{Empty, now_ms};

/// MLflow's limit on metrics in one `runs/log-batch` call.
pub const MAX_METRICS_PER_BATCH: usize = 1000;

/// How long a logged point waits at most before it is sent.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// Points and flushes the channel holds before [`MetricLogger::log`] waits.
const CHANNEL_CAPACITY: usize = 10 * MAX_METRICS_PER_BATCH;

/// One metric point, as `runs/log-batch` takes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct MetricPoint {
    key: String,
    #[serde(serialize_with = "crate::wire::serialize_double")]
    value: f64,
    timestamp: i64,
    step: i64,
}

enum Command {
    Log(MetricPoint),
    /// Send everything queued before this command, then answer with the first error since the
    /// previous flush.
    Flush(oneshot::Sender<Result<()>>),
}

/// Logs a run's metrics without waiting on the network. Cheap to clone; every clone feeds the
/// same background task, so points from all clones are sent in the order they were logged.
#[derive(Debug, Clone)]
pub struct MetricLogger {
    commands: mpsc::Sender<Command>,
    run_id: String,
}

impl MetricLogger {
    /// Starts the background task of `run_id`'s metrics on the current tokio runtime.
    pub(crate) fn spawn(client: Client, run_id: String) -> MetricLogger {
        let (commands, receiver) = mpsc::channel(CHANNEL_CAPACITY);
        tokio::spawn(send_batches(client, run_id.clone(), receiver));
        MetricLogger { commands, run_id }
    }

    /// Queues `key = value` at `step`, timestamped now. Returns as soon as the point is queued:
    /// it never waits for a request. When the queue is full (10 000 points, the network slower
    /// than the training loop), it waits for room, so a job that logs faster than the registry
    /// takes is slowed down instead of growing without bound.
    ///
    /// Fails only if the background task is gone (its runtime shut down).
    pub async fn log(&self, key: impl Into<String>, value: f64, step: i64) -> Result<()> {
        let point = MetricPoint {
            key: key.into(),
            value,
            timestamp: now_ms(),
            step,
        };
        self.commands
            .send(Command::Log(point))
            .await
            .map_err(|_| self.stopped())
    }

    /// Waits until every point logged before this call has been sent, and returns the first
    /// error of a batch since the previous flush (those points were not recorded).
    pub async fn flush(&self) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Flush(reply))
            .await
            .map_err(|_| self.stopped())?;
        answer.await.map_err(|_| self.stopped())?
    }

    fn stopped(&self) -> Error {
        Error::Invalid(format!(
            "the metric logger of run {} has stopped (its tokio runtime shut down)",
            self.run_id
        ))
    }
}

/// The background task: queue points, send them in batches, answer flushes.
async fn send_batches(client: Client, run_id: String, mut commands: mpsc::Receiver<Command>) {
    let mut batcher = Batcher {
        client,
        run_id,
        pending: Vec::with_capacity(MAX_METRICS_PER_BATCH),
        first_error: None,
    };
    let mut ticker = tokio::time::interval(FLUSH_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Log(point)) => {
                    batcher.pending.push(point);
                    if batcher.pending.len() >= MAX_METRICS_PER_BATCH {
                        batcher.send_pending().await;
                    }
                }
                Some(Command::Flush(reply)) => {
                    batcher.send_pending().await;
                    let result = batcher.first_error.take().map_or(Ok(()), Err);
                    // The caller may have stopped waiting; nothing to do then.
                    let _ = reply.send(result);
                }
                None => {
                    batcher.send_pending().await;
                    if let Some(error) = batcher.first_error.take() {
                        tracing::warn!(run_id = %batcher.run_id, %error, "metrics logged after the last flush were not recorded");
                    }
                    return;
                }
            },
            _ = ticker.tick() => batcher.send_pending().await,
        }
    }
}

struct Batcher {
    client: Client,
    run_id: String,
    pending: Vec<MetricPoint>,
    first_error: Option<Error>,
}

impl Batcher {
    /// Sends every pending point, at most [`MAX_METRICS_PER_BATCH`] per call; a failed call's
    /// points are dropped and its error kept for the next flush.
    async fn send_pending(&mut self) {
        while !self.pending.is_empty() {
            let count = self.pending.len().min(MAX_METRICS_PER_BATCH);
            let batch: Vec<MetricPoint> = self.pending.drain(..count).collect();
            if let Err(error) = self.send(&batch).await {
                tracing::debug!(run_id = %self.run_id, %error, points = batch.len(), "metric batch failed");
                self.first_error.get_or_insert(error);
            }
        }
    }

    async fn send(&self, metrics: &[MetricPoint]) -> Result<()> {
        #[derive(Serialize)]
        struct LogBatch<'a> {
            run_id: &'a str,
            metrics: &'a [MetricPoint],
        }
        let body = LogBatch {
            run_id: &self.run_id,
            metrics,
        };
        let _: Empty = self
            .client
            .send_body(
                reqwest::Method::POST,
                self.client.mlflow("runs/log-batch"),
                &body,
            )
            .await?;
        Ok(())
    }
}
