//! Wiring: the one place that picks adapters, builds the shared state and serves HTTP.

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

// Re-exported so binaries and other crates' tests keep naming `app::AppState`.
pub use crate::state::{AppState, Limits};

/// Serves the API on an already-bound listener until `shutdown` fires, then finishes the
/// requests in flight. Also keeps the database's planner statistics fresh meanwhile, deletes
/// what outlived its retention, and, with an AMQP URL, relays the outbox to RabbitMQ.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    tokio::spawn(state.store.clone().keep_statistics_fresh(shutdown.clone()));
    if let Some(amqp_url) = state.amqp_url.clone() {
        tokio::spawn(crate::events::run_relay(
            state.store.clone(),
            amqp_url,
            shutdown.clone(),
        ));
    }
    tokio::spawn(crate::housekeeping::run(
        state.store.clone(),
        state.artifacts.clone(),
        state.retention,
        state.amqp_url.is_some(),
        shutdown.clone(),
    ));
    let audit = state.audit.clone();
    let router = crate::api::router(state, crate::ui::routes());
    // The client address keys the slow-down of failed logins.
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    audit.flush().await;
    Ok(())
}
