//! The HTTP surface's hardening, applied around every route by `router`: the Host check (DNS
//! rebinding), CORS for the origins `--cors-allowed-origins` lists, the refusal of writes from
//! foreign origins and of writes whose body is not JSON (CSRF), security headers on every UI
//! page, and the headers that keep a downloaded artifact from running as a page.
//!
//! The decisions themselves (which host, origin or content type passes) are plain functions in
//! `crate::security`; this module only reads requests and writes responses.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::error::Error;
use crate::security::{
    SecurityPolicy, artifact_content_type, attachment_disposition, is_json_content_type,
    is_same_origin,
};
use crate::state::AppState;

/// The one path answered whatever the Host: Kubernetes probes name the pod's IP.
const HEALTH_PATH: &str = "/health";

/// The UI's policy: its own scripts, styles and fetches only (it has no inline script or style
/// and no `eval`), no plugins, no `<base>`, forms back to itself, and never inside a frame.
const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// A downloaded artifact may load nothing and runs sandboxed (an opaque origin, no scripts),
/// even if a browser were to render it.
const ARTIFACT_CSP: &str = "default-src 'none'; sandbox";

/// Longest part of a refused Host or Origin repeated in an error message.
const MAX_ECHOED_CHARS: usize = 200;

/// MLflow's message for a write whose body is not JSON.
const NOT_JSON_MESSAGE: &str = "Bad Request. Content-Type must be one of ['application/json'].";

/// Wraps the UI's routes so every page carries the browser security headers.
pub(super) fn with_page_headers(pages: Router<AppState>) -> Router<AppState> {
    pages
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
}

/// `X-Content-Type-Options: nosniff` on every answer, so no JSON or text is ever sniffed into
/// markup or script.
pub(super) fn nosniff_layer() -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    )
}

