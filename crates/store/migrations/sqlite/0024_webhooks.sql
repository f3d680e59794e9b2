-- Webhooks: an address told about the events it subscribed to (`events`: a JSON list), each delivery signed
-- with `secret` (HMAC-SHA256; shown to the admin once, kept to sign). `allow_private`: the admin allowed an
-- address in a loopback or private range (refused otherwise).
CREATE TABLE webhooks (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL,
    url           TEXT NOT NULL,
    events        TEXT NOT NULL,
    secret        TEXT NOT NULL,
    enabled       BOOLEAN NOT NULL DEFAULT TRUE,
    allow_private BOOLEAN NOT NULL DEFAULT FALSE,
    created_by    BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE UNIQUE INDEX webhooks_name_key ON webhooks (lower(name));

-- One delivery per webhook and event (`event_key`, also its idempotency key `id` sent to the receiver), its
-- payload as sent on every attempt, and how the last attempt went: the delivery log.
CREATE TABLE webhook_deliveries (
    id            BLOB PRIMARY KEY NOT NULL,
    webhook_id    INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event         TEXT NOT NULL,
    event_key     TEXT NOT NULL,
    payload       TEXT NOT NULL,
    state         TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_status   INTEGER,
    last_latency_ms INTEGER,
    last_response TEXT,
    last_error    TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    delivered_at  TEXT,
    CONSTRAINT webhook_deliveries_event_key UNIQUE (webhook_id, event_key)
);
CREATE INDEX webhook_deliveries_log_idx ON webhook_deliveries (webhook_id, created_at);
