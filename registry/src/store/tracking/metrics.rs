//! Logging a batch of metrics, params and tags, and reading a metric's history: the latest row
//! per (run, key) and the history chunks are written together.

use std::collections::{BTreeMap, HashMap};

use sqlx::{Any, AnyPool, Transaction};

use super::{Batch, require_active};
use crate::domain::KeyValue;
use crate::domain::search::PageLimits;
use crate::domain::tracking::{Metric, RUN_NAME_TAG, sortable_value};
use crate::error::{Error, Result};
use crate::store::chunks::{self, Point};
use crate::store::sql::{AnyQuery, get_i64, get_text, placeholders, values_rows, values_rows_from};
use crate::store::transaction::{KeyRef, upsert_key_values};
use crate::store::{Backend, Page, Paging, Store};

impl Store {
    /// Writes one batch atomically: history chunks (a repeated point is merged when read), latest
    /// values, params and tags, in one transaction, or one statement for metrics only on PostgreSQL.
    pub async fn log_batch(&self, run_id: &str, batch: Batch) -> Result<()> {
        let info = self.get_run_info(run_id).await?;
        require_active(&info)?;
        let metrics_only =
            batch.params.is_empty() && batch.tags.is_empty() && batch.model_metrics.is_empty();
        let series = series_writes(&batch.metrics);
        if metrics_only && self.backend == Backend::Postgres {
            if series.is_empty() {
                return Ok(());
            }
            return insert_metrics_in_one_statement(&self.writer, run_id, &series).await;
        }
        let mut transaction = self.writer.begin().await?;
        check_params_unchanged(&mut transaction, run_id, &batch.params).await?;
        if !batch.params.is_empty() {
            let sql = format!(
                "INSERT INTO params (run_uuid, key, value) VALUES {} ON CONFLICT (run_uuid, key) DO NOTHING",
                values_rows(batch.params.len(), 3)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for param in &batch.params {
                query = query
                    .bind(run_id)
                    .bind(param.key.as_str())
                    .bind(param.value.as_str());
            }
            query.execute(&mut *transaction).await?;
        }
        insert_metrics(&mut transaction, run_id, &series).await?;
        if let Some(name) = batch.tags.iter().rev().find(|tag| tag.key == RUN_NAME_TAG) {
            sqlx::query("UPDATE runs SET name = $1 WHERE run_uuid = $2")
                .bind(name.value.as_str())
                .bind(run_id)
                .execute(&mut *transaction)
                .await?;
        }
        upsert_key_values(
            &mut transaction,
            "tags",
            "run_uuid",
            &KeyRef::Text(run_id),
            &batch.tags,
        )
        .await?;
        super::super::logged_models::insert_model_metrics(
            &mut transaction,
            run_id,
            &batch.model_metrics,
        )
        .await?;
        transaction.commit().await?;
        Ok(())
    }

    pub async fn get_metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<Metric>> {
        self.get_run_info(run_id).await?;
        let paging = Paging::new(max_results, PageLimits::METRIC_HISTORY, page_token)?;
        let history = self.metric_history(run_id, key).await?;
        Ok(paging.window(history.into_iter().map(|point| Metric {
            key: key.to_owned(),
            value: point.value,
            timestamp: point.timestamp,
            step: point.step,
        })))
    }
}

/// MLflow refuses to change a logged param; re-logging the same value is fine.
async fn check_params_unchanged(
    transaction: &mut Transaction<'_, Any>,
    run_id: &str,
    params: &[KeyValue],
) -> Result<()> {
    let mut in_batch: BTreeMap<&str, &str> = BTreeMap::new();
    for param in params {
        if let Some(previous) = in_batch.insert(param.key.as_str(), param.value.as_str())
            && previous != param.value
        {
            return Err(Error::invalid(format!(
                "Duplicate parameter keys have been submitted with different values: key '{}' has values '{previous}' and '{}'.",
                param.key, param.value
            )));
        }
    }
    if in_batch.is_empty() {
        return Ok(());
    }
    let keys: Vec<&str> = in_batch.keys().copied().collect();
    let sql = format!(
        "SELECT key, value FROM params WHERE run_uuid = $1 AND key IN ({})",
        placeholders(2, keys.len())
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(run_id);
    for key in &keys {
        query = query.bind(*key);
    }
    for row in query.fetch_all(&mut **transaction).await? {
        let key = get_text(&row, "key")?;
        let existing = get_text(&row, "value")?;
        if let Some(new_value) = in_batch
            .get(key.as_str())
            .filter(|value| **value != existing)
        {
            return Err(Error::invalid(format!(
                "Changing param values is not allowed. Param with key='{key}' was already logged with value='{existing}' for run ID='{run_id}'. Attempted logging new value '{new_value}'."
            )));
        }
    }
    Ok(())
}

/// What one write adds to the history of one key.
struct SeriesWrite<'a> {
    latest: &'a Metric,
    /// The smallest and largest value among the write's points, NaN left out; (+inf, -inf), the
    /// empty range, when there is none. Never NULL: sqlx's `Any` binds a NULL double as a float4,
    /// which then poisons the prepared statement for the doubles bound after it.
    range: (f64, f64),
    points: Vec<Point>,
}

/// A batch's metrics grouped by key.
type SeriesWrites<'a> = BTreeMap<&'a str, SeriesWrite<'a>>;

fn series_writes(metrics: &[Metric]) -> SeriesWrites<'_> {
    let mut by_key = SeriesWrites::new();
    for metric in metrics {
        let point = Point {
            step: metric.step,
            timestamp: metric.timestamp,
            value: metric.value,
        };
        let write = by_key
            .entry(metric.key.as_str())
            .or_insert_with(|| SeriesWrite {
                latest: metric,
                range: (f64::INFINITY, f64::NEG_INFINITY),
                points: Vec::new(),
            });
        if metric.is_newer_than(write.latest) {
            write.latest = metric;
        }
        if !metric.value.is_nan() {
            let (low, high) = write.range;
            write.range = (low.min(metric.value), high.max(metric.value));
        }
        write.points.push(point);
    }
    by_key
}

