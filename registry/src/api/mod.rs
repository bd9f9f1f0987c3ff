//! The HTTP API: every route the registry serves is listed in `router`.
//!
//! MLflow's REST API lives under `/api/2.0/mlflow` (and `/ajax-api/2.0/mlflow`, which MLflow's
//! own UI uses), the artifact proxy under `/api/2.0/mlflow-artifacts`, and what MLflow lacks
//! under `/api/okla/v1`.

mod access;
mod artifacts;
mod deployments;
mod events;
mod extract;
mod keep_alive;
mod logged_models;
mod model_registry;
mod nodes;
mod okla;
mod security;
mod series;
mod tracking;
mod users;
mod wire;

use std::any::Any;

use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use serde_json::{Value, json};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

pub use artifacts::proxied_path;

use crate::error::{Error, Result};
use crate::state::AppState;
use keep_alive::CloseUnreadRequestsLayer;

/// The version `GET /version` reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Every route, with `pages` (the web UI's routes) merged in before the JSON fallback; `app`
/// passes them in, so the API does not depend on the UI.
///
/// Around the routes, outermost first: tracing, panics as 500s, `nosniff` on every answer,
/// `Connection: close` on answers that left the request body unread, the Host check, CORS (only with `--cors-allowed-origins`), the refusal of foreign-origin and
/// non-JSON writes, then authentication and the permission the route needs (`access.rs`); UI
/// pages also get the browser security headers (`security.rs`).
pub fn router(state: AppState, pages: Router<AppState>) -> Router {
    let max_request_bytes = state.limits.max_request_bytes;
    let policy = state.security.clone();
    let mlflow = mlflow_routes();
    let routes = Router::new()
        .route("/health", get(|| async { "OK" }))
        .route("/version", get(|| async { VERSION }))
        .route("/api/3.0/mlflow/server-info", get(server_info))
        .nest("/api/2.0/mlflow", mlflow.clone())
        .nest("/ajax-api/2.0/mlflow", mlflow)
        .nest("/api/2.0/mlflow-artifacts", artifact_routes())
        .nest("/ajax-api/2.0/mlflow-artifacts", artifact_routes())
        .nest("/api/3.0/mlflow/users", users::permission_routes())
        .nest("/ajax-api/3.0/mlflow/users", users::permission_routes())
        .route(
            "/api/okla/v1/tokens",
            get(users::list_tokens).post(users::create_token),
        )
        .route("/api/okla/v1/audit", get(users::audit_log))
        .route("/api/okla/v1/tokens/verify", post(users::verify_token))
        .route(
            "/api/okla/v1/tokens/{token_id}",
            delete(users::revoke_token),
        )
        .route(
            "/api/okla/v1/models/{name}/versions/{version}/files",
            get(okla::version_files),
        )
        .route(
            "/api/okla/v1/models/{name}/history",
            get(okla::model_history),
        )
        .route(
            "/api/okla/v1/runs/{run_id}/metrics/{key}/series",
            get(series::metric_series),
        )
        .route("/api/okla/v1/events", get(events::list))
        .route("/api/okla/v1/deployments", get(deployments::list))
        .route(
            "/api/okla/v1/deployments/{name}",
            get(deployments::get)
                .put(deployments::put)
                .delete(deployments::delete),
        )
        .route(
            "/api/okla/v1/deployments/{name}/rollback",
            post(deployments::rollback),
        )
        .route(
            "/api/okla/v1/deployments/{name}/undeploy",
            post(deployments::undeploy),
        )
        .route("/api/okla/v1/nodes", get(nodes::list))
        .route(
            "/api/okla/v1/nodes/{node_id}",
            get(nodes::get).put(nodes::put).delete(nodes::delete),
        )
        .merge(security::with_page_headers(pages))
        .fallback(endpoint_not_found)
        .layer(DefaultBodyLimit::max(max_request_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), access::check))
        .layer(middleware::from_fn_with_state(
            policy.clone(),
            security::refuse_foreign_writes,
        ));
    let routes = match security::cors_layer(&policy) {
        Some(cors) => routes.layer(cors),
        None => routes,
    };
    routes
        .layer(middleware::from_fn_with_state(
            policy,
            security::refuse_unknown_hosts,
        ))
        .layer(CloseUnreadRequestsLayer)
        .layer(security::nosniff_layer())
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

