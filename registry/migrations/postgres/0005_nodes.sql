-- Serving nodes: the latest state report of each okla-serving node (PUT /api/okla/v1/nodes/{id},
-- see registry/src/domain/nodes.rs). One row per node, replaced by every report; what changed
-- since the previous report becomes model.deployed / model.load_failed events in the same
-- transaction, and the canary gates are judged over the rows of the nodes that are not stale.
-- Not tied to registered_models: a node may report models the registry does not know.
CREATE TABLE serving_nodes (
    node_id TEXT PRIMARY KEY,
    http_url TEXT,
    -- The NodeReport as JSON (its models, versions, states and counters).
    report TEXT NOT NULL,
    -- The node's report interval in seconds: 3 missed reports make it stale.
    report_seconds DOUBLE PRECISION NOT NULL,
    -- When the registry stored the report, in milliseconds since the Unix epoch.
    reported_at BIGINT NOT NULL
);
