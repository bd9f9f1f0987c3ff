//! The audit log: every mutating call and every refused call (who, what, on which path, how it
//! ended), written to the `audit_log` table off the request path.
//!
//! Requests hand entries to a bounded channel and never wait; one task writes them in batches
//! (one multi-row insert per batch), so auditing a burst of metric logging costs a channel send
//! per request, not a database round trip. While the database is unreachable the task retries
//! its batch; once the channel is full, further entries are counted (`dropped`) and a warning
//! names the count, rather than slowing every request down.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::domain::auth::AuditEntry;
use crate::store::Store;

/// Entries waiting to be written before new ones are dropped.
const CAPACITY: usize = 65_536;
/// Entries written by one insert.
const BATCH: usize = 512;

enum Message {
    Entry(AuditEntry),
    /// Answered once everything sent before it is written (or given up on).
    Flush(oneshot::Sender<()>),
}

/// The handle requests record through; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    sender: mpsc::Sender<Message>,
    dropped: Arc<AtomicU64>,
}

impl AuditLog {
    /// Starts the writer task on the current runtime.
    pub fn start(store: Store) -> AuditLog {
        let (sender, receiver) = mpsc::channel(CAPACITY);
        tokio::spawn(write_entries(store, receiver));
        AuditLog {
            sender,
            dropped: Arc::default(),
        }
    }

    /// Queues an entry; never waits.
    pub fn record(&self, entry: AuditEntry) {
        if self.sender.try_send(Message::Entry(entry)).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(
                    dropped,
                    "the audit log cannot keep up (is the database reachable?); entries were dropped"
                );
            }
        }
    }

    /// Waits until every entry recorded so far is written; for shutdown and tests.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.sender.send(Message::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

async fn write_entries(store: Store, mut receiver: mpsc::Receiver<Message>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut flushes = Vec::new();
    while let Some(message) = receiver.recv().await {
        let mut next = Some(message);
        while let Some(message) = next {
            match message {
                Message::Entry(entry) => batch.push(entry),
                Message::Flush(done) => flushes.push(done),
            }
            next = if batch.len() < BATCH {
                receiver.try_recv().ok()
            } else {
                None
            };
        }
        write_batch(&store, &mut batch).await;
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Writes `batch`, retrying a few times over a failing database before giving it up.
async fn write_batch(store: &Store, batch: &mut Vec<AuditEntry>) {
    if batch.is_empty() {
        return;
    }
    for attempt in 1..=5u32 {
        match store.insert_audit_entries(batch).await {
            Ok(()) => {
                batch.clear();
                return;
            }
            Err(error) => {
                tracing::warn!(%error, attempt, entries = batch.len(), "writing the audit log failed");
                tokio::time::sleep(Duration::from_millis(200) * 2u32.pow(attempt)).await;
            }
        }
    }
    tracing::error!(
        entries = batch.len(),
        "gave up writing audit log entries after 5 attempts"
    );
    batch.clear();
}
