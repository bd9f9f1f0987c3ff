//! `GET /api/okla/v1/runs/{run_id}/metrics/{key}/series?max_points=N`: a metric's history
//! downsampled for charts (at most N points, by step range, averaged with min and max kept).
//! Non-finite values travel as MLflow writes them: the strings "NaN", "Infinity", "-Infinity".

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

use super::extract::{MlflowQuery, serialize_f64};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::series::SeriesPoint;

const DEFAULT_MAX_POINTS: i64 = 1000;
const MIN_MAX_POINTS: i64 = 10;
const MAX_MAX_POINTS: i64 = 10_000;

#[derive(Deserialize)]
pub(super) struct SeriesQuery {
    max_points: Option<String>,
}

#[derive(Serialize)]
pub(super) struct SeriesWire {
    run_id: String,
    key: String,
    total_points: i64,
    points: Vec<PointWire>,
}

#[derive(Serialize)]
struct PointWire {
    step: i64,
    #[serde(serialize_with = "serialize_f64")]
    value: f64,
    #[serde(serialize_with = "serialize_f64")]
    min: f64,
    #[serde(serialize_with = "serialize_f64")]
    max: f64,
}

impl From<SeriesPoint> for PointWire {
    fn from(point: SeriesPoint) -> Self {
        PointWire {
            step: point.step,
            value: point.value,
            min: point.min,
            max: point.max,
        }
    }
}

pub(super) async fn metric_series(
    State(state): State<AppState>,
    Path((run_id, key)): Path<(String, String)>,
    MlflowQuery(query): MlflowQuery<SeriesQuery>,
) -> Result<Json<SeriesWire>> {
    let max_points = parse_max_points(query.max_points.as_deref())?;
    let series = state.store.metric_series(&run_id, &key, max_points).await?;
    Ok(Json(SeriesWire {
        run_id,
        key,
        total_points: series.total_points,
        points: series.points.into_iter().map(PointWire::from).collect(),
    }))
}

fn parse_max_points(raw: Option<&str>) -> Result<i64> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_MAX_POINTS);
    };
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|value| (MIN_MAX_POINTS..=MAX_MAX_POINTS).contains(value))
        .ok_or_else(|| {
            Error::invalid(format!(
                "Invalid value '{raw}' for parameter 'max_points': expected an integer from \
                 {MIN_MAX_POINTS} to {MAX_MAX_POINTS}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::parse_max_points;

    #[test]
    fn max_points_defaults_and_bounds() {
        assert_eq!(parse_max_points(None).ok(), Some(1000));
        assert_eq!(parse_max_points(Some("10")).ok(), Some(10));
        assert_eq!(parse_max_points(Some("10000")).ok(), Some(10_000));
        for bad in ["9", "10001", "-5", "abc", "", "1.5"] {
            assert!(parse_max_points(Some(bad)).is_err(), "{bad} was accepted");
        }
    }
}
