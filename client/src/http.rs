//! The client handle and how it talks HTTP: URLs, timeouts, MLflow's error body, and retries.
//!
//! Only idempotent calls are retried (GETs, and PUTs of artifacts, which rewrite the same
//! bytes), only when the request got no answer or a 5xx/429 one. A POST is never retried: the
//! registry may have applied it before the answer was lost.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backon::Retryable;
use okla_runtime::Backoff;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::{Error, Result};

/// How long an error body may be before it is cut in [`Error::Api`]'s message.
const MAX_ERROR_BODY_CHARS: usize = 500;

/// Exponential backoff for idempotent calls, jittered so that many clients failing together
/// do not retry together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 disables retries.
    pub attempts: u32,
    /// The nominal wait before the second attempt; each later one doubles, up to `max_backoff`.
    /// Each actual wait falls between half its nominal value and the nominal value.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// How the client proves who it is to the registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// An API token (`okla tokens create`), sent as `Authorization: Bearer`.
    Token(String),
    /// A user's name and password, sent as HTTP basic auth, as the mlflow client does.
    Basic { username: String, password: String },
}

impl std::fmt::Debug for Credentials {
    // Secrets never reach a log line or a panic message.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Token(_) => formatter.write_str("Token(***)"),
            Credentials::Basic { username, .. } => write!(formatter, "Basic({username}, ***)"),
        }
    }
}

impl Credentials {
    /// From the environment, first found wins: `OKLA_TOKEN`, `MLFLOW_TRACKING_TOKEN`, then
    /// `MLFLOW_TRACKING_USERNAME` with `MLFLOW_TRACKING_PASSWORD` (the mlflow client's
    /// variables, so one set of exports serves both clients).
    pub fn from_env<F: Fn(&str) -> Option<String>>(var: F) -> Option<Credentials> {
        let set = |name: &str| var(name).filter(|value| !value.is_empty());
        if let Some(token) = set("OKLA_TOKEN").or_else(|| set("MLFLOW_TRACKING_TOKEN")) {
            return Some(Credentials::Token(token));
        }
        let username = set("MLFLOW_TRACKING_USERNAME")?;
        Some(Credentials::Basic {
            username,
            password: var("MLFLOW_TRACKING_PASSWORD").unwrap_or_default(),
        })
    }

    /// The `Authorization` header value, marked sensitive so it is never logged.
    fn header(&self) -> Result<HeaderValue> {
        use base64::Engine;
        let text = match self {
            Credentials::Token(token) => format!("Bearer {}", token.trim()),
            Credentials::Basic { username, password } => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            ),
        };
        let mut value = HeaderValue::from_str(&text).map_err(|_| {
            Error::Invalid(
                "the registry credentials hold characters an HTTP header cannot carry".to_owned(),
            )
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

/// How a [`Client`] connects. `Default` suits a training job on the registry's network.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    /// The longest silence while reading an answer. There is no overall timeout, so a large
    /// artifact may take as long as it needs while bytes keep flowing.
    pub read_timeout: Duration,
    pub retry: RetryPolicy,
    /// Sent as `x-okla-actor`: the name a registry running with `--no-auth` records in a
    /// model's history (with authentication, the history records the authenticated user).
    pub actor: Option<String>,
    /// Who the client is; `None` sends no credentials.
    pub credentials: Option<Credentials>,
    /// The longest one JSON call (each attempt of it) may take, answer included; artifact
    /// transfers are not bound by it. `None`: no limit beyond the read timeout.
    pub call_timeout: Option<Duration>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            actor: None,
            credentials: None,
            call_timeout: None,
        }
    }
}

/// A handle on one registry. Cheap to clone; clones share the connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    base: Url,
    http: reqwest::Client,
    retry: RetryPolicy,
    call_timeout: Option<Duration>,
}

/// Whether a call may be repeated after a failure (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotency {
    Idempotent,
    NotIdempotent,
}

impl Client {
    /// A client for the registry at `registry_url` (`http://host:5000`, possibly with a path
    /// prefix), with [`ClientOptions::default`].
    pub fn new(registry_url: &str) -> Result<Client> {
        Client::with_options(registry_url, ClientOptions::default())
    }

