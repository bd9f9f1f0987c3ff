//! `okla-registry`: parses the configuration, opens the stores and serves until Ctrl-C or SIGTERM.

use clap::Parser;
use okla_registry::app::{self, AppState};
use okla_registry::config::{RegistryConfig, redact_uri};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

// A log-batch call parses and binds thousands of small values, one allocation each; under
// log-batch load glibc's malloc and free were among the hottest symbols, and mimalloc gave a
// few percent more calls/s.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let config = RegistryConfig::parse();
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let state = AppState::open(&config, &env).await?;
    let listener = TcpListener::bind((config.host.as_str(), config.port)).await?;
    let address = listener.local_addr()?;
    tracing::info!(
        %address,
        backend_store = %redact_uri(&config.backend_store_uri),
        artifacts = %state.artifacts.destination(),
        events = %state.amqp_url.as_deref().map_or_else(|| "outbox and feed only".to_owned(), redact_uri),
        "okla-registry listening"
    );
    // Tests and scripts read this line to learn an ephemeral port.
    println!("okla-registry listening on http://{address}");
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    app::serve(state, listener, shutdown).await
}

async fn stop_on_signal(shutdown: CancellationToken) {
    okla_runtime::shutdown_signal().await;
    tracing::info!("shutting down");
    shutdown.cancel();
}
