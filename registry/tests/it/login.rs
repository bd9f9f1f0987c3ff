//! Signing in to the web UI with authentication on: the sign-in form and its CSRF check, the
//! session cookie's flags, pages that show only what the user may read, a session that reads
//! the API but never writes it, and signing out.

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use serde_json::{Value, json};

use crate::support::{BackendKind, TestServer};

const ADMIN_PASSWORD: &str = "admin-password-for-ui";
const ALICE_PASSWORD: &str = "alice-password-for-ui";

async fn start() -> TestServer {
    let directory = tempfile::tempdir().expect("temporary directory");
    let password_file = directory.path().join("admin-password");
    std::fs::write(&password_file, format!("{ADMIN_PASSWORD}\n")).expect("write password");
    let server = TestServer::start_with(BackendKind::Sqlite, |config| {
        config.no_auth = false;
        config.admin_password_file = Some(password_file.clone());
    })
    .await;
    drop(directory);
    server
}

/// A JSON API call with basic auth.
async fn api(server: &TestServer, user: (&str, &str), path: &str, body: Value) -> Value {
    let (status, answer) = server
        .send(
            server
                .client
                .post(server.url(path))
                .basic_auth(user.0, Some(user.1))
                .json(&body),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{path}: {answer}");
    answer
}

/// The value of `name` in a response's `Set-Cookie` headers, and the whole header.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<(String, String)> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{name}=")))
        .map(|header| {
            let value = header[name.len() + 1..]
                .split(';')
                .next()
                .unwrap_or("")
                .to_owned();
            (value, header.to_owned())
        })
}

/// A request carrying `fields` as an HTML form does.
fn form<T: serde::Serialize + ?Sized>(
    request: reqwest::RequestBuilder,
    fields: &T,
) -> reqwest::RequestBuilder {
    request
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(serde_html_form::to_string(fields).expect("form encodes"))
}

