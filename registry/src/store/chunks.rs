//! The metric history, stored in chunks: each write adds one `metric_chunks` row per metric key,
//! holding that write's points of the key as text, one `step timestamp value` line per point.
//!
//! A row per point made log-batch's cost that of a thousand primary-key insertions per call, and
//! a history read that of decoding a row per point. Reads now fetch a series' chunks, then sort
//! and deduplicate the points here: MLflow keeps one copy of an identical (step, timestamp, value),
//! which a retried write would otherwise store twice.
//!
//! A history logged one `log-metric` call at a time is a chunk per point, which costs a row's
//! overhead in storage and a row's decoding on every read. Reads that meet many small chunks have
//! a background task merge them ([`Store::compact_metric_history`]): it deletes exactly the chunks
//! it read and writes their points back in large chunks, in one transaction, so concurrent writes
//! (new chunks) are never touched and a concurrent compaction of the same series rolls back.
//!
//! Text rather than packed binary because both backends' migrations must be able to write the
//! format in plain SQL: PostgreSQL prints a double exactly (shortest round-trip) and SQLite with
//! `printf('%!.17g')`; values are written here with `ryu`, which is shortest round-trip too.

use std::cmp::Ordering;
use std::sync::PoisonError;

use super::sql::values_rows;
use super::{Backend, Store};
use crate::domain::tracking::sortable_value;
use crate::error::{Error, Result};

/// A chunk of fewer points than this is small: each `log-metric` call writes a chunk of one.
const SMALL_CHUNK_POINTS: usize = 256;
/// Small chunks a read may meet in one series before it has them merged.
const COMPACT_AT_SMALL_CHUNKS: usize = 64;
/// Points per chunk that compaction writes: some 100 KiB of text, a fraction of it stored.
const COMPACTED_CHUNK_POINTS: usize = 4096;
/// Chunks per INSERT statement, well inside both databases' limits on bound parameters.
const CHUNKS_PER_INSERT: usize = 1000;

/// What one compaction of a metric's history did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compaction {
    /// Small chunks merged and deleted.
    pub chunks_merged: usize,
    /// Chunks written in their place.
    pub chunks_written: usize,
}

/// One point of a metric's history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Point {
    pub step: i64,
    pub timestamp: i64,
    pub value: f64,
}

/// The text of one chunk: `step timestamp value` per point, lines joined by `\n`.
pub(super) fn encode(points: impl IntoIterator<Item = Point>) -> String {
    let mut text = String::new();
    let mut integers = itoa::Buffer::new();
    let mut floats = ryu::Buffer::new();
    for point in points {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(integers.format(point.step));
        text.push(' ');
        text.push_str(integers.format(point.timestamp));
        text.push(' ');
        // ryu prints NaN and the infinities as `NaN`, `inf` and `-inf`, which parse back.
        text.push_str(floats.format(point.value));
    }
    text
}

/// Appends the points of one chunk's text to `points`.
fn decode(text: &str, points: &mut Vec<Point>) -> std::result::Result<(), String> {
    for line in text.split('\n').filter(|line| !line.is_empty()) {
        let mut fields = line.split(' ');
        let mut field = |name: &str| {
            fields
                .next()
                .ok_or_else(|| format!("line '{line}' lacks its {name}"))
        };
        let step = field("step")?;
        let timestamp = field("timestamp")?;
        let value = field("value")?;
        // Rust's float parsing takes PostgreSQL's `Infinity` and SQLite's `Inf` alike.
        let point = Point {
            step: step
                .parse()
                .map_err(|error| format!("bad step in line '{line}': {error}"))?,
            timestamp: timestamp
                .parse()
                .map_err(|error| format!("bad timestamp in line '{line}': {error}"))?,
            value: value
                .parse()
                .map_err(|error| format!("bad value in line '{line}': {error}"))?,
        };
        points.push(point);
    }
    Ok(())
}

/// MLflow's history order, by step, then timestamp, then value, NaN ordering as 0 (after a real 0).
fn history_order(a: &Point, b: &Point) -> Ordering {
    (a.step, a.timestamp)
        .cmp(&(b.step, b.timestamp))
        .then_with(|| sortable_value(a.value).total_cmp(&sortable_value(b.value)))
        .then_with(|| a.value.is_nan().cmp(&b.value.is_nan()))
}

fn same_point(a: &Point, b: &Point) -> bool {
    a.step == b.step
        && a.timestamp == b.timestamp
        && (a.value == b.value || (a.value.is_nan() && b.value.is_nan()))
}

/// Puts points gathered from several chunks in history order, keeping one copy of each point.
fn into_history(mut points: Vec<Point>) -> Vec<Point> {
    points.sort_unstable_by(history_order);
    points.dedup_by(|later, earlier| same_point(later, earlier));
    points
}

