//! The registry's one error type, and its single mapping to MLflow's error codes and HTTP statuses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// MLflow's `error_code` vocabulary (the subset the registry produces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidParameterValue,
    BadRequest,
    Unauthenticated,
    ResourceDoesNotExist,
    ResourceAlreadyExists,
    ResourceConflict,
    PermissionDenied,
    InternalError,
    TemporarilyUnavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidParameterValue => "INVALID_PARAMETER_VALUE",
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::ResourceDoesNotExist => "RESOURCE_DOES_NOT_EXIST",
            ErrorCode::ResourceAlreadyExists => "RESOURCE_ALREADY_EXISTS",
            ErrorCode::ResourceConflict => "RESOURCE_CONFLICT",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::TemporarilyUnavailable => "TEMPORARILY_UNAVAILABLE",
        }
    }

    /// MLflow answers an existing resource with 400, not 409, and the client relies on it.
    pub fn http_status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidParameterValue
            | ErrorCode::BadRequest
            | ErrorCode::ResourceAlreadyExists => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorCode::ResourceDoesNotExist => StatusCode::NOT_FOUND,
            // MLflow's own mapping of RESOURCE_CONFLICT. Not retried by the mlflow client (only
            // 429 and 5xx are), which is right: the caller must re-read and decide again.
            ErrorCode::ResourceConflict => StatusCode::CONFLICT,
            ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidParameter(String),
    /// A request MLflow refuses with its generic `BAD_REQUEST` code (an admin deleting itself).
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// The resource's current state forbids the change: a stale `expected_revision`, or deleting
    /// a version a deployment serves.
    #[error("{0}")]
    Conflict(String),
    /// No credentials, or credentials that do not authenticate anyone.
    #[error("{0}")]
    Unauthenticated(String),
    /// Refused: a Host the server does not answer, a write from a foreign browser origin, or a
    /// caller without the permission the request needs.
    #[error("{0}")]
    Forbidden(String),
    /// A write whose body is not JSON. MLflow's code, with HTTP's own status for it (415).
    #[error("{0}")]
    UnsupportedContentType(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("artifact storage error: {0}")]
    Storage(String),
    #[error("{0:#}")]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::InvalidParameter(message.into())
    }

    pub fn not_found(message: impl Into<String>) -> Error {
        Error::NotFound(message.into())
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidParameter(_) => ErrorCode::InvalidParameterValue,
            Error::BadRequest(_) => ErrorCode::BadRequest,
            Error::NotFound(_) => ErrorCode::ResourceDoesNotExist,
            Error::AlreadyExists(_) => ErrorCode::ResourceAlreadyExists,
            Error::Conflict(_) => ErrorCode::ResourceConflict,
            Error::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Error::Forbidden(_) => ErrorCode::PermissionDenied,
            Error::UnsupportedContentType(_) => ErrorCode::InvalidParameterValue,
            Error::Database(sqlx::Error::PoolTimedOut) => ErrorCode::TemporarilyUnavailable,
            // PostgreSQL refuses text it cannot store (a NUL character): the client's input is at fault.
            Error::Database(sqlx::Error::Database(database_error))
                if matches!(database_error.code().as_deref(), Some("22021" | "22P05")) =>
            {
                ErrorCode::InvalidParameterValue
            }
            Error::Database(_) | Error::Storage(_) | Error::Internal(_) => ErrorCode::InternalError,
        }
    }
}

impl Error {
    /// The HTTP status: the code's, except a non-JSON write, which is 415 Unsupported Media Type.
    pub fn http_status(&self) -> StatusCode {
        match self {
            Error::UnsupportedContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => self.code().http_status(),
        }
    }
}

impl From<crate::domain::search::SearchError> for Error {
    fn from(error: crate::domain::search::SearchError) -> Error {
        Error::InvalidParameter(error.to_string())
    }
}

impl From<crate::artifacts::ArtifactError> for Error {
    fn from(error: crate::artifacts::ArtifactError) -> Error {
        use crate::artifacts::ArtifactError;
        match error {
            ArtifactError::NotFound { .. } => Error::NotFound(error.to_string()),
            ArtifactError::Storage(ref storage) if crate::artifacts::is_file_directory_clash(storage) => {
                Error::InvalidParameter(
                    "Invalid artifact path: it runs through a file or names a directory; a file and a directory cannot share a path".to_owned(),
                )
            }
            ArtifactError::Storage(_) | ArtifactError::Config(_) => {
                Error::Storage(error.to_string())
            }
            _ => Error::InvalidParameter(error.to_string()),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let code = self.code();
        let status = self.http_status();
        let message = match code {
            // Server-side details stay in the log; the client only learns that it was not its fault.
            ErrorCode::InternalError | ErrorCode::TemporarilyUnavailable => {
                tracing::error!(error = %self, "request failed");
                format!("{}: the server failed to handle the request", code.as_str())
            }
            _ if matches!(self, Error::Database(_)) => {
                "Invalid parameter value: the request holds text the database cannot store (such as a NUL character)".to_owned()
            }
            _ => self.to_string(),
        };
        let body = serde_json::json!({ "error_code": code.as_str(), "message": message });
        let mut response = (status, axum::Json(body)).into_response();
        if code == ErrorCode::Unauthenticated {
            // The realm MLflow's auth app sends; browsers prompt for a password on it.
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic realm=\"mlflow\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_map_to_mlflow_statuses() {
        let table = [
            (Error::invalid("x"), "INVALID_PARAMETER_VALUE", 400),
            (Error::not_found("x"), "RESOURCE_DOES_NOT_EXIST", 404),
            (
                Error::AlreadyExists("x".into()),
                "RESOURCE_ALREADY_EXISTS",
                400,
            ),
            (Error::Conflict("x".into()), "RESOURCE_CONFLICT", 409),
            (Error::Forbidden("x".into()), "PERMISSION_DENIED", 403),
            (Error::Unauthenticated("x".into()), "UNAUTHENTICATED", 401),
            (
                Error::UnsupportedContentType("x".into()),
                "INVALID_PARAMETER_VALUE",
                415,
            ),
            (Error::Storage("disk".into()), "INTERNAL_ERROR", 500),
            (
                Error::Database(sqlx::Error::PoolTimedOut),
                "TEMPORARILY_UNAVAILABLE",
                503,
            ),
        ];
        for (error, code, status) in table {
            assert_eq!(error.code().as_str(), code);
            assert_eq!(error.http_status().as_u16(), status);
        }
    }
}