/// The hidden CSRF field of a form page.
fn csrf_field(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("a csrf field") + marker.len();
    page[start..].split('"').next().expect("quoted").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_sign_in_is_csrf_checked_and_shows_only_what_the_user_may_read() {
    let server = start().await;
    let admin = ("admin", ADMIN_PASSWORD);
    let alice = ("alice", ALICE_PASSWORD);
    api(
        &server,
        admin,
        "/api/2.0/mlflow/users/create",
        json!({"username": "alice", "password": ALICE_PASSWORD}),
    )
    .await;
    let secret = api(
        &server,
        admin,
        "/api/2.0/mlflow/experiments/create",
        json!({"name": "secret-exp"}),
    )
    .await;
    let secret_id = secret["experiment_id"].as_str().expect("id").to_owned();
    api(
        &server,
        admin,
        "/api/2.0/mlflow/registered-models/create",
        json!({"name": "secret-model"}),
    )
    .await;
    for (resource_type, resource_id) in [
        ("experiment", secret_id.as_str()),
        ("registered_model", "secret-model"),
    ] {
        api(
            &server,
            admin,
            "/api/3.0/mlflow/users/permissions/grant",
            json!({"username": "alice", "resource_type": resource_type, "resource_id": resource_id, "permission": "DENY"}),
        )
        .await;
    }
    let own = api(
        &server,
        alice,
        "/api/2.0/mlflow/experiments/create",
        json!({"name": "alice-exp"}),
    )
    .await;
    let own_id = own["experiment_id"].as_str().expect("id").to_owned();

    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("client");
    let get = |path: &str, cookie: Option<&str>| {
        let request = browser.get(server.url(path));
        match cookie {
            Some(cookie) => request.header(COOKIE, cookie.to_owned()),
            None => request,
        }
        .send()
    };

    // A page without a session sends the browser to the sign-in form, and back afterwards.
    let anonymous = get("/experiments?q=a", None).await.expect("answer");
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        anonymous.headers()[LOCATION],
        "/login?next=%2Fexperiments%3Fq%3Da"
    );

    let login_page = get("/login?next=/experiments", None).await.expect("answer");
    assert_eq!(login_page.status(), StatusCode::OK);
    let (csrf_cookie, _) = set_cookie(&login_page, "okla_csrf").expect("a CSRF cookie");
    let csrf = csrf_field(&login_page.text().await.expect("page"));
    assert_eq!(csrf, csrf_cookie);

    let sign_in = |fields: Vec<(&'static str, String)>, cookie: String| {
        form(
            browser.post(server.url("/login")).header(COOKIE, cookie),
            &fields,
        )
        .send()
    };
    let fields = |csrf: &str, password: &str| {
        vec![
            ("username", "alice".to_owned()),
            ("password", password.to_owned()),
            ("csrf", csrf.to_owned()),
            ("next", "/experiments".to_owned()),
        ]
    };
    let csrf_cookie_header = format!("okla_csrf={csrf_cookie}");
    // A form posted from elsewhere carries no matching token: refused, no session.
    let forged = sign_in(fields("forged", ALICE_PASSWORD), csrf_cookie_header.clone())
        .await
        .expect("answer");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&forged, "okla_session").is_none());
    let no_cookie = sign_in(fields(&csrf, ALICE_PASSWORD), String::new())
        .await
        .expect("answer");
    assert_eq!(no_cookie.status(), StatusCode::FORBIDDEN);
    let foreign = form(
        browser
            .post(server.url("/login"))
            .header(COOKIE, csrf_cookie_header.clone())
            .header(ORIGIN, "https://evil.example"),
        &fields(&csrf, ALICE_PASSWORD),
    )
    .send()
    .await
    .expect("answer");
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let wrong = sign_in(
        fields(&csrf, "not-the-password"),
        csrf_cookie_header.clone(),
    )
    .await
    .expect("answer");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&wrong, "okla_session").is_none());

    let signed_in = sign_in(fields(&csrf, ALICE_PASSWORD), csrf_cookie_header)
        .await
        .expect("answer");
    assert_eq!(
        signed_in.status(),
        StatusCode::SEE_OTHER,
        "{:?}",
        signed_in.text().await
    );
    assert_eq!(signed_in.headers()[LOCATION], "/experiments");
    let (session, header) = set_cookie(&signed_in, "okla_session").expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(header.contains(flag), "{header}");
    }
    assert!(!header.contains("Secure"), "plain http: {header}");
    let cookie = format!("okla_session={session}");

    // Pages show only what alice may read.
    let experiments = get("/experiments", Some(&cookie)).await.expect("answer");
    assert_eq!(experiments.status(), StatusCode::OK);
    let page = experiments.text().await.expect("page");
    assert!(
        page.contains("alice-exp") && !page.contains("secret-exp"),
        "{page}"
    );
    let models = get("/models", Some(&cookie))
        .await
        .expect("answer")
        .text()
        .await
        .expect("page");
    assert!(!models.contains("secret-model"), "{models}");
    let denied = get(&format!("/experiments/{secret_id}"), Some(&cookie))
        .await
        .expect("answer");
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    let denied = get("/models/secret-model", Some(&cookie))
        .await
        .expect("answer");
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);

    // The session reads the API (the UI's charts do) but never writes it.
    let read = get(
        &format!("/api/2.0/mlflow/experiments/get?experiment_id={own_id}"),
        Some(&cookie),
    )
    .await
    .expect("answer");
    assert_eq!(read.status(), StatusCode::OK);
    let write = browser
        .post(server.url("/api/2.0/mlflow/experiments/create"))
        .header(COOKIE, cookie.clone())
        .json(&json!({"name": "written-by-a-cookie"}))
        .send()
        .await
        .expect("answer");
    assert_eq!(write.status(), StatusCode::UNAUTHORIZED);

    // Signing out is a CSRF-checked form too, and ends the session on the server.
    let logout_page = get("/logout", Some(&cookie)).await.expect("answer");
    let (logout_csrf, _) = set_cookie(&logout_page, "okla_csrf").expect("a CSRF cookie");
    let body = logout_page.text().await.expect("page");
    assert!(body.contains("alice"), "{body}");
    let with_csrf = format!("{cookie}; okla_csrf={logout_csrf}");
    let forged = form(
        browser
            .post(server.url("/logout"))
            .header(COOKIE, with_csrf.clone()),
        &[("csrf", "forged")],
    )
    .send()
    .await
    .expect("answer");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let signed_out = form(
        browser
            .post(server.url("/logout"))
            .header(COOKIE, with_csrf),
        &[("csrf", logout_csrf.as_str())],
    )
    .send()
    .await
    .expect("answer");
    assert_eq!(signed_out.status(), StatusCode::SEE_OTHER);
    let after = get("/experiments", Some(&cookie)).await.expect("answer");
    assert_eq!(
        after.status(),
        StatusCode::SEE_OTHER,
        "the old session still works"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_has_changes_and_refusals_but_not_run_data() {
    let server = start().await;
    let admin = ("admin", ADMIN_PASSWORD);
    let experiment = api(
        &server,
        admin,
        "/api/2.0/mlflow/experiments/create",
        json!({"name": "audited-experiment"}),
    )
    .await;
    let experiment_id = experiment["experiment_id"].as_str().expect("experiment id");
    let run = api(
        &server,
        admin,
        "/api/2.0/mlflow/runs/create",
        json!({"experiment_id": experiment_id}),
    )
    .await;
    let run_id = run["run"]["info"]["run_id"].as_str().expect("run id");
    api(
        &server,
        admin,
        "/api/2.0/mlflow/runs/log-metric",
        json!({"run_id": run_id, "key": "loss", "value": 0.5, "timestamp": 1, "step": 0}),
    )
    .await;
    let (status, _) = server
        .send(
            server
                .client
                .post(server.url("/api/2.0/mlflow/runs/log-metric"))
                .basic_auth("admin", Some("not-the-password"))
                .json(&json!({"run_id": run_id, "key": "loss", "value": 0.5, "timestamp": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, audit) = server
        .send(
            server
                .client
                .get(server.url("/api/okla/v1/audit"))
                .basic_auth(admin.0, Some(admin.1)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let entries: Vec<(String, String, u64)> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|entry| {
            (
                entry["actor"].as_str().unwrap_or_default().to_owned(),
                entry["path"].as_str().unwrap_or_default().to_owned(),
                entry["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    let has = |path: &str, status: u64| {
        entries
            .iter()
            .any(|(_, logged, code)| logged == path && *code == status)
    };
    assert!(has("/api/2.0/mlflow/experiments/create", 200), "{audit}");
    assert!(has("/api/2.0/mlflow/runs/create", 200), "{audit}");
    assert!(has("/api/2.0/mlflow/runs/log-metric", 401), "{audit}");
    assert!(!has("/api/2.0/mlflow/runs/log-metric", 200), "{audit}");
    let (actor, ..) = entries
        .iter()
        .find(|(_, path, _)| path == "/api/2.0/mlflow/runs/create")
        .expect("the run's creation");
    assert_eq!(actor, "admin");
}
