//! The state every HTTP handler shares: the metadata store, the artifact store, the limits, the
//! security policy and authentication.
//! A module of its own so `api`, `ui` and `app` depend on it and not on each other.

use std::collections::HashMap;
use std::sync::Arc;

use crate::artifacts::ArtifactStore;
use crate::audit::AuditLog;
use crate::auth::Auth;
use crate::config::{BackendStore, RegistryConfig};
use crate::housekeeping::Retention;
use crate::security::SecurityPolicy;
use crate::store::Store;

/// Request-size limits, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_request_bytes: usize,
    pub max_artifact_bytes: u64,
}

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub artifacts: Arc<ArtifactStore>,
    pub limits: Limits,
    /// Where the events relay publishes; `None` keeps events in the outbox and the feed.
    pub amqp_url: Option<String>,
    /// Allowed hosts and CORS origins, applied to every request by `api::security`.
    pub security: Arc<SecurityPolicy>,
    /// Who a request is and what it may do.
    pub auth: Auth,
    /// Every mutation and refusal, written off the request path.
    pub audit: AuditLog,
    /// How long events, nodes, audit entries and abandoned uploads are kept.
    pub retention: Retention,
}

impl AppState {
    /// Opens the metadata database (running migrations) and the artifact store.
    /// `env` supplies the S3 settings (`AWS_*`, `MLFLOW_S3_ENDPOINT_URL`).
    pub async fn open(
        config: &RegistryConfig,
        env: &HashMap<String, String>,
    ) -> anyhow::Result<AppState> {
        // Checked first: a mistyped entry should not wait for a database connection to be reported.
        let hostname = gethostname::gethostname().to_string_lossy().into_owned();
        let security = SecurityPolicy::from_config(config, &hostname)?;
        let auth_settings = config.auth_settings()?;
        let admin_password = config.admin_password(env)?;
        let backend = BackendStore::parse(&config.backend_store_uri)?;
        let statement_timeout = (config.db_statement_timeout_seconds > 0)
            .then(|| std::time::Duration::from_secs(config.db_statement_timeout_seconds));
        let store = Store::connect(&backend, config.db_max_connections, statement_timeout).await?;
        let artifacts = ArtifactStore::from_destination(&config.artifacts_destination, env)?;
        let auth = Auth::new(store.clone(), auth_settings);
        auth.bootstrap(admin_password.as_deref()).await?;
        let audit = AuditLog::start(store.clone());
        Ok(AppState {
            store,
            artifacts: Arc::new(artifacts),
            limits: Limits {
                max_request_bytes: config.max_request_bytes,
                max_artifact_bytes: config.max_artifact_bytes,
            },
            amqp_url: config.amqp_url.clone().filter(|url| !url.is_empty()),
            retention: config.retention(),
            security: Arc::new(security),
            auth,
            audit,
        })
    }
}