/// Parameters per row of [`upsert_latest_sql`].
const LATEST_COLUMNS: usize = 8;

/// Upserts the latest_metrics row of each of `keys` keys (parameters `$1..`, bound by
/// [`bind_latest`]) and returns every key's `series_id`.
///
/// Every row is updated, so RETURNING hands back every key's series number, a new key's too; the
/// CASEs keep an older point (by step, timestamp, value) from replacing a newer one as the latest
/// value, and widen the stored range by the write's.
fn upsert_latest_sql(keys: usize) -> String {
    let newer = "(excluded.step > latest_metrics.step \
         OR (excluded.step = latest_metrics.step AND excluded.timestamp > latest_metrics.timestamp) \
         OR (excluded.step = latest_metrics.step AND excluded.timestamp = latest_metrics.timestamp \
             AND excluded.value > latest_metrics.value))";
    let latest_if_newer = |column: &str| {
        format!(
            "{column} = CASE WHEN {newer} THEN excluded.{column} ELSE latest_metrics.{column} END"
        )
    };
    let widen = |column: &str, comparison: &str| {
        format!(
            "{column} = CASE WHEN latest_metrics.{column} IS NULL \
             OR excluded.{column} {comparison} latest_metrics.{column} \
             THEN excluded.{column} ELSE latest_metrics.{column} END"
        )
    };
    format!(
        "INSERT INTO latest_metrics (run_uuid, key, value, timestamp, step, is_nan, min_value, max_value) \
         VALUES {} ON CONFLICT (run_uuid, key) DO UPDATE SET {}, {}, {}, {}, {}, {} \
         RETURNING key, series_id",
        values_rows(keys, LATEST_COLUMNS),
        latest_if_newer("value"),
        latest_if_newer("timestamp"),
        latest_if_newer("step"),
        latest_if_newer("is_nan"),
        widen("min_value", "<"),
        widen("max_value", ">"),
    )
}

fn bind_latest<'q>(
    mut query: AnyQuery<'q>,
    run_id: &'q str,
    by_key: &SeriesWrites<'q>,
) -> AnyQuery<'q> {
    for (key, write) in by_key {
        let latest = write.latest;
        query = query
            .bind(run_id)
            .bind(*key)
            .bind(sortable_value(latest.value))
            .bind(latest.timestamp)
            .bind(latest.step)
            .bind(i64::from(latest.value.is_nan()))
            .bind(write.range.0)
            .bind(write.range.1);
    }
    query
}

/// Writes a batch's points to the history and moves each key's latest value forward.
///
/// The latest_metrics row of each (run, key) comes first: it holds the series number the
/// history chunks are keyed by, and a new key gets its number when the row is inserted.
async fn insert_metrics(
    transaction: &mut Transaction<'_, Any>,
    run_id: &str,
    by_key: &SeriesWrites<'_>,
) -> Result<()> {
    if by_key.is_empty() {
        return Ok(());
    }
    let query = sqlx::query(sqlx::AssertSqlSafe(upsert_latest_sql(by_key.len())));
    let mut series: HashMap<String, i64> = HashMap::with_capacity(by_key.len());
    for row in bind_latest(query, run_id, by_key)
        .fetch_all(&mut **transaction)
        .await?
    {
        series.insert(get_text(&row, "key")?, get_i64(&row, "series_id")?);
    }

    let sql = format!(
        "INSERT INTO metric_chunks (series_id, points) VALUES {}",
        values_rows(by_key.len(), 2)
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (key, write) in by_key {
        let series_id = series.get(*key).copied().ok_or_else(|| {
            Error::Internal(anyhow::anyhow!(
                "no metric series for key '{key}' of run {run_id}"
            ))
        })?;
        query = query
            .bind(series_id)
            .bind(chunks::encode(write.points.iter().copied()));
    }
    query.execute(&mut **transaction).await?;
    Ok(())
}

/// [`insert_metrics`] as one PostgreSQL statement, the upsert in a data-modifying CTE whose
/// series numbers the chunk insert joins on. A single statement is atomic without a
/// transaction, which spares a metrics-only write the BEGIN and COMMIT round trips: most of
/// the server time of a `log-metric` call is spent waiting on round trips, not executing.
async fn insert_metrics_in_one_statement(
    pool: &AnyPool,
    run_id: &str,
    by_key: &SeriesWrites<'_>,
) -> Result<()> {
    let sql = format!(
        "WITH written AS ({}) \
         INSERT INTO metric_chunks (series_id, points) \
         SELECT written.series_id, chunk.points FROM written \
         JOIN (VALUES {}) AS chunk (key, points) ON chunk.key = written.key",
        upsert_latest_sql(by_key.len()),
        values_rows_from(by_key.len() * LATEST_COLUMNS + 1, by_key.len(), 2)
    );
    let mut query = bind_latest(sqlx::query(sqlx::AssertSqlSafe(sql)), run_id, by_key);
    for (key, write) in by_key {
        query = query
            .bind(*key)
            .bind(chunks::encode(write.points.iter().copied()));
    }
    query.execute(pool).await?;
    Ok(())
}
