//! What the integration tests share: a real okla-registry started in-process (SQLite, local
//! artifacts in a temporary directory) on an ephemeral loopback port, a real okla-serving
//! serving `examples/models` the same way, and model directories.
//! Each test binary uses a part of it, hence `dead_code` is allowed.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use clap::Parser;
use okla_client::{Client, ClientOptions, RetryPolicy};
use okla_registry::app::{self, AppState};
use okla_registry::config::RegistryConfig;
use okla_serving::config::ServingConfig;
pub(crate) use okla_test_support::{required_env, workspace_root};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// okla-registry serving on a loopback port until dropped or stopped.
pub(crate) struct Registry {
    pub(crate) url: String,
    shutdown: CancellationToken,
    server: Option<JoinHandle<Result<(), String>>>,
    _directory: tempfile::TempDir,
}

impl Registry {
    pub(crate) async fn start() -> Registry {
        Registry::start_with_admin(None).await
    }

    /// With `admin_password`, authentication is on and the user `admin` has that password.
    pub(crate) async fn start_with_admin(admin_password: Option<&str>) -> Registry {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let directory = tempfile::tempdir().expect("temporary directory");
        let database = format!("sqlite:///{}", directory.path().join("okla.db").display());
        let artifacts = directory.path().join("artifacts");
        let mut config =
            RegistryConfig::for_test(&database, artifacts.to_str().expect("UTF-8 temp path"));
        let mut env = HashMap::new();
        if let Some(password) = admin_password {
            config.no_auth = false;
            env.insert("OKLA_ADMIN_PASSWORD".to_owned(), password.to_owned());
        }
        let state = AppState::open(&config, &env)
            .await
            .expect("registry opens its stores");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let shutdown = CancellationToken::new();
        let serve = app::serve(state, listener, shutdown.clone());
        let server = tokio::spawn(async move { serve.await.map_err(|err| format!("{err:#}")) });
        Registry {
            url,
            shutdown,
            server: Some(server),
            _directory: directory,
        }
    }

    /// Shuts the registry down and waits until it no longer accepts connections.
    pub(crate) async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("registry task")
                .expect("registry stops cleanly");
        }
    }

    pub(crate) fn client(&self) -> Client {
        let options = ClientOptions {
            retry: RetryPolicy {
                attempts: 2,
                initial_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(10),
            },
            actor: Some("trainer".to_owned()),
            ..ClientOptions::default()
        };
        Client::with_options(&self.url, options).expect("client")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Writes `files` (relative path → contents) under a new temporary directory.
pub(crate) fn model_dir(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let directory = tempfile::tempdir().expect("temporary directory");
    for (path, contents) in files {
        let path = directory.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, contents).expect("write");
    }
    directory
}

/// okla-serving on loopback ports, serving `examples/models`, until dropped.
pub(crate) struct Serving {
    pub(crate) grpc_url: String,
    shutdown: CancellationToken,
    _server: JoinHandle<()>,
}

impl Serving {
    pub(crate) async fn start() -> Serving {
        required_env("ORT_DYLIB_PATH");
        let models = workspace_root().join("examples/models");
        let config = ServingConfig::parse_from([
            "okla-serving",
            "--host",
            "127.0.0.1",
            "--http-port",
            "0",
            "--grpc-port",
            "0",
            "--instances",
            "1",
            "--model-repository",
            models.to_str().expect("UTF-8 workspace path"),
        ]);
        let service = okla_serving::app::start(&config)
            .await
            .expect("okla-serving starts");
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind HTTP");
        let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind gRPC");
        let grpc_url = format!("http://{}", grpc.local_addr().expect("bound"));
        let shutdown = CancellationToken::new();
        let access = okla_serving::app::access(&config).expect("access rules");
        let serve = okla_serving::app::serve(
            service,
            access,
            http,
            grpc,
            config.max_request_bytes,
            shutdown.clone(),
        );
        let server = tokio::spawn(async move { serve.await.expect("okla-serving serves") });
        Serving {
            grpc_url,
            shutdown,
            _server: server,
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
