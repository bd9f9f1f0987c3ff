//! The server-rendered web UI at `/`: experiments and runs, run comparison, models and
//! deployments, as askama templates from `registry/templates/`. Handlers only read through the
//! store; every user string reaches the page through askama's HTML escaping.
//!
//! What lives here: the routes, the error page, and small helpers (query strings, links, times).
//! What does not: any write, and the charts (`assets/charts.js` draws each `.chart` element).

mod assets;
mod deployments;
mod experiments;
mod login;
mod models;
mod runs;

use askama::Template;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::auth::Caller;
use crate::domain::auth::ResourceType;
use crate::error::{Error, ErrorCode};
use crate::state::AppState;

/// The UI's routes, which `app` hands to `api::router` to merge before its JSON fallback.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/experiments") }))
        .route("/experiments", get(experiments::list))
        .route("/experiments/{experiment_id}", get(experiments::show))
        .route("/runs/{run_id}", get(runs::show))
        .route("/compare", get(runs::compare))
        .route("/models", get(models::list))
        .route("/models/{name}", get(models::show))
        .route("/deployments", get(deployments::list))
        .route("/deployments/{name}", get(deployments::show))
        .route("/ui/assets/{file}", get(assets::serve))
        .route("/login", get(login::login_page).post(login::login))
        .route("/logout", get(login::logout_page).post(login::logout))
}

/// Refuses a page about a resource the caller may not read (403), before anything is read.
async fn require_read(
    state: &AppState,
    caller: &Caller,
    resource_type: ResourceType,
    id: &str,
) -> Result<(), PageError> {
    if caller.may_read(&state.auth, resource_type, id).await? {
        Ok(())
    } else {
        Err(PageError::new(
            StatusCode::FORBIDDEN,
            format!(
                "Permission denied: '{}' may not read {} '{id}'.",
                caller.actor(),
                resource_type.as_str()
            ),
        ))
    }
}

/// A failed page: rendered as an HTML error page with the status the error's kind implies.
pub(crate) struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    fn new(status: StatusCode, message: impl Into<String>) -> PageError {
        PageError {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> PageError {
        PageError::new(StatusCode::BAD_REQUEST, message)
    }

    fn not_found(message: impl Into<String>) -> PageError {
        PageError::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<Error> for PageError {
    fn from(error: Error) -> PageError {
        let code = error.code();
        let status = error.http_status();
        let message = match code {
            // Server-side details stay in the log, as in the API.
            ErrorCode::InternalError | ErrorCode::TemporarilyUnavailable => {
                tracing::error!(error = %error, "page failed");
                "The server failed to handle the request.".to_owned()
            }
            _ if matches!(error, Error::Database(_)) => {
                "The request holds text the database cannot store (such as a NUL character)."
                    .to_owned()
            }
            _ => error.to_string(),
        };
        PageError::new(status, message)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = match self.status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::BAD_REQUEST => "Bad request",
            status if status.is_client_error() => "Request refused",
            _ => "Server error",
        };
        let page = ErrorPage {
            title,
            message: &self.message,
        };
        render_with_status(self.status, &page)
    }
}

pub(crate) type PageResult = Result<Response, PageError>;

/// Renders a template as a `200` HTML page.
fn render(template: &impl Template) -> PageResult {
    Ok(render_with_status(StatusCode::OK, template))
}

fn render_with_status(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(error = %error, "template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><h1>Server error</h1><p>The page failed to render.</p>"),
            )
                .into_response()
        }
    }
}

/// The pairs of a query string in order, repeated names kept (`?runs=a&runs=b`).
#[derive(Debug, Default)]
pub(crate) struct QueryPairs(Vec<(String, String)>);

impl QueryPairs {
    fn parse(raw: Option<&str>) -> QueryPairs {
        QueryPairs(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect(),
        )
    }

    /// The last value of `name`, or `None` when absent or blank.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.trim().is_empty())
    }

    fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// `path?name=value&...`, leaving out empty values.
fn link(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (name, value) in pairs {
        if !value.is_empty() {
            query.append_pair(name, value);
            any = true;
        }
    }
    if any {
        format!("{path}?{}", query.finish())
    } else {
        path.to_owned()
    }
}

/// Everything but the unreserved characters is escaped in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// One path segment, percent-encoded.
fn segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

/// A `/`-separated path with each segment percent-encoded.
fn segments(path: &str) -> String {
    path.split('/').map(segment).collect::<Vec<_>>().join("/")
}

/// The search filter of a list page's name box: names containing `query`, any case; empty
/// matches everything.
fn name_filter(query: &str) -> String {
    if query.is_empty() {
        String::new()
    } else {
        format!("name ILIKE {}", quoted(&format!("%{query}%")))
    }
}

/// A single-quoted string literal of the search grammar (quotes doubled, backslashes escaped).
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// Epoch milliseconds as `YYYY-MM-DD HH:MM:SS` UTC; blank for `None`.
fn format_time(millis: Option<i64>) -> String {
    let Some(millis) = millis else {
        return String::new();
    };
    let seconds = millis.div_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// A metric value for a table cell: `NaN`, integers without a fraction, else up to 6 digits.
fn format_number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else if value.abs() >= 1e-4 && value.abs() < 1e9 {
        let text = format!("{value:.6}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        format!("{value:e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_as_utc() {
        assert_eq!(format_time(Some(0)), "1970-01-01 00:00:00");
        assert_eq!(format_time(Some(1_700_000_000_000)), "2023-11-14 22:13:20");
        assert_eq!(format_time(Some(951_782_400_000)), "2000-02-29 00:00:00");
        assert_eq!(format_time(None), "");
    }

    #[test]
    fn formats_numbers_for_cells() {
        assert_eq!(format_number(3.0), "3");
        assert_eq!(format_number(0.25), "0.25");
        assert_eq!(format_number(f64::NAN), "NaN");
        assert_eq!(format_number(1e-7), "1e-7");
    }

    #[test]
    fn quotes_search_literals_and_encodes_links() {
        assert_eq!(quoted("it's"), "'it''s'");
        assert_eq!(quoted(r"a\b"), r"'a\\b'");
        assert_eq!(segments("a b/c?d"), "a%20b/c%3Fd");
        assert_eq!(link("/x", &[("q", "a&b"), ("e", "")]), "/x?q=a%26b");
        let pairs = QueryPairs::parse(Some("runs=a&runs=b&q=+"));
        assert_eq!(pairs.all("runs").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(pairs.get("q"), None);
    }
}
