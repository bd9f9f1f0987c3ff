//! The HTTP hardening suite, against the real registry on an ephemeral port: artifacts download
//! as inert attachments, UI pages carry the browser security headers, writes must be JSON and
//! never read the query string, foreign Hosts and foreign Origins are refused with MLflow's
//! error body, and `--cors-allowed-origins` turns on CORS for exactly the listed origins.
//! Each refused write is checked to have written nothing.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::json;

use crate::support::{BackendKind, TestServer, assert_mlflow_error};

const API: &str = "/api/2.0/mlflow";
const ARTIFACTS: &str = "/api/2.0/mlflow-artifacts/artifacts";
const NOT_JSON: &str = "Bad Request. Content-Type must be one of ['application/json'].";

fn api(path: &str) -> String {
    format!("{API}/{path}")
}

fn header_text(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

async fn start() -> TestServer {
    TestServer::start(BackendKind::Sqlite).await
}

/// Whether an experiment of that name exists, through the API.
async fn experiment_exists(server: &TestServer, name: &str) -> bool {
    let (status, _) = server
        .get(
            &api("experiments/get-by-name"),
            &[("experiment_name", name)],
        )
        .await;
    assert!(
        status == StatusCode::OK || status == StatusCode::NOT_FOUND,
        "{status}"
    );
    status == StatusCode::OK
}

async fn create_run(server: &TestServer) -> (String, String) {
    let created = server
        .post_ok(&api("experiments/create"), json!({ "name": "hardening" }))
        .await;
    let experiment_id = created["experiment_id"].as_str().expect("id").to_owned();
    let run = server
        .post_ok(
            &api("runs/create"),
            json!({ "experiment_id": experiment_id, "start_time": 1_700_000_000_000_i64 }),
        )
        .await;
    let run_id = run["run"]["info"]["run_id"]
        .as_str()
        .expect("run id")
        .to_owned();
    (experiment_id, run_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_and_svg_artifacts_download_as_plain_text_attachments() {
    let server = start().await;
    let (experiment_id, run_id) = create_run(&server).await;
    let base = format!("{experiment_id}/{run_id}/artifacts");
    let html =
        b"<html><script>fetch('/api/2.0/mlflow/experiments/create')</script></html>".to_vec();
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>"#.to_vec();
    let png = b"\x89PNG\r\n\x1a\n not really".to_vec();
    let onnx = vec![0_u8, 1, 2, 3, 255];
    let files: [(&str, &[u8], &str); 5] = [
        ("report.html", &html, "text/plain; charset=utf-8"),
        ("plots/logo.svg", &svg, "text/plain; charset=utf-8"),
        ("plots/curve.png", &png, "image/png"),
        ("model.onnx", &onnx, "application/octet-stream"),
        ("odd \"name\".html", &html, "text/plain; charset=utf-8"),
    ];
    for (path, bytes, _) in &files {
        let encoded = path.replace(' ', "%20").replace('"', "%22");
        let (status, body) = server
            .send_bytes(
                server
                    .client
                    .put(server.url(&format!("{ARTIFACTS}/{base}/{encoded}")))
                    .header("content-type", "text/html")
                    .body(bytes.to_vec()),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    }
    for prefix in [ARTIFACTS, "/ajax-api/2.0/mlflow-artifacts/artifacts"] {
        for (path, bytes, content_type) in &files {
            let encoded = path.replace(' ', "%20").replace('"', "%22");
            let response = server
                .client
                .get(server.url(&format!("{prefix}/{base}/{encoded}")))
                .send()
                .await
                .expect("download");
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let headers = response.headers().clone();
            assert_eq!(
                header_text(&headers, "content-type"),
                *content_type,
                "{path}"
            );
            assert_eq!(header_text(&headers, "x-content-type-options"), "nosniff");
            assert_eq!(
                header_text(&headers, "content-security-policy"),
                "default-src 'none'; sandbox",
                "{path}"
            );
            let disposition = header_text(&headers, "content-disposition");
            let file_name = path.rsplit('/').next().expect("a name");
            assert!(
                disposition.starts_with("attachment; filename=\""),
                "{path}: {disposition}"
            );
            if !file_name.contains('"') {
                assert!(
                    disposition.contains(&format!("filename=\"{file_name}\"")),
                    "{disposition}"
                );
            }
            assert!(disposition.contains("filename*=UTF-8''"), "{disposition}");
            assert_eq!(
                response.bytes().await.expect("body").as_ref(),
                *bytes,
                "{path}: the bytes come back unchanged"
            );
        }
    }
    let disposition = server
        .client
        .get(server.url(&format!("{ARTIFACTS}/{base}/odd%20%22name%22.html")))
        .send()
        .await
        .expect("download")
        .headers()
        .get("content-disposition")
        .map(|value| value.to_str().expect("ASCII").to_owned())
        .expect("a disposition");
    assert_eq!(
        disposition,
        "attachment; filename=\"odd _name_.html\"; filename*=UTF-8''odd%20%22name%22.html"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_pages_carry_the_browser_security_headers() {
    let server = start().await;
    let (experiment_id, run_id) = create_run(&server).await;
    server
        .post_ok(
            &api("registered-models/create"),
            json!({ "name": "pricing" }),
        )
        .await;
    for path in [
        "/experiments".to_owned(),
        format!("/experiments/{experiment_id}"),
        format!("/runs/{run_id}"),
        "/models".to_owned(),
        "/models/pricing".to_owned(),
        "/deployments".to_owned(),
        "/experiments/424242".to_owned(),
        "/ui/assets/charts.js".to_owned(),
    ] {
        let response = server
            .client
            .get(server.url(&path))
            .send()
            .await
            .expect("page");
        assert!(!response.status().is_server_error(), "{path}");
        let headers = response.headers().clone();
        let policy = header_text(&headers, "content-security-policy");
        for directive in [
            "script-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe-inline"), "{path}: {policy}");
        assert_eq!(header_text(&headers, "x-frame-options"), "DENY", "{path}");
        assert_eq!(
            header_text(&headers, "referrer-policy"),
            "same-origin",
            "{path}"
        );
        assert_eq!(
            header_text(&headers, "x-content-type-options"),
            "nosniff",
            "{path}"
        );
        let body = response.text().await.expect("body");
        if path.starts_with("/ui/") {
            continue;
        }
        // Every script is a file of our own: `script-src 'self'` would block an inline one.
        for (at, _) in body.match_indices("<script") {
            let tag = &body[at..body[at..].find('>').map_or(body.len(), |end| at + end)];
            assert!(
                tag.contains(" src=/ui/assets/"),
                "{path}: inline script {tag}"
            );
        }
        assert!(
            !body.contains(" onclick=") && !body.contains(" onload="),
            "{path}"
        );
    }
    // The JSON API needs no page policy, but never lets a browser sniff its answers.
    let response = server
        .client
        .get(server.url(&api("experiments/search")))
        .send()
        .await
        .expect("answer");
    assert_eq!(
        header_text(response.headers(), "x-content-type-options"),
        "nosniff"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_json_writes_are_415_and_write_nothing() {
    let server = start().await;
    server
        .post_ok(&api("registered-models/create"), json!({ "name": "kept" }))
        .await;
    for content_type in [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let answer = server
            .send(
                server
                    .client
                    .post(server.url(&api("experiments/create")))
                    .header("content-type", content_type)
                    .body(r#"{"name": "csrf"}"#),
            )
            .await;
        let message = assert_mlflow_error(
            &answer,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "INVALID_PARAMETER_VALUE",
        );
        assert_eq!(message, NOT_JSON, "{content_type}");
        let answer = server
            .send(
                server
                    .client
                    .delete(server.url(&api("registered-models/delete")))
                    .header("content-type", content_type)
                    .body(r#"{"name": "kept"}"#),
            )
            .await;
        assert_mlflow_error(
            &answer,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "INVALID_PARAMETER_VALUE",
        );
    }
    // A body without any content type is refused the same way, on every API family.
    for (method, path) in [
        (reqwest::Method::POST, api("experiments/create")),
        (
            reqwest::Method::POST,
            "/ajax-api/2.0/mlflow/experiments/create".to_owned(),
        ),
        (
            reqwest::Method::PUT,
            "/api/okla/v1/deployments/kept".to_owned(),
        ),
    ] {
        let answer = server
            .send(
                server
                    .client
                    .request(method.clone(), server.url(&path))
                    .body(r#"{"name": "csrf", "routes": [{"version": 1, "weight": 100}]}"#),
            )
            .await;
        assert_mlflow_error(
            &answer,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "INVALID_PARAMETER_VALUE",
        );
    }
    assert!(!experiment_exists(&server, "csrf").await);
    server
        .get_ok(&api("registered-models/get"), &[("name", "kept")])
        .await;
    let deployment = server.get_ok("/api/okla/v1/deployments/kept", &[]).await;
    assert_eq!(deployment["deployment"]["source"], "none", "{deployment}");

    // JSON with parameters is JSON; a bodiless write without a content type reaches its handler.
    let created = server
        .send(
            server
                .client
                .post(server.url(&api("experiments/create")))
                .header("content-type", "application/json; charset=utf-8")
                .body(r#"{"name": "charset"}"#),
        )
        .await;
    assert_eq!(created.0, StatusCode::OK, "{}", created.1);
    let answer = server
        .send(server.client.post(server.url(&api("experiments/create"))))
        .await;
    let message = assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    assert!(message.contains("'name'"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_fields_in_the_query_string_are_refused() {
    let server = start().await;
    server
        .post_ok(&api("registered-models/create"), json!({ "name": "kept" }))
        .await;
    server
        .post_ok(
            &api("model-versions/create"),
            json!({ "name": "kept", "source": "s3://bucket/model" }),
        )
        .await;
    server
        .post_ok(
            &api("registered-models/alias"),
            json!({ "name": "kept", "alias": "champion", "version": "1" }),
        )
        .await;
    let refused = [
        (reqwest::Method::POST, "experiments/create?name=from-query"),
        (
            reqwest::Method::DELETE,
            "registered-models/delete?name=kept",
        ),
        (
            reqwest::Method::DELETE,
            "registered-models/alias?name=kept&alias=champion",
        ),
        (
            reqwest::Method::DELETE,
            "model-versions/delete?name=kept&version=1",
        ),
        (
            reqwest::Method::PATCH,
            "registered-models/update?name=kept&description=x",
        ),
    ];
    for (method, path) in refused {
        let answer = server
            .send(
                server
                    .client
                    .request(method.clone(), server.url(&api(path))),
            )
            .await;
        let message =
            assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
        assert!(
            message.contains("query string"),
            "{method} {path}: {message}"
        );
    }
    assert!(!experiment_exists(&server, "from-query").await);
    let model = server
        .get_ok(&api("registered-models/get"), &[("name", "kept")])
        .await;
    assert_eq!(
        model["registered_model"]["aliases"][0]["alias"], "champion",
        "{model}"
    );
    assert!(
        model["registered_model"].get("description").is_none(),
        "{model}"
    );
    server
        .get_ok(
            &api("model-versions/get"),
            &[("name", "kept"), ("version", "1")],
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_hosts_are_403_and_health_answers_any_host() {
    let server = start().await;
    let port = server.address.port();
    let search = server.url(&api("experiments/search"));
    for host in ["evil.example", "evil.example:80", "attacker.test:1234"] {
        let answer = server
            .send(server.client.get(&search).header("host", host))
            .await;
        let message = assert_mlflow_error(&answer, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
        assert!(
            message.contains(&format!("'{host}'")) && message.contains("--allowed-hosts"),
            "{message}"
        );
    }
    // Writes from a foreign Host are refused before they reach the store.
    let answer = server
        .send(
            server
                .client
                .post(server.url(&api("experiments/create")))
                .header("host", "evil.example")
                .json(&json!({ "name": "rebound" })),
        )
        .await;
    assert_mlflow_error(&answer, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    assert!(!experiment_exists(&server, "rebound").await);
    // A forwarded host names where answers' links point (multipart part URLs): ours only.
    let answer = server
        .send(
            server
                .client
                .get(&search)
                .header("x-forwarded-host", "127.0.0.1, evil.example"),
        )
        .await;
    let message = assert_mlflow_error(&answer, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    assert!(message.contains("'evil.example'"), "{message}");
    // UI pages too.
    let (status, _) = server
        .send_bytes(
            server
                .client
                .get(server.url("/experiments"))
                .header("host", "evil.example"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "LOCALHOST".to_owned(),
    ] {
        let (status, body) = server
            .send(server.client.get(&search).header("host", &host))
            .await;
        assert_eq!(status, StatusCode::OK, "{host}: {body}");
    }
    let (status, body) = server
        .send_bytes(
            server
                .client
                .get(server.url("/health"))
                .header("host", "10.1.2.3:8080"),
        )
        .await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, b"OK".as_slice())
    );

    let named = TestServer::start_with(BackendKind::Sqlite, |config| {
        config.allowed_hosts = vec!["registry.corp".to_owned(), format!("127.0.0.1:{}", 1)];
    })
    .await;
    let search = named.url(&api("experiments/search"));
    let (status, body) = named
        .send(
            named
                .client
                .get(&search)
                .header("host", format!("registry.corp:{}", named.address.port())),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Listed at another port only, and `localhost` is no longer implied.
    for host in [
        format!("127.0.0.1:{}", named.address.port()),
        "localhost".to_owned(),
    ] {
        let answer = named
            .send(named.client.get(&search).header("host", &host))
            .await;
        assert_mlflow_error(&answer, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    }
    let (status, _) = named
        .send_bytes(named.client.get(named.url("/health")))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_origins_cannot_write_and_listed_origins_get_cors() {
    let server = start().await;
    let create = server.url(&api("experiments/create"));
    let answer = server
        .send(
            server
                .client
                .post(&create)
                .header("origin", "https://evil.example")
                .json(&json!({ "name": "cross-site" })),
        )
        .await;
    let message = assert_mlflow_error(&answer, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    assert!(
        message.contains("'https://evil.example'") && message.contains("--cors-allowed-origins"),
        "{message}"
    );
    assert!(!experiment_exists(&server, "cross-site").await);
    // The server's own pages may write (same scheme, host and port as the Host header).
    let own_origin = server.base_url.clone();
    let (status, body) = server
        .send(
            server
                .client
                .post(&create)
                .header("origin", &own_origin)
                .json(&json!({ "name": "same-origin" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Without configured origins there is no CORS at all.
    let response = server
        .client
        .get(server.url(&api("experiments/search")))
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "{:?}",
        response.headers()
    );

    let notebooks = "https://notebooks.example.com";
    let cors = TestServer::start_with(BackendKind::Sqlite, |config| {
        config.cors_allowed_origins = vec![format!("{notebooks}/")];
    })
    .await;
    let create = cors.url(&api("experiments/create"));
    let preflight = cors
        .client
        .request(reqwest::Method::OPTIONS, &create)
        .header("origin", notebooks)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .expect("preflight");
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let headers = preflight.headers();
    assert_eq!(
        header_text(headers, "access-control-allow-origin"),
        notebooks
    );
    assert!(
        header_text(headers, "access-control-allow-methods").contains("POST"),
        "{headers:?}"
    );
    assert!(
        header_text(headers, "access-control-allow-headers").contains("content-type"),
        "{headers:?}"
    );
    let response = cors
        .client
        .post(&create)
        .header("origin", notebooks)
        .json(&json!({ "name": "from-notebooks" }))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header_text(response.headers(), "access-control-allow-origin"),
        notebooks
    );
    assert!(experiment_exists(&cors, "from-notebooks").await);
    let answer = cors
        .send(
            cors.client
                .post(&create)
                .header("origin", "https://evil.example")
                .json(&json!({ "name": "still-refused" })),
        )
        .await;
    assert_mlflow_error(&answer, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    assert!(!experiment_exists(&cors, "still-refused").await);
    let preflight = cors
        .client
        .request(reqwest::Method::OPTIONS, &create)
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "{:?}",
        preflight.headers()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_security_settings_are_refused_at_startup_by_name() {
    let database = crate::support::TestDatabase::create(BackendKind::Sqlite).await;
    let artifacts = tempfile::tempdir().expect("a temporary directory");
    let artifact_root = artifacts.path().to_str().expect("UTF-8");
    let cases = [
        (vec!["a b"], vec![], "--allowed-hosts"),
        (vec![], vec!["*"], "--cors-allowed-origins"),
        (
            vec![],
            vec!["notebooks.example.com"],
            "notebooks.example.com",
        ),
    ];
    for (hosts, origins, named) in cases {
        let mut config =
            okla_registry::config::RegistryConfig::for_test(&database.uri, artifact_root);
        config.allowed_hosts = hosts.into_iter().map(str::to_owned).collect();
        config.cors_allowed_origins = origins.into_iter().map(str::to_owned).collect();
        let error = match okla_registry::app::AppState::open(&config, &Default::default()).await {
            Ok(_) => panic!("{named}: should be refused"),
            Err(error) => format!("{error:#}"),
        };
        assert!(error.contains(named), "{error}");
    }
}
