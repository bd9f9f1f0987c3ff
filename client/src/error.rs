//! The crate's one error type: what failed, and what the registry said about it.

use std::path::PathBuf;
use std::time::Duration;

pub use reqwest::StatusCode;

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

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
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
