//! A metric's history downsampled for charts: at most `max_points` points, bucketed by step range.

use super::Store;
use super::chunks::Point;
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

/// The running aggregate of one bucket.
struct Bucket {
    index: i128,
    first_step: i64,
    sum: f64,
    count: u32,
    min: f64,
    max: f64,
}

impl Bucket {
    fn new(index: i128, step: i64) -> Bucket {
        Bucket {
            index,
            first_step: step,
            sum: 0.0,
            count: 0,
            min: f64::NAN,
            max: f64::NAN,
        }
    }

    fn add(&mut self, value: f64) {
        if value.is_nan() {
            return;
        }
        self.sum += value;
        self.count += 1;
        // f64::min and max return the other operand when one is NaN, so the first value wins.
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    fn point(&self) -> SeriesPoint {
        SeriesPoint {
            step: self.first_step,
            // The mean of +inf and -inf is NaN, as it is in SQL.
            value: if self.count == 0 {
                f64::NAN
            } else {
                self.sum / f64::from(self.count)
            },
            min: self.min,
            max: self.max,
        }
    }
}

/// Buckets a history in step order: point `step` falls in bucket
/// `(step - min_step) * buckets / (max_step - min_step + 1)`, computed in 128 bits so that no
/// step range overflows, which yields at most `buckets` buckets.
fn downsample(history: &[Point], buckets: i64) -> Vec<SeriesPoint> {
    let (Some(first), Some(last)) = (history.first(), history.last()) else {
        return Vec::new();
    };
    let min_step = i128::from(first.step);
    let range = i128::from(last.step) - min_step + 1;
    let mut points = Vec::new();
    let mut current: Option<Bucket> = None;
    for point in history {
        let index = (i128::from(point.step) - min_step) * i128::from(buckets) / range;
        if let Some(finished) = current.take_if(|bucket| bucket.index != index) {
            points.push(finished.point());
        }
        current
            .get_or_insert_with(|| Bucket::new(index, point.step))
            .add(point.value);
    }
    points.extend(current.map(|bucket| bucket.point()));
    points
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
        let history = self.metric_history(run_id, key).await?;
        let total_points = i64::try_from(history.len()).unwrap_or(i64::MAX);
        let points = if total_points > max_points {
            downsample(&history, max_points)
        } else {
            history
                .iter()
                .map(|point| SeriesPoint {
                    step: point.step,
                    value: point.value,
                    min: point.value,
                    max: point.value,
                })
                .collect()
        };
        Ok(MetricSeries {
            total_points,
            points,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Point, downsample};

    fn history(steps: impl IntoIterator<Item = i64>) -> Vec<Point> {
        steps
            .into_iter()
            .map(|step| Point {
                step,
                timestamp: 0,
                value: step as f64,
            })
            .collect()
    }

    #[test]
    fn ordinary_ranges_use_the_exact_formula() {
        let points = downsample(&history(0..25_000), 500);
        assert_eq!(points.len(), 500);
        assert_eq!(points[1].step, 50);
        assert_eq!(
            (points[1].min, points[1].max, points[1].value),
            (50.0, 99.0, 74.5)
        );
    }

    #[test]
    fn huge_ranges_keep_the_bucket_count() {
        for (steps, buckets) in [
            (vec![i64::MIN, -1, 0, 1, i64::MAX], 2),
            (vec![0, 1, 2, i64::MAX - 1, i64::MAX], 3),
            (vec![i64::MIN, i64::MIN + 1, i64::MAX], 1),
        ] {
            let points = downsample(&history(steps.clone()), buckets);
            assert!(
                !points.is_empty() && points.len() <= buckets as usize,
                "{steps:?} in {buckets}: {points:?}"
            );
            assert_eq!(points[0].step, steps[0]);
        }
    }

    #[test]
    fn nan_is_left_out_and_a_nan_only_bucket_is_nan() {
        let mut points = history(0..4);
        points[1].value = f64::NAN;
        points[2].value = f64::NAN;
        points[3].value = f64::NAN;
        let buckets = downsample(&points, 2);
        assert_eq!(
            (buckets[0].value, buckets[0].min, buckets[0].max),
            (0.0, 0.0, 0.0)
        );
        assert!(buckets[1].value.is_nan() && buckets[1].min.is_nan() && buckets[1].max.is_nan());
    }
}
