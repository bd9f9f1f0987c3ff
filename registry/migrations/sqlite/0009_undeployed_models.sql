-- Models explicitly taken out of the fleet (registry/src/store/deployments.rs): while a name is
-- here and has no explicit deployment, the fleet serves nothing of it, whatever its `champion`
-- alias or Production stage say. No foreign key: the mark outlives the model's deletion or
-- renaming, so a serving node that missed the undeploy still learns of it. Deploying again
-- (a deployment, the `champion` alias, a Production version) removes the mark.
CREATE TABLE undeployed_models (
    name TEXT PRIMARY KEY,
    undeployed_at BIGINT NOT NULL,
    undeployed_by TEXT NOT NULL
);
