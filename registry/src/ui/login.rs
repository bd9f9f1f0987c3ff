//! Signing in to the web UI: `/login` (a form; on success a session cookie, `HttpOnly`,
//! `SameSite=Strict`, `Secure` behind https) and `/logout` (a confirmation form; the session
//! ends on the server). Both forms carry a CSRF token that must match the `okla_csrf` cookie
//! (double submit), so no other site can sign a browser in or out.
//!
//! The session cookie authenticates page and API reads only (`api::access`); no API write ever
//! accepts it, so a signed-in browser cannot be made to change anything from another site.

use std::net::SocketAddr;

use askama::Template;
use axum::extract::{ConnectInfo, RawQuery, Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use bytes::Bytes;
use cookie::{Cookie, SameSite};
use serde::Deserialize;

use super::{PageError, PageResult, QueryPairs, render};
use crate::auth::{
    Caller, SESSION_COOKIE, SESSION_LIFETIME, cookie_value, random_secret, session_cookie,
};
use crate::domain::auth::Principal;
use crate::state::AppState;

const CSRF_COOKIE: &str = "okla_csrf";
/// A sign-in form is a name, a password and two tokens.
const MAX_FORM_BYTES: usize = 64 * 1024;
/// Where a sign-in without (or with an unusable) `next` lands.
const HOME: &str = "/experiments";

/// `next` if it is a path on this server, so the form cannot send anyone elsewhere.
fn local_target(next: Option<&str>) -> &str {
    match next {
        Some(next) if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') => {
            next
        }
        _ => HOME,
    }
}

/// Whether the browser reached us over https (directly or through a TLS-terminating proxy).
fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

fn cookie_header(name: &str, value: String, max_age_seconds: i64, secure: bool) -> HeaderValue {
    let cookie = Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age_seconds))
        .build();
    // Built from our own base64url values, so always a valid header.
    HeaderValue::from_str(&cookie.to_string()).unwrap_or(HeaderValue::from_static(""))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    next: &'a str,
    error: Option<&'a str>,
}

/// The form with a fresh CSRF token in it and in its cookie.
fn login_form(
    headers: &HeaderMap,
    next: &str,
    error: Option<&str>,
    status: axum::http::StatusCode,
) -> Response {
    let csrf = csrf_token(headers);
    let page = LoginPage {
        csrf: &csrf,
        next,
        error,
    };
    let mut response = super::render_with_status(status, &page);
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(CSRF_COOKIE, csrf.clone(), 3600, is_https(headers)),
    );
    response
}

pub(super) async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let pairs = QueryPairs::parse(raw.as_deref());
    let next = local_target(pairs.get("next"));
    if !state.auth.enabled() {
        return Redirect::to(next).into_response();
    }
    login_form(&headers, next, None, axum::http::StatusCode::OK)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

/// The browser's CSRF token: the one its cookie already holds, else a new one. Reusing it keeps
/// a form valid while the browser loads other pages beside it (a favicon request that lands on
/// the sign-in page would otherwise replace the token the open form carries).
fn csrf_token(headers: &HeaderMap) -> String {
    cookie_value(headers, CSRF_COOKIE)
        .filter(|token| {
            token.len() == 43
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .unwrap_or_else(random_secret)
}

/// Whether the form's CSRF token is the one its cookie holds.
fn csrf_matches(headers: &HeaderMap, submitted: &str) -> bool {
    cookie_value(headers, CSRF_COOKIE)
        .is_some_and(|expected| !submitted.is_empty() && expected == submitted)
}

fn csrf_refused() -> PageError {
    PageError::new(
        axum::http::StatusCode::FORBIDDEN,
        "The form expired or did not come from this site (CSRF check failed); open it again and resubmit.",
    )
}

pub(super) async fn login(State(state): State<AppState>, request: Request) -> PageResult {
    // The client's address keys the slow-down of failed sign-ins, as for basic auth.
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip());
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let body = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| PageError::bad_request("The sign-in form is too large."))?;
    let form: LoginForm = serde_html_form::from_bytes(&body)
        .map_err(|error| PageError::bad_request(format!("Invalid sign-in form: {error}")))?;
    if !csrf_matches(&headers, &form.csrf) {
        return Err(csrf_refused());
    }
    let next = local_target(form.next.as_deref()).to_owned();
    let Some(Principal::User { id, .. }) = state
        .auth
        .sign_in(&form.username, &form.password, client)
        .await
    else {
        return Ok(login_form(
            &headers,
            &next,
            Some("Wrong username or password."),
            axum::http::StatusCode::UNAUTHORIZED,
        ));
    };
    let secret = state.auth.start_session(id).await?;
    let lifetime = i64::try_from(SESSION_LIFETIME.as_secs()).unwrap_or(i64::MAX);
    let mut response = Redirect::to(&next).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(SESSION_COOKIE, secret, lifetime, is_https(&headers)),
    );
    Ok(response)
}

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage<'a> {
    username: &'a str,
    csrf: &'a str,
}

pub(super) async fn logout_page(caller: Caller, headers: HeaderMap) -> PageResult {
    let csrf = csrf_token(&headers);
    let username = caller.actor();
    let mut response = render(&LogoutPage {
        username: &username,
        csrf: &csrf,
    })?;
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(CSRF_COOKIE, csrf, 3600, is_https(&headers)),
    );
    Ok(response)
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

pub(super) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let form: LogoutForm = serde_html_form::from_bytes(&body)
        .map_err(|error| PageError::bad_request(format!("Invalid sign-out form: {error}")))?;
    if !csrf_matches(&headers, &form.csrf) {
        return Err(csrf_refused());
    }
    if let Some(secret) = session_cookie(&headers) {
        state.auth.end_session(&secret).await?;
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(SESSION_COOKIE, String::new(), 0, is_https(&headers)),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        for (next, expected) in [
            (Some("/runs/abc?x=1"), "/runs/abc?x=1"),
            (Some("https://evil.example/"), HOME),
            (Some("//evil.example/"), HOME),
            (Some("/\\evil.example"), HOME),
            (Some("runs"), HOME),
            (None, HOME),
        ] {
            assert_eq!(local_target(next), expected, "{next:?}");
        }
    }

    #[test]
    fn session_cookies_are_http_only_strict_and_secure_behind_https() {
        let cookie = cookie_header(SESSION_COOKIE, "abc".to_owned(), 60, true);
        let text = cookie.to_str().expect("ASCII");
        for part in [
            "okla_session=abc",
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/",
        ] {
            assert!(text.contains(part), "{text}");
        }
        let plain = cookie_header(SESSION_COOKIE, "abc".to_owned(), 60, false);
        assert!(!plain.to_str().expect("ASCII").contains("Secure"));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; okla_session=s3cret; b=2"),
        );
        assert_eq!(session_cookie(&headers).as_deref(), Some("s3cret"));
    }
}
