-- The transactional outbox: every registry change the fleet must learn about writes one row
-- here in the same transaction as the change, so a rolled-back change leaves no event and a
-- committed one cannot lose its event. The relay publishes rows in `sequence` order and sets
-- `published_at` only after RabbitMQ confirms; `GET /api/okla/v1/events` serves them without it.
CREATE TABLE outbox_events (
    sequence BIGSERIAL PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    model_name TEXT NOT NULL,
    model_sequence BIGINT NOT NULL,
    routing_key TEXT NOT NULL,
    -- A protobuf-encoded okla.events.v1.ModelEvent, exactly the bytes published.
    payload BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    published_at BIGINT
);
-- The relay's backlog query walks only what is still unpublished.
CREATE INDEX outbox_events_unpublished ON outbox_events (sequence) WHERE published_at IS NULL;

-- The last model_sequence handed out per model name. Kept apart from registered_models (no
-- foreign key) so a name's stream survives deletion: a model re-created under the same name
-- continues at the next number instead of repeating 1, 2, 3 to consumers that remember it.
-- A rename ends the old name's stream with `model.renamed`; later events continue the new
-- name's stream.
CREATE TABLE model_event_sequences (
    model_name TEXT PRIMARY KEY,
    last_sequence BIGINT NOT NULL
);
