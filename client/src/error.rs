//! The crate's one error type: what failed, and what the registry said about it.

use std::path::PathBuf;
use std::time::Duration;

pub use reqwest::StatusCode;
/// A gRPC status code, as in [`Error::Grpc`].
pub use tonic::Code as GrpcCode;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a call of this crate can fail with. `Display` is one line naming what failed and,
/// for the registry's refusals, its own `error_code` and message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The registry answered with an error status. `error_code` and `message` come from MLflow's
    /// error body `{"error_code": ..., "message": ...}`; when the body is not in that format
    /// (a proxy's HTML page, say) `error_code` is empty and `message` holds the start of it.
    #[error("{request} failed: {status}: {error_code}: {message}")]
    Api {
        /// Method and URL, e.g. `GET http://registry:5000/api/2.0/mlflow/runs/get?run_id=...`.
        request: String,
        status: StatusCode,
        error_code: String,
        message: String,
    },
    /// The request could not be sent, or its answer not read or decoded.
    #[error("{url}: {}", chain(source))]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// A gRPC server (okla-serving's `--grpc-port`) could not be connected to.
    #[error("{url}: {}", chain(source))]
    Connect {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// A gRPC call about `model` failed with `code` (`NOT_FOUND` for an unknown model or
    /// version, `INVALID_ARGUMENT` for inputs that do not match its signature, `UNAVAILABLE`
    /// when the server cannot be reached or the model is not ready, ...) and the server's
    /// message.
    #[error("predict with model '{model}' failed: {}: {message}", grpc_code_name(*code))]
    Grpc {
        model: String,
        code: GrpcCode,
        message: String,
    },
    /// A local file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file's bytes are not the ones expected (size or sha256 differ, or the file is missing).
    #[error("integrity check failed for {path}: expected {expected}, found {actual}")]
    Integrity {
        path: String,
        expected: String,
        actual: String,
    },
    /// A call this crate refuses before sending anything (a malformed URL, an artifact location
    /// the proxy does not serve), or an answer that makes no sense.
    #[error("{0}")]
    Invalid(String),
    /// A wait for a condition on the registry ran out of time.
    #[error("{what}: not reached after {waited:?}; last seen: {last_seen}")]
    Timeout {
        what: String,
        waited: Duration,
        last_seen: String,
    },
}

impl Error {
    /// The registry's MLflow `error_code` (`RESOURCE_DOES_NOT_EXIST`, ...), if the registry
    /// refused the call.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Error::Api { error_code, .. } => Some(error_code),
            _ => None,
        }
    }

    /// The HTTP status the registry answered with, if it refused the call.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the registry answered 404: an unknown resource (`error_code`
    /// `RESOURCE_DOES_NOT_EXIST`) or, with another body, a route the registry does not have.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }

    /// The gRPC status code, if a gRPC call failed.
    pub fn grpc_code(&self) -> Option<GrpcCode> {
        match self {
            Error::Grpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether an idempotent call that failed this way is worth repeating: the request never
    /// got an answer, or the registry answered 5xx or 429.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { source, .. } => !source.is_decode() && !source.is_builder(),
            Error::Api { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            _ => false,
        }
    }

    pub(crate) fn transport(url: impl Into<String>, source: reqwest::Error) -> Error {
        Error::Transport {
            url: url.into(),
            source: source.without_url(),
        }
    }

    pub(crate) fn grpc(model: &str, status: tonic::Status) -> Error {
        // A status made on this side (no connection, say) has its cause only in its source.
        let message = match std::error::Error::source(&status) {
            Some(source) => format!("{}: {}", status.message(), chain(source)),
            None => status.message().to_owned(),
        };
        Error::Grpc {
            model: model.to_owned(),
            code: status.code(),
            message,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// A gRPC code's name as the protocol spells it (`NOT_FOUND`).
fn grpc_code_name(code: GrpcCode) -> &'static str {
    match code {
        GrpcCode::Ok => "OK",
        GrpcCode::Cancelled => "CANCELLED",
        GrpcCode::Unknown => "UNKNOWN",
        GrpcCode::InvalidArgument => "INVALID_ARGUMENT",
        GrpcCode::DeadlineExceeded => "DEADLINE_EXCEEDED",
        GrpcCode::NotFound => "NOT_FOUND",
        GrpcCode::AlreadyExists => "ALREADY_EXISTS",
        GrpcCode::PermissionDenied => "PERMISSION_DENIED",
        GrpcCode::ResourceExhausted => "RESOURCE_EXHAUSTED",
        GrpcCode::FailedPrecondition => "FAILED_PRECONDITION",
        GrpcCode::Aborted => "ABORTED",
        GrpcCode::OutOfRange => "OUT_OF_RANGE",
        GrpcCode::Unimplemented => "UNIMPLEMENTED",
        GrpcCode::Internal => "INTERNAL",
        GrpcCode::Unavailable => "UNAVAILABLE",
        GrpcCode::DataLoss => "DATA_LOSS",
        GrpcCode::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// An error and its causes on one line (reqwest's own message leaves the cause out).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