impl Store {
    /// The whole history of `key` in run `run_id`, in history order; empty for an unknown key.
    pub(super) async fn metric_history(&self, run_id: &str, key: &str) -> Result<Vec<Point>> {
        // Each (run, key) is one series, numbered by its latest_metrics row: one index probe.
        let chunks: Vec<(i64, String)> = sqlx::query_as(
            "SELECT series_id, points FROM metric_chunks WHERE series_id = \
             (SELECT series_id FROM latest_metrics WHERE run_uuid = $1 AND key = $2)",
        )
        .bind(run_id)
        .bind(key)
        .fetch_all(&self.reader)
        .await?;
        let mut points = Vec::new();
        let mut small_chunks = 0;
        for (_, chunk) in &chunks {
            let before = points.len();
            decode(chunk, &mut points)
                .map_err(|problem| corrupt(&format!("metric '{key}' of run {run_id}"), &problem))?;
            if points.len() - before < SMALL_CHUNK_POINTS {
                small_chunks += 1;
            }
        }
        if small_chunks >= COMPACT_AT_SMALL_CHUNKS
            && let Some(&(series_id, _)) = chunks.first()
        {
            self.compact_in_background(series_id);
        }
        Ok(into_history(points))
    }

    /// Merges the small chunks of `key`'s history in run `run_id` now, rather than when a read
    /// next finds enough of them. For operators and tests; the history reads the same after.
    pub async fn compact_metric_history(&self, run_id: &str, key: &str) -> Result<Compaction> {
        self.get_run_info(run_id).await?;
        match self.series_of(run_id, key).await? {
            Some(series_id) => self.compact_series(series_id).await,
            None => Ok(Compaction::default()),
        }
    }

    /// How many rows hold the history of `key` in run `run_id` (0 for an unknown key), which
    /// shows whether compaction has run.
    pub async fn metric_history_chunks(&self, run_id: &str, key: &str) -> Result<i64> {
        let Some(series_id) = self.series_of(run_id, key).await? else {
            return Ok(0);
        };
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM metric_chunks WHERE series_id = $1")
                .bind(series_id)
                .fetch_one(&self.reader)
                .await?,
        )
    }

    /// The series number of `key` in run `run_id`; `metric_history` reads it in a subquery
    /// instead, saving the round trip on the path every chart takes.
    async fn series_of(&self, run_id: &str, key: &str) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT series_id FROM latest_metrics WHERE run_uuid = $1 AND key = $2",
        )
        .bind(run_id)
        .bind(key)
        .fetch_optional(&self.reader)
        .await?)
    }

    fn compact_in_background(&self, series_id: i64) {
        let Some(in_flight) = InFlight::claim(self, series_id) else {
            return;
        };
        let store = self.clone();
        tokio::spawn(async move {
            match store.compact_series(series_id).await {
                Ok(done) => tracing::debug!(
                    series_id,
                    chunks_merged = done.chunks_merged,
                    chunks_written = done.chunks_written,
                    "compacted a metric history"
                ),
                Err(error) => {
                    tracing::warn!(series_id, %error, "compacting a metric history failed");
                }
            }
            drop(in_flight);
        });
    }

    async fn compact_series(&self, series_id: i64) -> Result<Compaction> {
        let mut transaction = self.writer.begin().await?;
        let chunks: Vec<(i64, String)> =
            sqlx::query_as("SELECT chunk_id, points FROM metric_chunks WHERE series_id = $1")
                .bind(series_id)
                .fetch_all(&mut *transaction)
                .await?;
        let mut merged = Vec::new();
        let mut points = Vec::new();
        let mut chunk_points = Vec::new();
        for (chunk_id, text) in &chunks {
            chunk_points.clear();
            decode(text, &mut chunk_points)
                .map_err(|problem| corrupt(&format!("metric series {series_id}"), &problem))?;
            if chunk_points.len() < SMALL_CHUNK_POINTS {
                merged.push(*chunk_id);
                points.append(&mut chunk_points);
            }
        }
        if merged.len() < 2 {
            return Ok(Compaction::default());
        }

        let ids = merged
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        // A join, not `chunk_id = ANY(...)`: PostgreSQL tests a bound array element by element
        // for every row, which took 5 s for a series of 10,000 chunks; the join takes 10 ms.
        let (sql, list) = match self.backend {
            Backend::Postgres => (
                "DELETE FROM metric_chunks USING unnest(CAST($2 AS bigint[])) AS merged (chunk_id) \
                 WHERE metric_chunks.series_id = $1 AND metric_chunks.chunk_id = merged.chunk_id",
                format!("{{{ids}}}"),
            ),
            Backend::Sqlite => (
                "DELETE FROM metric_chunks \
                 WHERE series_id = $1 AND chunk_id IN (SELECT value FROM json_each($2))",
                format!("[{ids}]"),
            ),
        };
        let deleted = sqlx::query(sql)
            .bind(series_id)
            .bind(list)
            .execute(&mut *transaction)
            .await?
            .rows_affected();
        if usize::try_from(deleted).ok() != Some(merged.len()) {
            // A compaction of the same series committed first; its chunks hold these points.
            transaction.rollback().await?;
            return Ok(Compaction::default());
        }

        let history = into_history(points);
        let written: Vec<String> = history
            .chunks(COMPACTED_CHUNK_POINTS)
            .map(|chunk| encode(chunk.iter().copied()))
            .collect();
        for statement in written.chunks(CHUNKS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO metric_chunks (series_id, points) VALUES {}",
                values_rows(statement.len(), 2)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for text in statement {
                query = query.bind(series_id).bind(text.as_str());
            }
            query.execute(&mut *transaction).await?;
        }
        transaction.commit().await?;
        Ok(Compaction {
            chunks_merged: merged.len(),
            chunks_written: written.len(),
        })
    }
}

