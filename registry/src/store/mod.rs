//! The metadata store: one set of portable SQL queries over PostgreSQL or SQLite (sqlx `Any`),
//! with a migrations folder per backend. Every multi-row write runs in one transaction.
//!
//! One file (or directory) per entity; what they share lives beside them and never in an entity
//! file: `sql.rs` (placeholders, id lists bound as one parameter, row readers), `transaction.rs`
//! (key/value upserts, model history), `search.rs` (the one search pipeline) and `outbox.rs`.

mod audit;
pub mod auth;
mod chunks;
pub mod deployments;
pub mod logged_models;
pub mod model_registry;
pub mod nodes;
pub mod outbox;
mod overview;
mod retention;
mod search;
pub mod search_sql;
pub mod series;
mod sql;
mod statistics;
pub mod tracking;
mod transaction;

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};
use tokio::sync::Notify;

use crate::config::BackendStore;
use crate::domain::search::PageLimits;
use crate::error::{Error, Result};
pub use chunks::Compaction;
pub use search_sql::SqlValue;

/// Which database is behind the pools; queries are shared, a few behaviours are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// Handle to the metadata database. Cheap to clone; safe to share between tasks.
///
/// On SQLite all writes go through a single-connection pool (SQLite has one writer at a time, and
/// queueing in the pool is cheaper than retrying on `SQLITE_BUSY`), reads through a separate pool
/// that WAL lets run beside the writer. On PostgreSQL both are the same pool.
#[derive(Clone)]
pub struct Store {
    writer: AnyPool,
    reader: AnyPool,
    backend: Backend,
    /// Poked after every commit that wrote outbox events, so the relay publishes at once.
    events_written: Arc<Notify>,
    /// Metric series whose history a background task is compacting, so reads of a series
    /// that needs it start one task, not one each.
    compacting: Arc<Mutex<HashSet<i64>>>,
}

