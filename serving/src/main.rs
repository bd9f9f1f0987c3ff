//! `okla-serving`: loads the model repository (or follows the registry) and serves V2 gRPC + HTTP until Ctrl-C or SIGTERM.

use clap::Parser;
use okla_serving::app;
use okla_serving::config::ServingConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

// Each request allocates and frees small buffers on one thread and hands tensors to another;
// glibc's malloc showed up at several percent of a busy server's CPU, mimalloc far less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let config = ServingConfig::parse();
    let access = app::access(&config)?;
    let service = app::start(&config).await?;
    let http = TcpListener::bind((config.host.as_str(), config.http_port)).await?;
    let grpc = TcpListener::bind((config.host.as_str(), config.grpc_port)).await?;
    // Tests and scripts read these lines to learn ephemeral ports.
    println!(
        "okla-serving http listening on http://{}",
        http.local_addr()?
    );
    println!("okla-serving grpc listening on {}", grpc.local_addr()?);
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    if let Some(registry) = &config.registry {
        let http_port = http.local_addr()?.port();
        app::spawn_registry_source(&service, registry, &config, http_port, shutdown.clone())
            .await?;
    } else if config.repository_poll_seconds > 0 {
        let every = std::time::Duration::from_secs(config.repository_poll_seconds);
        app::spawn_repository_sync(&service, every, shutdown.clone());
    }
    app::serve(
        service,
        access,
        http,
        grpc,
        config.max_request_bytes,
        shutdown,
    )
    .await
}

async fn stop_on_signal(shutdown: CancellationToken) {
    okla_runtime::shutdown_signal().await;
    tracing::info!("shutting down");
    shutdown.cancel();
}
