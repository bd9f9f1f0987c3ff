-- The metric history keyed by a number per (run, key); see the PostgreSQL migration of the same
-- name for why. SQLite cannot add a generated column to a table, so latest_metrics is rebuilt
-- with the series number as its INTEGER PRIMARY KEY (the rowid, assigned on insert).
CREATE TABLE latest_metrics_with_series (
    series_id INTEGER PRIMARY KEY,
    run_uuid TEXT NOT NULL REFERENCES runs (run_uuid) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    timestamp BIGINT NOT NULL,
    step BIGINT NOT NULL,
    is_nan BIGINT NOT NULL,
    UNIQUE (run_uuid, key)
);
INSERT INTO latest_metrics_with_series (run_uuid, key, value, timestamp, step, is_nan)
SELECT run_uuid, key, value, timestamp, step, is_nan FROM latest_metrics;
DROP TABLE latest_metrics;
ALTER TABLE latest_metrics_with_series RENAME TO latest_metrics;
CREATE INDEX latest_metrics_key_value ON latest_metrics (key, value);

CREATE TABLE metric_points (
    series_id BIGINT NOT NULL,
    step BIGINT NOT NULL,
    timestamp BIGINT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    is_nan BIGINT NOT NULL,
    PRIMARY KEY (series_id, step, timestamp, value, is_nan)
);

INSERT INTO metric_points (series_id, step, timestamp, value, is_nan)
SELECT l.series_id, m.step, m.timestamp, m.value, m.is_nan
FROM metrics m JOIN latest_metrics l ON l.run_uuid = m.run_uuid AND l.key = m.key;

DROP TABLE metrics;