    pub fn with_options(registry_url: &str, options: ClientOptions) -> Result<Client> {
        let invalid = |reason: String| {
            Error::Invalid(format!("invalid registry URL '{registry_url}': {reason}"))
        };
        let base = Url::parse(registry_url).map_err(|err| invalid(err.to_string()))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("expected http:// or https://".to_owned()));
        }
        let mut headers = HeaderMap::new();
        if let Some(actor) = &options.actor {
            let value = HeaderValue::from_str(actor)
                .map_err(|err| Error::Invalid(format!("invalid actor '{actor}': {err}")))?;
            headers.insert(HeaderName::from_static("x-okla-actor"), value);
        }
        if let Some(credentials) = &options.credentials {
            headers.insert(reqwest::header::AUTHORIZATION, credentials.header()?);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.read_timeout)
            .default_headers(headers)
            .build()
            .map_err(|err| invalid(err.to_string()))?;
        Ok(Client {
            inner: Arc::new(Inner {
                base,
                http,
                retry: options.retry,
                call_timeout: options.call_timeout,
            }),
        })
    }

    /// The registry's base URL.
    pub fn registry_url(&self) -> &Url {
        &self.inner.base
    }

    /// The base URL followed by `segments`, each percent-encoded on its own (so a model name
    /// with a `/` stays one segment).
    pub(crate) fn url<I>(&self, segments: I) -> Url
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut url = self.inner.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// An MLflow endpoint: `/api/2.0/mlflow/<endpoint>`, e.g. `runs/create`.
    pub(crate) fn mlflow(&self, endpoint: &str) -> Url {
        self.url(
            ["api", "2.0", "mlflow"]
                .into_iter()
                .chain(endpoint.split('/')),
        )
    }

    /// An okla endpoint: `/api/okla/v1/` followed by `segments`.
    pub(crate) fn okla<I>(&self, segments: I) -> Url
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let prefix = ["api", "okla", "v1"].map(str::to_owned);
        self.url(
            prefix
                .into_iter()
                .chain(segments.into_iter().map(|s| s.as_ref().to_owned())),
        )
    }

    /// A JSON call, bound by [`ClientOptions::call_timeout`].
    pub(crate) fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let request = self.transfer_request(method, url);
        match self.inner.call_timeout {
            Some(timeout) => request.timeout(timeout),
            None => request,
        }
    }

    /// An artifact transfer: a large file may take as long as it needs while bytes flow.
    pub(crate) fn transfer_request(&self, method: Method, url: Url) -> RequestBuilder {
        self.inner.http.request(method, url)
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retry policy is spent; an
    /// attempt is repeated only for an idempotent call and a retryable error.
    pub(crate) async fn retrying<T, F, Fut>(
        &self,
        idempotency: Idempotency,
        attempt: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let policy = self.inner.retry;
        let backoff = Backoff {
            initial: policy.initial_backoff,
            max: policy.max_backoff,
        }
        .builder()
        .with_max_times(policy.attempts.saturating_sub(1) as usize);
        attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|error| idempotency == Idempotency::Idempotent && error.is_retryable())
            .notify(|error, backoff| tracing::debug!(%error, ?backoff, "retrying"))
            .await
    }

    /// `GET url?query` answered with JSON; retried.
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        url: Url,
        query: &[(&str, &str)],
    ) -> Result<T> {
        self.retrying(Idempotency::Idempotent, || {
            let request = self.request(Method::GET, url.clone()).query(query);
            self.send_json(request)
        })
        .await
    }

    /// A JSON body sent with `method`, answered with JSON; never retried.
    pub(crate) async fn send_body<B, T>(&self, method: Method, url: Url, body: &B) -> Result<T>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        self.retrying(Idempotency::NotIdempotent, || {
            self.send_json(self.request(method.clone(), url.clone()).json(body))
        })
        .await
    }

    /// Sends `request` and decodes its JSON answer.
    pub(crate) async fn send_json<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<T> {
        let (shown, response) = self.send(request).await?;
        response
            .json()
            .await
            .map_err(|source| Error::transport(shown, source))
    }

    /// Sends `request`; a non-2xx answer becomes [`Error::Api`]. Returns the URL as errors
    /// show it, and the answer.
    pub(crate) async fn send(&self, request: RequestBuilder) -> Result<(String, Response)> {
        let (client, request) = request.build_split();
        let request = request.map_err(|source| Error::transport("(request)", source))?;
        let method = request.method().clone();
        let shown = request.url().to_string();
        let response = client
            .execute(request)
            .await
            .map_err(|source| Error::transport(shown.clone(), source))?;
        let status = response.status();
        if status.is_success() {
            return Ok((shown, response));
        }
        let body = response.text().await.unwrap_or_default();
        Err(api_error(format!("{method} {shown}"), status, &body))
    }
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    error_code: String,
    #[serde(default)]
    message: String,
}

