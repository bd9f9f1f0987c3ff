//! Upgrading a database that already holds data keeps the data: the metric history written
//! under the schema before series numbers (a row per point, keyed by run id and key) reads back
//! whole, to the bit, after the upgrade to series numbers and then to history chunks, on both
//! backends.

use okla_registry::config::BackendStore;
use okla_registry::store::Store;
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, Connection, Executor};

use crate::support::{BackendKind, TestDatabase};

/// Each backend's migrations, and the last one before the history was keyed by series number.
fn migrations_before_series(kind: BackendKind) -> (Migrator, i64) {
    match kind {
        BackendKind::Postgres => (sqlx::migrate!("./migrations/postgres"), 5),
        BackendKind::Sqlite => (sqlx::migrate!("./migrations/sqlite"), 4),
    }
}

/// Writes two runs' metrics the way the registry did before series numbers: history rows in
/// `metrics`, keyed by run id and key, beside one `latest_metrics` row per (run, key).
const OLD_SCHEMA_ROWS: &str = "
    INSERT INTO runs (run_uuid, experiment_id, name, user_id, status, start_time, artifact_uri, lifecycle_stage)
    VALUES ('run-a', 0, 'a', 'trainer', 'FINISHED', 1, 'file:///a', 'active'),
           ('run-b', 0, 'b', 'trainer', 'FINISHED', 2, 'file:///b', 'active');
    INSERT INTO metrics (run_uuid, key, step, timestamp, value, is_nan) VALUES
        ('run-a', 'loss', 0, 100, 0.9, 0), ('run-a', 'loss', 1, 101, 0.5, 0),
        ('run-a', 'loss', 1, 101, 0.4, 0), ('run-a', 'loss', 2, 102, 0, 1),
        ('run-a', 'acc', 0, 100, 0.1, 0), ('run-b', 'loss', 0, 200, 0.7, 0);
    INSERT INTO latest_metrics (run_uuid, key, value, timestamp, step, is_nan) VALUES
        ('run-a', 'loss', 0, 102, 2, 1), ('run-a', 'acc', 0.1, 100, 0, 0),
        ('run-b', 'loss', 0.7, 200, 0, 0);
";

/// Points whose values only read back exactly if the migration prints them in full: the
/// infinities (spelled differently by each database) and values needing 17 significant digits.
fn extreme_rows(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::Postgres => {
            "INSERT INTO metrics (run_uuid, key, step, timestamp, value, is_nan) VALUES
                ('run-b', 'edge', -9223372036854775808, 9223372036854775807, 'Infinity', 0),
                ('run-b', 'edge', 1, 1, '-Infinity', 0),
                ('run-b', 'edge', 2, 2, 0.30000000000000004, 0),
                ('run-b', 'edge', 3, 3, 5e-324, 0);
             INSERT INTO latest_metrics (run_uuid, key, value, timestamp, step, is_nan)
             VALUES ('run-b', 'edge', 5e-324, 3, 3, 0);"
        }
        BackendKind::Sqlite => {
            "INSERT INTO metrics (run_uuid, key, step, timestamp, value, is_nan) VALUES
                ('run-b', 'edge', -9223372036854775808, 9223372036854775807, 9e999, 0),
                ('run-b', 'edge', 1, 1, -9e999, 0),
                ('run-b', 'edge', 2, 2, 0.30000000000000004, 0),
                ('run-b', 'edge', 3, 3, 5e-324, 0);
             INSERT INTO latest_metrics (run_uuid, key, value, timestamp, step, is_nan)
             VALUES ('run-b', 'edge', 5e-324, 3, 3, 0);"
        }
    }
}

