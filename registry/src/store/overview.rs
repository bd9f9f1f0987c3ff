//! Read-only summaries the web UI shows beside the API's entities: run counts per experiment and
//! each metric's range over its whole history. Nothing here writes.

use std::collections::HashMap;

use super::Store;
use super::sql::{get_f64, get_i64, get_text};
use crate::error::Result;

impl Store {
    /// How many active runs each of `experiment_ids` holds (experiments without runs are absent).
    pub async fn count_active_runs(&self, experiment_ids: &[i64]) -> Result<HashMap<i64, i64>> {
        let mut counts = HashMap::new();
        if experiment_ids.is_empty() {
            return Ok(counts);
        }
        let sql = format!(
            "SELECT experiment_id, COUNT(*) AS run_count FROM runs \
             WHERE lifecycle_stage = 'active' AND {} GROUP BY experiment_id",
            self.in_number_list("experiment_id", 1)
        );
        let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(self.number_list(experiment_ids));
        for row in query.fetch_all(&self.reader).await? {
            counts.insert(get_i64(&row, "experiment_id")?, get_i64(&row, "run_count")?);
        }
        Ok(counts)
    }

    /// The smallest and largest logged value of every metric of `run_ids` over its whole history
    /// (NaN points left out), keyed by `(run_id, key)`; kept up to date by every metric write.
    /// A metric with only NaN points has the empty range (+inf, -inf), or NULLs if migrated.
    pub async fn metric_ranges(
        &self,
        run_ids: &[String],
    ) -> Result<HashMap<(String, String), (f64, f64)>> {
        let sql = format!(
            "SELECT run_uuid, key, min_value, max_value FROM latest_metrics \
             WHERE min_value <= max_value AND {}",
            self.in_id_list("run_uuid", 1)
        );
        let mut ranges = HashMap::new();
        for row in sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.id_list(run_ids))
            .fetch_all(&self.reader)
            .await?
        {
            ranges.insert(
                (get_text(&row, "run_uuid")?, get_text(&row, "key")?),
                (get_f64(&row, "min_value")?, get_f64(&row, "max_value")?),
            );
        }
        Ok(ranges)
    }
}