fn mlflow_routes() -> Router<AppState> {
    Router::new()
        .nest("/users", users::user_routes())
        .route("/experiments/create", post(tracking::create_experiment))
        .route("/experiments/get", get(tracking::get_experiment))
        .route(
            "/experiments/get-by-name",
            get(tracking::get_experiment_by_name),
        )
        .route(
            "/experiments/search",
            post(tracking::search_experiments).get(tracking::search_experiments),
        )
        .route("/experiments/update", post(tracking::update_experiment))
        .route("/experiments/delete", post(tracking::delete_experiment))
        .route("/experiments/restore", post(tracking::restore_experiment))
        .route(
            "/experiments/set-experiment-tag",
            post(tracking::set_experiment_tag),
        )
        .route(
            "/experiments/delete-experiment-tag",
            post(tracking::delete_experiment_tag),
        )
        .route("/runs/create", post(tracking::create_run))
        .route("/runs/get", get(tracking::get_run))
        .route("/runs/update", post(tracking::update_run))
        .route("/runs/delete", post(tracking::delete_run))
        .route("/runs/restore", post(tracking::restore_run))
        .route("/runs/search", post(tracking::search_runs))
        .route("/runs/log-parameter", post(tracking::log_param))
        .route("/runs/log-metric", post(tracking::log_metric))
        .route("/runs/log-batch", post(tracking::log_batch))
        .route("/runs/set-tag", post(tracking::set_tag))
        .route("/runs/delete-tag", post(tracking::delete_tag))
        .route("/runs/outputs", post(tracking::log_outputs))
        .route("/runs/log-inputs", post(tracking::log_inputs))
        .route("/metrics/get-history", get(tracking::get_metric_history))
        .route("/logged-models", post(logged_models::create))
        .route("/logged-models/search", post(logged_models::search))
        .route(
            "/logged-models/{model_id}",
            get(logged_models::get)
                .patch(logged_models::finalize)
                .delete(logged_models::delete),
        )
        .route(
            "/logged-models/{model_id}/tags",
            patch(logged_models::set_tags),
        )
        .route(
            "/logged-models/{model_id}/tags/{key}",
            delete(logged_models::delete_tag),
        )
        .route(
            "/logged-models/{model_id}/params",
            post(logged_models::log_params),
        )
        .route(
            "/registered-models/create",
            post(model_registry::create_registered_model),
        )
        .route(
            "/registered-models/get",
            get(model_registry::get_registered_model),
        )
        .route(
            "/registered-models/rename",
            post(model_registry::rename_registered_model),
        )
        .route(
            "/registered-models/update",
            patch(model_registry::update_registered_model),
        )
        .route(
            "/registered-models/delete",
            delete(model_registry::delete_registered_model),
        )
        .route(
            "/registered-models/search",
            get(model_registry::search_registered_models)
                .post(model_registry::search_registered_models),
        )
        .route(
            "/registered-models/set-tag",
            post(model_registry::set_registered_model_tag),
        )
        .route(
            "/registered-models/delete-tag",
            delete(model_registry::delete_registered_model_tag),
        )
        .route(
            "/registered-models/get-latest-versions",
            post(model_registry::get_latest_versions).get(model_registry::get_latest_versions),
        )
        .route(
            "/registered-models/alias",
            post(model_registry::set_alias)
                .get(model_registry::get_version_by_alias)
                .delete(model_registry::delete_alias),
        )
        .route(
            "/model-versions/create",
            post(model_registry::create_model_version),
        )
        .route(
            "/model-versions/get",
            get(model_registry::get_model_version),
        )
        .route(
            "/model-versions/update",
            patch(model_registry::update_model_version),
        )
        .route(
            "/model-versions/delete",
            delete(model_registry::delete_model_version),
        )
        .route(
            "/model-versions/search",
            get(model_registry::search_model_versions).post(model_registry::search_model_versions),
        )
        .route(
            "/model-versions/transition-stage",
            post(model_registry::transition_stage),
        )
        .route(
            "/model-versions/set-tag",
            post(model_registry::set_model_version_tag),
        )
        .route(
            "/model-versions/delete-tag",
            delete(model_registry::delete_model_version_tag),
        )
        .route(
            "/model-versions/get-download-uri",
            get(model_registry::get_download_uri),
        )
}

fn artifact_routes() -> Router<AppState> {
    Router::new()
        .route("/artifacts", get(artifacts::list))
        .route(
            "/artifacts/{*path}",
            put(artifacts::upload)
                .get(artifacts::download)
                .delete(artifacts::delete),
        )
        .route("/mpu/create/{*path}", post(artifacts::create_multipart))
        .route("/mpu/complete/{*path}", post(artifacts::complete_multipart))
        .route("/mpu/abort/{*path}", post(artifacts::abort_multipart))
        .route("/mpu/part/{*path}", put(artifacts::upload_part))
}

/// What `mlflow` asks before artifact transfers; the flags say which optional features exist.
async fn server_info() -> Json<Value> {
    Json(json!({
        "store_type": "SqlStore",
        "workspaces_enabled": false,
        "trace_archival_enabled": false,
        "multipart_uploads_enabled": true,
        "multipart_downloads_enabled": false,
        "presigned_upload_run_id_supported": false,
        "presigned_upload_model_id_supported": false,
        "features_enabled": {},
    }))
}

async fn endpoint_not_found() -> Response {
    let body = json!({ "error_code": "ENDPOINT_NOT_FOUND", "message": "No endpoint matches this method and path" });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = %detail, "request handler panicked");
    Error::Internal(anyhow::anyhow!("handler panicked")).into_response()
}

/// `200 {}`: MLflow's answer to a write with nothing to return.
fn empty() -> Json<Value> {
    Json(json!({}))
}

/// A required request field, or MLflow's error naming it.
fn required<T>(value: Option<T>, name: &str) -> Result<T> {
    value.ok_or_else(|| Error::invalid(format!("Missing value for required parameter '{name}'.")))
}
