//! The downsampled metric series endpoint (`/api/okla/v1/runs/{run_id}/metrics/{key}/series`),
//! on SQLite and on PostgreSQL: bucketing of a long history, exact short histories, NaN values,
//! and MLflow-shaped errors.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestServer, assert_mlflow_error};

backend_test_suite!(server:
    long_series_is_bucketed_by_step_range,
    short_series_is_returned_exactly,
    bad_max_points_and_unknown_runs_are_refused,
);

const API: &str = "/api/2.0/mlflow";

fn series_path(run_id: &str, key: &str) -> String {
    format!("/api/okla/v1/runs/{run_id}/metrics/{key}/series")
}

async fn create_run(server: &TestServer) -> String {
    let created = server
        .post_ok(
            &format!("{API}/experiments/create"),
            json!({ "name": "series" }),
        )
        .await;
    let run = server
        .post_ok(
            &format!("{API}/runs/create"),
            json!({ "experiment_id": created["experiment_id"], "start_time": 1_700_000_000_000_i64 }),
        )
        .await;
    run["run"]["info"]["run_id"]
        .as_str()
        .expect("run id")
        .to_owned()
}

/// Logs `(step, value)` points of `key` in log-batch calls of 1000.
async fn log_points(server: &TestServer, run_id: &str, key: &str, points: &[(i64, Value)]) {
    for chunk in points.chunks(1000) {
        let metrics: Vec<Value> = chunk
            .iter()
            .map(|(step, value)| {
                json!({ "key": key, "value": value, "timestamp": 1_700_000_000_000_i64 + step, "step": step })
            })
            .collect();
        server
            .post_ok(
                &format!("{API}/runs/log-batch"),
                json!({ "run_id": run_id, "metrics": metrics }),
            )
            .await;
    }
}

fn number(point: &Value, field: &str) -> f64 {
    point[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} of {point} is not a number"))
}

async fn long_series_is_bucketed_by_step_range(server: &TestServer) {
    let run_id = create_run(server).await;
    // A bounded wave, one spike up and one down, and a NaN the aggregates must skip.
    let points: Vec<(i64, Value)> = (0..25_000_i64)
        .map(|step| {
            let value = match step {
                12_345 => json!(1000.0),
                777 => json!(-1000.0),
                5000 => json!("NaN"),
                _ => json!((step as f64 / 300.0).sin()),
            };
            (step, value)
        })
        .collect();
    log_points(server, &run_id, "loss", &points).await;

    let answer = server
        .get_ok(&series_path(&run_id, "loss"), &[("max_points", "500")])
        .await;
    assert_eq!(answer["run_id"], run_id.as_str());
    assert_eq!(answer["key"], "loss");
    assert_eq!(answer["total_points"], 25_000);
    let buckets = answer["points"].as_array().expect("points");
    assert!(
        !buckets.is_empty() && buckets.len() <= 500,
        "{} points",
        buckets.len()
    );
    let steps: Vec<i64> = buckets
        .iter()
        .map(|point| point["step"].as_i64().expect("integer step"))
        .collect();
    assert!(
        steps.windows(2).all(|pair| pair[0] < pair[1]),
        "steps ascend: {steps:?}"
    );
    for point in buckets {
        let (value, min, max) = (
            number(point, "value"),
            number(point, "min"),
            number(point, "max"),
        );
        assert!(
            min <= value && value <= max,
            "min <= value <= max in {point}"
        );
    }
    // 25,000 steps in 500 buckets: 50 steps each, the first starting at step 0, the last at 24,950.
    assert_eq!(buckets.len(), 500);
    assert_eq!(steps[0], 0);
    assert_eq!(*steps.last().expect("a last bucket"), 24_950);
    assert!(
        buckets.iter().any(|point| number(point, "max") == 1000.0),
        "the spike up is some bucket's max"
    );
    assert!(
        buckets.iter().any(|point| number(point, "min") == -1000.0),
        "the spike down is some bucket's min"
    );
    // The NaN at step 5000 is skipped: its bucket (5000..5049) averages finite values.
    let nan_bucket = buckets
        .iter()
        .find(|point| point["step"] == 5000)
        .expect("a bucket starts at step 5000");
    assert!(number(nan_bucket, "value").is_finite());

    // The default is 1000 points; a series no longer than max_points comes back whole.
    let default = server.get_ok(&series_path(&run_id, "loss"), &[]).await;
    assert_eq!(default["points"].as_array().expect("points").len(), 1000);
    let whole = server
        .get_ok(&series_path(&run_id, "loss"), &[("max_points", "10000")])
        .await;
    assert_eq!(whole["points"].as_array().expect("points").len(), 10_000);
}

async fn short_series_is_returned_exactly(server: &TestServer) {
    let run_id = create_run(server).await;
    let points: Vec<(i64, Value)> = (0..10_i64)
        .map(|step| {
            let value = if step == 3 {
                json!("NaN")
            } else {
                json!(step as f64 * 0.5)
            };
            (step * 10, value)
        })
        .collect();
    // A key with a slash travels percent-encoded in the path.
    log_points(server, &run_id, "train/acc", &points).await;
    let answer = server
        .get_ok(
            &series_path(&run_id, "train%2Facc"),
            &[("max_points", "10")],
        )
        .await;
    assert_eq!(answer["key"], "train/acc");
    assert_eq!(answer["total_points"], 10);
    let expected: Vec<Value> = points
        .iter()
        .map(|(step, value)| json!({ "step": step, "value": value, "min": value, "max": value }))
        .collect();
    assert_eq!(answer["points"], Value::Array(expected));

    // A key the run never logged is an empty series, not an error.
    let empty = server.get_ok(&series_path(&run_id, "absent"), &[]).await;
    assert_eq!(empty["total_points"], 0);
    assert_eq!(empty["points"], json!([]));
}

async fn bad_max_points_and_unknown_runs_are_refused(server: &TestServer) {
    let run_id = create_run(server).await;
    log_points(server, &run_id, "loss", &[(0, json!(1.0))]).await;
    // An empty `max_points=` reads as absent, as every other query field of the API does.
    for bad in ["9", "10001", "0", "-1", "many", "12.5", "1e3"] {
        let answer = server
            .get(&series_path(&run_id, "loss"), &[("max_points", bad)])
            .await;
        let message =
            assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
        assert!(
            message.contains("max_points"),
            "{bad}: message names max_points: {message}"
        );
    }
    let answer = server
        .get(
            &series_path("0123456789abcdef0123456789abcdef", "loss"),
            &[],
        )
        .await;
    assert_mlflow_error(&answer, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
}
