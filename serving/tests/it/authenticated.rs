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
    let by_admin = put("node-a", basic.clone())
        .await
        .expect("registry answers");
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

    // A node with --require-token: inference needs a registry token that may read the model.
    let reader = user_token(&http, &url, &basic, "reader", None).await;
    let denied = user_token(&http, &url, &basic, "denied", Some("DENY")).await;
    let node_b = admin
        .create_token(&NewToken {
            name: "node-b".to_owned(),
            node_id: Some("node-b".to_owned()),
            ..NewToken::default()
        })
        .await
        .expect("node credential");
    let guarded = Server::start_args_env(
        &[
            "--registry",
            &url,
            "--registry-poll-seconds",
            "1",
            "--node-id",
            "node-b",
            "--require-token",
            "--token-cache-seconds",
            "1",
            "--cache-dir",
            directory.path().join("cache-b").to_str().expect("UTF-8"),
        ],
        &[("OKLA_REGISTRY_TOKEN", node_b.secret.as_str())],
    );
    let infer_url = format!("{}/v2/models/pricing/infer", guarded.http);
    let infer = |token: Option<String>| {
        let request = http
            .post(&infer_url)
            .json(&json!({"inputs": [{"name": "features",
            "shape": [1, 8], "datatype": "FP32", "data": [3, 2019, 60000, 1.6, 0, 1, 4, 12]}]}));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
        .send()
    };
    wait_until("the guarded node serves pricing", || async {
        matches!(infer(Some(reader.secret.clone())).await, Ok(answer) if answer.status() == StatusCode::OK)
    })
    .await;
    let missing = infer(None).await.expect("answer");
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    let unknown = infer(Some("okla_not-a-token".to_owned()))
        .await
        .expect("answer");
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let forbidden = infer(Some(denied.secret.clone())).await.expect("answer");
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    let health = http
        .get(format!("{}/v2/health/ready", guarded.http))
        .send()
        .await
        .expect("answer");
    assert_eq!(health.status(), StatusCode::OK, "probes need no token");

    // A revoked token stops working once the node's verdict expires.
    admin.revoke_token(&reader.token.id).await.expect("revoked");
    wait_until("the revoked token is refused", || async {
        matches!(infer(Some(reader.secret.clone())).await, Ok(answer) if answer.status() == StatusCode::UNAUTHORIZED)
    })
    .await;

    // With the registry gone, a token the node accepted before still works; an unseen one
    // cannot be checked.
    let second = user_token(&http, &url, &basic, "reader2", None).await;
    assert_eq!(
        infer(Some(second.secret.clone()))
            .await
            .expect("answer")
            .status(),
        StatusCode::OK
    );
    shutdown.cancel();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let during_outage = infer(Some(second.secret.clone())).await.expect("answer");
    assert_eq!(during_outage.status(), StatusCode::OK);
    let unseen = infer(Some("okla_never-seen".to_owned()))
        .await
        .expect("answer");
    assert_eq!(unseen.status(), StatusCode::SERVICE_UNAVAILABLE);
}

/// Creates `username` (with `grant` on `pricing`, if any) and a token of theirs.
async fn user_token(
    http: &reqwest::Client,
    url: &str,
    admin_basic: &str,
    username: &str,
    grant: Option<&str>,
) -> okla_client::IssuedToken {
    let password = format!("{username}-password-for-tests");
    let call = |path: &str, body: serde_json::Value, authorization: String| {
        http.post(format!("{url}{path}"))
            .header("authorization", authorization)
            .json(&body)
            .send()
    };
    let created = call(
        "/api/2.0/mlflow/users/create",
        json!({"username": username, "password": password}),
        admin_basic.to_owned(),
    )
    .await
    .expect("registry answers");
    assert_eq!(created.status(), StatusCode::OK);
    if let Some(permission) = grant {
        let granted = call(
            "/api/3.0/mlflow/users/permissions/grant",
            json!({"username": username, "resource_type": "registered_model",
                   "resource_id": "pricing", "permission": permission}),
            admin_basic.to_owned(),
        )
        .await
        .expect("registry answers");
        assert_eq!(granted.status(), StatusCode::OK);
    }
    let user_basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{username}:{password}")
        )
    );
    let answer = call(
        "/api/okla/v1/tokens",
        json!({"name": "inference"}),
        user_basic,
    )
    .await
    .expect("registry answers");
    assert_eq!(answer.status(), StatusCode::OK);
    answer.json().await.expect("a token")
}
