//! Command-line and environment configuration of `okla-registry`, parsed once in `main`.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// Registry settings. Flag names follow `mlflow server`; each flag also reads an environment variable.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "okla-registry",
    version,
    about = "MLflow-compatible tracking server and model registry"
)]
pub struct RegistryConfig {
    /// Address to listen on.
    #[arg(long, env = "OKLA_REGISTRY_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on; 0 picks a free port (the bound address is logged).
    #[arg(long, env = "OKLA_REGISTRY_PORT", default_value_t = 5000)]
    pub port: u16,
    /// Metadata database: `postgresql://user@host:port/db` (also `postgresql+psycopg2://`),
    /// `sqlite:///relative.db` or `sqlite:////absolute/path.db`.
    #[arg(
        long,
        env = "OKLA_BACKEND_STORE_URI",
        default_value = "sqlite:///okla-data/okla.db"
    )]
    pub backend_store_uri: String,
    /// Where artifacts are stored: `s3://bucket/prefix`, `file:///dir` or a plain path.
    /// S3 endpoint and keys come from `MLFLOW_S3_ENDPOINT_URL` and the usual `AWS_*` variables.
    #[arg(
        long,
        env = "OKLA_ARTIFACTS_DESTINATION",
        default_value = "okla-data/artifacts"
    )]
    pub artifacts_destination: String,
    /// Largest JSON request body accepted, in bytes.
    #[arg(long, env = "OKLA_MAX_REQUEST_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_request_bytes: usize,
    /// Largest single artifact file (or multipart part) accepted, in bytes.
    #[arg(long, env = "OKLA_MAX_ARTIFACT_BYTES", default_value_t = 64 * 1024 * 1024 * 1024)]
    pub max_artifact_bytes: u64,
    /// Connections in the database pool (PostgreSQL) or read pool (SQLite).
    #[arg(long, env = "OKLA_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
    /// RabbitMQ to publish model events to, e.g. `amqp://user:pass@host:5672/vhost`. Unset: no
    /// broker is contacted; events are still recorded and served by `GET /api/okla/v1/events`.
    #[arg(long, env = "OKLA_AMQP_URL")]
    pub amqp_url: Option<String>,
}

impl RegistryConfig {
    /// A configuration for tests: loopback, an ephemeral port, and the given stores.
    pub fn for_test(backend_store_uri: &str, artifacts_destination: &str) -> RegistryConfig {
        RegistryConfig {
            host: "127.0.0.1".to_owned(),
            port: 0,
            backend_store_uri: backend_store_uri.to_owned(),
            artifacts_destination: artifacts_destination.to_owned(),
            max_request_bytes: 16 * 1024 * 1024,
            max_artifact_bytes: 1024 * 1024 * 1024,
            db_max_connections: 8,
            amqp_url: None,
        }
    }
}

/// The metadata database named by `--backend-store-uri`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendStore {
    /// A `postgres://` URL as sqlx takes it.
    Postgres(String),
    /// A SQLite database file.
    Sqlite(PathBuf),
}

impl BackendStore {
    pub fn parse(uri: &str) -> Result<BackendStore> {
        let (scheme, rest) = uri.split_once("://").ok_or_else(|| {
            Error::invalid(format!(
                "backend store URI '{uri}' has no scheme; use postgresql://... or sqlite:///path.db"
            ))
        })?;
        // MLflow users write SQLAlchemy URLs, which may name a driver after a '+'.
        let dialect = scheme.split('+').next().unwrap_or(scheme);
        match dialect {
            "postgresql" | "postgres" => Ok(BackendStore::Postgres(format!("postgres://{rest}"))),
            "sqlite" => {
                // SQLAlchemy spelling: `sqlite:///relative.db` and `sqlite:////absolute.db`.
                let path = rest.strip_prefix('/').unwrap_or(rest);
                if path.is_empty() || path == ":memory:" {
                    return Err(Error::invalid(format!(
                        "backend store URI '{uri}' names no database file; an in-memory database would lose everything on restart"
                    )));
                }
                Ok(BackendStore::Sqlite(PathBuf::from(path)))
            }
            other => Err(Error::invalid(format!(
                "backend store URI '{uri}' uses unsupported database '{other}'; use postgresql or sqlite"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_store_uris_in_mlflow_spelling() {
        let table = [
            (
                "sqlite:///okla-data/okla.db",
                Some(BackendStore::Sqlite("okla-data/okla.db".into())),
            ),
            (
                "sqlite:////var/lib/okla.db",
                Some(BackendStore::Sqlite("/var/lib/okla.db".into())),
            ),
            (
                "postgresql://postgres@127.0.0.1:5432/test",
                Some(BackendStore::Postgres(
                    "postgres://postgres@127.0.0.1:5432/test".into(),
                )),
            ),
            (
                "postgresql+psycopg2://u:p@db/okla",
                Some(BackendStore::Postgres("postgres://u:p@db/okla".into())),
            ),
            ("sqlite://", None),
            ("sqlite:///:memory:", None),
            ("mysql://root@localhost/db", None),
            ("./mlruns", None),
        ];
        for (uri, expected) in table {
            assert_eq!(BackendStore::parse(uri).ok(), expected, "{uri}");
        }
    }
}
