//! Fixtures shared by the suites: a fresh database per test on either backend (`TestDatabase`),
//! the real registry serving HTTP on an ephemeral port (`TestServer`), and the
//! `backend_test_suite!` macro that instantiates every conformance test once per backend.
//!
//! PostgreSQL tests need `TEST_DATABASE_URL` (set by `bash scripts/test`); they fail loudly
//! without it and are never skipped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use okla_registry::app::AppState;
use okla_registry::config::{BackendStore, RegistryConfig};
use okla_registry::store::Store;
use okla_test_support::PostgresDatabase;
use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// Which metadata database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BackendKind {
    Sqlite,
    Postgres,
}

/// Instantiates each listed async test once per backend, in `mod sqlite` and `mod postgres`.
///
/// `store: a, b` runs `async fn a(store: &Store)` on a fresh, migrated database;
/// `server: a, b` runs `async fn a(server: &TestServer)` against a freshly started registry.
/// Tests use a two-worker runtime so that tasks spawned by a test really run in parallel.
macro_rules! backend_test_suite {
    ($fixture:ident: $($test:ident),+ $(,)?) => {
        mod sqlite {
            backend_test_suite!(@tests Sqlite, $fixture, $($test),+);
        }
        mod postgres {
            backend_test_suite!(@tests Postgres, $fixture, $($test),+);
        }
    };
    (@tests $backend:ident, store, $($test:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let database =
                    $crate::support::TestDatabase::create($crate::support::BackendKind::$backend).await;
                let store = database.connect_store().await;
                super::$test(&store).await;
                store.close().await;
            }
        )+
    };
    (@tests $backend:ident, server, $($test:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let server =
                    $crate::support::TestServer::start($crate::support::BackendKind::$backend).await;
                super::$test(&server).await;
            }
        )+
    };
}

/// A database of its own for one test, removed when the test ends (also when it panics).
///
/// SQLite: a file in a temporary directory. PostgreSQL: a [`PostgresDatabase`] created through
/// `TEST_DATABASE_URL` and dropped `WITH (FORCE)` on drop, so connections a failed test left
/// open do not keep it alive.
pub(crate) struct TestDatabase {
    /// The backend store URI as `--backend-store-uri` takes it.
    pub(crate) uri: String,
    _postgres_opt: Option<PostgresDatabase>,
    _sqlite_directory_opt: Option<TempDir>,
}

fn test_database_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "TEST_DATABASE_URL is unset: the PostgreSQL half of the registry suite needs it; run \
             `bash scripts/test` (or set TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres)"
        )
    })
}

impl TestDatabase {
    pub(crate) async fn create(kind: BackendKind) -> TestDatabase {
        match kind {
            BackendKind::Sqlite => {
                let directory = tempfile::tempdir().expect("create a temporary directory");
                // MLflow spelling: `sqlite:///` plus an absolute path, which starts with `/` itself.
                let uri = format!("sqlite:///{}", directory.path().join("okla.db").display());
                TestDatabase {
                    uri,
                    _postgres_opt: None,
                    _sqlite_directory_opt: Some(directory),
                }
            }
            BackendKind::Postgres => {
                let database = PostgresDatabase::create(&test_database_url()).await;
                TestDatabase {
                    uri: database.url().to_owned(),
                    _postgres_opt: Some(database),
                    _sqlite_directory_opt: None,
                }
            }
        }
    }

    /// Connects a `Store` (running the migrations) with a pool of four connections.
    pub(crate) async fn connect_store(&self) -> Store {
        let backend = BackendStore::parse(&self.uri).expect("test URIs parse");
        Store::connect(&backend, 4, Some(std::time::Duration::from_secs(60)))
            .await
            .unwrap_or_else(|error| panic!("connect to {}: {error}", self.uri))
    }
}

/// The registry serving HTTP on `127.0.0.1:<ephemeral>`, on a fresh database and artifact root.
/// Stops serving when dropped.
///
/// Every request helper fails the test on a 5xx answer: no input a client can send may make the
/// server fail, and the mlflow client retries 5xx for minutes.
pub(crate) struct TestServer {
    pub(crate) base_url: String,
    pub(crate) client: reqwest::Client,
    pub(crate) address: std::net::SocketAddr,
    /// The directory that holds `artifacts/`, the artifact root; nothing else may appear in it.
    pub(crate) scratch_directory: PathBuf,
    pub(crate) artifact_root: PathBuf,
    shutdown: CancellationToken,
    _scratch: TempDir,
    _database: TestDatabase,
}

impl TestServer {
    pub(crate) async fn start(backend: BackendKind) -> TestServer {
        TestServer::start_with(backend, |_| {}).await
    }

