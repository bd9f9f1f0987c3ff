//! `okla-serving`: loads the model repository (or follows the registry) and serves V2 gRPC + HTTP until Ctrl-C or SIGTERM.

use std::time::Duration;

use clap::Parser;
use okla_serving::app;
use okla_serving::config::ServingConfig;
use okla_serving::service::InferenceService;
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
    tokio::spawn(drain_on_signal(
        service.clone(),
        Duration::from_secs(config.drain_grace_seconds),
        shutdown.clone(),
    ));
    if let Some(registry) = &config.registry {
        let http_port = http.local_addr()?.port();
        app::spawn_registry_source(&service, registry, &config, http_port, shutdown.clone())
            .await?;
    } else if config.repository_poll_seconds > 0 {
        let every = std::time::Duration::from_secs(config.repository_poll_seconds);
        app::spawn_repository_sync(&service, every, shutdown.clone());
    }
    let drain_timeout = Duration::from_secs(config.drain_timeout_seconds);
    let deadline = {
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            tokio::time::sleep(drain_timeout).await;
        }
    };
    let serving = app::serve(
        service,
        access,
        http,
        grpc,
        config.max_request_bytes,
        shutdown,
    );
    tokio::select! {
        result = serving => result,
        () = deadline => {
            tracing::warn!(?drain_timeout, "requests still in flight after --drain-timeout-seconds; exiting");
            Ok(())
        }
    }
}

/// On the first signal: report unready, keep answering for `grace` (or until a second signal),
/// then cancel `shutdown`, which stops accepting and lets what is in flight finish.
async fn drain_on_signal(service: InferenceService, grace: Duration, shutdown: CancellationToken) {
    okla_runtime::shutdown_signal().await;
    service.manager().start_draining();
    tracing::info!(
        ?grace,
        "draining: unready now, still answering until the grace period ends"
    );
    tokio::select! {
        () = tokio::time::sleep(grace) => {}
        () = okla_runtime::shutdown_signal() => tracing::info!("second signal: stopping now"),
    }
    tracing::info!("shutting down: no new connections; finishing requests in flight");
    shutdown.cancel();
}
