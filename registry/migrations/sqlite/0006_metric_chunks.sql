-- The metric history in chunks; see the PostgreSQL migration of the same name for why.
CREATE TABLE metric_chunks (
    chunk_id INTEGER PRIMARY KEY,
    series_id BIGINT NOT NULL,
    points TEXT NOT NULL
);
CREATE INDEX metric_chunks_series ON metric_chunks (series_id);

-- %!.17g: seventeen significant digits read back to the same double.
INSERT INTO metric_chunks (series_id, points)
SELECT series_id,
       group_concat(step || ' ' || timestamp || ' '
                    || CASE WHEN is_nan = 1 THEN 'NaN' ELSE printf('%!.17g', value) END,
                    char(10))
FROM metric_points
GROUP BY series_id;

ALTER TABLE latest_metrics ADD COLUMN min_value DOUBLE PRECISION;
ALTER TABLE latest_metrics ADD COLUMN max_value DOUBLE PRECISION;

UPDATE latest_metrics SET
    min_value = (SELECT MIN(value) FROM metric_points p
                 WHERE p.series_id = latest_metrics.series_id AND p.is_nan = 0),
    max_value = (SELECT MAX(value) FROM metric_points p
                 WHERE p.series_id = latest_metrics.series_id AND p.is_nan = 0);

DROP TABLE metric_points;