/// CORS for exactly the configured origins; `None` (no CORS headers at all) when there are none.
pub(super) fn cors_layer(policy: &SecurityPolicy) -> Option<CorsLayer> {
    if policy.cors_allowed_origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = policy
        .cors_allowed_origins
        .iter()
        // Parsed from URLs at startup, so always a valid header value.
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static("x-okla-actor"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// Refuses, with 403, a request whose `Host` (or `:authority`) `--allowed-hosts` does not list.
/// Outermost of the checks, so a rebound name learns nothing, not even CORS answers.
pub(super) async fn refuse_unknown_hosts(
    State(policy): State<Arc<SecurityPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path() == HEALTH_PATH {
        return next.run(request).await;
    }
    match check_host(&policy, request.headers(), request.uri().authority()) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

fn check_host(
    policy: &SecurityPolicy,
    headers: &HeaderMap,
    authority: Option<&axum::http::uri::Authority>,
) -> Result<(), Error> {
    let mut presented: Vec<String> = headers
        .get_all(header::HOST)
        .iter()
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .collect();
    // HTTP/2's `:authority`, and an absolute-form HTTP/1.1 target, arrive in the URI.
    presented.extend(authority.map(|authority| authority.as_str().to_owned()));
    // A proxy's `X-Forwarded-Host` names the host that links in answers point at (multipart
    // part URLs), so it must be one of ours too, or a forged one would send uploads elsewhere.
    for value in headers.get_all("x-forwarded-host") {
        let value = String::from_utf8_lossy(value.as_bytes());
        presented.extend(value.split(',').map(|host| host.trim().to_owned()));
    }
    if presented.is_empty() {
        return Err(Error::Forbidden(
            "Request refused: it has no Host header; this server answers only the hosts --allowed-hosts (OKLA_ALLOWED_HOSTS) lists".to_owned(),
        ));
    }
    match presented
        .iter()
        .find(|host| !policy.allowed_hosts.allows(host))
    {
        None => Ok(()),
        Some(refused) => Err(Error::Forbidden(format!(
            "Invalid Host header '{}': this server answers only the hosts --allowed-hosts (OKLA_ALLOWED_HOSTS) lists \
             (now: {}); if this name reaches this server, add it there",
            echo(refused),
            policy.allowed_hosts.describe()
        ))),
    }
}

/// Refuses a state-changing request from a foreign browser origin (403), and a JSON API write
/// whose body is not declared JSON (415), before any handler runs, so nothing is written.
pub(super) async fn refuse_foreign_writes(
    State(policy): State<Arc<SecurityPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method();
    let is_write = [Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(method);
    if !is_write {
        return next.run(request).await;
    }
    let checked = check_origin(&policy, request.headers()).and_then(|()| {
        if takes_json_body(method, request.uri().path()) {
            check_json_body(request.headers())
        } else {
            Ok(())
        }
    });
    match checked {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

/// A write that carries an `Origin` must come from the server's own origin or a listed one.
/// Non-browser clients (the mlflow client, okla-client, curl) send no `Origin` and pass.
fn check_origin(policy: &SecurityPolicy, headers: &HeaderMap) -> Result<(), Error> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = String::from_utf8_lossy(origin.as_bytes());
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if is_same_origin(&origin, host)
        || policy
            .cors_allowed_origins
            .iter()
            .any(|allowed| *allowed == origin)
    {
        return Ok(());
    }
    Err(Error::Forbidden(format!(
        "Cross-origin write refused: Origin '{}' is not this server's own origin; \
         list it in --cors-allowed-origins (OKLA_CORS_ALLOWED_ORIGINS) to allow it",
        echo(&origin)
    )))
}

/// Whether a write to `path` carries its fields as a JSON body: every API write except the
/// artifact uploads, whose bodies are the file's raw bytes.
fn takes_json_body(method: &Method, path: &str) -> bool {
    const JSON_API_PREFIXES: [&str; 5] = [
        "/api/2.0/mlflow/",
        "/api/2.0/mlflow-artifacts/",
        "/api/3.0/",
        "/ajax-api/",
        "/api/okla/v1/",
    ];
    if !JSON_API_PREFIXES
        .iter()
        .any(|prefix| path.starts_with(prefix))
    {
        return false;
    }
    let artifact_route = [
        "/api/2.0/mlflow-artifacts",
        "/ajax-api/2.0/mlflow-artifacts",
    ]
    .iter()
    .find_map(|prefix| path.strip_prefix(prefix));
    let raw_upload = *method == Method::PUT
        && artifact_route.is_some_and(|route| {
            route.starts_with("/artifacts/") || route.starts_with("/mpu/part/")
        });
    !raw_upload
}

/// A body must be declared JSON; a request with neither body nor `Content-Type` (a bodiless
/// DELETE or POST) passes, and its handler reports any missing field by name.
fn check_json_body(headers: &HeaderMap) -> Result<(), Error> {
    match headers.get(header::CONTENT_TYPE) {
        Some(value) if value.to_str().is_ok_and(is_json_content_type) => Ok(()),
        Some(_) => Err(Error::UnsupportedContentType(NOT_JSON_MESSAGE.to_owned())),
        None if has_body(headers) => {
            Err(Error::UnsupportedContentType(NOT_JSON_MESSAGE.to_owned()))
        }
        None => Ok(()),
    }
}

fn has_body(headers: &HeaderMap) -> bool {
    let declared_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    declared_length.is_some_and(|length| length > 0)
        || headers.contains_key(header::TRANSFER_ENCODING)
}

/// The headers of a downloaded artifact named `file_name`: a type that never renders as a page,
/// an attachment disposition with the name encoded safely, `nosniff` and a sandboxing CSP.
pub(super) fn artifact_download_headers(file_name: &str, size: u64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(artifact_content_type(file_name)),
    );
    if let Ok(value) = HeaderValue::from_str(&attachment_disposition(file_name)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(ARTIFACT_CSP),
    );
    headers
}

/// At most [`MAX_ECHOED_CHARS`] of a client's value, for an error message.
fn echo(value: &str) -> String {
    value.chars().take(MAX_ECHOED_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn policy(hosts: &[&str], origins: &[&str]) -> SecurityPolicy {
        let strings = |items: &[&str]| {
            items
                .iter()
                .map(|item| (*item).to_owned())
                .collect::<Vec<_>>()
        };
        SecurityPolicy {
            allowed_hosts: crate::security::AllowedHosts::parse(&strings(hosts)).unwrap(),
            cors_allowed_origins: crate::security::parse_cors_origins(&strings(origins)).unwrap(),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn json_bodies_only_on_api_writes_that_are_not_uploads() {
        let table = [
            (Method::POST, "/api/2.0/mlflow/runs/create", true),
            (
                Method::DELETE,
                "/api/2.0/mlflow/registered-models/delete",
                true,
            ),
            (Method::POST, "/ajax-api/2.0/mlflow/runs/log-batch", true),
            (Method::PUT, "/api/okla/v1/deployments/pricing", true),
            (Method::POST, "/api/3.0/mlflow/anything", true),
            (
                Method::POST,
                "/api/2.0/mlflow-artifacts/mpu/create/1/x",
                true,
            ),
            (
                Method::PUT,
                "/api/2.0/mlflow-artifacts/artifacts/1/x.html",
                false,
            ),
            (
                Method::PUT,
                "/ajax-api/2.0/mlflow-artifacts/artifacts/1/x",
                false,
            ),
            (Method::PUT, "/api/2.0/mlflow-artifacts/mpu/part/1/x", false),
            (Method::POST, "/experiments", false),
        ];
        for (method, path, expected) in table {
            assert_eq!(takes_json_body(&method, path), expected, "{method} {path}");
        }
    }

    #[test]
    fn writes_need_a_json_content_type_unless_bodiless() {
        let table = [
            (vec![("content-type", "application/json")], true),
            (
                vec![
                    ("content-type", "application/json; charset=utf-8"),
                    ("content-length", "2"),
                ],
                true,
            ),
            (
                vec![("content-type", "text/plain"), ("content-length", "2")],
                false,
            ),
            (vec![("content-type", "text/plain")], false),
            (vec![("content-length", "2")], false),
            (vec![("transfer-encoding", "chunked")], false),
            (vec![("content-length", "0")], true),
            (vec![], true),
        ];
        for (pairs, passes) in table {
            let result = check_json_body(&headers(&pairs));
            assert_eq!(result.is_ok(), passes, "{pairs:?}");
            if let Err(error) = result {
                assert_eq!(error.http_status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
                assert_eq!(error.to_string(), NOT_JSON_MESSAGE);
            }
        }
    }

    #[test]
    fn writes_from_foreign_origins_are_refused() {
        let policy = policy(&["*"], &["https://notebooks.example.com"]);
        let table = [
            (vec![("host", "127.0.0.1:5000")], true),
            (
                vec![
                    ("host", "127.0.0.1:5000"),
                    ("origin", "http://127.0.0.1:5000"),
                ],
                true,
            ),
            (
                vec![
                    ("host", "127.0.0.1:5000"),
                    ("origin", "https://notebooks.example.com"),
                ],
                true,
            ),
            (
                vec![
                    ("host", "127.0.0.1:5000"),
                    ("origin", "https://evil.example"),
                ],
                false,
            ),
            (vec![("host", "127.0.0.1:5000"), ("origin", "null")], false),
            (vec![("origin", "http://127.0.0.1:5000")], false),
        ];
        for (pairs, passes) in table {
            let result = check_origin(&policy, &headers(&pairs));
            assert_eq!(result.is_ok(), passes, "{pairs:?}");
            if let Err(error) = result {
                assert_eq!(error.http_status(), StatusCode::FORBIDDEN);
                assert!(
                    error.to_string().contains("--cors-allowed-origins"),
                    "{error}"
                );
            }
        }
    }

    #[test]
    fn hosts_are_checked_in_the_header_and_the_authority() {
        let policy = policy(&["registry.corp"], &[]);
        let allowed = headers(&[("host", "registry.corp:5000")]);
        assert!(check_host(&policy, &allowed, None).is_ok());
        let error = check_host(&policy, &headers(&[("host", "evil.example")]), None).unwrap_err();
        assert_eq!(error.http_status(), StatusCode::FORBIDDEN);
        let message = error.to_string();
        assert!(
            message.contains("'evil.example'") && message.contains("--allowed-hosts"),
            "{message}"
        );
        let authority: axum::http::uri::Authority = "evil.example".parse().unwrap();
        assert!(check_host(&policy, &allowed, Some(&authority)).is_err());
        assert!(check_host(&policy, &HeaderMap::new(), None).is_err());
    }

    #[test]
    fn artifact_headers_force_a_download() {
        let headers = artifact_download_headers("report.html", 12);
        let get = |name: HeaderName| headers.get(name).unwrap().to_str().unwrap().to_owned();
        assert_eq!(get(header::CONTENT_TYPE), "text/plain; charset=utf-8");
        assert_eq!(
            get(header::CONTENT_DISPOSITION),
            "attachment; filename=\"report.html\"; filename*=UTF-8''report.html"
        );
        assert_eq!(get(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert_eq!(get(header::CONTENT_SECURITY_POLICY), ARTIFACT_CSP);
        assert_eq!(get(header::CONTENT_LENGTH), "12");
    }
}
