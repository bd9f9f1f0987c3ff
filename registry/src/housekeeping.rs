//! Retention, run in the background: published model events, serving nodes that stopped
//! reporting, audit entries and abandoned multipart uploads are deleted once older than their
//! configured ages (`--event-retention-hours`, `--node-retention-hours`,
//! `--audit-retention-days`, `--upload-expiry-hours`; 0 keeps them forever).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::artifacts::ArtifactStore;
use crate::domain::now_millis;
use crate::store::Store;

/// How often the pass runs; the first one runs a minute after start, off the start-up path.
const EVERY: Duration = Duration::from_secs(600);
const FIRST_AFTER: Duration = Duration::from_secs(60);

/// How long each kind of record is kept; `None` keeps it forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Model events in the outbox (and `GET /api/okla/v1/events`); unpublished ones are kept
    /// while a broker is configured, whatever their age.
    pub events: Option<Duration>,
    /// Serving nodes, counted from their latest report.
    pub nodes: Option<Duration>,
    pub audit: Option<Duration>,
    /// Multipart uploads, counted from their latest part.
    pub uploads: Option<Duration>,
}

/// What one pass deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pruned {
    pub events: u64,
    pub nodes: u64,
    pub audit: u64,
    pub uploads: usize,
}

/// Runs [`prune`] every ten minutes until `shutdown`. `relay`: whether a broker is configured,
/// so unpublished events must wait for it.
pub async fn run(
    store: Store,
    artifacts: Arc<ArtifactStore>,
    retention: Retention,
    relay: bool,
    shutdown: CancellationToken,
) {
    if retention == Retention::default() {
        return;
    }
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + FIRST_AFTER, EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let pruned = prune(&store, &artifacts, retention, relay).await;
        if pruned != Pruned::default() {
            tracing::info!(?pruned, "retention pass deleted old records");
        }
    }
}

/// One pass. A failing kind is logged and retried on the next pass; the others still run.
pub async fn prune(
    store: &Store,
    artifacts: &ArtifactStore,
    retention: Retention,
    relay: bool,
) -> Pruned {
    let now = now_millis();
    let before =
        |age: Duration| now.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
    let mut pruned = Pruned::default();
    if let Some(age) = retention.events {
        match store.prune_events(before(age), !relay).await {
            Ok(count) => pruned.events = count,
            Err(error) => tracing::warn!(%error, "cannot prune old model events"),
        }
    }
    if let Some(age) = retention.nodes {
        match store.prune_nodes(before(age)).await {
            Ok(count) => pruned.nodes = count,
            Err(error) => tracing::warn!(%error, "cannot forget silent serving nodes"),
        }
    }
    if let Some(age) = retention.audit {
        match store.prune_audit(before(age)).await {
            Ok(count) => pruned.audit = count,
            Err(error) => tracing::warn!(%error, "cannot prune old audit entries"),
        }
    }
    if let Some(age) = retention.uploads {
        match artifacts.expire_uploads(before(age)).await {
            Ok(count) => pruned.uploads = count,
            Err(error) => tracing::warn!(%error, "cannot expire abandoned multipart uploads"),
        }
    }
    pruned
}
