-- Deployments: per registered model, the explicit spec of which versions the serving fleet
-- serves and how traffic splits (see registry/src/domain/deployments.rs). A model without a row,
-- or whose row has a NULL spec (the deployment was deleted), gets the default: its `champion`
-- alias's version, else its Production version, at 100%.
--
-- The row outlives a delete (spec NULL) so `revision` keeps counting: a client holding an old
-- revision can never match a later state by accident. It goes with the model (cascade); a
-- rename carries it along.
CREATE TABLE deployments (
    name TEXT PRIMARY KEY REFERENCES registered_models (name) ON UPDATE CASCADE ON DELETE CASCADE,
    -- The DeploymentSpec as JSON; NULL when the default applies.
    spec TEXT,
    -- 1, 2, 3...: every update, delete and rollback takes the next; PUT's expected_revision.
    revision BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);
