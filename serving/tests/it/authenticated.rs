//! A serving node against a registry with authentication on: it follows and downloads with its
//! node credential (`OKLA_REGISTRY_TOKEN`), its reports land under its own node id, and the
//! credential cannot report as another node, nor can a user (even an admin) report at all.

use std::collections::HashMap;

use okla_client::{Client, ClientOptions, Credentials, NewToken};
use okla_registry::app::{self, AppState};
use okla_registry::config::RegistryConfig;
use reqwest::StatusCode;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::{Server, example_models, wait_until};

const ADMIN_PASSWORD: &str = "admin-password-for-tests";

fn client_as(url: &str, credentials: Credentials) -> Client {
    let options = ClientOptions {
        credentials: Some(credentials),
        ..ClientOptions::default()
    };
    Client::with_options(url, options).expect("client")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_serves_and_reports_with_its_credential_and_only_as_itself() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let database = format!("sqlite:///{}", directory.path().join("okla.db").display());
    let artifacts = directory.path().join("artifacts");
    let mut config =
        RegistryConfig::for_test(&database, artifacts.to_str().expect("UTF-8 temp path"));
    config.no_auth = false;
    let env = HashMap::from([("OKLA_ADMIN_PASSWORD".to_owned(), ADMIN_PASSWORD.to_owned())]);
    let state = AppState::open(&config, &env).await.expect("registry opens");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("bound"));
    let shutdown = CancellationToken::new();
    tokio::spawn(app::serve(state, listener, shutdown.clone()));

    let admin = client_as(
        &url,
        Credentials::Basic {
            username: "admin".to_owned(),
            password: ADMIN_PASSWORD.to_owned(),
        },
    );
    let experiment = admin
        .get_or_create_experiment("node-credentials")
        .await
        .expect("experiment");
    let run = admin
        .create_run(&experiment, "push", &[])
        .await
        .expect("run");
    let version = admin
        .register_model_dir("pricing", &run, &example_models().join("pricing/1"))
        .await
        .expect("registered");
    admin
        .set_alias("pricing", "champion", version.version)
        .await
        .expect("alias");
    let issued = admin
        .create_token(&NewToken {
            name: "node-a".to_owned(),
            node_id: Some("node-a".to_owned()),
            ..NewToken::default()
        })
        .await
        .expect("node credential");

    let server = Server::start_args_env(
        &[
            "--registry",
            &url,
            "--registry-poll-seconds",
            "1",
            "--report-seconds",
            "1",
            "--node-id",
            "node-a",
            "--cache-dir",
            directory.path().join("cache").to_str().expect("UTF-8"),
        ],
        &[("OKLA_REGISTRY_TOKEN", issued.secret.as_str())],
    );
    let http = reqwest::Client::new();
    let ready = format!("{}/v2/models/pricing/ready", server.http);
    wait_until("the node serves pricing with its credential", || async {
        matches!(http.get(&ready).send().await, Ok(answer) if answer.status() == StatusCode::OK)
    })
    .await;
    wait_until("the node's report is stored under its id", || async {
        admin
            .nodes("pricing")
            .await
            .is_ok_and(|nodes| nodes.iter().any(|node| node.node_id == "node-a"))
    })
    .await;

    // The credential reports as node-a only; a user, even an admin, never reports.
    let report = json!({"http_url": "http://forged:1", "report_seconds": 1.0, "models": []});
    let put = |node: &str, authorization: String| {
        http.put(format!("{url}/api/okla/v1/nodes/{node}"))
            .header("authorization", authorization)
            .json(&report)
            .send()
    };
    let bearer = format!("Bearer {}", issued.secret);
    let forged = put("node-b", bearer).await.expect("registry answers");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("admin:{ADMIN_PASSWORD}")
        )
    );
    let by_admin = put("node-a", basic).await.expect("registry answers");
    assert_eq!(by_admin.status(), StatusCode::FORBIDDEN);
    let nodes = admin.nodes("pricing").await.expect("nodes");
    assert!(
        nodes
            .iter()
            .all(|node| node.node_id == "node-a"
                && node.http_url.as_deref() != Some("http://forged:1")),
        "a refused report was stored: {nodes:?}"
    );

    // Without a credential the registry answers nothing but 401.
    let anonymous = http
        .get(format!("{url}/api/okla/v1/deployments/pricing"))
        .send()
        .await
        .expect("registry answers");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    shutdown.cancel();
}
