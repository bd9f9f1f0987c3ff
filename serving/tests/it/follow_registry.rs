//! Serving follows okla-registry (`--registry`): a real registry in-process (SQLite, local
//! artifacts), models logged and promoted with the official mlflow client, and the built
//! okla-serving binary downloading, verifying and rolling out versions while requests run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use okla_registry::app::{self, AppState};
use okla_registry::config::RegistryConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::{Server, Traffic, example_models, run_python, wait_until};

/// okla-registry serving on a loopback port until dropped.
pub(crate) struct Registry {
    pub(crate) url: String,
    artifacts: PathBuf,
    shutdown: CancellationToken,
    _directory: tempfile::TempDir,
}

impl Registry {
    pub(crate) async fn start(listener: TcpListener) -> Registry {
        Registry::start_with(listener, None).await
    }

    /// With `amqp_url`, the registry publishes its model events there (`--amqp-url`).
    pub(crate) async fn start_with(listener: TcpListener, amqp_url: Option<&str>) -> Registry {
        let directory = tempfile::tempdir().expect("temporary directory");
        let database = format!("sqlite:///{}", directory.path().join("okla.db").display());
        let artifacts = directory.path().join("artifacts");
        let mut config =
            RegistryConfig::for_test(&database, artifacts.to_str().expect("UTF-8 temp path"));
        config.amqp_url = amqp_url.map(str::to_owned);
        let state = AppState::open(&config, &HashMap::new())
            .await
            .expect("registry opens its stores");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let shutdown = CancellationToken::new();
        tokio::spawn(app::serve(state, listener, shutdown.clone()));
        Registry {
            url,
            artifacts,
            shutdown,
            _directory: directory,
        }
    }

    /// Logs the pricing ONNX model with the mlflow client, registers it as `model` and moves
    /// it to `target` (`--stage Production` or `--alias champion`); returns the version.
    pub(crate) async fn register(&self, model: &str, target: [&str; 2]) -> u64 {
        let onnx = example_models().join("pricing/1/model.onnx");
        self.register_file(model, &onnx, target, &[]).await
    }

