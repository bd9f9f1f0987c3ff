//! Admits HTTP requests as [`Access`] says before any handler runs.
//!
//! A hand-written tower service rather than axum's `from_fn`: a request whose verdict is known
//! at once (no token needed, or a cached verdict) goes straight to the inner service with no
//! boxed future and no clone of it, which is what keeps `--require-token` cheap. Only a token
//! the node has not checked lately takes the boxed path that asks the registry.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::future::{BoxFuture, Either, Ready, ready};
use percent_encoding::percent_decode_str;
use tower::{Layer, Service, ServiceExt};

use crate::access::{self, Access, Need};
use crate::error::ServingError;

/// Guards what `access` guards; see the module documentation.
#[derive(Clone)]
pub(super) struct AdmissionLayer {
    pub(super) access: Arc<Access>,
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Admission<S> {
        Admission {
            inner,
            access: self.access.clone(),
        }
    }
}

/// The service of [`AdmissionLayer`].
#[derive(Clone)]
pub(super) struct Admission<S> {
    inner: S,
    access: Arc<Access>,
}

type Answer<F> = Either<
    Either<F, Ready<Result<Response, Infallible>>>,
    BoxFuture<'static, Result<Response, Infallible>>,
>;

impl<S> Service<Request> for Admission<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let path = request.uri().path();
        // Without --require-token only model control is guarded; inference skips the check.
        let guarded = self.access.require_token || path.starts_with("/v2/repository/");
        let Some((model, control)) = need(path).filter(|_| guarded) else {
            return Either::Left(Either::Left(self.inner.call(request)));
        };
        let bearer = access::bearer(
            request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok()),
        );
        match self
            .access
            .check_now(bearer, as_need(model.as_deref(), control))
        {
            Some(Ok(())) => Either::Left(Either::Left(self.inner.call(request))),
            Some(Err(error)) => Either::Left(Either::Right(ready(Ok(refusal(error))))),
            None => {
                let bearer = bearer.map(str::to_owned);
                let model = model.map(Cow::into_owned);
                let access = self.access.clone();
                // The clone is the one that was made ready; the fresh one stays for later calls.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                Either::Right(Box::pin(async move {
                    let need = as_need(model.as_deref(), control);
                    match access.check(bearer.as_deref(), need).await {
                        Ok(()) => inner.oneshot(request).await,
                        Err(error) => Ok(refusal(error)),
                    }
                }))
            }
        }
    }
}

/// The refusal of an unread request. The body stays unread, so hyper closes the connection
/// after this answer; saying so keeps a pooled client connection from being reused for the
/// next request.
fn refusal(error: ServingError) -> Response {
    let mut refusal = error.into_response();
    refusal
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    refusal
}

fn as_need(model: Option<&str>, control: bool) -> Need<'_> {
    match (model, control) {
        (_, true) => Need::ModelControl,
        (Some(model), false) => Need::Model(model),
        (None, false) => Need::AnyToken,
    }
}

fn decoded(segment: &str) -> Cow<'_, str> {
    percent_decode_str(segment).decode_utf8_lossy()
}

/// What an HTTP request needs: the model it names (if any) and whether it is model control.
/// Health, server metadata and `/metrics` need nothing (probes and Prometheus); a model's
/// routes need what `--require-token` asks; load and unload need model control.
fn need(path: &str) -> Option<(Option<Cow<'_, str>>, bool)> {
    let mut segments = path.trim_start_matches('/').splitn(5, '/');
    let segments: [&str; 4] = std::array::from_fn(|_| segments.next().unwrap_or(""));
    match segments {
        ["v2", "repository", "models", _] => Some((None, true)),
        ["v2", "repository", "index", ""] => Some((None, false)),
        ["v2", "models", model, _] if !model.is_empty() => Some((Some(decoded(model)), false)),
        // TF Serving: `/v1/models/{model}[/versions/{v}|/labels/{l}][:predict]`.
        ["v1", "models", model, _] if !model.is_empty() => {
            let model = model.split(':').next().unwrap_or(model);
            Some((Some(decoded(model)), false))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The model a route names, and whether it is model control.
    type Needed<'a> = Option<(Option<&'a str>, bool)>;

    #[test]
    fn each_route_needs_what_its_plane_asks() {
        let table: [(&str, Needed); 9] = [
            ("/v2/models/pricing/infer", Some((Some("pricing"), false))),
            (
                "/v2/models/my%20model/versions/2/infer",
                Some((Some("my model"), false)),
            ),
            ("/v2/models/pricing", Some((Some("pricing"), false))),
            ("/v1/models/pricing:predict", Some((Some("pricing"), false))),
            (
                "/v1/models/pricing/labels/stable:predict",
                Some((Some("pricing"), false)),
            ),
            ("/v2/repository/models/pricing/unload", Some((None, true))),
            ("/v2/repository/index", Some((None, false))),
            ("/v2/health/ready", None),
            ("/metrics", None),
        ];
        for (path, expected) in table {
            let got = need(path);
            let got = got
                .as_ref()
                .map(|(model, control)| (model.as_deref(), *control));
            assert_eq!(got, expected, "{path}");
        }
    }
}
