//! Wiring: backends, manager, service, and the HTTP and gRPC listeners.

use std::sync::Arc;

use anyhow::Context;
use axum::ServiceExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::access::{Access, ModelControl, TokenVerifier};
use crate::api;
use crate::backend::Backend;
use crate::backend::candle::CandleBackend;
use crate::backend::onnx::OnnxBackend;
use crate::config::ServingConfig;
use crate::manager::{ManagerSettings, ModelManager};
use crate::metrics::Metrics;
use crate::node_report::NodeReporter;
use crate::registry_source::RegistrySource;
use crate::repository::ModelRepository;
use crate::service::InferenceService;

/// Builds the service and loads every model of the repository. Models that fail to load are
/// reported and left unready; a missing runtime library is an error. Following the registry,
/// nothing is loaded here and the server is not ready until the registry source has run
/// ([`spawn_registry_source`]).
pub async fn start(config: &ServingConfig) -> anyhow::Result<InferenceService> {
    let onnx = OnnxBackend::new(config.onnxruntime_library.as_deref())
        .context("cannot start the ONNX backend")?;
    let backends: Vec<Arc<dyn Backend>> = vec![Arc::new(onnx), Arc::new(CandleBackend)];
    let metrics = Arc::new(Metrics::new());
    let settings = ManagerSettings {
        default_instances: config.instances(),
        max_queue_size: config.max_queue_size,
        limits: config.model_limits(),
    };
    let repository = ModelRepository::new(config.repository_root());
    let manager = Arc::new(ModelManager::new(
        repository,
        backends,
        settings,
        metrics.clone(),
    ));
    if config.registry.is_some() {
        // What an earlier run left in the cache may no longer be what the registry says.
        manager.set_source_ready(false);
    } else {
        manager
            .load_all()
            .await
            .context("cannot load the model repository")?;
    }
    Ok(InferenceService::new(manager, metrics))
}

/// Follows the registry at `registry_url` (see [`crate::registry_source`]) until `shutdown` is
/// cancelled, polling at once on its RabbitMQ events with `--amqp-url`
/// ([`crate::registry_events`]). Fails only on a bad URL or an unusable cache directory; an
/// unreachable registry is retried on every poll, an unreachable broker with backoff.
/// The node reports its state to the registry every `--report-seconds` ([`NodeReporter`]);
/// `http_port` is the port it answers HTTP on, part of its default name.
pub async fn spawn_registry_source(
    service: &InferenceService,
    registry_url: &str,
    config: &ServingConfig,
    http_port: u16,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let token = config.registry_token(|name| std::env::var(name).ok())?;
    let client = registry_client(registry_url, token)?;
    let source = RegistrySource::new(
        client.clone(),
        config.models.clone(),
        config.cache_dir.clone(),
        config.content_cache_bytes,
        service.manager().clone(),
        service.metrics_handle(),
    )
    .await
    .with_context(|| {
        format!(
            "cannot use the cache directory {}",
            config.cache_dir.display()
        )
    })?;
    let every = std::time::Duration::from_secs(config.registry_poll_seconds.max(1));
    let wake = Arc::new(tokio::sync::Notify::new());
    if let Some(amqp_url) = config.amqp_url.clone().filter(|url| !url.is_empty()) {
        tokio::spawn(crate::registry_events::run(
            amqp_url,
            config.models.clone(),
            wake.clone(),
            service.metrics_handle(),
            shutdown.clone(),
        ));
    }
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let reporter = NodeReporter {
        client,
        node_id: config
            .node_id
            .clone()
            .unwrap_or_else(|| format!("{host}:{http_port}")),
        http_url: Some(
            config
                .advertise_url
                .clone()
                .unwrap_or_else(|| format!("http://{host}:{http_port}")),
        ),
        every: std::time::Duration::from_secs(config.report_seconds.max(1)),
        manager: service.manager().clone(),
        failures: source.failures(),
    };
    tokio::spawn(reporter.run(shutdown.clone()));
    tokio::spawn(source.run(every, wake, shutdown));
    Ok(())
}