    async fn register_file(
        &self,
        model: &str,
        file: &Path,
        target: [&str; 2],
        extra: &[&str],
    ) -> u64 {
        let mut args: Vec<String> = [
            self.url.as_str(),
            model,
            file.to_str().expect("UTF-8 path"),
            target[0],
            target[1],
        ]
        .iter()
        .map(|arg| (*arg).to_owned())
        .collect();
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        let stdout = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_python("register_onnx_model.py", &args)
        })
        .await
        .expect("python task");
        stdout
            .lines()
            .last()
            .and_then(|line| line.trim().parse().ok())
            .unwrap_or_else(|| panic!("no version number in\n{stdout}"))
    }

    /// Where the registry's local artifact store keeps `file` of a version.
    async fn stored_file(&self, model: &str, version: u64, file: &str) -> PathBuf {
        let answer: Value = reqwest::Client::new()
            .get(format!(
                "{}/api/2.0/mlflow/model-versions/get-download-uri",
                self.url
            ))
            .query(&[("name", model), ("version", &version.to_string())])
            .send()
            .await
            .expect("registry answers")
            .json()
            .await
            .expect("JSON");
        let uri = answer["artifact_uri"].as_str().expect("artifact_uri");
        let path = uri
            .strip_prefix("mlflow-artifacts:/")
            .unwrap_or_else(|| panic!("unexpected storage location {uri}"));
        self.artifacts.join(path).join(file)
    }

    pub(crate) async fn set_alias(&self, model: &str, alias: &str, version: u64) {
        let response = reqwest::Client::new()
            .post(format!(
                "{}/api/2.0/mlflow/registered-models/alias",
                self.url
            ))
            .json(&json!({"name": model, "alias": alias, "version": version.to_string()}))
            .send()
            .await
            .expect("registry answers");
        assert_eq!(response.status(), StatusCode::OK);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub(crate) fn serve_registry(registry: &str, cache: &Path) -> Server {
    Server::start_args(&[
        "--registry",
        registry,
        "--registry-poll-seconds",
        "1",
        "--cache-dir",
        cache.to_str().expect("UTF-8 temp path"),
    ])
}

async fn status(client: &reqwest::Client, url: String) -> StatusCode {
    client
        .get(url)
        .send()
        .await
        .map_or(StatusCode::BAD_GATEWAY, |response| response.status())
}

/// The value of a counter or gauge in the server's /metrics, 0 if absent.
pub(crate) async fn counter(client: &reqwest::Client, server: &Server, series: &str) -> f64 {
    let text = client
        .get(format!("{}/metrics", server.http))
        .send()
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn serving_follows_champion_and_refuses_a_corrupt_version() {
    let registry = Registry::start(
        TcpListener::bind("127.0.0.1:0")
            .await
            .expect("loopback port"),
    )
    .await;
    let v1 = registry
        .register("pricing", ["--stage", "Production"])
        .await;
    assert_eq!(v1, 1);

    let cache = tempfile::tempdir().expect("temporary directory");
    let server = serve_registry(&registry.url, cache.path());
    let client = reqwest::Client::new();
    // The server turns ready just after its first model does (once the registry source has
    // finished its pass), so both are waited for.
    wait_until(
        "the Production version serves and the server is ready",
        || async {
            status(&client, format!("{}/v2/models/pricing/ready", server.http)).await
                == StatusCode::OK
                && status(&client, format!("{}/v2/health/ready", server.http)).await
                    == StatusCode::OK
        },
    )
    .await;
    assert!(cache.path().join("pricing/1/model.onnx").is_file());
    assert!(cache.path().join("pricing/1/MLmodel").is_file());
    let versions = || async {
        let url = format!("{}/v2/models/pricing", server.http);
        let metadata: Value = client
            .get(url)
            .send()
            .await
            .expect("server answers")
            .json()
            .await
            .unwrap_or(Value::Null);
        metadata["versions"].clone()
    };
    assert_eq!(versions().await, json!(["1"]));

    // Requests run the whole time; none may fail while versions change.
    let traffic = Traffic::start(&client, format!("{}/v2/models/pricing/infer", server.http));

    // The champion alias wins over the Production stage.
    let v2 = registry.register("pricing", ["--alias", "champion"]).await;
    assert_eq!(v2, 2);
    wait_until("version 2 replaces version 1", || async {
        versions().await == json!(["2"])
    })
    .await;
    wait_until("version 1 leaves the cache", || async {
        !cache.path().join("pricing/1").exists()
    })
    .await;

    // A version whose stored bytes no longer match the registry's sha256 is refused. Its
    // content must be new to the server: files it verified before come from its content cache.
    let other_model = crate::support::workspace_root()
        .join("serving/tests/models/lead_scoring_sklearn/1/model.onnx");
    let v3 = registry
        .register_file("pricing", &other_model, ["--stage", "Staging"], &[])
        .await;
    assert_eq!(v3, 3);
    let stored = registry.stored_file("pricing", v3, "model.onnx").await;
    assert!(stored.is_file(), "{} is stored", stored.display());
    std::fs::write(&stored, b"not the registered bytes").expect("corrupt the stored artifact");
    let failures = "okla_serving_model_download_failures_total{model=\"pricing\"}";
    assert_eq!(counter(&client, &server, failures).await, 0.0);
    registry.set_alias("pricing", "champion", v3).await;
    wait_until("the corrupt version is refused", || async {
        counter(&client, &server, failures).await >= 1.0
    })
    .await;
    // Retried with backoff, and refused again each time; version 2 keeps serving.
    wait_until("the corrupt version is retried", || async {
        counter(&client, &server, failures).await >= 2.0
    })
    .await;
    assert_eq!(versions().await, json!(["2"]));
    assert!(!cache.path().join("pricing/3").exists());

    // A version that verifies but does not load is refused too, and retried.
    let garbage = cache.path().join("garbage.onnx");
    std::fs::write(&garbage, b"not an ONNX model").expect("write a garbage file");
    let load_failures = "okla_serving_model_load_failures_total{model=\"pricing\"}";
    let v4 = registry
        .register_file(
            "pricing",
            &garbage,
            ["--alias", "champion"],
            &["--as-plain-artifact"],
        )
        .await;
    assert_eq!(v4, 4);
    wait_until("the unloadable version fails and is retried", || async {
        counter(&client, &server, load_failures).await >= 2.0
    })
    .await;
    assert_eq!(versions().await, json!(["2"]));

    let (answered, failed) = traffic.finish().await;
    assert_eq!(failed, 0, "requests failed while following the registry");
    assert!(answered > 0);

    // Moving the champion back to a good version rolls out again.
    registry.set_alias("pricing", "champion", v1).await;
    wait_until("version 1 serves again", || async {
        versions().await == json!(["1"])
    })
    .await;

    // The registry goes away: polls fail, and the server keeps serving what it has.
    drop(registry);
    let poll_failures = "okla_serving_registry_poll_failures_total";
    let before = counter(&client, &server, poll_failures).await;
    wait_until("polls fail while the registry is away", || async {
        counter(&client, &server, poll_failures).await >= before + 2.0
    })
    .await;
    let traffic = Traffic::start(&client, format!("{}/v2/models/pricing/infer", server.http));
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let (answered, failed) = traffic.finish().await;
    assert_eq!(failed, 0, "requests failed while the registry was away");
    assert!(answered > 0);
    assert_eq!(versions().await, json!(["1"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn server_starts_unready_while_the_registry_is_unreachable() {
    // A port nobody listens on yet; the registry comes up there later.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback port")
        .local_addr()
        .expect("bound")
        .port();
    let cache = tempfile::tempdir().expect("temporary directory");
    let server = serve_registry(&format!("http://127.0.0.1:{port}"), cache.path());
    let client = reqwest::Client::new();
    assert_eq!(
        status(&client, format!("{}/v2/health/live", server.http)).await,
        StatusCode::OK
    );
    wait_until("a failed poll is counted", || async {
        counter(
            &client,
            &server,
            "okla_serving_registry_poll_failures_total",
        )
        .await
            >= 1.0
    })
    .await;
    assert_ne!(
        status(&client, format!("{}/v2/health/ready", server.http)).await,
        StatusCode::OK
    );

    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("the port is still free");
    let _registry = Registry::start(listener).await;
    wait_until("the server is ready once the registry answers", || async {
        status(&client, format!("{}/v2/health/ready", server.http)).await == StatusCode::OK
    })
    .await;
}

/// A model leaves a node only when it is undeployed: a registry that names nothing for it (an
/// empty database here) or cannot be reached leaves it serving, also across a restart, and the
/// registry refuses to leave a model the fleet serves without a deployment.
#[tokio::test(flavor = "multi_thread")]
async fn a_model_leaves_the_node_only_when_it_is_undeployed() {
    let registry = Registry::start(
        TcpListener::bind("127.0.0.1:0")
            .await
            .expect("loopback port"),
    )
    .await;
    registry.register("pricing", ["--alias", "champion"]).await;
    let cache = tempfile::tempdir().expect("temporary directory");
    let client = reqwest::Client::new();
    let serves = |server: &Server| {
        let url = format!("{}/v2/models/pricing/ready", server.http);
        let client = client.clone();
        async move { status(&client, url).await == StatusCode::OK }
    };
    let ready = |server: &Server| {
        let url = format!("{}/v2/health/ready", server.http);
        let client = client.clone();
        async move { status(&client, url).await == StatusCode::OK }
    };

    let server = serve_registry(&registry.url, cache.path());
    wait_until("the champion serves", || serves(&server)).await;
    // Once the node reports it, deleting the alias would leave the fleet with nothing to serve.
    wait_until("the node reports serving it", || async {
        let nodes: Value = client
            .get(format!("{}/api/okla/v1/nodes?model=pricing", registry.url))
            .send()
            .await
            .expect("registry answers")
            .json()
            .await
            .expect("JSON");
        nodes.to_string().contains("\"serving\"")
    })
    .await;
    let refused = client
        .delete(format!(
            "{}/api/2.0/mlflow/registered-models/alias",
            registry.url
        ))
        .json(&json!({ "name": "pricing", "alias": "champion" }))
        .send()
        .await
        .expect("registry answers");
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(body["error_code"], "RESOURCE_CONFLICT", "{body}");
    drop(server);

    // Restarted while the registry cannot be reached: the node serves what it followed.
    let unreachable = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback port")
        .local_addr()
        .expect("bound");
    let server = serve_registry(&format!("http://{unreachable}"), cache.path());
    wait_until(
        "the last known deployment serves without a registry",
        || async { serves(&server).await && ready(&server).await },
    )
    .await;
    assert_infers(&client, &server).await;
    drop(server);

    // Restarted against a registry that knows nothing of the model: it keeps serving, and
    // says so.
    let empty = Registry::start(
        TcpListener::bind("127.0.0.1:0")
            .await
            .expect("loopback port"),
    )
    .await;
    let server = serve_registry(&empty.url, cache.path());
    wait_until("the disagreement is counted", || async {
        counter(&client, &server, "okla_serving_unconfirmed_models").await == 1.0
    })
    .await;
    assert_infers(&client, &server).await;
    drop(server);

    // Back on its registry, an explicit undeploy takes the model away.
    let server = serve_registry(&registry.url, cache.path());
    wait_until("the champion serves again", || serves(&server)).await;
    let undeployed = client
        .post(format!(
            "{}/api/okla/v1/deployments/pricing/undeploy",
            registry.url
        ))
        .json(&json!({ "comment": "retired" }))
        .send()
        .await
        .expect("registry answers");
    assert_eq!(undeployed.status(), StatusCode::OK);
    wait_until("the undeployed model leaves the node", || async {
        status(&client, format!("{}/v2/models/pricing/ready", server.http)).await
            == StatusCode::NOT_FOUND
    })
    .await;
    assert!(!cache.path().join("pricing").exists());
}

async fn assert_infers(client: &reqwest::Client, server: &Server) {
    let answer = client
        .post(format!("{}/v2/models/pricing/infer", server.http))
        .json(&crate::support::pricing_request())
        .send()
        .await
        .expect("server answers");
    assert_eq!(answer.status(), StatusCode::OK);
}