fn corrupt(series: &str, problem: &str) -> Error {
    Error::Internal(anyhow::anyhow!(
        "stored history of {series} is corrupt: {problem}"
    ))
}

/// A series' place in [`Store`]'s set of compactions under way, given up when dropped, so a
/// failed or cancelled task does not keep its series from being compacted again.
struct InFlight {
    store: Store,
    series_id: i64,
}

impl InFlight {
    fn claim(store: &Store, series_id: i64) -> Option<InFlight> {
        let mut compacting = store
            .compacting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        compacting.insert(series_id).then(|| InFlight {
            store: store.clone(),
            series_id,
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.store
            .compacting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.series_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(step: i64, timestamp: i64, value: f64) -> Point {
        Point {
            step,
            timestamp,
            value,
        }
    }

    fn round_trip(points: &[Point]) -> Vec<Point> {
        let mut decoded = Vec::new();
        decode(&encode(points.iter().copied()), &mut decoded).expect("own encoding decodes");
        decoded
    }

    #[test]
    fn every_value_survives_the_text_form() {
        let points = [
            point(i64::MIN, i64::MAX, 0.1),
            point(-1, 0, 0.300_000_000_000_000_04),
            point(0, 1, f64::INFINITY),
            point(1, 2, f64::NEG_INFINITY),
            point(2, 3, f64::MIN_POSITIVE),
            point(3, 4, 5e-324),
            point(4, 5, f64::MAX),
            point(5, 6, -0.0),
        ];
        let decoded = round_trip(&points);
        assert_eq!(decoded.len(), points.len());
        for (before, after) in points.iter().zip(&decoded) {
            assert_eq!(
                (before.step, before.timestamp),
                (after.step, after.timestamp)
            );
            assert_eq!(before.value.to_bits(), after.value.to_bits(), "{before:?}");
        }
        let nan = round_trip(&[point(7, 8, f64::NAN)]);
        assert!(nan[0].value.is_nan());
    }

    #[test]
    fn the_spellings_of_both_databases_decode() {
        let mut points = Vec::new();
        decode(
            "1 10 Infinity\n2 20 -Infinity\n3 30 NaN\n4 40 1e+300\n5 50 0.10000000000000001\n\
             6 60 Inf\n7 70 -Inf\n8 80 1.0e+300\n9 90 4.9406564584124654e-324",
            &mut points,
        )
        .expect("database spellings decode");
        let values: Vec<f64> = points.iter().map(|point| point.value).collect();
        assert_eq!(values[0], f64::INFINITY);
        assert_eq!(values[1], f64::NEG_INFINITY);
        assert!(values[2].is_nan());
        assert_eq!(values[3], 1e300);
        assert_eq!(values[4], 0.1);
        assert_eq!(values[5], f64::INFINITY);
        assert_eq!(values[6], f64::NEG_INFINITY);
        assert_eq!(values[7], 1e300);
        assert_eq!(values[8], 5e-324);
    }

    #[test]
    fn damaged_text_is_an_error_naming_the_line() {
        for damaged in ["1 2", "1 x 3.0", "a 2 3.0", "1 2 three"] {
            let error = decode(damaged, &mut Vec::new()).expect_err(damaged);
            assert!(error.contains(damaged), "{error}");
        }
    }

    #[test]
    fn history_is_ordered_and_holds_each_point_once() {
        let history = into_history(vec![
            point(2, 5, 1.0),
            point(1, 9, f64::NAN),
            point(1, 9, 0.0),
            point(1, 9, -0.5),
            point(2, 5, 1.0),
            point(1, 9, f64::NAN),
            point(0, 7, 3.0),
        ]);
        let seen: Vec<(i64, i64, String)> = history
            .iter()
            .map(|point| (point.step, point.timestamp, format!("{:?}", point.value)))
            .collect();
        assert_eq!(
            seen,
            vec![
                (0, 7, "3.0".to_owned()),
                (1, 9, "-0.5".to_owned()),
                (1, 9, "0.0".to_owned()),
                (1, 9, "NaN".to_owned()),
                (2, 5, "1.0".to_owned()),
            ]
        );
    }
}
