//! Keeps PostgreSQL's planner statistics fresh for the tables run search reads.
//!
//! Autovacuum re-analyzes a table only after its naptime (a minute by default) once 10% of it
//! has changed. Data scientists search right after a training sweep has logged thousands of
//! runs, and with the statistics of an emptier table the planner drives the search from the
//! wrong side: a 3 ms query takes 100 ms or more. This keeper applies autovacuum's rule every
//! few seconds instead.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::sql::{get_i64, get_text};
use super::{Backend, Store};
use crate::error::Result;

/// The tables whose statistics decide run-search plans.
const SEARCH_TABLES: &str = "'runs', 'latest_metrics', 'params', 'tags'";
/// Rows changed since the last analyze before one is worth running.
const MIN_CHANGED_ROWS: i64 = 1000;
/// How often the counters are checked.
const CHECK_INTERVAL: Duration = Duration::from_secs(5);

impl Store {
    /// Runs until `shutdown` fires; returns at once on SQLite, whose planner needs no statistics
    /// for these queries. Spawned once per server by `app::serve`.
    pub async fn keep_statistics_fresh(self, shutdown: CancellationToken) {
        if self.backend != Backend::Postgres {
            return;
        }
        let mut interval = tokio::time::interval(CHECK_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = interval.tick() => {}
            }
            if let Err(error) = self.analyze_changed_search_tables().await {
                tracing::warn!(%error, "refreshing planner statistics failed");
            }
        }
    }

    /// Analyzes each search table of which at least 10% (and `MIN_CHANGED_ROWS`) changed since
    /// its last analyze, autovacuum's own threshold. Returns the tables it analyzed.
    pub async fn analyze_changed_search_tables(&self) -> Result<Vec<String>> {
        let sql = format!(
            "SELECT relname::text AS table_name, n_mod_since_analyze AS changed, n_live_tup AS live \
             FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname IN ({SEARCH_TABLES})"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.writer)
            .await?;
        let mut analyzed = Vec::new();
        for row in rows {
            let table = get_text(&row, "table_name")?;
            let changed = get_i64(&row, "changed")?;
            let live = get_i64(&row, "live")?;
            if changed >= MIN_CHANGED_ROWS && changed * 10 >= live {
                // The name comes from the fixed list above, never from a request.
                sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {table}")))
                    .execute(&self.writer)
                    .await?;
                tracing::debug!(%table, changed, live, "planner statistics refreshed");
                analyzed.push(table);
            }
        }
        Ok(analyzed)
    }
}
