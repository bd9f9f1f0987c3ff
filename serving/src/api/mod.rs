//! The wire protocols. Each module translates between its format and [`crate::request`] types.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tower_http::trace::TraceLayer;

use crate::access::Access;
use crate::service::InferenceService;
use admission::AdmissionLayer;
pub use content_coding::ContentCoding;

mod admission;
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
    let admission = AdmissionLayer { access };
    let inference = Router::new()
        .merge(v2::router())
        .merge(tfserving::router())
        .route("/metrics", get(metrics));
    // Without --require-token the inference routes need nothing, so they skip the middleware
    // and its per-request cost altogether.
    let inference = if admission.access.require_token {
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

async fn metrics(State(service): State<InferenceService>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        service.metrics().encode(),
    )
}
