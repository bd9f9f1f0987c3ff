//! The wire protocols. Each module translates between its format and [`crate::request`] types.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
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
/// admitted by `access` first.
pub fn http_service(
    service: InferenceService,
    access: Arc<Access>,
    max_request_bytes: usize,
) -> ContentCoding {
    let routes = Router::new()
        .merge(v2::router())
        .merge(tfserving::router())
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(access, admit))
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
fn need(path: &str) -> Option<(Option<String>, bool)> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let decoded = |segment: &str| percent_decode_str(segment).decode_utf8_lossy().into_owned();
    match segments.as_slice() {
        ["v2", "repository", "models", _, "load" | "unload"] => Some((None, true)),
        ["v2", "repository", "index"] => Some((None, false)),
        ["v2", "models", model, ..] => Some((Some(decoded(model)), false)),
        // TF Serving: `/v1/models/{model}[/versions/{v}|/labels/{l}][:predict]`.
        ["v1", "models", model, ..] => {
            let model = model.split(':').next().unwrap_or(model);
            Some((Some(decoded(model)), false))
        }
        _ => None,
    }
}

async fn admit(State(access): State<Arc<Access>>, request: Request, next: Next) -> Response {
    if let Some((model, control)) = need(request.uri().path()) {
        let bearer = access::bearer(
            request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok()),
        );
        let need = match (&model, control) {
            (_, true) => Need::ModelControl,
            (Some(model), false) => Need::Model(model),
            (None, false) => Need::AnyToken,
        };
        if let Err(error) = access.check(bearer, need).await {
            return error.into_response();
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