async fn history_survives_the_series_migration(kind: BackendKind) {
    let database = TestDatabase::create(kind).await;
    let url = match BackendStore::parse(&database.uri).expect("test URIs parse") {
        BackendStore::Postgres(url) => url,
        BackendStore::Sqlite(path) => format!("sqlite://{}?mode=rwc", path.display()),
    };
    sqlx::any::install_default_drivers();
    let mut connection = AnyConnection::connect(&url).await.expect("connect");
    let (migrator, before_series) = migrations_before_series(kind);
    migrator
        .run_to(before_series, &mut connection)
        .await
        .expect("migrate to the schema before series numbers");
    connection
        .execute(OLD_SCHEMA_ROWS)
        .await
        .expect("rows in the old schema");
    connection
        .execute(extreme_rows(kind))
        .await
        .expect("extreme rows in the old schema");
    connection.close().await.expect("close");

    // Connecting runs the remaining migrations, as a registry upgrade does at start.
    let store: Store = database.connect_store().await;
    let history = |run: &'static str, key: &'static str| {
        let store = store.clone();
        async move {
            store
                .get_metric_history(run, key, None, None)
                .await
                .expect("history")
                .items
                .into_iter()
                .map(|metric| (metric.step, metric.timestamp, metric.value))
                .collect::<Vec<_>>()
        }
    };
    let loss_a = history("run-a", "loss").await;
    assert_eq!(loss_a.len(), 4, "every point of run-a's loss: {loss_a:?}");
    assert_eq!(&loss_a[..3], &[(0, 100, 0.9), (1, 101, 0.4), (1, 101, 0.5)]);
    assert_eq!((loss_a[3].0, loss_a[3].1), (2, 102));
    assert!(loss_a[3].2.is_nan(), "the NaN point stays NaN");
    assert_eq!(history("run-a", "acc").await, vec![(0, 100, 0.1)]);
    assert_eq!(history("run-b", "loss").await, vec![(0, 200, 0.7)]);
    let edge: Vec<(i64, i64, u64)> = history("run-b", "edge")
        .await
        .into_iter()
        .map(|(step, timestamp, value)| (step, timestamp, value.to_bits()))
        .collect();
    assert_eq!(
        edge,
        vec![
            (i64::MIN, i64::MAX, f64::INFINITY.to_bits()),
            (1, 1, f64::NEG_INFINITY.to_bits()),
            (2, 2, 0.300_000_000_000_000_04_f64.to_bits()),
            (3, 3, 5e-324_f64.to_bits()),
        ]
    );
    let runs = ["run-a".to_owned(), "run-b".to_owned()];
    let ranges = store.metric_ranges(&runs).await.expect("ranges");
    let range = |run: &str, key: &str| ranges.get(&(run.to_owned(), key.to_owned())).copied();
    assert_eq!(range("run-a", "loss"), Some((0.4, 0.9)), "NaN left out");
    assert_eq!(
        range("run-b", "edge"),
        Some((f64::NEG_INFINITY, f64::INFINITY))
    );

    // New points continue the migrated series rather than starting a second one.
    store
        .log_batch(
            "run-b",
            okla_registry::store::tracking::Batch {
                metrics: vec![okla_registry::domain::tracking::Metric {
                    key: "loss".to_owned(),
                    value: 0.6,
                    timestamp: 201,
                    step: 1,
                }],
                ..Default::default()
            },
        )
        .await
        .expect("log after the upgrade");
    assert_eq!(
        history("run-b", "loss").await,
        vec![(0, 200, 0.7), (1, 201, 0.6)]
    );
    let ranges = store.metric_ranges(&runs).await.expect("ranges");
    assert_eq!(
        ranges.get(&("run-b".to_owned(), "loss".to_owned())),
        Some(&(0.6, 0.7))
    );
    store.close().await;
}

#[tokio::test]
async fn postgres_history_survives_the_series_migration() {
    history_survives_the_series_migration(BackendKind::Postgres).await;
}

#[tokio::test]
async fn sqlite_history_survives_the_series_migration() {
    history_survives_the_series_migration(BackendKind::Sqlite).await;
}
