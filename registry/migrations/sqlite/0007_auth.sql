-- Identity and permissions (registry/src/auth): users with argon2 password hashes, API tokens
-- stored as SHA-256 digests of their high-entropy secrets, and per-user grants on experiments
-- (by id) and registered models (by name) with MLflow's permission names. A grant is not tied
-- to its resource by a foreign key: MLflow allows granting on an id that does not exist yet,
-- and experiment grants survive the experiment's deletion.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Case-sensitive, as MLflow's.
    username TEXT NOT NULL UNIQUE,
    -- PHC string: $argon2id$v=19$m=...,t=...,p=...$salt$hash
    password_hash TEXT NOT NULL,
    -- 0 or 1.
    is_admin BIGINT NOT NULL,
    created_time BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    -- Public identifier, shown in lists and used to revoke; never enough to authenticate.
    id TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    -- Hex SHA-256 of the secret: the secret has 256 random bits, so a slow hash adds nothing.
    secret_sha256 TEXT NOT NULL UNIQUE,
    -- Set on node credentials: the token authenticates as the serving node node:<node_id>.
    node_id TEXT,
    created_time BIGINT NOT NULL,
    expires_time BIGINT NOT NULL,
    revoked_time BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE permissions (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- 'experiment' (resource_id = experiment id) or 'registered_model' (resource_id = name);
    -- resource_id '*' applies to every resource of the type.
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    -- READ, USE, EDIT, MANAGE or DENY.
    permission TEXT NOT NULL,
    PRIMARY KEY (user_id, resource_type, resource_id)
);
CREATE INDEX permissions_resource ON permissions (resource_type, resource_id);

-- Every mutating call and every refused call: who, what, on what, and how it ended.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time BIGINT NOT NULL,
    -- The authenticated principal (a username, node:<id>), or the claimed name when refused.
    actor TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    -- HTTP status of the answer.
    status BIGINT NOT NULL,
    outcome TEXT NOT NULL
);
CREATE INDEX audit_log_time ON audit_log (time);
