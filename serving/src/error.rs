//! One error enum for the server, mapped once to gRPC status codes and once to HTTP statuses
//! with the protocol's `{"error": "..."}` body.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::tensor::TensorError;

#[derive(Debug, thiserror::Error)]
pub enum ServingError {
    /// A client mistake: bad tensor, shape, datatype, body.
    #[error("{0}")]
    InvalidArgument(String),
    /// Unknown model, version or label.
    #[error("{0}")]
    NotFound(String),
    /// The model is known but has no ready version (loading, or its load failed).
    #[error("{0}")]
    Unavailable(String),
    /// The server cannot take more work right now (queue full).
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("{0}")]
    Unimplemented(String),
    /// No usable credential (`--require-token`, model control).
    #[error("{0}")]
    Unauthenticated(String),
    /// A credential that may not do this, or model control switched off.
    #[error("{0}")]
    PermissionDenied(String),
    /// A fault on our side; the detail goes to the log, and the client gets this message.
    #[error("{0}")]
    Internal(String),
}

impl From<TensorError> for ServingError {
    fn from(err: TensorError) -> Self {
        ServingError::InvalidArgument(err.to_string())
    }
}

impl ServingError {
    pub fn http_status(&self) -> StatusCode {
        match self {
            ServingError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            ServingError::NotFound(_) => StatusCode::NOT_FOUND,
            ServingError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServingError::ResourceExhausted(_) => StatusCode::TOO_MANY_REQUESTS,
            ServingError::Unimplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ServingError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ServingError::PermissionDenied(_) => StatusCode::FORBIDDEN,
            ServingError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether the server, not the client, is to blame: what counts against a version's health.
    pub fn is_server_fault(&self) -> bool {
        matches!(
            self,
            ServingError::Unavailable(_)
                | ServingError::ResourceExhausted(_)
                | ServingError::Internal(_)
        )
    }

    /// The `status` label of the request metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ServingError::InvalidArgument(_) => "invalid_argument",
            ServingError::NotFound(_) => "not_found",
            ServingError::Unavailable(_) => "unavailable",
            ServingError::ResourceExhausted(_) => "resource_exhausted",
            ServingError::Unimplemented(_) => "unimplemented",
            ServingError::Unauthenticated(_) => "unauthenticated",
            ServingError::PermissionDenied(_) => "permission_denied",
            ServingError::Internal(_) => "internal",
        }
    }
}

impl From<ServingError> for tonic::Status {
    fn from(err: ServingError) -> Self {
        match err {
            ServingError::InvalidArgument(m) => tonic::Status::invalid_argument(m),
            ServingError::NotFound(m) => tonic::Status::not_found(m),
            ServingError::Unavailable(m) => tonic::Status::unavailable(m),
            ServingError::ResourceExhausted(m) => tonic::Status::resource_exhausted(m),
            ServingError::Unimplemented(m) => tonic::Status::unimplemented(m),
            ServingError::Unauthenticated(m) => tonic::Status::unauthenticated(m),
            ServingError::PermissionDenied(m) => tonic::Status::permission_denied(m),
            ServingError::Internal(m) => tonic::Status::internal(m),
        }
    }
}

impl IntoResponse for ServingError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.to_string() });
        let mut response = (self.http_status(), Json(body)).into_response();
        if matches!(self, ServingError::Unauthenticated(_)) {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