    /// Starts the registry with `configure` applied to the test configuration first (allowed
    /// hosts, CORS origins, ...).
    pub(crate) async fn start_with(
        backend: BackendKind,
        configure: impl FnOnce(&mut RegistryConfig),
    ) -> TestServer {
        let database = TestDatabase::create(backend).await;
        let scratch = tempfile::tempdir().expect("create a temporary directory");
        let artifact_root = scratch.path().join("artifacts");
        std::fs::create_dir_all(&artifact_root).expect("create the artifact root");
        let mut config = RegistryConfig::for_test(
            &database.uri,
            artifact_root.to_str().expect("temporary paths are UTF-8"),
        );
        configure(&mut config);
        let state = AppState::open(&config, &HashMap::new())
            .await
            .unwrap_or_else(|error| panic!("open the registry on {}: {error:#}", database.uri));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind an ephemeral port");
        let address = listener.local_addr().expect("bound address");
        let shutdown = CancellationToken::new();
        tokio::spawn(okla_registry::app::serve(state, listener, shutdown.clone()));
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("build an HTTP client");
        TestServer {
            base_url: format!("http://{address}"),
            client,
            address,
            scratch_directory: scratch.path().to_owned(),
            artifact_root,
            shutdown,
            _scratch: scratch,
            _database: database,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Sends a request and returns the status and raw body, failing the test on a 5xx.
    pub(crate) async fn send_bytes(
        &self,
        request: reqwest::RequestBuilder,
    ) -> (StatusCode, Vec<u8>) {
        let (_, status, body) = self.execute(request).await;
        (status, body)
    }

    /// Sends a request and parses the answer as JSON (`Null` for an empty body).
    pub(crate) async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let (description, status, body) = self.execute(request).await;
        (status, parse_body(&description, &body))
    }

    async fn execute(&self, request: reqwest::RequestBuilder) -> (String, StatusCode, Vec<u8>) {
        let request = request.build().expect("request builds");
        let description = format!("{} {}", request.method(), request.url());
        let response = self
            .client
            .execute(request)
            .await
            .unwrap_or_else(|error| panic!("{description}: no response: {error}"));
        let status = response.status();
        let body = response
            .bytes()
            .await
            .unwrap_or_else(|error| panic!("{description}: body: {error}"))
            .to_vec();
        assert!(
            !status.is_server_error(),
            "{description} answered {status}, a server error: {}",
            String::from_utf8_lossy(&body)
        );
        (description, status, body)
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.client.post(self.url(path)).json(&body))
            .await
    }

    pub(crate) async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.client.patch(self.url(path)).json(&body))
            .await
    }

    /// DELETE with a JSON body, as the mlflow client sends it.
    pub(crate) async fn delete(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.client.delete(self.url(path)).json(&body))
            .await
    }

    /// GET with the fields in the query string, as the mlflow client sends them.
    pub(crate) async fn get(&self, path: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
        self.send(self.client.get(self.url(path)).query(query))
            .await
    }

    /// POST that must succeed; returns the JSON answer.
    pub(crate) async fn post_ok(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.post(path, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "POST {path} {body} answered {answer}"
        );
        answer
    }

    /// GET that must succeed; returns the JSON answer.
    pub(crate) async fn get_ok(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let (status, answer) = self.get(path, query).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "GET {path} {query:?} answered {answer}"
        );
        answer
    }

    /// Sends `method target` byte for byte over a fresh TCP connection, so that no client
    /// library normalises `..` or percent-escapes in the path. Returns the status and body.
    pub(crate) async fn raw_request(
        &self,
        method: &str,
        target: &str,
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        let mut stream = tokio::net::TcpStream::connect(self.address)
            .await
            .expect("connect to the server");
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
            self.address,
            body.len()
        );
        stream
            .write_all(head.as_bytes())
            .await
            .expect("send the request head");
        stream.write_all(body).await.expect("send the request body");
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .expect("read the response");
        let text = String::from_utf8_lossy(&response);
        let status: u16 = text
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("{method} {target}: not an HTTP response: {text}"));
        let body_start = response
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .map_or(response.len(), |at| at + 4);
        let body = response[body_start..].to_vec();
        assert!(
            status < 500,
            "{method} {target} answered {status}, a server error: {}",
            String::from_utf8_lossy(&body)
        );
        (status, body)
    }

    /// Every file below the scratch directory that is not inside the artifact root.
    pub(crate) fn files_outside_artifact_root(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        collect_files(&self.scratch_directory, &mut found);
        found.retain(|path| !path.starts_with(&self.artifact_root));
        found
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn parse_body(description: &str, body: &[u8]) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(body).unwrap_or_else(|error| {
        panic!(
            "{description}: not JSON ({error}): {}",
            String::from_utf8_lossy(body)
        )
    })
}

fn collect_files(directory: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, found);
        } else {
            found.push(path);
        }
    }
}

/// Asserts an MLflow error answer: the status, `error_code`, a non-empty `message`, and no other
/// fields the client would choke on. Returns the message.
pub(crate) fn assert_mlflow_error(
    answer: &(StatusCode, Value),
    status: StatusCode,
    error_code: &str,
) -> String {
    let (actual_status, body) = answer;
    assert_eq!(
        *actual_status, status,
        "expected {status} {error_code}, got {actual_status} {body}"
    );
    assert_eq!(body["error_code"], error_code, "error code of {body}");
    let message = body["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message in {body}"));
    assert!(!message.is_empty(), "empty message in {body}");
    let object = body.as_object().expect("errors are JSON objects");
    assert!(
        object.keys().all(|key| ["error_code", "message", "sqlstate", "error_class"].contains(&key.as_str())),
        "unexpected fields in {body}"
    );
    message.to_owned()
}