impl Store {
    /// Connects and brings the schema up to date. On PostgreSQL, a statement running longer
    /// than `statement_timeout` is cancelled (`None`: never).
    pub async fn connect(
        backend_store: &BackendStore,
        max_connections: u32,
        statement_timeout: Option<Duration>,
    ) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let store = match backend_store {
            BackendStore::Postgres(url) => {
                let pool = postgres_pool(url, max_connections, statement_timeout).await?;
                Store::new(pool.clone(), pool, Backend::Postgres)
            }
            BackendStore::Sqlite(path) => {
                if let Some(parent) = path
                    .parent()
                    .filter(|parent| !parent.as_os_str().is_empty())
                {
                    std::fs::create_dir_all(parent).map_err(|error| {
                        Error::invalid(format!(
                            "cannot create directory {} for the SQLite database: {error}",
                            parent.display()
                        ))
                    })?;
                }
                let url = format!("sqlite://{}?mode=rwc", path.display());
                let options = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
                let writer = sqlite_pool(options.clone(), 1).await?;
                // The writer creates the file and switches it to WAL before readers open it.
                Store::new(writer.clone(), writer.clone(), Backend::Sqlite)
                    .migrate()
                    .await?;
                let reader = sqlite_pool(options, max_connections.max(1)).await?;
                return Ok(Store::new(writer, reader, Backend::Sqlite));
            }
        };
        store.migrate().await?;
        Ok(store)
    }

    fn new(writer: AnyPool, reader: AnyPool, backend: Backend) -> Store {
        Store {
            writer,
            reader,
            backend,
            events_written: Arc::new(Notify::new()),
            compacting: Arc::default(),
        }
    }

    async fn migrate(&self) -> Result<()> {
        let migrator = match self.backend {
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        };
        migrator
            .run(&self.writer)
            .await
            .map_err(|error| Error::Internal(error.into()))
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes both pools; used by tests before dropping their database.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

async fn postgres_pool(
    url: &str,
    max_connections: u32,
    statement_timeout: Option<Duration>,
) -> Result<AnyPool> {
    let options = AnyConnectOptions::from_str(url)?.disable_statement_logging();
    // A runaway query (a pathological search, a lock wait) gives its connection back instead
    // of holding it, and the pool with it, for as long as it runs.
    let timeout_ms = statement_timeout.map_or(0, |timeout| timeout.as_millis());
    let pool = AnyPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(move |connection, _metadata| {
            Box::pin(async move {
                connection
                    .execute(sqlx::AssertSqlSafe(format!(
                        "SET statement_timeout = {timeout_ms}"
                    )))
                    .await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await?;
    Ok(pool)
}

async fn sqlite_pool(options: AnyConnectOptions, max_connections: u32) -> Result<AnyPool> {
    let pool = AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(|connection, _metadata| {
            Box::pin(async move {
                // case_sensitive_like makes LIKE behave as on PostgreSQL; ILIKE is spelled LOWER() LIKE LOWER().
                connection
                    .execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
                         PRAGMA busy_timeout = 10000; PRAGMA case_sensitive_like = ON;",
                    )
                    .await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// A page of results plus the token for the next one.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: Option<String>,
}

impl<T> Default for Page<T> {
    fn default() -> Page<T> {
        Page {
            items: Vec::new(),
            next_page_token: None,
        }
    }
}

/// Resolves `max_results` and `page_token` into SQL limit/offset, fetching one extra row to
/// learn whether another page exists.
struct Paging {
    offset: u64,
    limit: u64,
}

impl Paging {
    fn new(
        max_results: Option<i64>,
        limits: PageLimits,
        page_token: Option<&str>,
    ) -> Result<Paging> {
        let PageLimits { default, maximum } = limits;
        let limit = match max_results {
            None | Some(0) => default,
            Some(requested) if requested < 0 || requested as u64 > maximum => {
                return Err(Error::invalid(format!(
                    "Invalid value {requested} for parameter 'max_results' supplied. It must be at most {maximum}"
                )));
            }
            Some(requested) => requested as u64,
        };
        let offset = match page_token.filter(|token| !token.is_empty()) {
            None => 0,
            Some(token) => crate::domain::search::decode_page_token(token)?,
        };
        Ok(Paging { offset, limit })
    }

    fn sql(&self) -> String {
        format!("LIMIT {} OFFSET {}", self.limit + 1, self.offset)
    }

    /// The page of `items` (all of them, in order) that this paging asks for.
    fn window<T>(&self, items: impl IntoIterator<Item = T>) -> Page<T> {
        let offset = usize::try_from(self.offset).unwrap_or(usize::MAX);
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        self.finish(
            items
                .into_iter()
                .skip(offset)
                .take(limit.saturating_add(1))
                .collect(),
        )
    }

    fn finish<T>(&self, mut items: Vec<T>) -> Page<T> {
        let has_more = items.len() as u64 > self.limit;
        items.truncate(self.limit as usize);
        let next_page_token =
            has_more.then(|| crate::domain::search::encode_page_token(self.offset + self.limit));
        Page {
            items,
            next_page_token,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the PostgreSQL of `TEST_DATABASE_URL`, without touching its schema.
    #[tokio::test]
    async fn postgres_statements_past_the_timeout_are_cancelled() {
        sqlx::any::install_default_drivers();
        let url = std::env::var("TEST_DATABASE_URL")
            .expect("TEST_DATABASE_URL names a PostgreSQL database (bash scripts/test sets it)");
        let pool = postgres_pool(&url, 1, Some(Duration::from_millis(200)))
            .await
            .expect("connect");
        let cancelled = sqlx::query("SELECT pg_sleep(2)").execute(&pool).await;
        let error = cancelled.expect_err("the statement outlives its timeout");
        assert!(error.to_string().contains("statement timeout"), "{error}");
        // The connection is still usable afterwards.
        sqlx::query("SELECT 1")
            .execute(&pool)
            .await
            .expect("next query");
        let unlimited = postgres_pool(&url, 1, None).await.expect("connect");
        sqlx::query("SELECT pg_sleep(0.3)")
            .execute(&unlimited)
            .await
            .expect("no timeout");
    }
}
