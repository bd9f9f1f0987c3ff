-- Web UI sign-ins (registry/src/ui/login.rs): one row per session cookie, by the SHA-256 of its
-- 256-bit secret (the cookie itself is never stored). Signing out, deleting the user or the
-- expiry ends a session.
CREATE TABLE ui_sessions (
    secret_sha256 TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_time BIGINT NOT NULL,
    expires_time BIGINT NOT NULL
);
CREATE INDEX ui_sessions_user ON ui_sessions (user_id);
