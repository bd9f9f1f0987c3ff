//! The wire protocols. Each module translates between its format and [`crate::request`] types.

use std::borrow::Cow;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use percent_encoding::percent_decode_str;
use tower_http::trace::TraceLayer;

use crate::access::{self, Access, Need};
use crate::service::InferenceService;
pub use content_coding::ContentCoding;

mod content_coding;
pub mod grpc;
pub mod json;
pub mod tfserving;
pub mod v2;

/// Every HTTP route: V2 REST, TF Serving REST and `/metrics`, plain or compressed, each
/// admitted by `access` first where it guards anything.
pub fn http_service(
    service: InferenceService,
    access: Arc<Access>,
    max_request_bytes: usize,
) -> ContentCoding {
    let admission = axum::middleware::from_fn_with_state(access.clone(), admit);
    let inference = Router::new()
        .merge(v2::router())
        .merge(tfserving::router())
        .route("/metrics", get(metrics));
    // Without --require-token the inference routes need nothing, so they skip the middleware
    // and its per-request cost altogether.
    let inference = if access.require_token {
        inference.route_layer(admission.clone())
    } else {
        inference
    };
    let routes = inference
        .merge(v2::repository_router().route_layer(admission))
        // The limit applies to the body as the handlers read it, decompressed, so a small
        // compressed body cannot expand past --max-request-bytes.
        .layer(DefaultBodyLimit::max(max_request_bytes))
        .layer(TraceLayer::new_for_http())
        .with_state(service);
    ContentCoding::new(routes)
}

/// What an HTTP request needs: health, server metadata and `/metrics` are open (probes and
/// Prometheus); a model's routes need what `--require-token` asks; load and unload need model
/// control.
fn decoded(segment: &str) -> Cow<'_, str> {
    percent_decode_str(segment).decode_utf8_lossy()
}

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

async fn admit(State(access): State<Arc<Access>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    // Without --require-token only model control is guarded; inference skips the check.
    let guarded = access.require_token || path.starts_with("/v2/repository/");
    if let Some((model, control)) = need(path).filter(|_| guarded) {
        let bearer = access::bearer(
            request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok()),
        );
        let need = match (model.as_deref(), control) {
            (_, true) => Need::ModelControl,
            (Some(model), false) => Need::Model(model),
            (None, false) => Need::AnyToken,
        };
        if let Err(error) = access.check(bearer, need).await {
            // The body stays unread, so hyper closes the connection after this answer; saying
            // so keeps a pooled client connection from being reused for the next request.
            let mut refusal = error.into_response();
            refusal
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return refusal;
        }
    }
    next.run(request).await
}

async fn metrics(State(service): State<InferenceService>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        service.metrics().encode(),
    )
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