fn api_error(request: String, status: reqwest::StatusCode, body: &str) -> Error {
    let (error_code, message) = match serde_json::from_str::<ErrorBody>(body) {
        Ok(parsed) => (parsed.error_code, parsed.message),
        Err(_) => {
            let start: String = body.trim().chars().take(MAX_ERROR_BODY_CHARS).collect();
            (String::new(), start.replace(['\n', '\r'], " "))
        }
    };
    Error::Api {
        request,
        status,
        error_code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_each_segment() {
        let client = Client::new("http://registry:5000/prefix/").unwrap();
        assert_eq!(
            client.mlflow("runs/create").as_str(),
            "http://registry:5000/prefix/api/2.0/mlflow/runs/create"
        );
        assert_eq!(
            client
                .okla(["models", "a/b c", "versions", "2", "files"])
                .as_str(),
            "http://registry:5000/prefix/api/okla/v1/models/a%2Fb%20c/versions/2/files"
        );
    }

    #[test]
    fn error_bodies_in_and_out_of_mlflow_format() {
        let error = api_error(
            "GET http://r/x".to_owned(),
            reqwest::StatusCode::NOT_FOUND,
            r#"{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run x not found"}"#,
        );
        assert_eq!(error.error_code(), Some("RESOURCE_DOES_NOT_EXIST"));
        assert_eq!(
            error.to_string(),
            "GET http://r/x failed: 404 Not Found: RESOURCE_DOES_NOT_EXIST: Run x not found"
        );
        let error = api_error(
            "GET http://r/x".to_owned(),
            reqwest::StatusCode::BAD_GATEWAY,
            "<html>\nbad gateway</html>",
        );
        assert_eq!(error.error_code(), Some(""));
        assert!(error.is_retryable());
        assert!(!error.to_string().contains('\n'));
    }

    #[tokio::test]
    async fn only_idempotent_calls_are_retried_and_only_as_often_as_the_policy_says() {
        let options = ClientOptions {
            retry: RetryPolicy {
                attempts: 3,
                initial_backoff: Duration::from_millis(2),
                max_backoff: Duration::from_millis(4),
            },
            ..ClientOptions::default()
        };
        let client = Client::with_options("http://registry:5000", options).unwrap();
        let calls = std::sync::atomic::AtomicU32::new(0);
        let failing = || async {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err::<(), _>(api_error(
                "GET http://r/x".to_owned(),
                reqwest::StatusCode::BAD_GATEWAY,
                "",
            ))
        };
        assert!(
            client
                .retrying(Idempotency::Idempotent, failing)
                .await
                .is_err()
        );
        assert_eq!(calls.swap(0, std::sync::atomic::Ordering::Relaxed), 3);
        assert!(
            client
                .retrying(Idempotency::NotIdempotent, failing)
                .await
                .is_err()
        );
        assert_eq!(calls.swap(0, std::sync::atomic::Ordering::Relaxed), 1);

        let refused = || async {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err::<(), _>(api_error(
                "GET http://r/x".to_owned(),
                reqwest::StatusCode::NOT_FOUND,
                "",
            ))
        };
        assert!(
            client
                .retrying(Idempotency::Idempotent, refused)
                .await
                .is_err()
        );
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[test]
    fn rejects_urls_that_are_not_http() {
        assert!(matches!(
            Client::new("ftp://registry"),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            Client::new("registry:5000"),
            Err(Error::Invalid(_))
        ));
    }
}