/// Keeps the loaded models in line with the repository directory, checking every `every`,
/// until `shutdown` is cancelled (TF Serving's file-system polling).
pub fn spawn_repository_sync(
    service: &InferenceService,
    every: std::time::Duration,
    shutdown: CancellationToken,
) {
    let manager = service.manager().clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => manager.sync_with_repository().await,
            }
        }
    });
}

/// The node's access rules (see [`crate::access`]): model control, `--require-token`, and the
/// registry client that verifies tokens. Fails on an unreadable token file, or model control
/// with no way to recognise an admin.
pub fn access(config: &ServingConfig) -> anyhow::Result<Arc<Access>> {
    let admin_token = match &config.admin_token_file {
        Some(path) => {
            let token = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --admin-token-file {}", path.display()))?;
            let token = token.trim().to_owned();
            anyhow::ensure!(
                !token.is_empty(),
                "--admin-token-file {} is empty",
                path.display()
            );
            Some(token)
        }
        None => None,
    };
    if config.model_control == ModelControl::Explicit
        && admin_token.is_none()
        && config.registry.is_none()
    {
        anyhow::bail!(
            "--model-control explicit needs a way to recognise an admin: --admin-token-file FILE, or --registry (a registry admin's token)"
        );
    }
    let verifier = match &config.registry {
        Some(registry_url) => {
            let token = config.registry_token(|name| std::env::var(name).ok())?;
            // A caller waits on this only for a token the node has not seen in the last
            // seconds, so it must answer (or fail over to the last verdict) quickly.
            let options = okla_client::ClientOptions {
                connect_timeout: std::time::Duration::from_secs(2),
                call_timeout: Some(std::time::Duration::from_secs(5)),
                retry: okla_client::RetryPolicy {
                    attempts: 1,
                    ..okla_client::RetryPolicy::default()
                },
                credentials: token.map(okla_client::Credentials::Token),
                ..okla_client::ClientOptions::default()
            };
            let registry = okla_client::Client::with_options(registry_url, options)?;
            let ttl = std::time::Duration::from_secs(config.token_cache_seconds);
            Some(TokenVerifier::new(registry, ttl))
        }
        None => None,
    };
    Ok(Access::new(
        config.model_control,
        config.require_token,
        admin_token.as_deref(),
        verifier,
    ))
}

/// Serves HTTP and gRPC until `shutdown` is cancelled, admitting requests as `access` says.
pub async fn serve(
    service: InferenceService,
    access: Arc<Access>,
    http: TcpListener,
    grpc: TcpListener,
    max_request_bytes: usize,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let http_service = api::http_service(service.clone(), access.clone(), max_request_bytes);
    let http_shutdown = shutdown.clone();
    let http_server = async move {
        axum::serve(http, http_service.into_make_service())
            .with_graceful_shutdown(http_shutdown.cancelled_owned())
            .await
            .context("HTTP server failed")
    };
    let grpc_server = async move {
        tonic::transport::Server::builder()
            .add_service(api::grpc::server(service, access, max_request_bytes))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(grpc).with_nodelay(Some(true)),
                shutdown.cancelled_owned(),
            )
            .await
            .context("gRPC server failed")
    };
    tokio::try_join!(http_server, grpc_server)?;
    Ok(())
}

/// The registry client of the source and the reporter. No retries of its own: the source
/// retries failed versions with backoff and the reporter sends its whole state again on the next
/// tick. A metadata call that takes longer than 30 s is a failed poll; a model download has no
/// overall limit (it may take minutes), a stalled one trips the read timeout.
fn registry_client(
    registry_url: &str,
    token: Option<String>,
) -> anyhow::Result<okla_client::Client> {
    let options = okla_client::ClientOptions {
        connect_timeout: std::time::Duration::from_secs(5),
        read_timeout: std::time::Duration::from_secs(60),
        retry: okla_client::RetryPolicy {
            attempts: 1,
            ..okla_client::RetryPolicy::default()
        },
        call_timeout: Some(std::time::Duration::from_secs(30)),
        credentials: token.map(okla_client::Credentials::Token),
        ..okla_client::ClientOptions::default()
    };
    Ok(okla_client::Client::with_options(registry_url, options)?)
}
