//! A metric's history downsampled for charts: at most `max_points` points, bucketed by step range
//! in SQL so that a 100,000-point history never leaves the database row by row.
//!
//! Every query walks the history's primary key `(series_id, step, timestamp, value, is_nan)`,
//! which holds every column they read, so no extra index is needed.

use super::{SERIES_OF_RUN_KEY, Store};
use crate::error::Result;

/// One chart point: a single history point (`min = max = value`), or the aggregate of a bucket of
/// steps. A bucket's `step` is its first step; `value` is the mean of its values. NaN values are
/// left out of the aggregates; a point or bucket without any other value is NaN throughout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesPoint {
    pub step: i64,
    pub value: f64,
    pub min: f64,
    pub max: f64,
}

#[derive(Debug, Clone)]
pub struct MetricSeries {
    /// How many points the history holds.
    pub total_points: i64,
    /// Ordered by step; at most the `max_points` asked for.
    pub points: Vec<SeriesPoint>,
}

/// How the bucket of a step is computed in SQL: `(step - $3) * $4 / $5` in the usual case (the
/// brief's `(step - min_step) * N / (max_step - min_step + 1)`), or `step / $3` when that
/// product could overflow a BIGINT (step ranges of more than 2^63 / 10,000).
enum Bucketing {
    Scaled {
        min_step: i64,
        buckets: i64,
        range: i64,
    },
    Wide {
        width: i64,
    },
}

impl Bucketing {
    fn new(min_step: i64, max_step: i64, buckets: i64) -> Bucketing {
        let range = i128::from(max_step) - i128::from(min_step) + 1;
        let largest_product = (range - 1) * i128::from(buckets);
        match (i64::try_from(range), i64::try_from(largest_product)) {
            (Ok(range), Ok(_)) => Bucketing::Scaled {
                min_step,
                buckets,
                range,
            },
            // Truncating division toward zero (the same on both backends) yields at most
            // range / width + 2 distinct values, hence the two spare buckets.
            _ => {
                let usable = i128::from(buckets - 2).max(1);
                let width = (range + usable - 1) / usable;
                Bucketing::Wide {
                    width: i64::try_from(width).unwrap_or(i64::MAX),
                }
            }
        }
    }
}

impl Store {
    /// The history of `key` in run `run_id`, at most `max_points` points ordered by step.
    /// Fails with not-found when the run does not exist; an unknown key is an empty series.
    pub async fn metric_series(
        &self,
        run_id: &str,
        key: &str,
        max_points: i64,
    ) -> Result<MetricSeries> {
        self.get_run_info(run_id).await?;
        // Two index probes (a lone MIN or MAX is one, on both backends), not a scan.
        let (min_step, max_step): (Option<i64>, Option<i64>) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT (SELECT MIN(step) FROM metric_points WHERE {SERIES_OF_RUN_KEY}), \
                        (SELECT MAX(step) FROM metric_points WHERE {SERIES_OF_RUN_KEY})"
            )))
            .bind(run_id)
            .bind(key)
            .fetch_one(&self.reader)
            .await?;
        let (Some(min_step), Some(max_step)) = (min_step, max_step) else {
            return Ok(MetricSeries {
                total_points: 0,
                points: Vec::new(),
            });
        };

        // NaN points are stored as value 0 with is_nan = 1: the CASE keeps them out of the
        // aggregates. AVG of +inf and -inf is NaN on PostgreSQL and NULL on SQLite; both read as NaN.
        // The same pass counts the points, so the history is scanned once.
        let aggregates = format!(
            "SELECT MIN(step), \
             AVG(CASE WHEN is_nan = 0 THEN value END), \
             MIN(CASE WHEN is_nan = 0 THEN value END), \
             MAX(CASE WHEN is_nan = 0 THEN value END), \
             COUNT(*) \
             FROM metric_points WHERE {SERIES_OF_RUN_KEY}"
        );
        type Row = (i64, Option<f64>, Option<f64>, Option<f64>, i64);
        let rows: Vec<Row> = match Bucketing::new(min_step, max_step, max_points) {
            Bucketing::Scaled {
                min_step,
                buckets,
                range,
            } => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{aggregates} GROUP BY (step - $3) * $4 / $5 ORDER BY 1"
                )))
                .bind(run_id)
                .bind(key)
                .bind(min_step)
                .bind(buckets)
                .bind(range)
                .fetch_all(&self.reader)
                .await?
            }
            Bucketing::Wide { width } => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{aggregates} GROUP BY step / $3 ORDER BY 1"
                )))
                .bind(run_id)
                .bind(key)
                .bind(width)
                .fetch_all(&self.reader)
                .await?
            }
        };
        let total_points: i64 = rows.iter().map(|row| row.4).sum();
        if total_points > max_points {
            let points = rows
                .into_iter()
                .map(|(step, value, min, max, _count)| SeriesPoint {
                    step,
                    value: value.unwrap_or(f64::NAN),
                    min: min.unwrap_or(f64::NAN),
                    max: max.unwrap_or(f64::NAN),
                })
                .collect();
            return Ok(MetricSeries {
                total_points,
                points,
            });
        }

        // A history that fits is returned as it is: at most max_points rows, cheap to read again.
        let rows: Vec<(i64, f64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT step, value, is_nan FROM metric_points WHERE {SERIES_OF_RUN_KEY} \
             ORDER BY step, timestamp, value"
        )))
        .bind(run_id)
        .bind(key)
        .fetch_all(&self.reader)
        .await?;
        let points = rows
            .into_iter()
            .map(|(step, value, is_nan)| {
                let value = if is_nan != 0 { f64::NAN } else { value };
                SeriesPoint {
                    step,
                    value,
                    min: value,
                    max: value,
                }
            })
            .collect();
        Ok(MetricSeries {
            total_points,
            points,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Bucketing;

    #[test]
    fn ordinary_ranges_use_the_exact_formula() {
        assert!(matches!(
            Bucketing::new(0, 24_999, 500),
            Bucketing::Scaled {
                min_step: 0,
                buckets: 500,
                range: 25_000
            }
        ));
    }

    #[test]
    fn huge_ranges_fall_back_to_a_width_that_keeps_the_bucket_count() {
        for (min_step, max_step, buckets) in [
            (i64::MIN, i64::MAX, 10),
            (0, i64::MAX, 10_000),
            (-1, i64::MAX / 2, 1000),
        ] {
            let Bucketing::Wide { width } = Bucketing::new(min_step, max_step, buckets) else {
                panic!("{min_step}..={max_step} overflows the scaled formula");
            };
            let first = min_step / width;
            let last = max_step / width;
            // Distinct truncated quotients over the range, counting the doubled zero once.
            let distinct = i128::from(last) - i128::from(first) + 1;
            assert!(
                distinct <= i128::from(buckets),
                "{distinct} buckets > {buckets}"
            );
        }
    }
}
