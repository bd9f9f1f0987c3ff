//! Command-line and environment configuration of `okla-registry`, parsed once in `main`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::auth::AuthSettings;
use crate::domain::auth::Permission;
use crate::error::{Error, Result};
use crate::housekeeping::Retention;

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
        hide_env_values = true,
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
    /// PostgreSQL statements running longer than this many seconds are cancelled, so a
    /// runaway query cannot hold its connection. 0: no limit (for example while a migration
    /// rewrites a very large table).
    #[arg(long, env = "OKLA_DB_STATEMENT_TIMEOUT_SECONDS", default_value_t = 60)]
    pub db_statement_timeout_seconds: u64,
    /// RabbitMQ to publish model events to, e.g. `amqp://user:pass@host:5672/vhost`. Unset: no
    /// broker is contacted; events are still recorded and served by `GET /api/okla/v1/events`.
    #[arg(long, env = "OKLA_AMQP_URL", hide_env_values = true)]
    pub amqp_url: Option<String>,
    /// `Host` headers the server answers, comma-separated: `host` (any port), `host:port`,
    /// `[ipv6]:port`, or `*` for any (DNS-rebinding protection; `/health` answers any Host).
    /// Default: the `--host` address, `localhost`, `127.0.0.1`, `[::1]` and this machine's
    /// hostname; bound to `0.0.0.0` or `::`, also private-network addresses (10/8, 172.16/12,
    /// 192.168/16, fc00::/7), as MLflow does. Any other name or address users type (a DNS
    /// name, a public IP) must be listed here.
    #[arg(long, env = "OKLA_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed to call the API from their pages (CORS), comma-separated, e.g.
    /// `https://notebooks.example.com`. Default: none; no CORS headers are sent, and a write
    /// carrying any other `Origin` than the server's own is refused.
    #[arg(long, env = "OKLA_CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub cors_allowed_origins: Vec<String>,
    /// Turn authentication off: every caller may do everything. Refused unless `--host` is a
    /// loopback address.
    #[arg(long, env = "OKLA_NO_AUTH")]
    pub no_auth: bool,
    /// File holding the password of the user `admin`, created on the first start against an
    /// empty user store (else the `OKLA_ADMIN_PASSWORD` environment variable). Ignored once
    /// users exist.
    #[arg(long, env = "OKLA_ADMIN_PASSWORD_FILE")]
    pub admin_password_file: Option<PathBuf>,
    /// What a user may do on an experiment or registered model they hold no grant on: READ,
    /// USE, EDIT, MANAGE or NO_PERMISSIONS (MLflow's `default_permission`).
    #[arg(long, env = "OKLA_DEFAULT_PERMISSION", default_value = "READ")]
    pub default_permission: String,
    /// How long verified passwords, token lookups and grants are reused before they are read
    /// again (changes made through this server apply at once).
    #[arg(long, env = "OKLA_AUTH_CACHE_SECONDS", default_value_t = 30)]
    pub auth_cache_seconds: u64,
    /// Model events older than this many hours leave the outbox and `GET /api/okla/v1/events`
    /// once RabbitMQ confirmed them (without --amqp-url, all that old). 0 keeps them.
    #[arg(long, env = "OKLA_EVENT_RETENTION_HOURS", default_value_t = 168)]
    pub event_retention_hours: u64,
    /// Serving nodes silent for this many hours are forgotten. 0 keeps them.
    #[arg(long, env = "OKLA_NODE_RETENTION_HOURS", default_value_t = 168)]
    pub node_retention_hours: u64,
    /// Audit log entries older than this many days are deleted. 0 keeps them.
    #[arg(long, env = "OKLA_AUDIT_RETENTION_DAYS", default_value_t = 365)]
    pub audit_retention_days: u64,
    /// Multipart uploads neither completed nor aborted within this many hours are deleted.
    /// 0 keeps them.
    #[arg(long, env = "OKLA_UPLOAD_EXPIRY_HOURS", default_value_t = 24)]
    pub upload_expiry_hours: u64,
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
            db_statement_timeout_seconds: 60,
            amqp_url: None,
            allowed_hosts: Vec::new(),
            cors_allowed_origins: Vec::new(),
            no_auth: true,
            admin_password_file: None,
            default_permission: "READ".to_owned(),
            auth_cache_seconds: 30,
            event_retention_hours: 168,
            node_retention_hours: 168,
            audit_retention_days: 365,
            upload_expiry_hours: 24,
        }
    }

    /// How long each kind of record is kept (0 hours or days: forever).
    pub fn retention(&self) -> Retention {
        let hours = |count: u64| (count > 0).then(|| Duration::from_secs(count * 3600));
        Retention {
            events: hours(self.event_retention_hours),
            nodes: hours(self.node_retention_hours),
            audit: hours(self.audit_retention_days.saturating_mul(24)),
            uploads: hours(self.upload_expiry_hours),
        }
    }

    /// The authentication settings; `--no-auth` away from loopback and a default permission
    /// that is not one are errors naming the flag.
    pub fn auth_settings(&self) -> Result<AuthSettings> {
        if self.no_auth && !is_loopback(&self.host) {
            return Err(Error::invalid(format!(
                "--no-auth is only allowed on a loopback address (--host 127.0.0.1, ::1 or localhost), not '{}': anyone who can reach the port could change production models",
                self.host
            )));
        }
        let default_permission = Permission::parse(&self.default_permission)
            .ok()
            .filter(|permission| *permission != Permission::Deny)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "invalid --default-permission '{}': use READ, USE, EDIT, MANAGE or NO_PERMISSIONS",
                    self.default_permission
                ))
            })?;
        Ok(AuthSettings {
            disabled: self.no_auth,
            default_permission,
            cache_ttl: Duration::from_secs(self.auth_cache_seconds),
        })
    }

    /// The admin password for the first start: `--admin-password-file`, else
    /// `OKLA_ADMIN_PASSWORD` from `env`. Surrounding whitespace (a file's final newline) is
    /// not part of it.
    pub fn admin_password(&self, env: &HashMap<String, String>) -> Result<Option<String>> {
        if let Some(path) = &self.admin_password_file {
            let password = std::fs::read_to_string(path).map_err(|error| {
                Error::invalid(format!(
                    "cannot read --admin-password-file {}: {error}",
                    path.display()
                ))
            })?;
            return Ok(Some(password.trim().to_owned()));
        }
        Ok(env
            .get("OKLA_ADMIN_PASSWORD")
            .map(|password| password.trim().to_owned()))
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// A URI as logs and error messages may show it: any userinfo (a password above all) replaced
/// by `***`, also in text no URL parser accepts.
pub fn redact_uri(uri: &str) -> String {
    if let Ok(mut parsed) = url::Url::parse(uri)
        && parsed.has_host()
    {
        if parsed.password().is_some() || !parsed.username().is_empty() {
            let _ = parsed.set_username("***");
            let _ = parsed.set_password(None);
        }
        return parsed.to_string();
    }
    let start = uri.find("://").map_or(0, |at| at + 3);
    match uri[start..].rfind('@') {
        Some(at) => format!("{}***{}", &uri[..start], &uri[start + at..]),
        None => uri.to_owned(),
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
                "backend store URI '{}' has no scheme; use postgresql://... or sqlite:///path.db",
                redact_uri(uri)
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
                        "backend store URI '{}' names no database file; an in-memory database would lose everything on restart",
                        redact_uri(uri)
                    )));
                }
                Ok(BackendStore::Sqlite(PathBuf::from(path)))
            }
            other => Err(Error::invalid(format!(
                "backend store URI '{}' uses unsupported database '{other}'; use postgresql or sqlite",
                redact_uri(uri)
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

    #[test]
    fn secrets_in_uris_never_reach_a_message() {
        for uri in [
            "postgresql://okla:s3cret-pw@db:5432/okla",
            "mysql://root:s3cret-pw@localhost/db",
            "root:s3cret-pw@localhost/db",
            "sqlite://user:s3cret-pw@",
            "amqp://guest:s3cret-pw@rabbit:5672/%2f",
        ] {
            assert!(!redact_uri(uri).contains("s3cret-pw"), "{uri}");
            if let Err(error) = BackendStore::parse(uri) {
                assert!(!error.to_string().contains("s3cret-pw"), "{error}");
            }
        }
        assert_eq!(
            redact_uri("postgresql://db:5432/okla"),
            "postgresql://db:5432/okla"
        );
    }

    #[test]
    fn no_auth_only_on_loopback() {
        let mut config = RegistryConfig::for_test("sqlite:///x.db", "a");
        for host in ["127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"] {
            config.host = host.to_owned();
            assert!(config.auth_settings().is_ok(), "{host}");
        }
        for host in ["0.0.0.0", "::", "10.0.0.4", "registry.example.com"] {
            config.host = host.to_owned();
            let error = config.auth_settings().unwrap_err().to_string();
            assert!(error.contains("--no-auth"), "{error}");
        }
        config.no_auth = false;
        assert!(config.auth_settings().is_ok());
        config.default_permission = "DENY".to_owned();
        assert!(config.auth_settings().is_err());
    }
}
